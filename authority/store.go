package authority

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/id4me/id4me-registry/registry"
)

// ErrNotFound is returned by a Store when the object asked for does not exist (or has
// expired and been deleted).
var ErrNotFound = errors.New("authority: not found")

// ErrConflict is returned by a Store when a conditional write lost: the object exists
// already, was used already, or changed since it was read.
var ErrConflict = errors.New("authority: conflict")

// ErrSessionEnded is the ErrConflict of a write made for a session that has ended
// meanwhile (new credentials end every session).
var ErrSessionEnded = fmt.Errorf("authority: the session has ended: %w", ErrConflict)

// Store keeps the authority's state. Every method is atomic on its own; the methods that
// change two things at once (AddSigningKey, CreateCredentialLink, RedeemCredentialLink,
// RevokeGrant, DeleteClient, UseInitialAccessToken, ClaimLoginAttempt,
// ReleaseLoginAttempts) do so in one transaction.
// Secrets are stored hashed (SHA-256) wherever the authority only needs to recognise them;
// signing keys as the KeySet gives them (sealed when it has a key-encryption key) and TOTP
// secrets are stored as they are.
//
// Times are kept to the microsecond, in UTC; the zero time means "not set".
type Store interface {
	// SigningKeys returns every signing key whose ExpireTime is zero or after now, oldest
	// (by CreateTime) first.
	SigningKeys(ctx context.Context, now time.Time) ([]SigningKey, error)
	// AddSigningKey stores k and, in the same transaction, gives every other key of k.Alg
	// that has no RetireTime the RetireTime k.SignTime and the ExpireTime
	// k.SignTime+verifyFor. It returns ErrConflict, storing nothing, when a key of k.Alg
	// created after notAfter exists already (with a zero notAfter: any key of k.Alg), as
	// when another instance rotated first, or when k.ID is taken.
	AddSigningKey(ctx context.Context, k SigningKey, notAfter time.Time, verifyFor time.Duration) error
	// ReplaceSigningKeyPrivateJWK replaces the PrivateJWK of key id with jwk if it is still
	// old (ErrConflict otherwise; ErrNotFound when there is no such key): a key sealed anew
	// with another key-encryption key.
	ReplaceSigningKeyPrivateJWK(ctx context.Context, id string, old, jwk []byte) error

	// CreateClient stores a new client (ErrConflict if its ID is taken).
	CreateClient(ctx context.Context, c Client) error
	// GetClient returns a client by ID.
	GetClient(ctx context.Context, id string) (Client, error)
	// UpdateClient replaces the secret hash, the secret's expiry, the registration token
	// hash and the metadata of client c.ID (not its create time), provided its registration
	// token hash is still registrationTokenHash: ErrNotFound when there is no such client,
	// ErrConflict when the hash differs (another read or update of the client came first).
	UpdateClient(ctx context.Context, c Client, registrationTokenHash []byte) error
	// DeleteClient deletes a client whose registration token hash is registrationTokenHash
	// and, in the same transaction, its grants, consents and access tokens: ErrNotFound
	// when there is no such client, ErrConflict when the hash differs.
	DeleteClient(ctx context.Context, id string, registrationTokenHash []byte) error

	// CreateInitialAccessToken stores a new initial access token (ErrConflict if its ID or
	// hash is taken).
	CreateInitialAccessToken(ctx context.Context, t InitialAccessToken) error
	// GetInitialAccessToken returns an initial access token by the hash of its value,
	// usable or not.
	GetInitialAccessToken(ctx context.Context, tokenHash []byte) (InitialAccessToken, error)
	// ListInitialAccessTokens returns every initial access token, oldest first.
	ListInitialAccessTokens(ctx context.Context) ([]InitialAccessToken, error)
	// RevokeInitialAccessToken revokes an initial access token by ID (ErrNotFound: none);
	// revoking one again keeps its first RevokeTime.
	RevokeInitialAccessToken(ctx context.Context, id string, now time.Time) error
	// UseInitialAccessToken counts one use of the initial access token whose hash is
	// tokenHash and, in the same transaction, stores the client c it registers. It stores
	// nothing and returns ErrNotFound when no token has that hash, ErrConflict when the
	// token is revoked, has expired at now (its ExpireTime is not after now) or has been
	// used MaxUses times, or when c.ID is taken.
	UseInitialAccessToken(ctx context.Context, tokenHash []byte, now time.Time, c Client) error

	// GetHolderCredential returns the credentials of an identity (ErrNotFound: none set).
	GetHolderCredential(ctx context.Context, identityID string) (HolderCredential, error)
	// ClaimLoginAttempt counts a login attempt against every budget of keys, in one
	// transaction. A budget holds the attempt back when its NextTime is after now, but for
	// a Shared budget while the Own budget among keys has counted fewer than its
	// Backoff.Free attempts (a missing budget, or one expired at now, has counted none).
	// When a budget holds it back, ClaimLoginAttempt changes nothing and returns the latest
	// NextTime of those that do; otherwise each budget's Attempts grows by one (starting
	// from 1 when the budget is missing or has expired at now), its NextTime becomes now
	// plus key.Backoff.Delay(Attempts) and its ExpireTime now plus key.Backoff.Forget, and
	// it returns the zero time. Concurrent claims of one budget, a missing one too, count
	// one after the other.
	ClaimLoginAttempt(ctx context.Context, keys []ThrottleKey, now time.Time) (time.Time, error)
	// ReleaseLoginAttempts settles, in one transaction, the budgets a successful login was
	// counted against: it forgets the budgets of the Own keys and gives back one attempt to
	// each other budget that has counted any: its Attempts less one, and its NextTime no
	// later than now plus key.Backoff.Delay of the Attempts left (ExpireTime stays).
	ReleaseLoginAttempts(ctx context.Context, keys []ThrottleKey, now time.Time) error
	// PutKnownDevice records a known device, replacing the times of one recorded before.
	PutKnownDevice(ctx context.Context, d KnownDevice) error
	// IsKnownDevice reports whether a device is known for an identity at now.
	IsKnownDevice(ctx context.Context, deviceHash []byte, identityID string, now time.Time) (bool, error)
	// UseTOTPStep records that the TOTP code of time step step was used by an identity.
	// It returns ErrConflict when a code of that step or a later one was used already:
	// each code is good once.
	UseTOTPStep(ctx context.Context, identityID string, step int64) error

	// CreateCredentialLink stores a new credential link and, in the same transaction, voids
	// every other link of its identity that is neither used nor void (VoidTime
	// l.CreateTime): the newest link is the only one that works. Links of one identity made
	// at the same time leave one of them working. within, when it is not nil, runs in that
	// transaction too, with the registry's side of it (the store shares the registry's
	// database): an error of within is returned as it is, storing nothing. within may be
	// called again when the transaction is.
	CreateCredentialLink(ctx context.Context, l CredentialLink, within func(ctx context.Context, tx registry.Tx) error) error
	// GetCredentialLink returns a link by the hash of its token, used, void or not.
	GetCredentialLink(ctx context.Context, tokenHash []byte) (CredentialLink, error)
	// SetCredentialLinkPending keeps a password hash and TOTP secret chosen on a link that
	// is neither used nor void while the holder confirms the TOTP secret with a first code
	// (ErrConflict: used or void).
	SetCredentialLinkPending(ctx context.Context, tokenHash []byte, passwordHash, totpSecret string) error
	// RedeemCredentialLink marks the link used at now and, in the same transaction:
	//   - calls check, when it is not nil, with the registry's state as the transaction
	//     sees it, so that a change of the registry that voids the link either comes after
	//     the redemption or stops it (the store shares the registry's database), and so that
	//     what check writes (the identifier's journal) commits with the credentials;
	//   - sets the identity's credentials to c (replacing any);
	//   - voids the identity's other links (VoidTime now);
	//   - forgets the identity's known devices: a browser that logged in with the old
	//     credentials is a stranger's again;
	//   - deletes the identity's passkeys but those waiting for this link, which start to
	//     work (their LinkHash is cleared), and its recovery codes;
	//   - ends what the old credentials gave: deletes the identity's sessions and its grants
	//     whose code is unused (the code no longer redeems), clears the password step of its
	//     authorization requests in progress (PendingIdentityID and the rest), and revokes
	//     (RevokeTime now) its other grants and its access tokens. Consents stay.
	// It returns ErrConflict, changing nothing, when the link was used already, is void or
	// has expired at now (its ExpireTime is not after now); an error of check is returned
	// as it is, changing nothing. check may be called again when the transaction is.
	RedeemCredentialLink(ctx context.Context, tokenHash []byte, now time.Time, c HolderCredential, check func(ctx context.Context, tx registry.Tx) error) error

	// CreateAuthRequest stores an authorization request in progress.
	CreateAuthRequest(ctx context.Context, r AuthRequest) error
	// GetAuthRequest returns an authorization request by ID (ErrNotFound once expired or
	// finished).
	GetAuthRequest(ctx context.Context, id string) (AuthRequest, error)
	// UpdateAuthRequest replaces an authorization request's login progress
	// (PendingIdentityID, PendingIdentifier, PendingAMR, LoginSessionHash).
	UpdateAuthRequest(ctx context.Context, r AuthRequest) error
	// DeleteAuthRequest removes an authorization request; removing one twice is harmless.
	DeleteAuthRequest(ctx context.Context, id string) error

	// CreateSession stores a login session.
	CreateSession(ctx context.Context, s Session) error
	// GetSession returns a session by the hash of its cookie value.
	GetSession(ctx context.Context, idHash []byte) (Session, error)
	// DeleteSession removes a session; removing one twice is harmless.
	DeleteSession(ctx context.Context, idHash []byte) error
	// PutSessionClient records that a session logged its holder in at a client that asks
	// for back-channel logouts, replacing the record of the same session and client.
	PutSessionClient(ctx context.Context, sc SessionClient) error
	// EndSession deletes the session whose IDHash is idHash and, in the same transaction,
	// the client records of session sid (PutSessionClient), queueing a back-channel logout
	// for each (BackchannelLogout: Attempts 0, NextTime and CreateTime now, ExpireTime
	// now+giveUpAfter) while the queue holds fewer than maxQueued; a logout of the same
	// session and client queued already stays as it is. It returns how many it queued and
	// how many it dropped because the queue was full. Ending a session that is gone is
	// harmless: its client records are queued all the same.
	EndSession(ctx context.Context, idHash []byte, sid string, now time.Time, giveUpAfter time.Duration, maxQueued int) (queued, dropped int, err error)
	// ClaimBackchannelLogouts returns up to limit queued logouts whose NextTime is not after
	// now, oldest NextTime first, and moves their NextTime to now+lease, in one
	// transaction: concurrent claims (of other instances too) get other logouts, and a
	// logout whose sender died is tried again after lease.
	ClaimBackchannelLogouts(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]BackchannelLogout, error)
	// RetryBackchannelLogout records a failed attempt to send a logout: its Attempts and
	// NextTime become attempts and next (ErrNotFound: it is no longer queued).
	RetryBackchannelLogout(ctx context.Context, sid, clientID string, attempts int, next time.Time) error
	// DeleteBackchannelLogout removes a logout from the queue, sent or given up; removing
	// one twice is harmless.
	DeleteBackchannelLogout(ctx context.Context, sid, clientID string) error

	// GetConsent returns what an identity has consented to for a client.
	GetConsent(ctx context.Context, clientID, identityID string) (Consent, error)
	// PutConsent stores a consent, replacing the previous one of the same client and
	// identity (ErrNotFound: the client is gone).
	PutConsent(ctx context.Context, c Consent) error

	// CreateGrant stores an authorization code's grant (ErrNotFound: the client is gone).
	CreateGrant(ctx context.Context, g Grant) error
	// GetGrant returns the grant of a code by the code's hash, used, revoked or not.
	GetGrant(ctx context.Context, codeHash []byte) (Grant, error)
	// RedeemGrant marks the grant of a code used at now and returns it. A code used before
	// returns the grant and ErrConflict, so the caller can revoke what it issued.
	RedeemGrant(ctx context.Context, codeHash []byte, now time.Time) (Grant, error)
	// RevokeGrant revokes a grant and every access token issued from it (ErrNotFound: no
	// such grant). Revoking a grant again keeps its RevokeTime and revokes the tokens issued
	// since.
	RevokeGrant(ctx context.Context, grantID string, now time.Time) error

	// CreateAccessToken stores an access token. A token of a grant revoked already is stored
	// revoked at the grant's RevokeTime, so that a code replayed while its first use is
	// still being answered revokes the token that use gets too; a token of a grant that is
	// gone (its client was deleted meanwhile) is not stored: ErrNotFound.
	CreateAccessToken(ctx context.Context, t AccessToken) error
	// GetAccessToken returns an access token by the hash of its value, revoked or not.
	GetAccessToken(ctx context.Context, tokenHash []byte) (AccessToken, error)
	// RevokeAccessToken revokes the access token whose hash is tokenHash, if it was issued
	// to client clientID (RFC 7009): ErrNotFound when there is no such token of that client.
	// Revoking a token again keeps its first RevokeTime.
	RevokeAccessToken(ctx context.Context, tokenHash []byte, clientID string, now time.Time) error

	// Sessions returns the sessions of an identity valid at now, newest first.
	Sessions(ctx context.Context, identityID string, now time.Time) ([]Session, error)
	// Consents returns the consents of an identity, most recently updated first.
	Consents(ctx context.Context, identityID string) ([]Consent, error)
	// RevokeConsent deletes an identity's consent to a client and, in the same transaction,
	// ends what it gave: deletes the grants of the identity and client whose code is unused
	// and revokes (RevokeTime now) the others and their access tokens. ErrNotFound when there
	// was no consent (grants are ended all the same).
	RevokeConsent(ctx context.Context, clientID, identityID string, now time.Time) error
	// ChangePassword replaces the password hash of an identity, provided it is still old
	// (ErrConflict otherwise; ErrNotFound: no credentials), with UpdateTime now.
	ChangePassword(ctx context.Context, identityID, old, new string, now time.Time) error
	// SetTOTPSecret replaces the TOTP secret of an identity (empty: none) and the step of
	// its last code used, with UpdateTime now (ErrNotFound: no credentials), while the
	// session of IDHash session lasts (ErrConflict: it has ended), so that new credentials
	// set meanwhile, which end every session, come after it or stop it.
	SetTOTPSecret(ctx context.Context, identityID string, session []byte, secret string, lastStep int64, now time.Time) error
	// SetRecoveryCodes replaces the recovery codes of an identity with those of the hashes
	// (SHA-256), in one transaction, while the session of IDHash session lasts, as
	// SetTOTPSecret (ErrNotFound: no such identity).
	SetRecoveryCodes(ctx context.Context, identityID string, session []byte, hashes [][]byte, now time.Time) error
	// RecoveryCodesLeft counts the unused recovery codes of an identity.
	RecoveryCodesLeft(ctx context.Context, identityID string) (int, error)
	// UseRecoveryCode marks the unused recovery code of hash of an identity used at now:
	// ErrNotFound when the identity has no such code unused. Each code is good once, whatever
	// the concurrency.
	UseRecoveryCode(ctx context.Context, identityID string, hash []byte, now time.Time) error

	// AddPasskey stores a new passkey (ErrConflict: its credential ID is taken; ErrNotFound:
	// no such identity). A passkey with a LinkHash waits for that link: it is stored only
	// while the link is neither used nor void (ErrConflict otherwise) and works once the
	// link is redeemed.
	AddPasskey(ctx context.Context, p Passkey) error
	// Passkeys returns the working passkeys of an identity, oldest first.
	Passkeys(ctx context.Context, identityID string) ([]Passkey, error)
	// LinkPasskeys returns the passkeys waiting for the link of tokenHash, oldest first.
	LinkPasskeys(ctx context.Context, tokenHash []byte) ([]Passkey, error)
	// GetPasskey returns a working passkey by its credential ID (ErrNotFound: none, or one
	// still waiting for its link).
	GetPasskey(ctx context.Context, credentialID []byte) (Passkey, error)
	// UsePasskey records a login with a passkey: its new credential record and UseTime, if
	// its record is still was, the one the login was checked against (ErrNotFound: the
	// passkey is gone; ErrConflict: another login used it meanwhile, so that two assertions
	// of a cloned authenticator cannot both pass its signature counter).
	UsePasskey(ctx context.Context, credentialID, was, credential []byte, now time.Time) error
	// DeletePasskey deletes a working passkey of an identity (ErrNotFound: it has none of
	// that ID).
	DeletePasskey(ctx context.Context, identityID string, credentialID []byte) error
	// CreateCeremony stores a WebAuthn ceremony under way.
	CreateCeremony(ctx context.Context, c Ceremony) error
	// TakeCeremony deletes a ceremony and returns it: each is good once (ErrNotFound: none,
	// or taken already).
	TakeCeremony(ctx context.Context, idHash []byte) (Ceremony, error)

	// DeleteExpired deletes auth requests, sessions, session client records, grants,
	// access tokens, credential links, login throttles, known devices, queued back-channel
	// logouts and WebAuthn ceremonies that expired before now, and signing keys past their
	// ExpireTime, and returns how many rows went.
	DeleteExpired(ctx context.Context, now time.Time) (int64, error)
}

