package registry

import (
	"cmp"
	"slices"
)

// Reason is the machine-readable reason of an error (UPPER_SNAKE, e.g. IDENTIFIER_TAKEN): the
// google.rpc.ErrorInfo reason gRPC clients switch on. Every reason the registry, its store,
// its transports and the authority give is one of the constants below, and the catalogue
// gives each exactly one Kind, hence one gRPC code: NewError takes the kind from the reason.
// A test refuses a reason in the code that is not in the catalogue, and README "API" lists
// the catalogue.
type Reason string

// Identifiers: how they are written. ParseIdentifier refuses with the IDENTIFIER_… and
// IDENTIFIER_LOCAL_PART_… reasons (the local part of an e-mail-form identifier, see
// policy_email.go); RegistrationPolicy.Check, which decides what may be registered anew,
// with IDENTIFIER_MIXED_SCRIPT and IDENTIFIER_SPECIAL_USE.
const (
	ReasonIdentifierRequired     Reason = "IDENTIFIER_REQUIRED"
	ReasonIdentifierEmpty        Reason = "IDENTIFIER_EMPTY"
	ReasonIdentifierMalformed    Reason = "IDENTIFIER_MALFORMED"
	ReasonIdentifierTooLong      Reason = "IDENTIFIER_TOO_LONG"
	ReasonIdentifierLabelTooLong Reason = "IDENTIFIER_LABEL_TOO_LONG"
	ReasonIdentifierTooFewLabels Reason = "IDENTIFIER_TOO_FEW_LABELS"
	ReasonIdentifierPublicSuffix Reason = "IDENTIFIER_PUBLIC_SUFFIX"
	ReasonIdentifierWildcard     Reason = "IDENTIFIER_WILDCARD"
	ReasonIdentifierIPLiteral    Reason = "IDENTIFIER_IP_LITERAL"
	ReasonLocalPartEmpty         Reason = "IDENTIFIER_LOCAL_PART_EMPTY"
	ReasonLocalPartTooLong       Reason = "IDENTIFIER_LOCAL_PART_TOO_LONG"
	ReasonLocalPartNotNFC        Reason = "IDENTIFIER_LOCAL_PART_NOT_NFC"
	ReasonLocalPartMalformed     Reason = "IDENTIFIER_LOCAL_PART_MALFORMED"
	ReasonIdentifierMixedScript  Reason = "IDENTIFIER_MIXED_SCRIPT"
	ReasonIdentifierSpecialUse   Reason = "IDENTIFIER_SPECIAL_USE"
)

// Identifiers: their lifecycle, statuses and resolution.
const (
	ReasonIdentifierNotFound           Reason = "IDENTIFIER_NOT_FOUND"
	ReasonIdentifierTaken              Reason = "IDENTIFIER_TAKEN"
	ReasonIdentifierOnHold             Reason = "IDENTIFIER_ON_HOLD"
	ReasonIdentifierPendingDelete      Reason = "IDENTIFIER_PENDING_DELETE"
	ReasonIdentifierNotPendingDelete   Reason = "IDENTIFIER_NOT_PENDING_DELETE"
	ReasonIdentifierUpdateProhibited   Reason = "IDENTIFIER_UPDATE_PROHIBITED"
	ReasonIdentifierDeleteProhibited   Reason = "IDENTIFIER_DELETE_PROHIBITED"
	ReasonIdentifierTransferProhibited Reason = "IDENTIFIER_TRANSFER_PROHIBITED"
	ReasonRedemptionPeriodOver         Reason = "REDEMPTION_PERIOD_OVER"
	ReasonAlreadySponsor               Reason = "ALREADY_SPONSOR"
	ReasonSponsorChanged               Reason = "SPONSOR_CHANGED"
	ReasonSponsorSuspended             Reason = "SPONSOR_SUSPENDED"
	ReasonNotResolvedOnHold            Reason = "NOT_RESOLVED_ON_HOLD"
	ReasonNotResolvedPendingDelete     Reason = "NOT_RESOLVED_PENDING_DELETE"
	ReasonStatusUnknown                Reason = "STATUS_UNKNOWN"
	ReasonStatusNotClientSettable      Reason = "STATUS_NOT_CLIENT_SETTABLE"
	ReasonStatusNotServerSettable      Reason = "STATUS_NOT_SERVER_SETTABLE"
	ReasonReasonInvalid                Reason = "REASON_INVALID"
	ReasonReasonRequired               Reason = "REASON_REQUIRED"
	ReasonUpdateMaskRequired           Reason = "UPDATE_MASK_REQUIRED"
	ReasonUpdateMaskInvalid            Reason = "UPDATE_MASK_INVALID"
	ReasonETagMismatch                 Reason = "ETAG_MISMATCH"
	ReasonIdentityNotFound             Reason = "IDENTITY_NOT_FOUND"
	ReasonIdentityRetired              Reason = "IDENTITY_RETIRED"
	ReasonCredentialsAlreadySet        Reason = "CREDENTIALS_ALREADY_SET"
	ReasonNoAuthority                  Reason = "NO_AUTHORITY"
)

