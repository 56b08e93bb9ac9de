package sqlstore

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/id4me/id4me-registry/authority"
)

// The authority's rows (migrations 00003, 00004 and 00007 to 00010, tables authority_*):
// one model per table, made from the authority's value (…Row functions) and turned back
// into it. Lists of names are JSON arrays ('[]' for none); hashes and keys, NOT NULL, are
// written empty for nil and read back as nil.

// encodeList encodes a list of names as a JSON array, [] for none.
func encodeList(ss []string) string {
	if len(ss) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(ss) // cannot fail for strings
	return string(b)
}

// decodeList decodes a JSON array of names; none is nil.
func decodeList(s, what string) ([]string, error) {
	if s == "" || s == "[]" {
		return nil, nil
	}
	if ss, ok := plainList(s); ok {
		return ss, nil
	}
	var ss []string
	if err := json.Unmarshal([]byte(s), &ss); err != nil {
		return nil, internal(fmt.Errorf("decoding %s: %w", what, err))
	}
	return ss, nil
}

// plainList decodes, without the JSON decoder, a JSON array of strings as encodeList writes
// it when no string needs an escape (scope and claim names; every userinfo request decodes
// two lists): ["a","b"], valid UTF-8, no backslash, no control character, no space.
// Anything else is not ok, and left to the JSON decoder. Without a backslash no string holds
// a quote, so the strings are what lies between the "," separators.
func plainList(s string) ([]string, bool) {
	if len(s) < 4 || !strings.HasPrefix(s, `["`) || !strings.HasSuffix(s, `"]`) || !utf8.ValidString(s) {
		return nil, false
	}
	for i := range len(s) {
		if c := s[i]; c == '\\' || c < 0x20 {
			return nil, false
		}
	}
	ss := strings.Split(s[2:len(s)-2], `","`)
	for _, e := range ss {
		if strings.IndexByte(e, '"') >= 0 {
			return nil, false
		}
	}
	return ss, true
}

// decodeScopesClaims decodes the scopes and claims columns a consent, a grant or a token
// keeps.
func decodeScopesClaims(scopes, claims string) ([]string, []string, error) {
	s, err := decodeList(scopes, "scopes")
	if err != nil {
		return nil, nil, err
	}
	c, err := decodeList(claims, "claims")
	if err != nil {
		return nil, nil, err
	}
	return s, c, nil
}

