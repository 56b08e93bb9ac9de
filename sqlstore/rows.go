package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/id4me/id4me-registry/dnsverify"
	"github.com/id4me/id4me-registry/registry"
)

// dbTime is a time as the store keeps it: UTC, truncated to the microsecond (PostgreSQL's
// precision), NULL for the zero time. On SQLite it is an INTEGER of Unix nanoseconds, so it
// orders and compares as a number; on PostgreSQL a timestamptz (dialect.timeValue).
type dbTime time.Time

// norm returns t as the store reads it back: in UTC, truncated to the microsecond.
func norm(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// GormValue encodes t for the dialect of db, as a column value or a statement's argument.
func (t dbTime) GormValue(_ context.Context, db *gorm.DB) clause.Expr {
	return clause.Expr{SQL: "?", Vars: []any{dialectOf(db).timeValue(time.Time(t))}}
}

// Scan decodes a time read from either dialect.
func (t *dbTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*t = dbTime{}
	case int64:
		*t = dbTime(time.Unix(0, v).UTC())
	case time.Time:
		*t = dbTime(v.UTC())
	default:
		return fmt.Errorf("sqlstore: cannot read a time from %T", src)
	}
	return nil
}

// GormDataType tells gorm the field is a time, not a relation.
func (dbTime) GormDataType() string { return "time" }

type agentRow struct {
	ID                   string `gorm:"primaryKey"`
	DisplayName          string
	ClaimsEndpoint       string
	Issuer               string
	AccountKeyJWK        string `gorm:"column:account_key_jwk"`
	AccountKeyThumbprint string
	State                string
	// ClientCertSPKI is the sorted, comma-separated list of pinned keys (encodeSPKI), kept
	// beside agent_client_certs so that reading an agent is one statement.
	ClientCertSPKI string `gorm:"column:client_cert_spki"`
	CreateTime     dbTime
	UpdateTime     dbTime
	Version        int64
	LinkGeneration int64
}

func (agentRow) TableName() string { return "agents" }

// agentToRow returns a's row and its pinned keys, sorted and without duplicates.
func agentToRow(a registry.Agent) (agentRow, []string, error) {
	spki, enc, err := encodeSPKI(a.ClientCertSPKI)
	if err != nil {
		return agentRow{}, nil, err
	}
	return agentRow{
		ID:                   a.ID,
		DisplayName:          a.DisplayName,
		ClaimsEndpoint:       a.ClaimsEndpoint,
		Issuer:               a.Issuer,
		AccountKeyJWK:        a.AccountKeyJWK,
		AccountKeyThumbprint: a.AccountKeyThumbprint,
		State:                string(a.State),
		ClientCertSPKI:       enc,
		CreateTime:           dbTime(a.CreateTime),
		UpdateTime:           dbTime(a.UpdateTime),
		Version:              a.Version,
		LinkGeneration:       a.LinkGeneration,
	}, spki, nil
}

// encodeSPKI sorts the pinned keys, drops duplicates and joins them with commas.
func encodeSPKI(spki []string) ([]string, string, error) {
	if len(spki) == 0 {
		return nil, "", nil
	}
	spki = slices.Compact(slices.Sorted(slices.Values(spki)))
	for _, s := range spki {
		if s == "" || strings.ContainsRune(s, ',') {
			return nil, "", registry.NewError(registry.ReasonClientCertPinInvalid, "client certificate key %q cannot be stored", s)
		}
	}
	return spki, strings.Join(spki, ","), nil
}

func (r agentRow) agent() registry.Agent {
	var spki []string
	if r.ClientCertSPKI != "" {
		spki = strings.Split(r.ClientCertSPKI, ",")
	}
	return registry.Agent{
		ID:                   r.ID,
		DisplayName:          r.DisplayName,
		ClaimsEndpoint:       r.ClaimsEndpoint,
		Issuer:               r.Issuer,
		AccountKeyJWK:        r.AccountKeyJWK,
		AccountKeyThumbprint: r.AccountKeyThumbprint,
		State:                registry.AgentState(r.State),
		ClientCertSPKI:       spki,
		CreateTime:           time.Time(r.CreateTime),
		UpdateTime:           time.Time(r.UpdateTime),
		Version:              r.Version,
		LinkGeneration:       r.LinkGeneration,
	}
}