// SigningKey is one of the authority's signing keys. A key is published in the JWKS from
// CreateTime, signs from SignTime until RetireTime (when the next key of its algorithm takes
// over), and stays published until ExpireTime, when nothing it signed is still valid.
type SigningKey struct {
	// ID is the key's "kid".
	ID string
	// Alg is the JWS algorithm: "RS256" or "ES256".
	Alg string
	// PrivateJWK is the private key as a JWK in JSON, or that JWK sealed with a
	// key-encryption key (KeyEncryptionKey).
	PrivateJWK []byte
	CreateTime time.Time
	SignTime   time.Time
	RetireTime time.Time
	ExpireTime time.Time
}

// Client is a relying party, registered by dynamic registration (RFC 7591).
type Client struct {
	ID string
	// SecretHash is SHA-256 of the client secret; nil for a public client
	// (token_endpoint_auth_method none), which has no secret.
	SecretHash []byte
	// SecretExpireTime is when the secret stops working (client_secret_expires_at); zero:
	// never.
	SecretExpireTime time.Time
	// RegistrationTokenHash is SHA-256 of the registration access token (RFC 7592).
	RegistrationTokenHash []byte
	Metadata              ClientMetadata
	CreateTime            time.Time
}

// InitialAccessToken authorises dynamic client registrations when registration needs one
// (RFC 7591 §3, RegistrationToken). Operators make them.
type InitialAccessToken struct {
	// ID names the token in listings and revocations; it is not secret.
	ID string
	// TokenHash is SHA-256 of the token.
	TokenHash   []byte
	Description string
	// MaxUses is how many registrations the token may make; 0: any number.
	MaxUses int
	// Uses counts the registrations made with it.
	Uses       int
	CreateTime time.Time
	// ExpireTime is when it stops working; zero: never.
	ExpireTime time.Time
	RevokeTime time.Time
}

