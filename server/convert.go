package server

import (
	"encoding/json"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/id4me/id4me-registry/dnsverify"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
)

// ts converts a time, leaving zero times unset.
func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

var statusToProto = map[registry.Status]registryv1.IdentifierStatus{
	registry.StatusClientTransferProhibited: registryv1.IdentifierStatus_IDENTIFIER_STATUS_CLIENT_TRANSFER_PROHIBITED,
	registry.StatusClientDeleteProhibited:   registryv1.IdentifierStatus_IDENTIFIER_STATUS_CLIENT_DELETE_PROHIBITED,
	registry.StatusClientUpdateProhibited:   registryv1.IdentifierStatus_IDENTIFIER_STATUS_CLIENT_UPDATE_PROHIBITED,
	registry.StatusServerHold:               registryv1.IdentifierStatus_IDENTIFIER_STATUS_SERVER_HOLD,
	registry.StatusServerTransferProhibited: registryv1.IdentifierStatus_IDENTIFIER_STATUS_SERVER_TRANSFER_PROHIBITED,
	registry.StatusServerDeleteProhibited:   registryv1.IdentifierStatus_IDENTIFIER_STATUS_SERVER_DELETE_PROHIBITED,
	registry.StatusServerUpdateProhibited:   registryv1.IdentifierStatus_IDENTIFIER_STATUS_SERVER_UPDATE_PROHIBITED,
	registry.StatusPendingDelete:            registryv1.IdentifierStatus_IDENTIFIER_STATUS_PENDING_DELETE,
	registry.StatusPendingTransfer:          registryv1.IdentifierStatus_IDENTIFIER_STATUS_PENDING_TRANSFER,
}

var statusFromProto = func() map[registryv1.IdentifierStatus]registry.Status {
	m := make(map[registryv1.IdentifierStatus]registry.Status, len(statusToProto))
	for k, v := range statusToProto {
		m[v] = k
	}
	return m
}()

func statusesToProto(ss []registry.Status) []registryv1.IdentifierStatus {
	if len(ss) == 0 {
		return []registryv1.IdentifierStatus{registryv1.IdentifierStatus_IDENTIFIER_STATUS_OK}
	}
	out := make([]registryv1.IdentifierStatus, 0, len(ss))
	for _, s := range ss {
		out = append(out, statusToProto[s])
	}
	return out
}

// statusesFromProto converts requested statuses; OK and unknown values are dropped, as OK
// means "no other status" and is never set by itself.
func statusesFromProto(ss []registryv1.IdentifierStatus) ([]registry.Status, error) {
	out := make([]registry.Status, 0, len(ss))
	for _, s := range ss {
		if s == registryv1.IdentifierStatus_IDENTIFIER_STATUS_OK {
			continue
		}
		d, ok := statusFromProto[s]
		if !ok {
			return nil, registry.NewError(registry.ReasonStatusUnknown, "status %v is not one that can be set", s)
		}
		out = append(out, d)
	}
	return out, nil
}

var openIDStatus = map[dnsverify.OpenIDStatus]registryv1.OpenIDRecordCheck_Status{
	dnsverify.OpenIDMatches:  registryv1.OpenIDRecordCheck_STATUS_MATCHES,
	dnsverify.OpenIDMissing:  registryv1.OpenIDRecordCheck_STATUS_MISSING,
	dnsverify.OpenIDMismatch: registryv1.OpenIDRecordCheck_STATUS_MISMATCH,
	dnsverify.OpenIDError:    registryv1.OpenIDRecordCheck_STATUS_ERROR,
}