type certRow struct {
	SPKISHA256 string `gorm:"column:spki_sha256;primaryKey"`
	AgentID    string
}

func (certRow) TableName() string { return "agent_client_certs" }

type credentialRow struct {
	ID          string `gorm:"primaryKey"`
	AgentID     *string
	Description string
	SecretHash  []byte
	CreateTime  dbTime
	RevokeTime  dbTime
}

func (credentialRow) TableName() string { return "credentials" }

func credentialToRow(c registry.Credential) credentialRow {
	r := credentialRow{
		ID:          c.ID,
		Description: c.Description,
		SecretHash:  c.SecretHash,
		CreateTime:  dbTime(c.CreateTime),
		RevokeTime:  dbTime(c.RevokeTime),
	}
	if c.AgentID != "" {
		r.AgentID = &c.AgentID
	}
	if r.SecretHash == nil {
		r.SecretHash = []byte{} // the column is NOT NULL
	}
	return r
}

func (r credentialRow) credential() registry.Credential {
	c := registry.Credential{
		ID:          r.ID,
		Description: r.Description,
		SecretHash:  r.SecretHash,
		CreateTime:  time.Time(r.CreateTime),
		RevokeTime:  time.Time(r.RevokeTime),
	}
	if r.AgentID != nil {
		c.AgentID = *r.AgentID
	}
	return c
}

type challengeRow struct {
	ID               string `gorm:"primaryKey"`
	AgentID          string
	Identifier       string
	Purpose          string
	Token            string
	KeyAuthorization string
	Status           string
	Attempts         int
	// Problem is the JSON of registry.Problem; NULL when there is none.
	Problem      *string
	CreateTime   dbTime
	ExpireTime   dbTime
	ValidateTime dbTime
	// SponsorAgentID is '' for a register challenge.
	SponsorAgentID string
}

func (challengeRow) TableName() string { return "challenges" }

func challengeToRow(c registry.Challenge) (challengeRow, error) {
	r := challengeRow{
		ID:               c.ID,
		AgentID:          c.AgentID,
		Identifier:       c.Identifier,
		Purpose:          string(c.Purpose),
		Token:            c.Token,
		KeyAuthorization: c.KeyAuthorization,
		Status:           string(c.Status),
		Attempts:         c.Attempts,
		CreateTime:       dbTime(c.CreateTime),
		ExpireTime:       dbTime(c.ExpireTime),
		ValidateTime:     dbTime(c.ValidateTime),
		SponsorAgentID:   c.SponsorAgentID,
	}
	if c.Problem != nil {
		b, err := json.Marshal(c.Problem)
		if err != nil {
			return challengeRow{}, internal(fmt.Errorf("encoding challenge problem: %w", err))
		}
		s := string(b)
		r.Problem = &s
	}
	return r, nil
}

func (r challengeRow) challenge() (registry.Challenge, error) {
	c := registry.Challenge{
		ID:               r.ID,
		AgentID:          r.AgentID,
		Identifier:       r.Identifier,
		Purpose:          registry.Purpose(r.Purpose),
		Token:            r.Token,
		KeyAuthorization: r.KeyAuthorization,
		Status:           registry.ChallengeStatus(r.Status),
		Attempts:         r.Attempts,
		CreateTime:       time.Time(r.CreateTime),
		ExpireTime:       time.Time(r.ExpireTime),
		ValidateTime:     time.Time(r.ValidateTime),
		SponsorAgentID:   r.SponsorAgentID,
	}
	if r.Problem != nil {
		c.Problem = new(registry.Problem)
		if err := json.Unmarshal([]byte(*r.Problem), c.Problem); err != nil {
			return registry.Challenge{}, internal(fmt.Errorf("decoding problem of challenge %s: %w", r.ID, err))
		}
	}
	return c, nil
}

type identityRow struct {
	ID          string `gorm:"primaryKey"`
	SubjectSeed string
	CreateTime  dbTime
	RetireTime  dbTime
}