// ClientMetadata is what a client registered (RFC 7591 §2, OpenID Connect Dynamic Client
// Registration §2), after defaults were applied.
type ClientMetadata struct {
	RedirectURIs              []string `json:"redirect_uris"`
	ResponseTypes             []string `json:"response_types"`
	GrantTypes                []string `json:"grant_types"`
	ApplicationType           string   `json:"application_type"`
	ClientName                string   `json:"client_name,omitempty"`
	ClientURI                 string   `json:"client_uri,omitempty"`
	LogoURI                   string   `json:"logo_uri,omitempty"`
	PolicyURI                 string   `json:"policy_uri,omitempty"`
	TOSURI                    string   `json:"tos_uri,omitempty"`
	Contacts                  []string `json:"contacts,omitempty"`
	TokenEndpointAuthMethod   string   `json:"token_endpoint_auth_method"`
	IDTokenSignedResponseAlg  string   `json:"id_token_signed_response_alg"`
	UserinfoSignedResponseAlg string   `json:"userinfo_signed_response_alg,omitempty"`
	SubjectType               string   `json:"subject_type"`
	// The encrypted responses the client asked for, and its public keys to encrypt them to:
	// inline (JWKS) or by reference (JWKSURI).
	IDTokenEncryptedResponseAlg  string          `json:"id_token_encrypted_response_alg,omitempty"`
	IDTokenEncryptedResponseEnc  string          `json:"id_token_encrypted_response_enc,omitempty"`
	UserinfoEncryptedResponseAlg string          `json:"userinfo_encrypted_response_alg,omitempty"`
	UserinfoEncryptedResponseEnc string          `json:"userinfo_encrypted_response_enc,omitempty"`
	JWKS                         json.RawMessage `json:"jwks,omitempty"`
	JWKSURI                      string          `json:"jwks_uri,omitempty"`
	// PostLogoutRedirectURIs are where the end-session endpoint may send the browser back to
	// (OpenID Connect RP-Initiated Logout 1.0 §3.1), matched exactly.
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	// BackchannelLogoutURI is where logout tokens are posted (OpenID Connect Back-Channel
	// Logout 1.0 §2.2); BackchannelLogoutSessionRequired asks for the sid claim in them,
	// which the authority always sends.
	BackchannelLogoutURI             string `json:"backchannel_logout_uri,omitempty"`
	BackchannelLogoutSessionRequired bool   `json:"backchannel_logout_session_required,omitempty"`
	// Sector is the host pairwise subjects are computed for (OpenID Connect Core §8.1).
	Sector string `json:"-"`
}

