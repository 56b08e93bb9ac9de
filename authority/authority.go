package authority

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/id4me/id4me-registry/registry"
)

// Resolver is the registry's identifier → agent mapping as the authority reads it
// (registry.Resolver implements it).
type Resolver interface {
	// Resolve maps an identifier to its sponsoring agent and identity; an identifier on
	// hold, pending delete or unknown resolves to a registry KindNotFound error.
	Resolve(ctx context.Context, identifier string) (registry.Resolution, error)
	// HolderIdentity returns the canonical name of identifier and the identity it stands
	// for, whatever its statuses (on hold or pending delete too), so that the password of a
	// held identifier can be checked like any other: a registry KindNotFound error when there
	// is no such identifier, KindInvalidArgument when it is malformed.
	HolderIdentity(ctx context.Context, identifier string) (name, identityID string, err error)
	// SubjectSeed returns the secret an identity's subjects are derived from.
	SubjectSeed(ctx context.Context, identityID string) (string, error)
	// CredentialLinkBinding returns the binding a credential link of the holder of
	// identifier, standing for identity identityID, would have now, read afresh (never
	// cached); a registry KindNotFound or KindFailedPrecondition error when no link of that
	// holder can be used (registry.ReadCredentialLinkBinding).
	CredentialLinkBinding(ctx context.Context, identifier, identityID string) (registry.CredentialLinkBinding, error)
}

// SubjectType says how subjects are derived (OpenID Connect Core §8).
type SubjectType string

// Subject types.
const (
	// SubjectPairwise gives each relying-party sector its own subject for an identity.
	SubjectPairwise SubjectType = "pairwise"
	// SubjectPublic gives every relying party the same subject for an identity.
	SubjectPublic SubjectType = "public"
)

// RegistrationMode says who may register clients at the registration endpoint.
type RegistrationMode string

// Registration modes.
const (
	// RegistrationOpen lets anyone register a client: ID4me relying parties meet
	// authorities they have never seen.
	RegistrationOpen RegistrationMode = "open"
	// RegistrationToken asks for an initial access token (RFC 7591 §3), made by an
	// operator (IssueInitialAccessToken).
	RegistrationToken RegistrationMode = "token"
)

