package registry

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"time"

	"github.com/id4me/id4me-registry/dnsverify"
)

// AgentState says whether an agent may act.
type AgentState string

// Agent states.
const (
	AgentActive    AgentState = "active"
	AgentSuspended AgentState = "suspended"
)

// Agent is a contracted partner that sponsors identifiers.
type Agent struct {
	ID          string
	DisplayName string
	// ClaimsEndpoint is the agent's default claims (userinfo) endpoint, an https URL.
	ClaimsEndpoint string
	// Issuer is the agent's issuer URL: the audience of access tokens issued for it.
	Issuer string
	// AccountKeyJWK is the agent's ACME account key, a public JWK in JSON.
	AccountKeyJWK string
	// AccountKeyThumbprint is the RFC 7638 thumbprint of AccountKeyJWK, base64url.
	AccountKeyThumbprint string
	State                AgentState
	// ClientCertSPKI lists the hex SHA-256 of the SubjectPublicKeyInfo of every client
	// certificate the agent may authenticate with.
	ClientCertSPKI []string
	CreateTime     time.Time
	UpdateTime     time.Time
	// Version increases with every change; the store refuses an update made from an older one.
	Version int64
	// LinkGeneration advances each time the agent is suspended: the credential links it
	// asked for before are void (CredentialLinkBinding).
	LinkGeneration int64
}

// Etag returns the agent's entity tag.
func (a Agent) Etag() string { return etag("agent", a.ID, a.CreateTime, a.Version) }

// Credential is a bearer credential: an agent's API token or an operator's credential. Only
// a hash of its secret is kept.
type Credential struct {
	// ID is the public half of the bearer value; it starts with AgentTokenPrefix or
	// OperatorPrefix.
	ID string
	// AgentID is the agent an agent token belongs to; empty for an operator credential.
	AgentID     string
	Description string
	// SecretHash is SHA-256 of the secret half of the bearer value.
	SecretHash []byte
	CreateTime time.Time
	// RevokeTime is when the credential was revoked; zero while it is valid.
	RevokeTime time.Time
}

// Revoked reports whether the credential has been revoked.
func (c Credential) Revoked() bool { return !c.RevokeTime.IsZero() }

// Purpose says what a challenge proves DNS control for.
type Purpose string

// Challenge purposes.
const (
	PurposeRegister Purpose = "register"
	PurposeTransfer Purpose = "transfer"
)

// ChallengeStatus is where a challenge is in its lifecycle. Expiry is not stored: a pending
// or valid challenge past its ExpireTime is expired (see Challenge.StatusAt).
type ChallengeStatus string

// Challenge statuses.
const (
	ChallengePending  ChallengeStatus = "pending"
	ChallengeValid    ChallengeStatus = "valid"
	ChallengeInvalid  ChallengeStatus = "invalid"
	ChallengeConsumed ChallengeStatus = "consumed"
	ChallengeExpired  ChallengeStatus = "expired"
)

// Challenge is a DNS ACME (dns-01) challenge bound to one agent, one identifier and one
// purpose.
type Challenge struct {
	ID      string
	AgentID string
	// Identifier is the canonical identifier; its DNS name (DNSName) holds the record.
	Identifier string
	Purpose    Purpose
	Token      string
	// KeyAuthorization is Token + "." + the agent's account-key thumbprint at creation.
	KeyAuthorization string
	// SponsorAgentID is, for a transfer challenge, the agent that sponsored the identifier
	// when the challenge was made: the proof asks for the identifier from that agent, and the
	// transfer is refused if the sponsor changed since. Empty for a register challenge.
	SponsorAgentID string
	Status         ChallengeStatus
	// Attempts counts the DNS checks made.
	Attempts int
	// Problem explains the last failed check; nil after success.
	Problem      *Problem
	CreateTime   time.Time
	ExpireTime   time.Time
	ValidateTime time.Time
}

// StatusAt returns the challenge's status at now, turning pending and valid into expired
// past ExpireTime.
func (c Challenge) StatusAt(now time.Time) ChallengeStatus {
	if (c.Status == ChallengePending || c.Status == ChallengeValid) && !now.Before(c.ExpireTime) {
		return ChallengeExpired
	}
	return c.Status
}

// Problem explains a failed DNS check: a reason, a sentence, and every query made.
type Problem struct {
	Reason  string
	Detail  string
	Queries []dnsverify.Query
}

// Status is an EPP-style status of an identifier (RFC 5731 §2.3 names).
type Status string

// Identifier statuses. Client statuses are set by the sponsoring agent, server statuses by
// operators and the lifecycle.
const (
	StatusClientTransferProhibited Status = "clientTransferProhibited"
	StatusClientDeleteProhibited   Status = "clientDeleteProhibited"
	StatusClientUpdateProhibited   Status = "clientUpdateProhibited"
	StatusServerHold               Status = "serverHold"
	StatusServerTransferProhibited Status = "serverTransferProhibited"
	StatusServerDeleteProhibited   Status = "serverDeleteProhibited"
	StatusServerUpdateProhibited   Status = "serverUpdateProhibited"
	// StatusPendingDelete: deleted, in the redemption period (Identifier.PurgeTime).
	StatusPendingDelete Status = "pendingDelete"
	// StatusPendingTransfer: a transfer to another agent is pending.
	StatusPendingTransfer Status = "pendingTransfer"
)