// HolderCredential is what an identity's holder logs in with.
type HolderCredential struct {
	IdentityID string
	// PasswordHash is an argon2id hash in PHC string form, parameters included.
	PasswordHash string
	// TOTPSecret is the base32 RFC 6238 secret; empty when the holder has no second factor.
	TOTPSecret string
	// TOTPLastStep is the time step of the last TOTP code used.
	TOTPLastStep int64
	UpdateTime   time.Time
}

// CredentialLink is a single-use page on which an identity's holder sets credentials.
type CredentialLink struct {
	// TokenHash is SHA-256 of the token in the link's URL.
	TokenHash  []byte
	IdentityID string
	Identifier string
	// Purpose is "setup" or "reset".
	Purpose string
	// AgentID is the agent that asked for the link, which sponsored the identifier then;
	// IdentifierGeneration and AgentGeneration are the generations of the identifier and
	// of the agent at the time (registry.CredentialLinkBinding): the link works only while
	// the registry still holds all three.
	AgentID              string
	IdentifierGeneration int64
	AgentGeneration      int64
	// PendingPasswordHash and PendingTOTPSecret hold the holder's choice while a TOTP
	// secret waits for its first code.
	PendingPasswordHash string
	PendingTOTPSecret   string
	CreateTime          time.Time
	ExpireTime          time.Time
	UseTime             time.Time
	// VoidTime is when a newer link of the identity, or new credentials, voided the link;
	// zero while it is not void.
	VoidTime time.Time
}