func identifierToProto(i registry.IdentifierInfo) *registryv1.Identifier {
	out := &registryv1.Identifier{
		Name: i.Name, UnicodeName: i.UnicodeName, DnsName: i.DNSName, AgentId: i.AgentID, Statuses: statusesToProto(i.Statuses),
		ClaimsEndpoint: i.ClaimsEndpoint, EffectiveClaimsEndpoint: i.EffectiveClaimsEndpoint,
		CreateTime: ts(i.CreateTime), UpdateTime: ts(i.UpdateTime), Etag: i.Etag(),
		DeleteTime: ts(i.DeleteTime), PurgeTime: ts(i.PurgeTime),
	}
	if i.OpenID.Status != "" {
		out.OpenidRecord = openIDToProto(i.OpenID)
	}
	return out
}

func openIDToProto(c registry.OpenIDState) *registryv1.OpenIDRecordCheck {
	return &registryv1.OpenIDRecordCheck{
		Status: openIDStatus[c.Status], Record: c.Record, Issuer: c.Issuer,
		ClaimsProvider: c.ClaimsProvider, Detail: c.Detail, CheckTime: ts(c.CheckTime),
		NextCheckTime: ts(c.NextCheck),
	}
}

var linkPurposeFromProto = map[registryv1.CredentialLink_Purpose]registry.CredentialLinkPurpose{
	registryv1.CredentialLink_PURPOSE_SETUP: registry.CredentialLinkSetup,
	registryv1.CredentialLink_PURPOSE_RESET: registry.CredentialLinkReset,
}

func credentialLinkToProto(l registry.CredentialLink) *registryv1.CredentialLink {
	p := registryv1.CredentialLink_PURPOSE_SETUP
	if l.Purpose == registry.CredentialLinkReset {
		p = registryv1.CredentialLink_PURPOSE_RESET
	}
	return &registryv1.CredentialLink{Url: l.URL, ExpireTime: timestamppb.New(l.ExpireTime), Purpose: p, Identifier: l.Identifier}
}

var purposeToProto = map[registry.Purpose]registryv1.Purpose{
	registry.PurposeRegister: registryv1.Purpose_PURPOSE_REGISTER,
	registry.PurposeTransfer: registryv1.Purpose_PURPOSE_TRANSFER,
}

func purposeFromProto(p registryv1.Purpose) registry.Purpose {
	for k, v := range purposeToProto {
		if v == p {
			return k
		}
	}
	return ""
}

var challengeStatus = map[registry.ChallengeStatus]registryv1.Challenge_Status{
	registry.ChallengePending:  registryv1.Challenge_STATUS_PENDING,
	registry.ChallengeValid:    registryv1.Challenge_STATUS_VALID,
	registry.ChallengeInvalid:  registryv1.Challenge_STATUS_INVALID,
	registry.ChallengeConsumed: registryv1.Challenge_STATUS_CONSUMED,
	registry.ChallengeExpired:  registryv1.Challenge_STATUS_EXPIRED,
}

func challengeToProto(c registry.Challenge) *registryv1.Challenge {
	out := &registryv1.Challenge{
		Id: c.ID, Identifier: c.Identifier, DnsName: c.DNSName(), Purpose: purposeToProto[c.Purpose], Token: c.Token,
		KeyAuthorization: c.KeyAuthorization, RecordName: c.RecordName(), RecordValue: c.RecordValue(),
		Status: challengeStatus[c.Status], ExpireTime: ts(c.ExpireTime), CreateTime: ts(c.CreateTime),
		ValidateTime: ts(c.ValidateTime), Attempts: int32(c.Attempts),
	}
	if p := c.Problem; p != nil {
		out.Problem = &registryv1.Problem{Reason: p.Reason, Detail: p.Detail}
		for _, q := range p.Queries {
			out.Problem.Nameservers = append(out.Problem.Nameservers, &registryv1.NameserverResult{
				Nameserver: q.Nameserver, Address: q.Address, QueryName: q.Name, QueryType: q.Type,
				Transport: q.Transport, Rcode: q.Rcode, Answers: q.Answers, Error: q.Err,
				DurationMs: q.Duration.Milliseconds(),
			})
		}
	}
	return out
}