// Endpoint and issuer URLs an agent gives (see checkEndpointURL): each rule has a reason per
// field.
const (
	ReasonClaimsEndpointRequired       Reason = "CLAIMS_ENDPOINT_REQUIRED"
	ReasonClaimsEndpointMalformed      Reason = "CLAIMS_ENDPOINT_MALFORMED"
	ReasonClaimsEndpointUserinfo       Reason = "CLAIMS_ENDPOINT_USERINFO"
	ReasonClaimsEndpointFragment       Reason = "CLAIMS_ENDPOINT_FRAGMENT"
	ReasonClaimsEndpointPortInvalid    Reason = "CLAIMS_ENDPOINT_PORT_INVALID"
	ReasonClaimsEndpointNotHTTPS       Reason = "CLAIMS_ENDPOINT_NOT_HTTPS"
	ReasonClaimsEndpointPrivateAddress Reason = "CLAIMS_ENDPOINT_PRIVATE_ADDRESS"
	ReasonIssuerRequired               Reason = "ISSUER_REQUIRED"
	ReasonIssuerMalformed              Reason = "ISSUER_MALFORMED"
	ReasonIssuerUserinfo               Reason = "ISSUER_USERINFO"
	ReasonIssuerFragment               Reason = "ISSUER_FRAGMENT"
	ReasonIssuerPortInvalid            Reason = "ISSUER_PORT_INVALID"
	ReasonIssuerNotHTTPS               Reason = "ISSUER_NOT_HTTPS"
	ReasonIssuerPrivateAddress         Reason = "ISSUER_PRIVATE_ADDRESS"
)

// Challenges, registrations and transfers.
const (
	ReasonPurposeRequired          Reason = "PURPOSE_REQUIRED"
	ReasonChallengeIDRequired      Reason = "CHALLENGE_ID_REQUIRED"
	ReasonChallengeNotFound        Reason = "CHALLENGE_NOT_FOUND"
	ReasonChallengeExpired         Reason = "CHALLENGE_EXPIRED"
	ReasonChallengeConsumed        Reason = "CHALLENGE_CONSUMED"
	ReasonChallengeInvalid         Reason = "CHALLENGE_INVALID"
	ReasonChallengeNotValid        Reason = "CHALLENGE_NOT_VALID"
	ReasonChallengePurposeMismatch Reason = "CHALLENGE_PURPOSE_MISMATCH"
	ReasonDNSNotConfigured         Reason = "DNS_NOT_CONFIGURED"
	ReasonRequestIDInvalid         Reason = "REQUEST_ID_INVALID"
	ReasonRequestIDReused          Reason = "REQUEST_ID_REUSED"
	ReasonRequestOutcomeGone       Reason = "REQUEST_OUTCOME_GONE"
	ReasonRequestOutcomeNotFound   Reason = "REQUEST_OUTCOME_NOT_FOUND"
	ReasonTransferIDRequired       Reason = "TRANSFER_ID_REQUIRED"
	ReasonTransferNotFound         Reason = "TRANSFER_NOT_FOUND"
	ReasonTransferPending          Reason = "TRANSFER_PENDING"
	ReasonTransferNotPending       Reason = "TRANSFER_NOT_PENDING"
	ReasonLosingAgentOnly          Reason = "LOSING_AGENT_ONLY"
	ReasonGainingAgentOnly         Reason = "GAINING_AGENT_ONLY"
	ReasonInvalidDirection         Reason = "INVALID_DIRECTION"
	ReasonDirectionUnknown         Reason = "DIRECTION_UNKNOWN"
)

