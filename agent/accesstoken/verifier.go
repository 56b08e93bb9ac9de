// Package accesstoken verifies, on an agent's side, the access tokens the ID4me authority
// puts into userinfo's _claim_sources for the agent's claims endpoint (DESIGN.md). It needs
// only the authority's issuer URL: keys come from its discovery document and JWKS. It
// imports nothing of the registry's or the authority's code, so an agent can vendor it alone.
package accesstoken

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// ErrInvalid wraps every refusal of Verifier.Verify that is the
// token's fault: an agent answers it with 401. Other errors (the authority's JWKS could not
// be fetched) are the agent's or the authority's trouble, not the caller's.
var ErrInvalid = errors.New("accesstoken: invalid access token")

// Defaults of the Verifier options.
const (
	// DefaultLeeway is the clock skew allowed on exp and iat.
	DefaultLeeway = 30 * time.Second
	// DefaultJWKSRefreshInterval is the least time between two JWKS fetches caused by
	// tokens with an unknown kid, so that made-up kids cannot make the verifier hammer the
	// authority.
	DefaultJWKSRefreshInterval = 30 * time.Second
	// DefaultJWKSMaxAge is how long fetched keys are used before they are fetched again, so
	// that a key the authority stopped publishing stops being trusted.
	DefaultJWKSMaxAge = time.Hour
)

// discoveryPath is where OpenID Connect Discovery §4 puts the provider's metadata.
const discoveryPath = "/.well-known/openid-configuration"

// minRSABits is the smallest RSA modulus a published key may have to be trusted.
const minRSABits = 2048

// The algorithm names a key may carry.
var (
	rs256 = string(jose.RS256)
	es256 = string(jose.ES256)
)

// maxDiscoveryBody bounds what the verifier reads of discovery and the JWKS.
const maxDiscoveryBody = 1 << 20

// verifyAlgs are the only algorithms a token may be signed with: what the authority signs
// with. Anything else ("none", HS256 over a public key, …) is refused when the token is parsed.
var verifyAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256}

// Token is the access token the authority gives an agent in userinfo's
// _claim_sources (DESIGN.md, DENIC's layout), as Verifier.Verify returns it.
type Token struct {
	// Issuer (iss) is the authority.
	Issuer string
	// Subject (sub) is the subject the relying party knows the holder by.
	Subject string
	// Audience (aud) holds the agent's issuer.
	Audience []string
	// Identifier (id4me.identifier) is the canonical identifier that logged in.
	Identifier string
	// Claims (clm) are the claims the holder consented to: the only ones to answer with.
	Claims []string
	// Scope (scope) is the scopes of the relying party's request.
	Scope []string
	// ClientID (client_id) is the relying party: the aud of the agent's answer.
	ClientID string
	// IssuedAt (iat) and Expiry (exp) bound the token's life.
	IssuedAt, Expiry time.Time
	// ID (jti) names the token.
	ID string
}

// agentTokenClaims is how Verify reads a token's payload.
type agentTokenClaims struct {
	jwt.Claims
	Identifier string    `json:"id4me.identifier"`
	Clm        []string  `json:"clm"`
	Scope      scopeList `json:"scope"`
	ClientID   string    `json:"client_id"`
}

// scopeList is a scope claim: a JSON array (ID4me) or a space-separated string (RFC 9068).
type scopeList []string

func (s *scopeList) UnmarshalJSON(b []byte) error {
	var list []string
	if err := json.Unmarshal(b, &list); err == nil {
		*s = list
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return errors.New("scope is neither an array nor a string")
	}
	*s = strings.Fields(str)
	return nil
}

// Verifier verifies the access tokens the authority gives agents in
// _claim_sources, as an agent does: the keys come from the authority's discovery →
// jwks_uri; only RS256 and ES256 are accepted (go-jose parses with that explicit list, so
// "none" and HS256 signed with a public key are refused before any key is looked at); the
// key is the one the token's kid names, with the algorithm the token says; iss must be the
// authority, aud must hold the agent's issuer, exp and iat are checked with a small leeway,
// and the token must carry sub, id4me.identifier, client_id and jti.
//
// A kid it does not know makes it fetch the JWKS again, at most once per refresh interval;
// keys older than the maximum age are fetched again before use. It is safe for concurrent
// use. This is what agents (and the agent toolkit) use at their claims endpoint: a token that
// passes names the identifier, the relying party (client_id) and the claims (clm) to answer.
type Verifier struct {
	client          *http.Client
	issuer          string
	agentIssuer     string
	jwksURI         string
	now             func() time.Time
	leeway          time.Duration
	refreshInterval time.Duration
	maxAge          time.Duration
	replay          *replayCache

	keys atomic.Pointer[verifierKeys]
	// mu serialises fetches; lastTry is when the last one started (under mu).
	mu      sync.Mutex
	lastTry time.Time
}