var agentState = map[registry.AgentState]registryv1.Agent_State{
	registry.AgentActive:    registryv1.Agent_STATE_ACTIVE,
	registry.AgentSuspended: registryv1.Agent_STATE_SUSPENDED,
}

func agentToProto(a registry.Agent) *registryv1.Agent {
	return &registryv1.Agent{
		Id: a.ID, DisplayName: a.DisplayName, ClaimsEndpoint: a.ClaimsEndpoint, Issuer: a.Issuer,
		AccountKeyJwk: a.AccountKeyJWK, AccountKeyThumbprint: a.AccountKeyThumbprint, State: agentState[a.State],
		ClientCertSpkiSha256: a.ClientCertSPKI, CreateTime: ts(a.CreateTime), UpdateTime: ts(a.UpdateTime), Etag: a.Etag(),
	}
}

func tokenToProto(c registry.Credential, secret string) *registryv1.AgentToken {
	return &registryv1.AgentToken{
		Id: c.ID, AgentId: c.AgentID, Description: c.Description, Secret: secret,
		CreateTime: ts(c.CreateTime), RevokeTime: ts(c.RevokeTime),
	}
}

func operatorCredentialToProto(c registry.Credential, secret string) *registryv1.OperatorCredential {
	return &registryv1.OperatorCredential{
		Id: c.ID, Description: c.Description, Secret: secret, CreateTime: ts(c.CreateTime), RevokeTime: ts(c.RevokeTime),
	}
}

func journalToProto(e registry.JournalEntry) *registryv1.JournalEntry {
	return &registryv1.JournalEntry{
		Id: e.ID, Time: ts(e.Time), Actor: e.Actor, Action: e.Action, ObjectType: e.ObjectType,
		ObjectId: e.ObjectID, Before: e.Before, After: e.After,
		BeforeObject: journalObject(e.Before), AfterObject: journalObject(e.After),
	}
}

// journalObject is a journal entry's JSON object as a protobuf Struct, which grpcurl and
// other JSON clients print as the object itself; nil for no object (and, never expected,
// for text that is not a JSON object: the deprecated string field keeps it).
func journalObject(text string) *structpb.Struct {
	if text == "" {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		return nil
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		return nil
	}
	return s
}

var transferStatus = map[registry.TransferStatus]registryv1.Transfer_Status{
	registry.TransferPending:         registryv1.Transfer_STATUS_PENDING,
	registry.TransferClientApproved:  registryv1.Transfer_STATUS_CLIENT_APPROVED,
	registry.TransferClientRejected:  registryv1.Transfer_STATUS_CLIENT_REJECTED,
	registry.TransferClientCancelled: registryv1.Transfer_STATUS_CLIENT_CANCELLED,
	registry.TransferServerApproved:  registryv1.Transfer_STATUS_SERVER_APPROVED,
	registry.TransferServerCancelled: registryv1.Transfer_STATUS_SERVER_CANCELLED,
}

func transferToProto(t registry.Transfer) *registryv1.Transfer {
	return &registryv1.Transfer{
		Id: t.ID, Identifier: t.Identifier, GainingAgentId: t.GainingAgentID, LosingAgentId: t.LosingAgentID,
		Status: transferStatus[t.Status], RequestTime: ts(t.RequestTime), ActTime: ts(t.ActTime),
		ChallengeId: t.ChallengeID,
	}
}

var transferDirection = map[registryv1.ListTransfersRequest_Direction]registry.TransferDirection{
	registryv1.ListTransfersRequest_DIRECTION_UNSPECIFIED: registry.TransferBoth,
	registryv1.ListTransfersRequest_DIRECTION_IN:          registry.TransferIn,
	registryv1.ListTransfersRequest_DIRECTION_OUT:         registry.TransferOut,
}

// transferDirectionFromProto converts a listing direction; an unknown value is refused
// rather than read as "both", which would show more than was asked for.
func transferDirectionFromProto(d registryv1.ListTransfersRequest_Direction) (registry.TransferDirection, error) {
	dir, ok := transferDirection[d]
	if !ok {
		return 0, registry.NewError(registry.ReasonDirectionUnknown, "direction %v is not one of DIRECTION_IN, DIRECTION_OUT or unset", d)
	}
	return dir, nil
}