// blob returns b for a NOT NULL column: nil is written as empty.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// unblob returns a column read as blob wrote it: empty is nil.
func unblob(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

type signingKeyRow struct {
	ID         string `gorm:"primaryKey"`
	Alg        string
	PrivateJWK []byte `gorm:"column:private_jwk"`
	CreateTime dbTime
	SignTime   dbTime
	RetireTime dbTime
	ExpireTime dbTime
}

func (signingKeyRow) TableName() string { return "authority_signing_keys" }

func signingKeyToRow(k authority.SigningKey) signingKeyRow {
	return signingKeyRow{
		ID: k.ID, Alg: k.Alg, PrivateJWK: blob(k.PrivateJWK),
		CreateTime: dbTime(k.CreateTime), SignTime: dbTime(k.SignTime),
		RetireTime: dbTime(k.RetireTime), ExpireTime: dbTime(k.ExpireTime),
	}
}

func (r signingKeyRow) key() authority.SigningKey {
	return authority.SigningKey{
		ID: r.ID, Alg: r.Alg, PrivateJWK: unblob(r.PrivateJWK),
		CreateTime: time.Time(r.CreateTime), SignTime: time.Time(r.SignTime),
		RetireTime: time.Time(r.RetireTime), ExpireTime: time.Time(r.ExpireTime),
	}
}

// clientRow keeps authority.ClientMetadata as JSON (metadata), but for the sector, which
// has a column of its own.
type clientRow struct {
	ID                    string `gorm:"primaryKey"`
	SecretHash            []byte
	RegistrationTokenHash []byte
	Metadata              string
	Sector                string
	CreateTime            dbTime
	SecretExpireTime      dbTime
}

func (clientRow) TableName() string { return "authority_clients" }

func clientToRow(c authority.Client) (clientRow, error) {
	md, err := json.Marshal(c.Metadata)
	if err != nil {
		return clientRow{}, fmt.Errorf("sqlstore: encoding metadata of client %s: %w", c.ID, err)
	}
	return clientRow{
		ID: c.ID, SecretHash: blob(c.SecretHash), RegistrationTokenHash: blob(c.RegistrationTokenHash),
		Metadata: string(md), Sector: c.Metadata.Sector,
		CreateTime: dbTime(c.CreateTime), SecretExpireTime: dbTime(c.SecretExpireTime),
	}, nil
}

func (r clientRow) client() (authority.Client, error) {
	c := authority.Client{
		ID: r.ID, SecretHash: unblob(r.SecretHash), RegistrationTokenHash: unblob(r.RegistrationTokenHash),
		CreateTime: time.Time(r.CreateTime), SecretExpireTime: time.Time(r.SecretExpireTime),
	}
	if err := json.Unmarshal([]byte(r.Metadata), &c.Metadata); err != nil {
		return authority.Client{}, internal(fmt.Errorf("decoding metadata of client %s: %w", c.ID, err))
	}
	c.Metadata.Sector = r.Sector
	return c, nil
}

type holderRow struct {
	IdentityID   string `gorm:"primaryKey"`
	PasswordHash string
	TOTPSecret   string `gorm:"column:totp_secret"`
	TOTPLastStep int64  `gorm:"column:totp_last_step"`
	UpdateTime   dbTime
}

func (holderRow) TableName() string { return "authority_holder_credentials" }

func holderToRow(c authority.HolderCredential) holderRow {
	return holderRow{
		IdentityID: c.IdentityID, PasswordHash: c.PasswordHash, TOTPSecret: c.TOTPSecret,
		TOTPLastStep: c.TOTPLastStep, UpdateTime: dbTime(c.UpdateTime),
	}
}

func (r holderRow) credential() authority.HolderCredential {
	return authority.HolderCredential{
		IdentityID: r.IdentityID, PasswordHash: r.PasswordHash, TOTPSecret: r.TOTPSecret,
		TOTPLastStep: r.TOTPLastStep, UpdateTime: time.Time(r.UpdateTime),
	}
}

type linkRow struct {
	TokenHash            []byte `gorm:"primaryKey"`
	IdentityID           string
	Identifier           string
	Purpose              string
	AgentID              string
	PendingPasswordHash  string
	PendingTOTPSecret    string `gorm:"column:pending_totp_secret"`
	CreateTime           dbTime
	ExpireTime           dbTime
	UseTime              dbTime
	IdentifierGeneration int64
	AgentGeneration      int64
	VoidTime             dbTime
}

func (linkRow) TableName() string { return "authority_credential_links" }

func linkToRow(l authority.CredentialLink) linkRow {
	return linkRow{
		TokenHash: blob(l.TokenHash), IdentityID: l.IdentityID, Identifier: l.Identifier, Purpose: l.Purpose,
		AgentID: l.AgentID, PendingPasswordHash: l.PendingPasswordHash, PendingTOTPSecret: l.PendingTOTPSecret,
		CreateTime: dbTime(l.CreateTime), ExpireTime: dbTime(l.ExpireTime), UseTime: dbTime(l.UseTime),
		IdentifierGeneration: l.IdentifierGeneration, AgentGeneration: l.AgentGeneration, VoidTime: dbTime(l.VoidTime),
	}
}

func (r linkRow) link() authority.CredentialLink {
	return authority.CredentialLink{
		TokenHash: unblob(r.TokenHash), IdentityID: r.IdentityID, Identifier: r.Identifier, Purpose: r.Purpose,
		AgentID: r.AgentID, PendingPasswordHash: r.PendingPasswordHash, PendingTOTPSecret: r.PendingTOTPSecret,
		CreateTime: time.Time(r.CreateTime), ExpireTime: time.Time(r.ExpireTime), UseTime: time.Time(r.UseTime),
		IdentifierGeneration: r.IdentifierGeneration, AgentGeneration: r.AgentGeneration, VoidTime: time.Time(r.VoidTime),
	}
}

// authRequestRow keeps authority.AuthParams as JSON (params).
type authRequestRow struct {
	ID                string `gorm:"primaryKey"`
	BrowserHash       []byte
	Params            string
	PendingIdentityID string
	PendingIdentifier string
	PendingAMR        string `gorm:"column:pending_amr"`
	CreateTime        dbTime
	ExpireTime        dbTime
	LoginSessionHash  []byte
}

func (authRequestRow) TableName() string { return "authority_auth_requests" }

func authRequestToRow(r authority.AuthRequest) (authRequestRow, error) {
	params, err := json.Marshal(r.Params)
	if err != nil {
		return authRequestRow{}, fmt.Errorf("sqlstore: encoding parameters of authorization request %s: %w", r.ID, err)
	}
	return authRequestRow{
		ID: r.ID, BrowserHash: blob(r.BrowserHash), Params: string(params),
		PendingIdentityID: r.PendingIdentityID, PendingIdentifier: r.PendingIdentifier, PendingAMR: encodeList(r.PendingAMR),
		CreateTime: dbTime(r.CreateTime), ExpireTime: dbTime(r.ExpireTime), LoginSessionHash: blob(r.LoginSessionHash),
	}, nil
}

func (r authRequestRow) request() (authority.AuthRequest, error) {
	ar := authority.AuthRequest{
		ID: r.ID, BrowserHash: unblob(r.BrowserHash),
		PendingIdentityID: r.PendingIdentityID, PendingIdentifier: r.PendingIdentifier,
		CreateTime: time.Time(r.CreateTime), ExpireTime: time.Time(r.ExpireTime), LoginSessionHash: unblob(r.LoginSessionHash),
	}
	if err := json.Unmarshal([]byte(r.Params), &ar.Params); err != nil {
		return authority.AuthRequest{}, internal(fmt.Errorf("decoding parameters of authorization request %s: %w", ar.ID, err))
	}
	var err error
	ar.PendingAMR, err = decodeList(r.PendingAMR, "authentication methods")
	return ar, err
}

type sessionRow struct {
	IDHash     []byte `gorm:"column:id_hash;primaryKey"`
	IdentityID string
	Identifier string
	AuthTime   dbTime
	AMR        string `gorm:"column:amr"`
	CreateTime dbTime
	ExpireTime dbTime
	UserAgent  string
	Address    string
}

func (sessionRow) TableName() string { return "authority_sessions" }

func sessionToRow(s authority.Session) sessionRow {
	return sessionRow{
		IDHash: blob(s.IDHash), IdentityID: s.IdentityID, Identifier: s.Identifier, AuthTime: dbTime(s.AuthTime),
		AMR: encodeList(s.AMR), CreateTime: dbTime(s.CreateTime), ExpireTime: dbTime(s.ExpireTime),
		UserAgent: s.UserAgent, Address: s.Address,
	}
}

func (r sessionRow) session() (authority.Session, error) {
	s := authority.Session{
		IDHash: unblob(r.IDHash), IdentityID: r.IdentityID, Identifier: r.Identifier, AuthTime: time.Time(r.AuthTime),
		CreateTime: time.Time(r.CreateTime), ExpireTime: time.Time(r.ExpireTime), UserAgent: r.UserAgent, Address: r.Address,
	}
	var err error
	s.AMR, err = decodeList(r.AMR, "authentication methods")
	return s, err
}

type consentRow struct {
	ClientID   string `gorm:"primaryKey"`
	IdentityID string `gorm:"primaryKey"`
	Scopes     string
	Claims     string
	UpdateTime dbTime
}

func (consentRow) TableName() string { return "authority_consents" }

func consentToRow(c authority.Consent) consentRow {
	return consentRow{
		ClientID: c.ClientID, IdentityID: c.IdentityID, Scopes: encodeList(c.Scopes), Claims: encodeList(c.Claims),
		UpdateTime: dbTime(c.UpdateTime),
	}
}

func (r consentRow) consent() (authority.Consent, error) {
	c := authority.Consent{ClientID: r.ClientID, IdentityID: r.IdentityID, UpdateTime: time.Time(r.UpdateTime)}
	var err error
	if c.Scopes, c.Claims, err = decodeScopesClaims(r.Scopes, r.Claims); err != nil {
		return authority.Consent{}, err
	}
	return c, nil
}

type grantRow struct {
	ID            string `gorm:"primaryKey"`
	CodeHash      []byte
	ClientID      string
	RedirectURI   string `gorm:"column:redirect_uri"`
	IdentityID    string
	Identifier    string
	Subject       string
	Scopes        string
	Claims        string
	IDTokenClaims string `gorm:"column:id_token_claims"`
	Nonce         string
	CodeChallenge string
	AuthTime      dbTime
	AMR           string `gorm:"column:amr"`
	SessionID     string
	CreateTime    dbTime
	ExpireTime    dbTime
	UseTime       dbTime
	RevokeTime    dbTime
}

func (grantRow) TableName() string { return "authority_grants" }

func grantToRow(g authority.Grant) grantRow {
	return grantRow{
		ID: g.ID, CodeHash: blob(g.CodeHash), ClientID: g.ClientID, RedirectURI: g.RedirectURI,
		IdentityID: g.IdentityID, Identifier: g.Identifier, Subject: g.Subject,
		Scopes: encodeList(g.Scopes), Claims: encodeList(g.Claims), IDTokenClaims: encodeList(g.IDTokenClaims),
		Nonce: g.Nonce, CodeChallenge: g.CodeChallenge, AuthTime: dbTime(g.AuthTime), AMR: encodeList(g.AMR),
		SessionID: g.SessionID, CreateTime: dbTime(g.CreateTime), ExpireTime: dbTime(g.ExpireTime),
		UseTime: dbTime(g.UseTime), RevokeTime: dbTime(g.RevokeTime),
	}
}

func (r grantRow) grant() (authority.Grant, error) {
	g := authority.Grant{
		ID: r.ID, CodeHash: unblob(r.CodeHash), ClientID: r.ClientID, RedirectURI: r.RedirectURI,
		IdentityID: r.IdentityID, Identifier: r.Identifier, Subject: r.Subject,
		Nonce: r.Nonce, CodeChallenge: r.CodeChallenge, AuthTime: time.Time(r.AuthTime), SessionID: r.SessionID,
		CreateTime: time.Time(r.CreateTime), ExpireTime: time.Time(r.ExpireTime),
		UseTime: time.Time(r.UseTime), RevokeTime: time.Time(r.RevokeTime),
	}
	for _, l := range []struct {
		dst       *[]string
		src, what string
	}{
		{&g.Scopes, r.Scopes, "scopes"},
		{&g.Claims, r.Claims, "claims"},
		{&g.IDTokenClaims, r.IDTokenClaims, "ID token claims"},
		{&g.AMR, r.AMR, "authentication methods"},
	} {
		var err error
		if *l.dst, err = decodeList(l.src, l.what); err != nil {
			return authority.Grant{}, err
		}
	}
	return g, nil
}

type accessTokenRow struct {
	TokenHash  []byte `gorm:"primaryKey"`
	GrantID    string
	ClientID   string
	IdentityID string
	Identifier string
	Subject    string
	Scopes     string
	Claims     string
	CreateTime dbTime
	ExpireTime dbTime
	RevokeTime dbTime
}

func (accessTokenRow) TableName() string { return "authority_access_tokens" }

func accessTokenToRow(t authority.AccessToken) accessTokenRow {
	return accessTokenRow{
		TokenHash: blob(t.TokenHash), GrantID: t.GrantID, ClientID: t.ClientID, IdentityID: t.IdentityID,
		Identifier: t.Identifier, Subject: t.Subject, Scopes: encodeList(t.Scopes), Claims: encodeList(t.Claims),
		CreateTime: dbTime(t.CreateTime), ExpireTime: dbTime(t.ExpireTime), RevokeTime: dbTime(t.RevokeTime),
	}
}

func (r accessTokenRow) token() (authority.AccessToken, error) {
	t := authority.AccessToken{
		TokenHash: unblob(r.TokenHash), GrantID: r.GrantID, ClientID: r.ClientID, IdentityID: r.IdentityID,
		Identifier: r.Identifier, Subject: r.Subject,
		CreateTime: time.Time(r.CreateTime), ExpireTime: time.Time(r.ExpireTime), RevokeTime: time.Time(r.RevokeTime),
	}
	var err error
	if t.Scopes, t.Claims, err = decodeScopesClaims(r.Scopes, r.Claims); err != nil {
		return authority.AccessToken{}, err
	}
	return t, nil
}

type initialTokenRow struct {
	ID          string `gorm:"primaryKey"`
	TokenHash   []byte
	Description string
	MaxUses     int
	Uses        int
	CreateTime  dbTime
	ExpireTime  dbTime
	RevokeTime  dbTime
}

func (initialTokenRow) TableName() string { return "authority_initial_access_tokens" }

func initialTokenToRow(t authority.InitialAccessToken) initialTokenRow {
	return initialTokenRow{
		ID: t.ID, TokenHash: blob(t.TokenHash), Description: t.Description, MaxUses: t.MaxUses, Uses: t.Uses,
		CreateTime: dbTime(t.CreateTime), ExpireTime: dbTime(t.ExpireTime), RevokeTime: dbTime(t.RevokeTime),
	}
}

func (r initialTokenRow) token() authority.InitialAccessToken {
	return authority.InitialAccessToken{
		ID: r.ID, TokenHash: unblob(r.TokenHash), Description: r.Description, MaxUses: r.MaxUses, Uses: r.Uses,
		CreateTime: time.Time(r.CreateTime), ExpireTime: time.Time(r.ExpireTime), RevokeTime: time.Time(r.RevokeTime),
	}
}

// throttleRow is a login budget (authority_throttle.go).
type throttleRow struct {
	KeyHash    []byte `gorm:"primaryKey"`
	Attempts   int
	NextTime   dbTime
	ExpireTime dbTime
}

func (throttleRow) TableName() string { return "authority_login_throttles" }

type knownDeviceRow struct {
	DeviceHash []byte `gorm:"primaryKey"`
	IdentityID string `gorm:"primaryKey"`
	CreateTime dbTime
	ExpireTime dbTime
}

func (knownDeviceRow) TableName() string { return "authority_known_devices" }