// verifierKeys is one fetch of the JWKS.
type verifierKeys struct {
	byKID   map[string][]jose.JSONWebKey
	fetched time.Time
}

// Option changes a default of NewVerifier.
type Option func(*Verifier)

// WithClock sets the clock exp, iat and the key cache are checked against
// (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(v *Verifier) { v.now = now }
}

// WithLeeway sets the clock skew allowed on exp and iat (default DefaultLeeway).
func WithLeeway(d time.Duration) Option {
	return func(v *Verifier) { v.leeway = d }
}

// WithJWKSRefreshInterval sets the least time between JWKS fetches caused by an unknown kid
// or a failed fetch (default DefaultJWKSRefreshInterval).
func WithJWKSRefreshInterval(d time.Duration) Option {
	return func(v *Verifier) { v.refreshInterval = d }
}

// WithJWKSMaxAge sets how long fetched keys are used before they are fetched again (default
// DefaultJWKSMaxAge).
func WithJWKSMaxAge(d time.Duration) Option {
	return func(v *Verifier) { v.maxAge = d }
}

// WithReplayCheck makes Verify refuse a token whose jti it has already accepted, until the
// token expires: for an agent that wants each access token used once. It is off by default,
// since a relying party may ask the claims endpoint again with the same token within its
// life (OpenID Connect does not forbid it).
func WithReplayCheck() Option {
	return func(v *Verifier) { v.replay = &replayCache{seen: make(map[string]time.Time)} }
}