// Listings and events.
const (
	ReasonInvalidPageSize  Reason = "INVALID_PAGE_SIZE"
	ReasonInvalidPageToken Reason = "INVALID_PAGE_TOKEN"
	ReasonTooManyEventIDs  Reason = "TOO_MANY_EVENT_IDS"
	ReasonInvalidEventID   Reason = "INVALID_EVENT_ID"
)

// Agents, operators and their credentials.
const (
	ReasonAgentRequired              Reason = "AGENT_REQUIRED"
	ReasonAgentIDRequired            Reason = "AGENT_ID_REQUIRED"
	ReasonAgentNotFound              Reason = "AGENT_NOT_FOUND"
	ReasonAgentStateInvalid          Reason = "AGENT_STATE_INVALID"
	ReasonAgentSuspended             Reason = "AGENT_SUSPENDED"
	ReasonDisplayNameInvalid         Reason = "DISPLAY_NAME_INVALID"
	ReasonDescriptionTooLong         Reason = "DESCRIPTION_TOO_LONG"
	ReasonAccountKeyInvalid          Reason = "ACCOUNT_KEY_INVALID"
	ReasonClientCertPinInvalid       Reason = "CLIENT_CERT_PIN_INVALID"
	ReasonClientCertUnknown          Reason = "CLIENT_CERT_UNKNOWN"
	ReasonCredentialRequired         Reason = "CREDENTIAL_REQUIRED"
	ReasonCredentialMalformed        Reason = "CREDENTIAL_MALFORMED"
	ReasonCredentialInvalid          Reason = "CREDENTIAL_INVALID"
	ReasonCredentialRevoked          Reason = "CREDENTIAL_REVOKED"
	ReasonCredentialAlreadyRevoked   Reason = "CREDENTIAL_ALREADY_REVOKED"
	ReasonCredentialChanged          Reason = "CREDENTIAL_CHANGED"
	ReasonCredentialIDRequired       Reason = "CREDENTIAL_ID_REQUIRED"
	ReasonCredentialNotFound         Reason = "CREDENTIAL_NOT_FOUND"
	ReasonAgentCredentialRequired    Reason = "AGENT_CREDENTIAL_REQUIRED"
	ReasonOperatorCredentialRequired Reason = "OPERATOR_CREDENTIAL_REQUIRED"
	ReasonLastOperatorCredential     Reason = "LAST_OPERATOR_CREDENTIAL"
	ReasonMethodNotAllowed           Reason = "METHOD_NOT_ALLOWED"
)

// The store's refusals and failures.
const (
	ReasonInvalidTime              Reason = "INVALID_TIME"
	ReasonInvalidStatus            Reason = "INVALID_STATUS"
	ReasonObjectExists             Reason = "OBJECT_EXISTS"
	ReasonReferencedObjectNotFound Reason = "REFERENCED_OBJECT_NOT_FOUND"
	ReasonConcurrentUpdate         Reason = "CONCURRENT_UPDATE"
	ReasonDatabaseUnavailable      Reason = "DATABASE_UNAVAILABLE"
	ReasonDatabaseError            Reason = "DATABASE_ERROR"
)