func (identityRow) TableName() string { return "identities" }

func identityToRow(i registry.Identity) identityRow {
	return identityRow{
		ID:          i.ID,
		SubjectSeed: i.SubjectSeed,
		CreateTime:  dbTime(i.CreateTime),
		RetireTime:  dbTime(i.RetireTime),
	}
}

func (r identityRow) identity() registry.Identity {
	return registry.Identity{
		ID:          r.ID,
		SubjectSeed: r.SubjectSeed,
		CreateTime:  time.Time(r.CreateTime),
		RetireTime:  time.Time(r.RetireTime),
	}
}

type identifierRow struct {
	Name           string `gorm:"primaryKey"`
	UnicodeName    string
	AgentID        string
	IdentityID     string
	ClaimsEndpoint string
	// Statuses is the comma-separated list of statuses.
	Statuses   string
	CreateTime dbTime
	UpdateTime dbTime
	DeleteTime dbTime
	PurgeTime  dbTime
	Version    int64
	// LinkGeneration is registry.Identifier.LinkGeneration.
	LinkGeneration int64
	// The last _openid check (registry.OpenIDState), written only by CreateIdentifier,
	// SetOpenIDState and ClaimOpenIDChecks.
	OpenIDStatus         string `gorm:"column:openid_status"`
	OpenIDRecord         string `gorm:"column:openid_record"`
	OpenIDIssuer         string `gorm:"column:openid_issuer"`
	OpenIDClaimsProvider string `gorm:"column:openid_claims_provider"`
	OpenIDDetail         string `gorm:"column:openid_detail"`
	OpenIDCheckTime      dbTime `gorm:"column:openid_check_time"`
	// OpenIDNextCheck is NOT NULL: a new identifier with no time set is due at its creation.
	OpenIDNextCheck dbTime `gorm:"column:openid_next_check"`
	// DNSName is unique (migration 00005); a domain identifier's is its name.
	DNSName string `gorm:"column:dns_name"`
}

func (identifierRow) TableName() string { return "identifiers" }

func identifierToRow(i registry.Identifier) (identifierRow, error) {
	st, err := encodeStatuses(i.Statuses)
	if err != nil {
		return identifierRow{}, err
	}
	next := i.OpenID.NextCheck
	if next.IsZero() {
		next = i.CreateTime
	}
	dnsName := i.DNSName
	if dnsName == "" {
		dnsName = i.Name
	}
	return identifierRow{
		Name:                 i.Name,
		UnicodeName:          i.UnicodeName,
		AgentID:              i.AgentID,
		IdentityID:           i.IdentityID,
		ClaimsEndpoint:       i.ClaimsEndpoint,
		Statuses:             st,
		CreateTime:           dbTime(i.CreateTime),
		UpdateTime:           dbTime(i.UpdateTime),
		DeleteTime:           dbTime(i.DeleteTime),
		PurgeTime:            dbTime(i.PurgeTime),
		Version:              i.Version,
		LinkGeneration:       i.LinkGeneration,
		OpenIDStatus:         string(i.OpenID.Status),
		OpenIDRecord:         i.OpenID.Record,
		OpenIDIssuer:         i.OpenID.Issuer,
		OpenIDClaimsProvider: i.OpenID.ClaimsProvider,
		OpenIDDetail:         i.OpenID.Detail,
		OpenIDCheckTime:      dbTime(i.OpenID.CheckTime),
		OpenIDNextCheck:      dbTime(next),
		DNSName:              dnsName,
	}, nil
}

func (r identifierRow) identifier() registry.Identifier {
	return registry.Identifier{
		Name:           r.Name,
		UnicodeName:    r.UnicodeName,
		DNSName:        r.DNSName,
		AgentID:        r.AgentID,
		IdentityID:     r.IdentityID,
		ClaimsEndpoint: r.ClaimsEndpoint,
		Statuses:       decodeStatuses(r.Statuses),
		CreateTime:     time.Time(r.CreateTime),
		UpdateTime:     time.Time(r.UpdateTime),
		DeleteTime:     time.Time(r.DeleteTime),
		PurgeTime:      time.Time(r.PurgeTime),
		Version:        r.Version,
		LinkGeneration: r.LinkGeneration,
		OpenID: registry.OpenIDState{
			Status:         dnsverify.OpenIDStatus(r.OpenIDStatus),
			Record:         r.OpenIDRecord,
			Issuer:         r.OpenIDIssuer,
			ClaimsProvider: r.OpenIDClaimsProvider,
			Detail:         r.OpenIDDetail,
			CheckTime:      time.Time(r.OpenIDCheckTime),
			NextCheck:      time.Time(r.OpenIDNextCheck),
		},
	}
}