var eventType = map[registry.EventType]registryv1.Event_Type{
	registry.EventTransferRequested:    registryv1.Event_TYPE_TRANSFER_REQUESTED,
	registry.EventTransferApproved:     registryv1.Event_TYPE_TRANSFER_APPROVED,
	registry.EventTransferRejected:     registryv1.Event_TYPE_TRANSFER_REJECTED,
	registry.EventTransferCancelled:    registryv1.Event_TYPE_TRANSFER_CANCELLED,
	registry.EventTransferCompletedIn:  registryv1.Event_TYPE_TRANSFER_COMPLETED_IN,
	registry.EventTransferCompletedOut: registryv1.Event_TYPE_TRANSFER_COMPLETED_OUT,
	registry.EventIdentifierDeleted:    registryv1.Event_TYPE_IDENTIFIER_DELETED,
	registry.EventIdentifierRestored:   registryv1.Event_TYPE_IDENTIFIER_RESTORED,
	registry.EventIdentifierPurged:     registryv1.Event_TYPE_IDENTIFIER_PURGED,
	registry.EventServerStatusChanged:  registryv1.Event_TYPE_SERVER_STATUS_CHANGED,
	registry.EventOpenIDRecordChanged:  registryv1.Event_TYPE_OPENID_RECORD_CHANGED,
	registry.EventCredentialsChanged:   registryv1.Event_TYPE_CREDENTIALS_CHANGED,
}

// eventToProto converts an event. Statuses follow the Identifier's convention (none in
// force reads as IDENTIFIER_STATUS_OK), except after a purge, when the identifier is gone
// and has no statuses at all; previous statuses belong to a server status change only.
func eventToProto(e registry.Event) *registryv1.Event {
	d := e.Data
	out := &registryv1.Event{
		Id: e.ID, Type: eventType[e.Type], Identifier: e.Identifier, CreateTime: ts(e.Time),
		PurgeTime: ts(d.PurgeTime), Reason: d.Reason, AckTime: ts(e.AckTime),
	}
	if e.Type != registry.EventIdentifierPurged {
		out.Statuses = statusesToProto(d.Statuses)
	}
	if e.Type == registry.EventServerStatusChanged {
		out.PreviousStatuses = statusesToProto(d.PreviousStatuses)
	}
	if d.Transfer != nil {
		out.Transfer = transferToProto(*d.Transfer)
	}
	if d.OpenID != nil && d.OpenID.Status != "" {
		out.OpenidRecord = openIDToProto(*d.OpenID)
	}
	out.PreviousOpenidStatus = openIDStatus[dnsverify.OpenIDStatus(d.PreviousOpenIDStatus)]
	return out
}

// serverStatusesFromProto converts the statuses asked of SetServerStatus. OK is refused, not
// dropped as UpdateIdentifier drops it: it means "no status", and sending it alongside a
// server status is a mistake; an empty list is how the server statuses are cleared. Client
// and lifecycle statuses are passed on for the registry to refuse (STATUS_NOT_SERVER_SETTABLE).
func serverStatusesFromProto(ss []registryv1.IdentifierStatus) ([]registry.Status, error) {
	out := make([]registry.Status, 0, len(ss))
	for _, s := range ss {
		if s == registryv1.IdentifierStatus_IDENTIFIER_STATUS_OK {
			return nil, registry.NewError(registry.ReasonStatusNotServerSettable, "IDENTIFIER_STATUS_OK is not a server status; send no statuses to clear the server statuses")
		}
		d, ok := statusFromProto[s]
		if !ok {
			return nil, registry.NewError(registry.ReasonStatusUnknown, "status %v is not one that can be set", s)
		}
		out = append(out, d)
	}
	return out, nil
}
