package sqlstore

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/id4me/id4me-registry/authority"
)

// The authority's rows: the columns of each table (migrations 00003, 00004, 00007 and 00009), the values a row is
// written with (…Args, in the order of the columns) and the fields it is read into (dest).

// Column lists, in the order of the rows' fields.
const (
	signingKeyColumns = "id, alg, private_jwk, create_time, sign_time, retire_time, expire_time"
	clientColumns     = "id, secret_hash, registration_token_hash, metadata, sector, create_time, secret_expire_time"
	holderColumns     = "identity_id, password_hash, totp_secret, totp_last_step, update_time"
	linkColumns       = "token_hash, identity_id, identifier, purpose, agent_id, pending_password_hash, pending_totp_secret, create_time, expire_time, use_time, " +
		"identifier_generation, agent_generation, void_time"
	authRequestColumns = "id, browser_hash, params, pending_identity_id, pending_identifier, pending_amr, create_time, expire_time, login_session_hash"
	sessionColumns     = "id_hash, identity_id, identifier, auth_time, amr, create_time, expire_time"
	consentColumns     = "client_id, identity_id, scopes, claims, update_time"
	grantColumns       = "id, code_hash, client_id, redirect_uri, identity_id, identifier, subject, scopes, claims, id_token_claims, " +
		"nonce, code_challenge, auth_time, amr, create_time, expire_time, use_time, revoke_time"
	accessTokenColumns = "token_hash, grant_id, client_id, identity_id, identifier, subject, scopes, claims, " +
		"create_time, expire_time, revoke_time"
	initialTokenColumns = "id, token_hash, description, max_uses, uses, create_time, expire_time, revoke_time"
)

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
	var ss []string
	if err := json.Unmarshal([]byte(s), &ss); err != nil {
		return nil, internal(fmt.Errorf("decoding %s: %w", what, err))
	}
	return ss, nil
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
	k                                            authority.SigningKey
	createTime, signTime, retireTime, expireTime dbTime
}

func (r *signingKeyRow) dest() []any {
	return []any{&r.k.ID, &r.k.Alg, &r.k.PrivateJWK, &r.createTime, &r.signTime, &r.retireTime, &r.expireTime}
}

func (r *signingKeyRow) key() authority.SigningKey {
	k := r.k
	k.PrivateJWK = unblob(k.PrivateJWK)
	k.CreateTime, k.SignTime = time.Time(r.createTime), time.Time(r.signTime)
	k.RetireTime, k.ExpireTime = time.Time(r.retireTime), time.Time(r.expireTime)
	return k
}

func signingKeyArgs(rd reader, k authority.SigningKey) []any {
	return []any{k.ID, k.Alg, blob(k.PrivateJWK), rd.time(dbTime(k.CreateTime)), rd.time(dbTime(k.SignTime)),
		rd.time(dbTime(k.RetireTime)), rd.time(dbTime(k.ExpireTime))}
}

type clientRow struct {
	c                            authority.Client
	metadata                     string
	createTime, secretExpireTime dbTime
}

func (r *clientRow) dest() []any {
	return []any{&r.c.ID, &r.c.SecretHash, &r.c.RegistrationTokenHash, &r.metadata, &r.c.Metadata.Sector, &r.createTime, &r.secretExpireTime}
}

func (r *clientRow) client() (authority.Client, error) {
	c := r.c
	c.SecretHash, c.RegistrationTokenHash = unblob(c.SecretHash), unblob(c.RegistrationTokenHash)
	c.CreateTime, c.SecretExpireTime = time.Time(r.createTime), time.Time(r.secretExpireTime)
	sector := c.Metadata.Sector
	if err := json.Unmarshal([]byte(r.metadata), &c.Metadata); err != nil {
		return authority.Client{}, internal(fmt.Errorf("decoding metadata of client %s: %w", c.ID, err))
	}
	c.Metadata.Sector = sector
	return c, nil
}

func clientArgs(rd reader, c authority.Client) ([]any, error) {
	md, err := json.Marshal(c.Metadata)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: encoding metadata of client %s: %w", c.ID, err)
	}
	return []any{c.ID, blob(c.SecretHash), blob(c.RegistrationTokenHash), string(md), c.Metadata.Sector,
		rd.time(dbTime(c.CreateTime)), rd.time(dbTime(c.SecretExpireTime))}, nil
}

type holderRow struct {
	c          authority.HolderCredential
	updateTime dbTime
}

func (r *holderRow) dest() []any {
	return []any{&r.c.IdentityID, &r.c.PasswordHash, &r.c.TOTPSecret, &r.c.TOTPLastStep, &r.updateTime}
}

func (r *holderRow) credential() authority.HolderCredential {
	c := r.c
	c.UpdateTime = time.Time(r.updateTime)
	return c
}

func holderArgs(rd reader, c authority.HolderCredential) []any {
	return []any{c.IdentityID, c.PasswordHash, c.TOTPSecret, c.TOTPLastStep, rd.time(dbTime(c.UpdateTime))}
}