// The transport's: limits, shutdown, the call's own end, and failures.
const (
	ReasonRateLimited        Reason = "RATE_LIMITED"
	ReasonOverloaded         Reason = "OVERLOADED"
	ReasonTooManyStreams     Reason = "TOO_MANY_STREAMS"
	ReasonServerShuttingDown Reason = "SERVER_SHUTTING_DOWN"
	ReasonUnavailable        Reason = "UNAVAILABLE"
	ReasonUnimplemented      Reason = "UNIMPLEMENTED"
	ReasonCancelled          Reason = "CANCELLED"
	ReasonDeadlineExceeded   Reason = "DEADLINE_EXCEEDED"
	ReasonInternal           Reason = "INTERNAL"
	// ReasonNotFound is the reason of a bare NOT_FOUND from gRPC's own services.
	ReasonNotFound Reason = "NOT_FOUND"
)

// reasonInfo is a catalogue entry.
type reasonInfo struct {
	kind Kind
	desc string
}

// catalogue gives every reason its one kind and a one-line description (README "API" shows
// them). A map literal with constant keys: a reason listed twice does not compile.
var catalogue = map[Reason]reasonInfo{
	ReasonIdentifierRequired:     {KindInvalidArgument, "The call names no identifier."},
	ReasonIdentifierEmpty:        {KindInvalidArgument, "The identifier is empty or has no labels."},
	ReasonIdentifierMalformed:    {KindInvalidArgument, "The identifier is not a valid domain name or local@domain; the message names the character or rule."},
	ReasonIdentifierTooLong:      {KindInvalidArgument, "The identifier (or the DNS name it stands for) is over 253 octets."},
	ReasonIdentifierLabelTooLong: {KindInvalidArgument, "A label of the identifier is over 63 octets."},
	ReasonIdentifierTooFewLabels: {KindInvalidArgument, "The identifier has a single label: a top-level domain is no identifier."},
	ReasonIdentifierPublicSuffix: {KindInvalidArgument, "The identifier is a public suffix (e.g. co.uk), which no one holder owns."},
	ReasonIdentifierWildcard:     {KindInvalidArgument, "The identifier has a wildcard label."},
	ReasonIdentifierIPLiteral:    {KindInvalidArgument, "The identifier is an IP address or an IP literal."},
	ReasonLocalPartEmpty:         {KindInvalidArgument, "The identifier has nothing before its @."},
	ReasonLocalPartTooLong:       {KindInvalidArgument, "The local part (before @) is over 64 octets."},
	ReasonLocalPartNotNFC:        {KindInvalidArgument, "The local part is not in Unicode NFC, so it would not match what the holder types."},
	ReasonLocalPartMalformed:     {KindInvalidArgument, "The local part has a character or form e-mail would not take unquoted; the message names it."},
	ReasonIdentifierMixedScript:  {KindInvalidArgument, "A label mixes scripts in a way that can imitate another name (UTS #39)."},
	ReasonIdentifierSpecialUse:   {KindInvalidArgument, "The identifier is under a special-use name (RFC 6761: .test, .localhost, …)."},

	ReasonIdentifierNotFound:           {KindNotFound, "No such identifier, or it is not the calling agent's."},
	ReasonIdentifierTaken:              {KindAlreadyExists, "The identifier, or another with its DNS name, is registered already."},
	ReasonIdentifierOnHold:             {KindFailedPrecondition, "The identifier is on hold (`serverHold`): its holder cannot log in, nor can it be transferred."},
	ReasonIdentifierPendingDelete:      {KindFailedPrecondition, "The identifier is deleted and waits for its purge: restore it first."},
	ReasonIdentifierNotPendingDelete:   {KindFailedPrecondition, "Only an identifier pending delete can be restored."},
	ReasonIdentifierUpdateProhibited:   {KindFailedPrecondition, "The identifier has an update-prohibited status."},
	ReasonIdentifierDeleteProhibited:   {KindFailedPrecondition, "The identifier has a delete-prohibited status."},
	ReasonIdentifierTransferProhibited: {KindFailedPrecondition, "The identifier has a transfer-prohibited status."},
	ReasonRedemptionPeriodOver:         {KindFailedPrecondition, "The redemption period of the deleted identifier has ended."},
	ReasonAlreadySponsor:               {KindFailedPrecondition, "The calling agent sponsors the identifier already."},
	ReasonSponsorChanged:               {KindFailedPrecondition, "The identifier changed sponsor since the challenge was made: create a new challenge."},
	ReasonSponsorSuspended:             {KindFailedPrecondition, "The agent sponsoring the identifier is suspended."},
	ReasonNotResolvedOnHold:            {KindNotFound, "`ResolveIdentifier`: the identifier is on hold and resolves to nothing."},
	ReasonNotResolvedPendingDelete:     {KindNotFound, "`ResolveIdentifier`: the identifier is pending delete and resolves to nothing."},
	ReasonStatusUnknown:                {KindInvalidArgument, "A status is not one the registry knows, or not one that can be set."},
	ReasonStatusNotClientSettable:      {KindPermissionDenied, "The status is set only by the registry (operators, lifecycle)."},
	ReasonStatusNotServerSettable:      {KindInvalidArgument, "`SetServerStatus` takes only server statuses."},
	ReasonReasonInvalid:                {KindInvalidArgument, "The operator's reason is not valid UTF-8 or too long."},
	ReasonReasonRequired:               {KindInvalidArgument, "The call needs the operator's reason (a support case's reference), and names none."},
	ReasonUpdateMaskRequired:           {KindInvalidArgument, "The update names no fields to change."},
	ReasonUpdateMaskInvalid:            {KindInvalidArgument, "The update mask names a field that cannot be changed."},
	ReasonETagMismatch:                 {KindAborted, "The object changed since it was read: read it again and retry."},
	ReasonIdentityNotFound:             {KindNotFound, "No such identity (the holder an identifier stands for)."},
	ReasonIdentityRetired:              {KindFailedPrecondition, "The identity is retired already."},
	ReasonCredentialsAlreadySet:        {KindFailedPrecondition, "The holder has set a password already: ask for a `PURPOSE_RESET` link."},
	ReasonNoAuthority:                  {KindUnimplemented, "This registry runs without an authority, so it keeps no holder credentials."},

	ReasonClaimsEndpointRequired:       {KindInvalidArgument, "`claims_endpoint` is required."},
	ReasonClaimsEndpointMalformed:      {KindInvalidArgument, "`claims_endpoint` is not an absolute URL, or its host reads as an IP address in an ambiguous form."},
	ReasonClaimsEndpointUserinfo:       {KindInvalidArgument, "`claims_endpoint` carries user information."},
	ReasonClaimsEndpointFragment:       {KindInvalidArgument, "`claims_endpoint` has a fragment."},
	ReasonClaimsEndpointPortInvalid:    {KindInvalidArgument, "`claims_endpoint` names a port outside 1 to 65535."},
	ReasonClaimsEndpointNotHTTPS:       {KindInvalidArgument, "`claims_endpoint` does not use https."},
	ReasonClaimsEndpointPrivateAddress: {KindInvalidArgument, "`claims_endpoint` points at localhost or a non-public address."},
	ReasonIssuerRequired:               {KindInvalidArgument, "`issuer` is required."},
	ReasonIssuerMalformed:              {KindInvalidArgument, "`issuer` is not an absolute URL, or its host reads as an IP address in an ambiguous form."},
	ReasonIssuerUserinfo:               {KindInvalidArgument, "`issuer` carries user information."},
	ReasonIssuerFragment:               {KindInvalidArgument, "`issuer` has a fragment."},
	ReasonIssuerPortInvalid:            {KindInvalidArgument, "`issuer` names a port outside 1 to 65535."},
	ReasonIssuerNotHTTPS:               {KindInvalidArgument, "`issuer` does not use https."},
	ReasonIssuerPrivateAddress:         {KindInvalidArgument, "`issuer` points at localhost or a non-public address."},

	ReasonPurposeRequired:          {KindInvalidArgument, "The call names no purpose (or an unknown one)."},
	ReasonChallengeIDRequired:      {KindInvalidArgument, "The call names no challenge."},
	ReasonChallengeNotFound:        {KindNotFound, "No such challenge, or it is not the calling agent's."},
	ReasonChallengeExpired:         {KindFailedPrecondition, "The challenge has expired: create a new one."},
	ReasonChallengeConsumed:        {KindFailedPrecondition, "The challenge was used already: create a new one."},
	ReasonChallengeInvalid:         {KindFailedPrecondition, "The challenge failed too many checks: create a new one."},
	ReasonChallengeNotValid:        {KindFailedPrecondition, "The challenge is not verified yet: publish the record and verify it first."},
	ReasonChallengePurposeMismatch: {KindFailedPrecondition, "The challenge was made for another purpose (register or transfer)."},
	ReasonDNSNotConfigured:         {KindUnavailable, "This registry instance has no DNS checker, so it cannot verify challenges."},
	ReasonRequestIDInvalid:         {KindInvalidArgument, "`request_id` is not 1 to 64 letters, digits, '-', '_' or '.'."},
	ReasonRequestIDReused:          {KindInvalidArgument, "`request_id` was used before for another request."},
	ReasonRequestOutcomeGone:       {KindFailedPrecondition, "The identifier the first call with this `request_id` registered has left the agent since."},
	ReasonRequestOutcomeNotFound:   {KindNotFound, "The agent made no call with this `request_id`."},
	ReasonTransferIDRequired:       {KindInvalidArgument, "The call names no transfer."},
	ReasonTransferNotFound:         {KindNotFound, "No such transfer, or it is not the calling agent's."},
	ReasonTransferPending:          {KindFailedPrecondition, "A transfer of the identifier is pending: it cannot change, nor be transferred again, until that one ends."},
	ReasonTransferNotPending:       {KindFailedPrecondition, "The transfer has ended already."},
	ReasonLosingAgentOnly:          {KindPermissionDenied, "Only the losing agent may approve or reject the transfer."},
	ReasonGainingAgentOnly:         {KindPermissionDenied, "Only the gaining agent may cancel the transfer."},
	ReasonInvalidDirection:         {KindInvalidArgument, "The transfer direction is not one the registry knows."},
	ReasonDirectionUnknown:         {KindInvalidArgument, "`direction` is not `DIRECTION_IN`, `DIRECTION_OUT` or unset."},

	ReasonInvalidPageSize:  {KindInvalidArgument, "`page_size` is negative."},
	ReasonInvalidPageToken: {KindInvalidArgument, "`page_token` is not one this listing returned."},
	ReasonTooManyEventIDs:  {KindInvalidArgument, "`AckEvents` names more event ids than a page holds."},
	ReasonInvalidEventID:   {KindInvalidArgument, "An event id is not positive, or `after_id` is negative."},

	ReasonAgentRequired:              {KindInvalidArgument, "The call names no agent."},
	ReasonAgentIDRequired:            {KindInvalidArgument, "`agent_id` is required: a token belongs to an agent."},
	ReasonAgentNotFound:              {KindNotFound, "No such agent."},
	ReasonAgentStateInvalid:          {KindInvalidArgument, "`state` is not active or suspended."},
	ReasonAgentSuspended:             {KindPermissionDenied, "The calling agent is suspended."},
	ReasonDisplayNameInvalid:         {KindInvalidArgument, "`display_name` is empty or too long."},
	ReasonDescriptionTooLong:         {KindInvalidArgument, "`description` is too long."},
	ReasonAccountKeyInvalid:          {KindInvalidArgument, "`account_key_jwk` is not an acceptable public JWK."},
	ReasonClientCertPinInvalid:       {KindInvalidArgument, "A client certificate pin is not 64 hex characters (SHA-256 of the SubjectPublicKeyInfo)."},
	ReasonClientCertUnknown:          {KindUnauthenticated, "The client certificate is pinned to no agent."},
	ReasonCredentialRequired:         {KindUnauthenticated, "The call has neither a bearer credential nor a pinned client certificate."},
	ReasonCredentialMalformed:        {KindUnauthenticated, "The authorization metadata or bearer credential is not of a form this registry issues."},
	ReasonCredentialInvalid:          {KindUnauthenticated, "The bearer credential is not valid."},
	ReasonCredentialRevoked:          {KindUnauthenticated, "The bearer credential was revoked."},
	ReasonCredentialAlreadyRevoked:   {KindFailedPrecondition, "The credential to revoke is revoked already."},
	ReasonCredentialChanged:          {KindPermissionDenied, "The stream's credential no longer belongs to the agent that opened it."},
	ReasonCredentialIDRequired:       {KindInvalidArgument, "The call names no credential."},
	ReasonCredentialNotFound:         {KindNotFound, "No such credential (or not the named agent's)."},
	ReasonAgentCredentialRequired:    {KindPermissionDenied, "The `RegistryService` is for agents; this credential is an operator's."},
	ReasonOperatorCredentialRequired: {KindPermissionDenied, "This service or call is for registry operators."},
	ReasonLastOperatorCredential:     {KindFailedPrecondition, "The last operator credential cannot be revoked: create its successor first."},
	ReasonMethodNotAllowed:           {KindPermissionDenied, "The method is in no service a credential may call."},

	ReasonInvalidTime:              {KindInvalidArgument, "A time the store needs is not set."},
	ReasonInvalidStatus:            {KindInvalidArgument, "A status cannot be stored."},
	ReasonObjectExists:             {KindAlreadyExists, "An object with this ID exists already."},
	ReasonReferencedObjectNotFound: {KindFailedPrecondition, "An object the change refers to does not exist."},
	ReasonConcurrentUpdate:         {KindAborted, "A concurrent change won: read again and retry."},
	ReasonDatabaseUnavailable:      {KindUnavailable, "The database is out of reach or did not answer in time: retry shortly."},
	ReasonDatabaseError:            {KindInternal, "The database failed (logged; the caller sees INTERNAL)."},

	ReasonRateLimited:        {KindResourceExhausted, "The agent is over its request rate: slow down."},
	ReasonOverloaded:         {KindResourceExhausted, "The registry sheds calls of this class: retry after the `RetryInfo` delay."},
	ReasonTooManyStreams:     {KindResourceExhausted, "The agent has as many `WatchEvents` streams open as it may."},
	ReasonServerShuttingDown: {KindUnavailable, "The server is shutting down: watch again with `after_id` set."},
	ReasonUnavailable:        {KindUnavailable, "The server or the connection went away during the call: retry."},
	ReasonUnimplemented:      {KindUnimplemented, "The server does not implement the method."},
	ReasonCancelled:          {KindCanceled, "The call was cancelled."},
	ReasonDeadlineExceeded:   {KindDeadlineExceeded, "The call ran out of time."},
	ReasonInternal:           {KindInternal, "A failure of the registry itself, logged for the operator: retry later."},
	ReasonNotFound:           {KindNotFound, "gRPC's health service does not know the service asked about."},
}

// ReasonInfo describes a catalogued reason.
type ReasonInfo struct {
	Reason Reason
	// Kind is the reason's one kind, hence its one gRPC code.
	Kind Kind
	// Description says in one line when the reason is given.
	Description string
}

// Reasons returns the catalogue, ordered by reason.
func Reasons() []ReasonInfo {
	out := make([]ReasonInfo, 0, len(catalogue))
	for r, in := range catalogue {
		out = append(out, ReasonInfo{Reason: r, Kind: in.kind, Description: in.desc})
	}
	slices.SortFunc(out, func(a, b ReasonInfo) int { return cmp.Compare(a.Reason, b.Reason) })
	return out
}

// Info returns r's catalogue entry, and whether r is catalogued.
func (r Reason) Info() (ReasonInfo, bool) {
	in, ok := catalogue[r]
	return ReasonInfo{Reason: r, Kind: in.kind, Description: in.desc}, ok
}

// Kind returns r's kind, or KindInternal for a reason not in the catalogue.
func (r Reason) Kind() Kind {
	if in, ok := catalogue[r]; ok {
		return in.kind
	}
	return KindInternal
}