// Config configures an Authority. Issuer, Store, Keys and Resolver are required.
type Config struct {
	// Issuer is the authority's issuer URL: https, no query or fragment. Its host is what
	// identifiers' _openid records name as iss.
	Issuer string
	Store  Store
	Keys   *KeySet
	// Resolver is the registry's mapping.
	Resolver Resolver
	// SubjectType is the default for clients that do not ask; default pairwise.
	SubjectType SubjectType
	// AgentTokenAlg signs the access tokens given to agents in _claim_sources; default
	// RS256, what ID4me agents expect.
	AgentTokenAlg string
	// AllowLoopbackHTTP accepts http:// redirect URIs on loopback hosts for every client
	// (development), not only for native ones.
	AllowLoopbackHTTP bool
	// AllowPrivateJWKSURI lets clients' jwks_uri be fetched from, and their
	// backchannel_logout_uri be posted to, loopback, private, link-local and other addresses
	// that are not public (development, tests); still https.
	AllowPrivateJWKSURI bool
	// JWKSURIRootCAs are the CAs the certificate of a jwks_uri or a backchannel_logout_uri
	// must chain to; nil: the system's.
	JWKSURIRootCAs *x509.CertPool
	// JWKSURITimeout bounds one fetch of a jwks_uri; default DefaultJWKSURITimeout.
	JWKSURITimeout time.Duration
	// CodeTTL, AccessTokenTTL, IDTokenTTL, SessionTTL, AuthRequestTTL and
	// CredentialLinkTTL are lifetimes; defaults 1m, 10m, 10m, 12h, 30m, 72h. The access token
	// an agent receives through userinfo has its RP access token's iat and exp, so it lives
	// AccessTokenTTL too (DESIGN's iat + 600 s at the default).
	CodeTTL, AccessTokenTTL, IDTokenTTL, SessionTTL, AuthRequestTTL, CredentialLinkTTL time.Duration
	// SourceBackoff slows the login attempts of one source (or known device) at one
	// identifier; IdentifierBackoff those of the sources that have used up their own free
	// attempts, together, and the TOTP codes tried for an identifier (throttle.go). Defaults
	// DefaultSourceBackoff and DefaultIdentifierBackoff. Nothing ever locks a holder out.
	SourceBackoff, IdentifierBackoff Backoff
	// IdentifierBackoffHoldsAll makes the identifier's budget hold back every source, not
	// only those past their own free attempts: guessing spread over many sources is slowed
	// from its first attempts, at the cost that it can hold back a holder on a new device for
	// as long as it goes on (known devices, and a credential link's, still get in).
	IdentifierBackoffHoldsAll bool
	// LoginRate and LoginBurst limit login attempts (password and TOTP) per source (an
	// IPv4 address or IPv6 /64); defaults 1/s and 20.
	LoginRate  float64
	LoginBurst int
	// RegistrationRate and RegistrationBurst limit dynamic client registrations and RFC 7592
	// updates per source (an IPv4 address or IPv6 /64); defaults 1/min and 10; a RegistrationRate of math.Inf(1) turns the limit off.
	RegistrationRate  float64
	RegistrationBurst int
	// Registration says who may register clients; default RegistrationOpen.
	Registration RegistrationMode
	// RequirePKCE makes PKCE (S256) mandatory for every client. Without it PKCE is
	// mandatory for public clients, optional for confidential ones, and enforced whenever
	// a client sent a code_challenge (RFC 9700 §2.1.1).
	RequirePKCE bool
	// ClientSecretTTL is how long a client secret works from its registration
	// (client_secret_expires_at); 0: forever. RP libraries register again once it passed.
	ClientSecretTTL time.Duration
	// ClientCacheTTL is how long a client is answered from memory. An update or a deletion
	// takes effect at once on the instance that made it and within ClientCacheTTL on
	// others; a deleted client's codes and tokens, kept in the store, stop working at once
	// everywhere. Default 2s; negative: no cache.
	ClientCacheTTL time.Duration
	// BackchannelLogoutAttempts bounds the attempts to send one logout token (OpenID Connect
	// Back-Channel Logout); default 6. The first retry waits BackchannelLogoutBackoff
	// (default 10s), each next one twice as long, at most an hour. BackchannelLogoutQueue
	// bounds the logouts waiting to be sent (default 10000): a logout beyond it is dropped and
	// logged. BackchannelLogoutTimeout bounds one attempt (default 5s).
	BackchannelLogoutAttempts int
	BackchannelLogoutBackoff  time.Duration
	BackchannelLogoutQueue    int
	BackchannelLogoutTimeout  time.Duration
	// OPPolicyURI, OPTOSURI and ServiceDocumentation are https URLs published in discovery
	// as op_policy_uri, op_tos_uri and service_documentation when set.
	OPPolicyURI, OPTOSURI, ServiceDocumentation string
	// Password is the argon2id cost; default PasswordParams{Memory: 19456, Time: 2,
	// Threads: 1} (OWASP's minimum for argon2id).
	Password PasswordParams
	// HashConcurrency bounds concurrent password hashes (each takes Password.Memory KiB);
	// default 2 × GOMAXPROCS.
	HashConcurrency int
	// Observe is told what the authority answered, for metrics: event is registration
	// (registering, reading, updating or deleting a client), login, totp (a TOTP or
	// recovery code), passkey, consent, credentials, account (a change on the account
	// page), token, userinfo, revocation or logout; outcome is the HTTP status
	// (a 303 is a login or consent that went on, or a logout that sent the browser on). It
	// must be cheap. Nil for none.
	Observe func(event, outcome string)
	// HolderJournal records what holders do (sign-ins, credential changes, revocations)
	// in the registry's journal and tells agents of credential changes; nil: nothing is
	// recorded.
	HolderJournal HolderJournal
	// UIName is the authority's name on its pages; default DefaultUIName.
	UIName string
	// UIDir, when set, is a directory whose *.html files redefine the pages' templates
	// (templates/*.html shows which there are) and whose style.css and favicon.svg replace
	// the embedded ones; read once, in New.
	UIDir string
	// Logger gets the authority's log lines; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Authority is the embedded OpenID Connect provider.
type Authority struct {
	cfg      Config
	issuer   string
	host     string
	store    Store
	keys     *KeySet
	resolver Resolver
	log      *slog.Logger
	logins   *limiter
	regs     *limiter
	hashSlot chan struct{}
	pages    *pages
	disco    []byte
	clients  clientCache
	jwksURIs *jwksFetcher
	// agentTokens keeps the agent tokens userinfo signed, one per access token.
	agentTokens *agentTokenCache
	// webauthn runs the passkey ceremonies; nil when the issuer's host cannot be a WebAuthn
	// relying-party ID (an IP address), and passkeys are not offered.
	webauthn *webauthn.WebAuthn
	// backchannel sends the queued back-channel logouts.
	backchannel *backchannelSender
	// dummyHash is checked against when an identifier has no password, so that every
	// failure costs the same; made at first need, with the configured cost.
	dummyHash func() string
}

// New returns an Authority for cfg.
func New(cfg Config) (*Authority, error) {
	if cfg.Store == nil || cfg.Keys == nil || cfg.Resolver == nil {
		return nil, errors.New("authority: Config.Store, Keys and Resolver are required")
	}
	issuer, err := checkIssuer(cfg.Issuer)
	if err != nil {
		return nil, err
	}
	cfg.Issuer = issuer
	if cfg.SubjectType == "" {
		cfg.SubjectType = SubjectPairwise
	}
	if cfg.SubjectType != SubjectPairwise && cfg.SubjectType != SubjectPublic {
		return nil, fmt.Errorf("authority: subject type %q is neither pairwise nor public", cfg.SubjectType)
	}
	if cfg.AgentTokenAlg == "" {
		cfg.AgentTokenAlg = "RS256"
	}
	if !isSigningAlg(cfg.AgentTokenAlg) {
		return nil, fmt.Errorf("authority: agent token algorithm %q is not one of %v", cfg.AgentTokenAlg, signingAlgs)
	}
	setDefault(&cfg.CodeTTL, time.Minute)
	setDefault(&cfg.AccessTokenTTL, 10*time.Minute)
	setDefault(&cfg.IDTokenTTL, 10*time.Minute)
	setDefault(&cfg.SessionTTL, 12*time.Hour)
	setDefault(&cfg.AuthRequestTTL, 30*time.Minute)
	setDefault(&cfg.CredentialLinkTTL, 72*time.Hour)
	setDefault(&cfg.JWKSURITimeout, DefaultJWKSURITimeout)
	if cfg.SourceBackoff == (Backoff{}) {
		cfg.SourceBackoff = DefaultSourceBackoff
	}
	if cfg.IdentifierBackoff == (Backoff{}) {
		cfg.IdentifierBackoff = DefaultIdentifierBackoff
	}
	for _, b := range []Backoff{cfg.SourceBackoff, cfg.IdentifierBackoff} {
		if b.Free < 1 || b.Base <= 0 || b.Max < b.Base || b.Forget < b.Max {
			return nil, fmt.Errorf("authority: login backoff %+v: need at least one free attempt, 0 < Base <= Max <= Forget", b)
		}
	}
	if cfg.LoginRate <= 0 {
		cfg.LoginRate = 1
	}
	if cfg.LoginBurst <= 0 {
		cfg.LoginBurst = 20
	}
	if cfg.RegistrationRate <= 0 {
		cfg.RegistrationRate = 1.0 / 60
	}
	if cfg.RegistrationBurst <= 0 {
		cfg.RegistrationBurst = 10
	}
	switch cfg.Registration {
	case "":
		cfg.Registration = RegistrationOpen
	case RegistrationOpen, RegistrationToken:
	default:
		return nil, fmt.Errorf("authority: registration mode %q is neither open nor token", cfg.Registration)
	}
	if cfg.ClientSecretTTL < 0 {
		return nil, fmt.Errorf("authority: client secret lifetime %v is negative", cfg.ClientSecretTTL)
	}
	if cfg.BackchannelLogoutAttempts <= 0 {
		cfg.BackchannelLogoutAttempts = 6
	}
	setDefault(&cfg.BackchannelLogoutBackoff, 10*time.Second)
	setDefault(&cfg.BackchannelLogoutTimeout, 5*time.Second)
	if cfg.BackchannelLogoutQueue <= 0 {
		cfg.BackchannelLogoutQueue = 10000
	}
	if cfg.ClientCacheTTL == 0 {
		cfg.ClientCacheTTL = 2 * time.Second
	}
	for _, u := range []struct{ name, value string }{
		{"op_policy_uri", cfg.OPPolicyURI}, {"op_tos_uri", cfg.OPTOSURI}, {"service_documentation", cfg.ServiceDocumentation},
	} {
		if u.value != "" && !isHTTPSURL(u.value) {
			return nil, fmt.Errorf("authority: %s must be an https URL, got %q", u.name, u.value)
		}
	}
	if cfg.Password == (PasswordParams{}) {
		cfg.Password = DefaultPasswordParams
	}
	if err := cfg.Password.check(); err != nil {
		return nil, err
	}
	if cfg.HashConcurrency <= 0 {
		cfg.HashConcurrency = 2 * runtime.GOMAXPROCS(0)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observe == nil {
		cfg.Observe = func(string, string) {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pg, err := newPages(cfg.UIName, cfg.UIDir)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.Issuer)
	a := &Authority{
		cfg: cfg, issuer: cfg.Issuer, host: u.Host, store: cfg.Store, keys: cfg.Keys, resolver: cfg.Resolver,
		log:         cfg.Logger,
		logins:      newLimiter(cfg.LoginRate, cfg.LoginBurst),
		regs:        newLimiter(cfg.RegistrationRate, cfg.RegistrationBurst),
		hashSlot:    make(chan struct{}, cfg.HashConcurrency),
		pages:       pg,
		jwksURIs:    newJWKSFetcher(cfg.AllowPrivateJWKSURI, cfg.JWKSURIRootCAs, cfg.JWKSURITimeout, cfg.Now),
		agentTokens: newAgentTokenCache(agentTokenCacheSize),
		backchannel: newBackchannelSender(cfg.AllowPrivateJWKSURI, cfg.JWKSURIRootCAs, cfg.BackchannelLogoutTimeout),
	}
	a.dummyHash = sync.OnceValue(func() string {
		h, _ := hashPassword("no password is this", cfg.Password)
		return h
	})
	if wa, err := newWebAuthn(cfg.Issuer); err == nil && net.ParseIP(u.Hostname()) == nil {
		a.webauthn = wa
	}
	if a.disco, err = a.discovery(); err != nil {
		return nil, err
	}
	return a, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// checkIssuer validates an issuer URL and returns it without a trailing slash.
func checkIssuer(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("authority: issuer must be an https URL without query or fragment, got %q", raw)
	}
	return strings.TrimSuffix(raw, "/"), nil
}

// Issuer returns the authority's issuer URL.
func (a *Authority) Issuer() string { return a.issuer }

// now returns the current time truncated to the microsecond the store keeps.
func (a *Authority) now() time.Time { return a.cfg.Now().UTC().Truncate(time.Microsecond) }

// Run does the authority's background work until ctx ends: refreshing and rotating keys,
// sending back-channel logouts, and deleting expired requests, sessions, codes, tokens and
// links every interval. A failure is logged once until the work succeeds again. It returns
// when ctx has ended and the key rotator and the logout sender have stopped too, so that
// nothing of it outlives the caller's shutdown.
func (a *Authority) Run(ctx context.Context, interval time.Duration) {
	rotator := make(chan struct{})
	go func() {
		defer close(rotator)
		a.keys.Run(ctx)
	}()
	defer func() { <-rotator }()
	sender := make(chan struct{})
	go func() {
		defer close(sender)
		a.runBackchannel(ctx)
	}()
	defer func() { <-sender }()
	t := time.NewTicker(interval)
	defer t.Stop()
	sweep := failureLog{log: a.log, failed: "authority: deleting expired state failed", recovered: "authority: deleting expired state works again"}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := a.store.DeleteExpired(ctx, a.now())
		if ctx.Err() != nil {
			return
		}
		sweep.report(err)
		if n > 0 {
			a.log.Debug("authority: deleted expired state", "rows", n)
		}
	}
}