type linkRow struct {
	l                                         authority.CredentialLink
	createTime, expireTime, useTime, voidTime dbTime
}

func (r *linkRow) dest() []any {
	return []any{&r.l.TokenHash, &r.l.IdentityID, &r.l.Identifier, &r.l.Purpose, &r.l.AgentID,
		&r.l.PendingPasswordHash, &r.l.PendingTOTPSecret, &r.createTime, &r.expireTime, &r.useTime,
		&r.l.IdentifierGeneration, &r.l.AgentGeneration, &r.voidTime}
}

func (r *linkRow) link() authority.CredentialLink {
	l := r.l
	l.TokenHash = unblob(l.TokenHash)
	l.CreateTime, l.ExpireTime, l.UseTime = time.Time(r.createTime), time.Time(r.expireTime), time.Time(r.useTime)
	l.VoidTime = time.Time(r.voidTime)
	return l
}

func linkArgs(rd reader, l authority.CredentialLink) []any {
	return []any{blob(l.TokenHash), l.IdentityID, l.Identifier, l.Purpose, l.AgentID,
		l.PendingPasswordHash, l.PendingTOTPSecret,
		rd.time(dbTime(l.CreateTime)), rd.time(dbTime(l.ExpireTime)), rd.time(dbTime(l.UseTime)),
		l.IdentifierGeneration, l.AgentGeneration, rd.time(dbTime(l.VoidTime))}
}

type authRequestRow struct {
	r                      authority.AuthRequest
	params, pendingAMR     string
	createTime, expireTime dbTime
}

func (r *authRequestRow) dest() []any {
	return []any{&r.r.ID, &r.r.BrowserHash, &r.params, &r.r.PendingIdentityID, &r.r.PendingIdentifier,
		&r.pendingAMR, &r.createTime, &r.expireTime, &r.r.LoginSessionHash}
}

func (r *authRequestRow) request() (authority.AuthRequest, error) {
	ar := r.r
	ar.BrowserHash, ar.LoginSessionHash = unblob(ar.BrowserHash), unblob(ar.LoginSessionHash)
	ar.CreateTime, ar.ExpireTime = time.Time(r.createTime), time.Time(r.expireTime)
	if err := json.Unmarshal([]byte(r.params), &ar.Params); err != nil {
		return authority.AuthRequest{}, internal(fmt.Errorf("decoding parameters of authorization request %s: %w", ar.ID, err))
	}
	var err error
	ar.PendingAMR, err = decodeList(r.pendingAMR, "authentication methods")
	return ar, err
}

func authRequestArgs(rd reader, r authority.AuthRequest) ([]any, error) {
	params, err := json.Marshal(r.Params)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: encoding parameters of authorization request %s: %w", r.ID, err)
	}
	return []any{r.ID, blob(r.BrowserHash), string(params), r.PendingIdentityID, r.PendingIdentifier,
		encodeList(r.PendingAMR), rd.time(dbTime(r.CreateTime)), rd.time(dbTime(r.ExpireTime)), blob(r.LoginSessionHash)}, nil
}

type sessionRow struct {
	s                                authority.Session
	amr                              string
	authTime, createTime, expireTime dbTime
}

func (r *sessionRow) dest() []any {
	return []any{&r.s.IDHash, &r.s.IdentityID, &r.s.Identifier, &r.authTime, &r.amr, &r.createTime, &r.expireTime}
}

func (r *sessionRow) session() (authority.Session, error) {
	s := r.s
	s.IDHash = unblob(s.IDHash)
	s.AuthTime, s.CreateTime, s.ExpireTime = time.Time(r.authTime), time.Time(r.createTime), time.Time(r.expireTime)
	var err error
	s.AMR, err = decodeList(r.amr, "authentication methods")
	return s, err
}

func sessionArgs(rd reader, s authority.Session) []any {
	return []any{blob(s.IDHash), s.IdentityID, s.Identifier, rd.time(dbTime(s.AuthTime)), encodeList(s.AMR),
		rd.time(dbTime(s.CreateTime)), rd.time(dbTime(s.ExpireTime))}
}

type consentRow struct {
	c              authority.Consent
	scopes, claims string
	updateTime     dbTime
}

func (r *consentRow) dest() []any {
	return []any{&r.c.ClientID, &r.c.IdentityID, &r.scopes, &r.claims, &r.updateTime}
}

func (r *consentRow) consent() (authority.Consent, error) {
	c := r.c
	c.UpdateTime = time.Time(r.updateTime)
	var err error
	if c.Scopes, err = decodeList(r.scopes, "scopes"); err != nil {
		return authority.Consent{}, err
	}
	c.Claims, err = decodeList(r.claims, "claims")
	return c, err
}