func encodeStatuses(ss []registry.Status) (string, error) {
	var b strings.Builder
	for i, s := range ss {
		if s == "" || strings.ContainsRune(string(s), ',') {
			return "", registry.NewError(registry.ReasonInvalidStatus, "status %q cannot be stored", s)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(string(s))
	}
	return b.String(), nil
}

func decodeStatuses(s string) []registry.Status {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	out := make([]registry.Status, len(parts))
	for i, p := range parts {
		out[i] = registry.Status(p)
	}
	return out
}

type journalRow struct {
	ID         int64 `gorm:"primaryKey;autoIncrement"`
	Time       dbTime
	Actor      string
	Action     string
	ObjectType string
	ObjectID   string
	Before     string
	After      string
}

func (journalRow) TableName() string { return "journal" }

func (r journalRow) entry() registry.JournalEntry {
	return registry.JournalEntry{
		ID:         r.ID,
		Time:       time.Time(r.Time),
		Actor:      r.Actor,
		Action:     r.Action,
		ObjectType: r.ObjectType,
		ObjectID:   r.ObjectID,
		Before:     r.Before,
		After:      r.After,
	}
}

type transferRow struct {
	ID             string `gorm:"primaryKey"`
	Identifier     string
	GainingAgentID string
	LosingAgentID  string
	ChallengeID    string
	Status         string
	RequestTime    dbTime
	ActTime        dbTime
}

func (transferRow) TableName() string { return "transfers" }

func transferToRow(t registry.Transfer) transferRow {
	return transferRow{
		ID:             t.ID,
		Identifier:     t.Identifier,
		GainingAgentID: t.GainingAgentID,
		LosingAgentID:  t.LosingAgentID,
		ChallengeID:    t.ChallengeID,
		Status:         string(t.Status),
		RequestTime:    dbTime(t.RequestTime),
		ActTime:        dbTime(t.ActTime),
	}
}

func (r transferRow) transfer() registry.Transfer {
	return registry.Transfer{
		ID:             r.ID,
		Identifier:     r.Identifier,
		GainingAgentID: r.GainingAgentID,
		LosingAgentID:  r.LosingAgentID,
		ChallengeID:    r.ChallengeID,
		Status:         registry.TransferStatus(r.Status),
		RequestTime:    time.Time(r.RequestTime),
		ActTime:        time.Time(r.ActTime),
	}
}

type eventRow struct {
	AgentID    string `gorm:"primaryKey"`
	ID         int64  `gorm:"primaryKey;autoIncrement:false"`
	Type       string
	Identifier string
	// Data is the JSON of registry.EventData.
	Data       string
	CreateTime dbTime
	AckTime    dbTime
}

func (eventRow) TableName() string { return "events" }

func (r eventRow) event() (registry.Event, error) {
	e := registry.Event{
		AgentID:    r.AgentID,
		ID:         r.ID,
		Type:       registry.EventType(r.Type),
		Identifier: r.Identifier,
		Time:       time.Time(r.CreateTime),
		AckTime:    time.Time(r.AckTime),
	}
	if err := json.Unmarshal([]byte(r.Data), &e.Data); err != nil {
		return registry.Event{}, internal(fmt.Errorf("decoding data of event %d of agent %s: %w", r.ID, r.AgentID, err))
	}
	return e, nil
}

// eventCounterRow holds the number of an agent's newest event (AppendEvent).
type eventCounterRow struct {
	AgentID string `gorm:"primaryKey"`
	LastID  int64  `gorm:"autoIncrement:false"`
}

func (eventCounterRow) TableName() string { return "event_counters" }