// Binding returns the state of the registry the link is bound to.
func (l CredentialLink) Binding() registry.CredentialLinkBinding {
	return registry.CredentialLinkBinding{AgentID: l.AgentID, IdentifierGeneration: l.IdentifierGeneration, AgentGeneration: l.AgentGeneration}
}

// AuthRequest is an authorization request between the authorization endpoint and the code
// it ends with: the validated parameters, the browser it belongs to, and login progress.
type AuthRequest struct {
	ID string
	// BrowserHash is SHA-256 of the browser cookie the request is bound to: forms posted for
	// it must come with that cookie (CSRF).
	BrowserHash []byte
	Params      AuthParams
	// PendingIdentityID, PendingIdentifier and PendingAMR record a password already checked
	// while the TOTP step is outstanding.
	PendingIdentityID string
	PendingIdentifier string
	PendingAMR        []string
	// LoginSessionHash is the IDHash of the session a login during this request started:
	// that session answers the request whatever its prompt, max_age and login_hint ask.
	LoginSessionHash []byte
	CreateTime       time.Time
	ExpireTime       time.Time
}

// AuthParams are the validated parameters of an authorization request.
type AuthParams struct {
	ClientID      string        `json:"client_id"`
	RedirectURI   string        `json:"redirect_uri"`
	Scopes        []string      `json:"scopes"`
	State         string        `json:"state,omitempty"`
	Nonce         string        `json:"nonce,omitempty"`
	CodeChallenge string        `json:"code_challenge,omitempty"`
	Claims        ClaimsRequest `json:"claims"`
	LoginHint     string        `json:"login_hint,omitempty"`
	Prompt        []string      `json:"prompt,omitempty"`
	// MaxAge is the max_age parameter in seconds; nil when absent.
	MaxAge *int64 `json:"max_age,omitempty"`
	// ACRValues are the authentication context classes of acr_values that the authority
	// knows (acrValues); a login must reach one of them.
	ACRValues []string `json:"acr_values,omitempty"`
}