// NewVerifier makes a verifier for the access tokens the authority at issuer (an
// https URL) gives the agent whose issuer is agentIssuer. It reads the authority's
// discovery, whose issuer must be issuer exactly, and fetches the JWKS; client (nil:
// http.DefaultClient) is how it reaches the authority.
func NewVerifier(ctx context.Context, client *http.Client, issuer, agentIssuer string, opts ...Option) (*Verifier, error) {
	if client == nil {
		client = http.DefaultClient
	}
	if u, err := url.Parse(issuer); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("accesstoken: the issuer must be an https URL, got %q", issuer)
	}
	if agentIssuer == "" {
		return nil, errors.New("accesstoken: the agent's issuer is required")
	}
	v := &Verifier{
		client: client, issuer: issuer, agentIssuer: agentIssuer, now: time.Now,
		leeway: DefaultLeeway, refreshInterval: DefaultJWKSRefreshInterval, maxAge: DefaultJWKSMaxAge,
	}
	for _, o := range opts {
		o(v)
	}
	var disco struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := v.getJSON(ctx, strings.TrimSuffix(issuer, "/")+discoveryPath, &disco); err != nil {
		return nil, fmt.Errorf("accesstoken: discovery: %w", err)
	}
	// OpenID Connect Discovery §4.3: the issuer in the document is the one asked for.
	if disco.Issuer != issuer {
		return nil, fmt.Errorf("accesstoken: discovery names issuer %q, want %q", disco.Issuer, issuer)
	}
	if u, err := url.Parse(disco.JWKSURI); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("accesstoken: discovery's jwks_uri %q is not an https URL", disco.JWKSURI)
	}
	v.jwksURI = disco.JWKSURI
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.fetchLocked(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// Verify checks an access token and returns its claims. A refusal that is the token's fault
// wraps ErrInvalid.
func (v *Verifier) Verify(ctx context.Context, token string) (Token, error) {
	invalid := func(format string, args ...any) (Token, error) {
		return Token{}, fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	tok, err := jwt.ParseSigned(token, verifyAlgs)
	if err != nil {
		return invalid("%v", err)
	}
	// Compact serialization: one signature.
	h := tok.Headers[0]
	if h.KeyID == "" {
		return invalid("the token names no key (kid)")
	}
	key, err := v.key(ctx, h.KeyID, h.Algorithm)
	if err != nil {
		return Token{}, err
	}
	var c agentTokenClaims
	if err := tok.Claims(key.Key, &c); err != nil {
		return invalid("%v", err)
	}
	now := v.now()
	switch {
	case c.Expiry == nil || c.IssuedAt == nil:
		return invalid("exp and iat are required")
	case c.Subject == "" || c.Identifier == "" || c.ClientID == "" || c.ID == "":
		return invalid("sub, id4me.identifier, client_id and jti are required")
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: v.issuer, AnyAudience: jwt.Audience{v.agentIssuer}, Time: now}, v.leeway); err != nil {
		return invalid("%v", err)
	}
	if v.replay != nil && !v.replay.first(c.ID, c.Expiry.Time().Add(v.leeway), now) {
		return invalid("the token (jti %q) was used before", c.ID)
	}
	return Token{
		Issuer: c.Issuer, Subject: c.Subject, Audience: []string(c.Audience), Identifier: c.Identifier,
		Claims: c.Clm, Scope: []string(c.Scope), ClientID: c.ClientID,
		IssuedAt: c.IssuedAt.Time(), Expiry: c.Expiry.Time(), ID: c.ID,
	}, nil
}

// key returns the published key kid of alg, fetching the JWKS again when kid is unknown (at
// most once per refresh interval) or the keys are older than the maximum age.
func (v *Verifier) key(ctx context.Context, kid, alg string) (jose.JSONWebKey, error) {
	ks := v.keys.Load()
	now := v.now()
	stale := now.Sub(ks.fetched) >= v.maxAge
	k, found := ks.find(kid, alg)
	if found && !stale {
		return k, nil
	}
	v.mu.Lock()
	if cur := v.keys.Load(); cur != ks {
		// Another call fetched meanwhile.
		ks = cur
	} else if now.Sub(v.lastTry) >= v.refreshInterval {
		if err := v.fetchLocked(ctx); err != nil && !found {
			v.mu.Unlock()
			return jose.JSONWebKey{}, err
		}
		// A failed fetch of stale keys goes on with them: the authority may be down for a
		// moment, and the keys it published are still its keys.
		ks = v.keys.Load()
	}
	v.mu.Unlock()
	if k, found = ks.find(kid, alg); !found {
		return jose.JSONWebKey{}, fmt.Errorf("%w: the authority publishes no %s key %q", ErrInvalid, alg, kid)
	}
	return k, nil
}

// find returns the key kid for alg: a key that names another algorithm, or is of a type that
// cannot make alg signatures, does not verify it.
func (ks *verifierKeys) find(kid, alg string) (jose.JSONWebKey, bool) {
	for _, k := range ks.byKID[kid] {
		if k.Algorithm == alg {
			return k, true
		}
	}
	return jose.JSONWebKey{}, false
}

// fetchLocked fetches the JWKS and keeps its signature keys for RS256 and ES256; v.mu is
// held.
func (v *Verifier) fetchLocked(ctx context.Context) error {
	v.lastTry = v.now()
	// Keys one by one: a key of a type go-jose does not know is skipped, not a failure.
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := v.getJSON(ctx, v.jwksURI, &set); err != nil {
		return fmt.Errorf("accesstoken: JWKS: %w", err)
	}
	ks := &verifierKeys{byKID: make(map[string][]jose.JSONWebKey), fetched: v.lastTry}
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil || k.KeyID == "" || (k.Use != "" && k.Use != "sig") || !k.Valid() {
			continue
		}
		pub := k.Public()
		if !pub.Valid() {
			continue
		}
		// The algorithm a key verifies is its alg, which must fit its type; a key without one
		// gets the algorithm of its type.
		var typeAlg string
		switch key := pub.Key.(type) {
		case *rsa.PublicKey:
			if key.N.BitLen() < minRSABits {
				continue
			}
			typeAlg = rs256
		case *ecdsa.PublicKey:
			if key.Curve != elliptic.P256() {
				continue
			}
			typeAlg = es256
		default:
			continue
		}
		if pub.Algorithm == "" {
			pub.Algorithm = typeAlg
		}
		if pub.Algorithm != typeAlg {
			continue
		}
		ks.byKID[pub.KeyID] = append(ks.byKID[pub.KeyID], pub)
	}
	v.keys.Store(ks)
	return nil
}

// getJSON fetches u and decodes its JSON answer into dst.
func (v *Verifier) getJSON(ctx context.Context, u string, dst any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscoveryBody+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	if len(body) > maxDiscoveryBody {
		return fmt.Errorf("GET %s: the answer is larger than %d bytes", u, maxDiscoveryBody)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}

// replayCache remembers the jti of each accepted token until the token expires.
type replayCache struct {
	mu   sync.Mutex
	seen map[string]time.Time
	// pruned is when expired entries were last dropped.
	pruned time.Time
}

// first records jti, kept until until, and reports whether it was not already recorded.
func (c *replayCache) first(jti string, until, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.seen[jti]; ok && now.Before(exp) {
		return false
	}
	// Tokens live minutes: dropping the expired ones once a minute keeps the map to the
	// tokens of the last few minutes.
	if now.Sub(c.pruned) >= time.Minute {
		for id, exp := range c.seen {
			if !now.Before(exp) {
				delete(c.seen, id)
			}
		}
		c.pruned = now
	}
	c.seen[jti] = until
	return true
}