func consentArgs(rd reader, c authority.Consent) []any {
	return []any{c.ClientID, c.IdentityID, encodeList(c.Scopes), encodeList(c.Claims), rd.time(dbTime(c.UpdateTime))}
}

type grantRow struct {
	g                                                     authority.Grant
	scopes, claims, idTokenClaims, amr                    string
	authTime, createTime, expireTime, useTime, revokeTime dbTime
}

func (r *grantRow) dest() []any {
	return []any{&r.g.ID, &r.g.CodeHash, &r.g.ClientID, &r.g.RedirectURI, &r.g.IdentityID, &r.g.Identifier,
		&r.g.Subject, &r.scopes, &r.claims, &r.idTokenClaims, &r.g.Nonce, &r.g.CodeChallenge, &r.authTime, &r.amr,
		&r.createTime, &r.expireTime, &r.useTime, &r.revokeTime}
}

func (r *grantRow) grant() (authority.Grant, error) {
	g := r.g
	g.CodeHash = unblob(g.CodeHash)
	g.AuthTime, g.CreateTime, g.ExpireTime = time.Time(r.authTime), time.Time(r.createTime), time.Time(r.expireTime)
	g.UseTime, g.RevokeTime = time.Time(r.useTime), time.Time(r.revokeTime)
	var err error
	for _, l := range []struct {
		dst       *[]string
		src, what string
	}{
		{&g.Scopes, r.scopes, "scopes"},
		{&g.Claims, r.claims, "claims"},
		{&g.IDTokenClaims, r.idTokenClaims, "ID token claims"},
		{&g.AMR, r.amr, "authentication methods"},
	} {
		if *l.dst, err = decodeList(l.src, l.what); err != nil {
			return authority.Grant{}, err
		}
	}
	return g, nil
}

func grantArgs(rd reader, g authority.Grant) []any {
	return []any{g.ID, blob(g.CodeHash), g.ClientID, g.RedirectURI, g.IdentityID, g.Identifier, g.Subject,
		encodeList(g.Scopes), encodeList(g.Claims), encodeList(g.IDTokenClaims), g.Nonce, g.CodeChallenge,
		rd.time(dbTime(g.AuthTime)), encodeList(g.AMR), rd.time(dbTime(g.CreateTime)), rd.time(dbTime(g.ExpireTime)),
		rd.time(dbTime(g.UseTime)), rd.time(dbTime(g.RevokeTime))}
}

type accessTokenRow struct {
	t                                  authority.AccessToken
	scopes, claims                     string
	createTime, expireTime, revokeTime dbTime
}

func (r *accessTokenRow) dest() []any {
	return []any{&r.t.TokenHash, &r.t.GrantID, &r.t.ClientID, &r.t.IdentityID, &r.t.Identifier, &r.t.Subject,
		&r.scopes, &r.claims, &r.createTime, &r.expireTime, &r.revokeTime}
}

func (r *accessTokenRow) token() (authority.AccessToken, error) {
	t := r.t
	t.TokenHash = unblob(t.TokenHash)
	t.CreateTime, t.ExpireTime, t.RevokeTime = time.Time(r.createTime), time.Time(r.expireTime), time.Time(r.revokeTime)
	var err error
	if t.Scopes, err = decodeList(r.scopes, "scopes"); err != nil {
		return authority.AccessToken{}, err
	}
	t.Claims, err = decodeList(r.claims, "claims")
	return t, err
}

// accessTokenArgs returns the values of sqlInsertToken: the columns, then the grant's ID again
// for the revoke time of a revoked grant.
func accessTokenArgs(rd reader, t authority.AccessToken) []any {
	return []any{blob(t.TokenHash), t.GrantID, t.ClientID, t.IdentityID, t.Identifier, t.Subject,
		encodeList(t.Scopes), encodeList(t.Claims), rd.time(dbTime(t.CreateTime)), rd.time(dbTime(t.ExpireTime)),
		rd.time(dbTime(t.RevokeTime)), t.GrantID}
}

type initialTokenRow struct {
	t                                  authority.InitialAccessToken
	createTime, expireTime, revokeTime dbTime
}

func (r *initialTokenRow) dest() []any {
	return []any{&r.t.ID, &r.t.TokenHash, &r.t.Description, &r.t.MaxUses, &r.t.Uses, &r.createTime, &r.expireTime, &r.revokeTime}
}

func (r *initialTokenRow) token() authority.InitialAccessToken {
	t := r.t
	t.TokenHash = unblob(t.TokenHash)
	t.CreateTime, t.ExpireTime, t.RevokeTime = time.Time(r.createTime), time.Time(r.expireTime), time.Time(r.revokeTime)
	return t
}

func initialTokenArgs(rd reader, t authority.InitialAccessToken) []any {
	return []any{t.ID, blob(t.TokenHash), t.Description, t.MaxUses, t.Uses, rd.time(dbTime(t.CreateTime)),
		rd.time(dbTime(t.ExpireTime)), rd.time(dbTime(t.RevokeTime))}
}