// ClaimsRequest is the OpenID Connect "claims" request parameter (Core §5.5).
type ClaimsRequest struct {
	Userinfo map[string]*ClaimRequest `json:"userinfo,omitempty"`
	IDToken  map[string]*ClaimRequest `json:"id_token,omitempty"`
}

// ClaimRequest is one member of a claims request; nil means "default".
type ClaimRequest struct {
	Essential bool   `json:"essential,omitempty"`
	Value     any    `json:"value,omitempty"`
	Values    []any  `json:"values,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// Session is a holder's login at the authority, kept by a browser cookie.
type Session struct {
	// IDHash is SHA-256 of the cookie value.
	IDHash     []byte
	IdentityID string
	Identifier string
	AuthTime   time.Time
	AMR        []string
	CreateTime time.Time
	ExpireTime time.Time
	// UserAgent and Address are the browser's User-Agent (shortened) and network address
	// at the login, which the account page shows.
	UserAgent string
	Address   string
}

// Consent is what an identity's holder allowed a client to receive.
type Consent struct {
	ClientID   string
	IdentityID string
	Scopes     []string
	Claims     []string
	UpdateTime time.Time
}

// Grant is what an authorization code stands for.
type Grant struct {
	ID string
	// CodeHash is SHA-256 of the code.
	CodeHash    []byte
	ClientID    string
	RedirectURI string
	IdentityID  string
	Identifier  string
	// Subject is the sub the client knows the identity by.
	Subject string
	Scopes  []string
	// Claims are the consented claim names for userinfo; IDTokenClaims those for the ID
	// token.
	Claims        []string
	IDTokenClaims []string
	Nonce         string
	CodeChallenge string
	AuthTime      time.Time
	AMR           []string
	// SessionID is the sid of the session the code was issued in (Session.SID), which the
	// ID token carries; empty for a grant made before sessions had one.
	SessionID  string
	CreateTime time.Time
	ExpireTime time.Time
	UseTime    time.Time
	RevokeTime time.Time
}

// AccessToken is an access token for the userinfo endpoint.
type AccessToken struct {
	// TokenHash is SHA-256 of the token.
	TokenHash  []byte
	GrantID    string
	ClientID   string
	IdentityID string
	Identifier string
	Subject    string
	Scopes     []string
	// Claims are the consented claim names for userinfo.
	Claims     []string
	CreateTime time.Time
	ExpireTime time.Time
	RevokeTime time.Time
}

// SessionClient records that a session logged its holder in at a client that asks for
// back-channel logouts: what a logout token for the session must say to the client.
type SessionClient struct {
	// SessionID is the session's sid (Session.SID).
	SessionID string
	ClientID  string
	// Subject is the sub the client knows the holder by.
	Subject    string
	CreateTime time.Time
	// ExpireTime is the session's.
	ExpireTime time.Time
}

// BackchannelLogout is a logout token waiting in the queue to be sent to a client (OpenID
// Connect Back-Channel Logout 1.0): one per session and client.
type BackchannelLogout struct {
	SessionID string
	ClientID  string
	Subject   string
	// Attempts counts the failed attempts to send it; NextTime is when the next one is due.
	Attempts   int
	NextTime   time.Time
	CreateTime time.Time
	// ExpireTime is when it is given up, sent or not.
	ExpireTime time.Time
}