// IsClient reports whether the sponsoring agent may set and clear s.
func (s Status) IsClient() bool {
	switch s {
	case StatusClientTransferProhibited, StatusClientDeleteProhibited, StatusClientUpdateProhibited:
		return true
	}
	return false
}

// IsServer reports whether an operator may set and clear s (AdminService.SetServerStatus).
func (s Status) IsServer() bool {
	switch s {
	case StatusServerHold, StatusServerTransferProhibited, StatusServerDeleteProhibited, StatusServerUpdateProhibited:
		return true
	}
	return false
}

// IsLifecycle reports whether s is set and cleared only by the lifecycle (delete, restore,
// transfer).
func (s Status) IsLifecycle() bool { return s == StatusPendingDelete || s == StatusPendingTransfer }

// Known reports whether s is a status the registry knows.
func (s Status) Known() bool { return s.IsClient() || s.IsServer() || s.IsLifecycle() }

// Identity is what relying parties know a holder by (iss + sub). Its subject seed is random,
// opaque and never reused: a deleted identifier registered again gets a new identity.
type Identity struct {
	ID string
	// SubjectSeed is the secret from which subjects are derived (pairwise or public).
	SubjectSeed string
	CreateTime  time.Time
	// RetireTime is when the identity was retired for good; zero while in use.
	RetireTime time.Time
}

// Identifier is an ID4me identifier sponsored by an agent.
type Identifier struct {
	// Name is the canonical identifier (Name.ASCII of ParseIdentifier): a lowercase A-label
	// without trailing dot, or an e-mail-form identifier, local@A-label.
	Name string
	// UnicodeName is Name for display.
	UnicodeName string
	// DNSName is the name its records live under (_openid, _acme-challenge): Name for a domain,
	// "<h>.<domain>" for an e-mail-form identifier (see DNSName). No two identifiers share one.
	DNSName    string
	AgentID    string
	IdentityID string
	// ClaimsEndpoint overrides the agent's default; empty means the default.
	ClaimsEndpoint string
	// Statuses in force, sorted.
	Statuses   []Status
	CreateTime time.Time
	UpdateTime time.Time
	// DeleteTime and PurgeTime are set while the identifier is pending delete: when it was
	// deleted and when its redemption period ends. Zero otherwise.
	DeleteTime time.Time
	PurgeTime  time.Time
	Version    int64
	// LinkGeneration advances each time the identifier is transferred, deleted or put on
	// hold: the credential links of its holder made before are void (CredentialLinkBinding).
	LinkGeneration int64
	// OpenID is the last periodic check of the _openid record. It is kept beside the
	// identifier but is not part of it: writing it changes neither Version nor the etag, and
	// UpdateIdentifier leaves it alone (see Tx.SetOpenIDState).
	OpenID OpenIDState
}

// OpenIDState is the outcome of a check of an identifier's _openid record: does it name this
// authority as iss and the sponsoring agent as clp?
type OpenIDState struct {
	// Status is "" until the first check.
	Status         dnsverify.OpenIDStatus `json:"status,omitempty"`
	Record         string                 `json:"record,omitempty"`
	Issuer         string                 `json:"issuer,omitempty"`
	ClaimsProvider string                 `json:"claims_provider,omitempty"`
	Detail         string                 `json:"detail,omitempty"`
	CheckTime      time.Time              `json:"check_time,omitzero"`
	// NextCheck is when the next periodic check is due; the checker also moves it forward
	// while it holds a claim on the identifier.
	NextCheck time.Time `json:"next_check,omitzero"`
}

// Etag returns the identifier's entity tag.
func (i Identifier) Etag() string { return etag("identifier", i.Name, i.CreateTime, i.Version) }

// Has reports whether status s is in force.
func (i Identifier) Has(s Status) bool { return slices.Contains(i.Statuses, s) }

// JournalEntry records one state change for audit: who, what, when, before and after.
type JournalEntry struct {
	// ID is assigned by the store, increasing.
	ID         int64
	Time       time.Time
	Actor      string
	Action     string
	ObjectType string
	ObjectID   string
	// Before and After are JSON views of the object; empty for a creation or removal.
	Before string
	After  string
}

// JournalFilter narrows ListJournal; empty fields match everything.
type JournalFilter struct {
	ObjectType string
	ObjectID   string
}

func etag(kind, id string, created time.Time, version int64) string {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(id))
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(created.UnixNano()))
	binary.BigEndian.PutUint64(b[8:], uint64(version))
	h.Write(b[:])
	return hex.EncodeToString(h.Sum(nil)[:12])
}
