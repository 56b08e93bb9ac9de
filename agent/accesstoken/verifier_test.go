package accesstoken_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/id4me/id4me-registry/agent/accesstoken"
	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/internal/fakeclock"
	"github.com/id4me/id4me-registry/sqlstore"
)

// agentIssuer is the issuer of the agent the tokens of these tests are for.
const agentIssuer = "https://agent.example.test"

// verifierEnv is an authority as an agent sees it: a TLS server with discovery and the JWKS
// of a KeySet kept in the real store, and a settable clock shared by the keys and the
// verifier.
type verifierEnv struct {
	t      *testing.T
	keys   *authority.KeySet
	srv    *httptest.Server
	issuer string
	// fetches counts JWKS requests.
	fetches atomic.Int32
	// down makes the JWKS answer 503.
	down atomic.Bool

	// Clock is the keys' and the verifier's time (Now, Advance).
	*fakeclock.Clock

	mu sync.Mutex
	// discovery, when set, replaces the discovery document.
	discovery map[string]any
}

func newVerifierEnv(t *testing.T) *verifierEnv {
	t.Helper()
	ctx := context.Background()
	v := &verifierEnv{t: t, Clock: fakeclock.New(time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC))}
	store, err := sqlstore.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	v.keys, err = authority.NewKeySet(ctx, store.Authority(), authority.KeyConfig{Now: v.Now})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		v.mu.Lock()
		d := v.discovery
		v.mu.Unlock()
		if d == nil {
			d = map[string]any{"issuer": v.issuer, "jwks_uri": v.issuer + "/jwks.json"}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(d)
	})
	mux.HandleFunc("GET /jwks.json", func(w http.ResponseWriter, r *http.Request) {
		v.fetches.Add(1)
		if v.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(v.keys.JWKS())
	})
	v.srv = httptest.NewTLSServer(mux)
	t.Cleanup(v.srv.Close)
	v.issuer = v.srv.URL
	return v
}

func (v *verifierEnv) verifier(opts ...accesstoken.Option) *accesstoken.Verifier {
	v.t.Helper()
	av, err := accesstoken.NewVerifier(context.Background(), v.srv.Client(), v.issuer, agentIssuer,
		append([]accesstoken.Option{accesstoken.WithClock(v.Now)}, opts...)...)
	if err != nil {
		v.t.Fatalf("NewVerifier: %v", err)
	}
	return av
}

// claims returns the claims of a good access token at the env's clock, as the authority
// makes them.
func (v *verifierEnv) claims() map[string]any {
	now := v.Now().Unix()
	return map[string]any{
		"iss": v.issuer, "sub": "subject-of-alice", "aud": agentIssuer, "id4me.identifier": "alice.example.test",
		"clm": []string{"email", "name"}, "scope": []string{"openid", "email"}, "client_id": "client-1",
		"iat": now, "exp": now + 600, "jti": "jti-1",
	}
}

// sign signs claims with the authority's current key of alg.
func (v *verifierEnv) sign(alg string, claims map[string]any) string {
	v.t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		v.t.Fatal(err)
	}
	tok, err := v.keys.Sign(alg, b, "JWT")
	if err != nil {
		v.t.Fatal(err)
	}
	return tok
}

// publishedKey returns the JWK the authority publishes for alg.
func (v *verifierEnv) publishedKey(alg string) jose.JSONWebKey {
	v.t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(v.keys.JWKS(), &set); err != nil {
		v.t.Fatal(err)
	}
	for _, k := range set.Keys {
		if k.Algorithm == alg {
			return k
		}
	}
	v.t.Fatalf("no %s key published", alg)
	return jose.JSONWebKey{}
}

// forgeJWS builds a compact JWS by hand: header, claims and a signature made by sign over
// the signing input (nil: empty signature).
func forgeJWS(t *testing.T, header, claims map[string]any, sign func(input []byte) []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func hs256(secret []byte) func([]byte) []byte {
	return func(input []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(input)
		return m.Sum(nil)
	}
}

// publicKeySecrets are the forms of an RSA public key an attacker would try as the HMAC
// secret of an HS256 token: the PEM and DER of its SubjectPublicKeyInfo and PKCS #1 forms,
// its JWK, and its modulus.
func publicKeySecrets(t *testing.T, jwk jose.JSONWebKey) map[string][]byte {
	t.Helper()
	pub := jwk.Key.(*rsa.PublicKey)
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := x509.MarshalPKCS1PublicKey(pub)
	j, err := jwk.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"PEM":       pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}),
		"PEM PKCS1": pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1}),
		"DER":       spki,
		"JWK":       j,
		"modulus":   pub.N.Bytes(),
	}
}

func TestAccessTokenVerifierAccepts(t *testing.T) {
	v := newVerifierEnv(t)
	av := v.verifier()
	for _, alg := range []string{authority.RS256, authority.ES256} {
		t.Run(alg, func(t *testing.T) {
			c := v.claims()
			got, err := av.Verify(context.Background(), v.sign(alg, c))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			iat := time.Unix(c["iat"].(int64), 0)
			if got.Issuer != v.issuer || got.Subject != "subject-of-alice" || len(got.Audience) != 1 || got.Audience[0] != agentIssuer ||
				got.Identifier != "alice.example.test" || strings.Join(got.Claims, " ") != "email name" ||
				strings.Join(got.Scope, " ") != "openid email" || got.ClientID != "client-1" || got.ID != "jti-1" ||
				!got.IssuedAt.Equal(iat) || !got.Expiry.Equal(iat.Add(600*time.Second)) {
				t.Fatalf("Verify gave %+v", got)
			}
		})
	}
	t.Run("aud array and scope string", func(t *testing.T) {
		c := v.claims()
		c["aud"] = []string{"https://other.example.test", agentIssuer}
		c["scope"] = "openid email"
		got, err := av.Verify(context.Background(), v.sign(authority.RS256, c))
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if strings.Join(got.Scope, " ") != "openid email" || len(got.Audience) != 2 {
			t.Fatalf("Verify gave %+v", got)
		}
	})
	t.Run("within the leeway", func(t *testing.T) {
		c := v.claims()
		c["exp"] = v.Now().Add(-20 * time.Second).Unix()
		c["iat"] = v.Now().Add(20 * time.Second).Unix()
		if _, err := av.Verify(context.Background(), v.sign(authority.ES256, c)); err != nil {
			t.Fatalf("a token 20s off the clock: %v", err)
		}
	})
}

func TestAccessTokenVerifierRefuses(t *testing.T) {
	v := newVerifierEnv(t)
	av := v.verifier()
	rsaKey, ecKey := v.publishedKey(authority.RS256), v.publishedKey(authority.ES256)
	with := func(change func(c map[string]any)) map[string]any {
		c := v.claims()
		change(c)
		return c
	}
	stranger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	strangerEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signWith := func(alg jose.SignatureAlgorithm, key any, kid string, c map[string]any) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(c)
		jws, err := s.Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	// reason, when set, is part of the refusal's message: the token is refused for what it
	// tests, not for something else.
	type refusal struct {
		name, token, reason string
	}
	cases := []refusal{
		{"alg none", forgeJWS(t, map[string]any{"alg": "none", "typ": "JWT", "kid": rsaKey.KeyID}, v.claims(), nil), `algorithm "none"`},
		{"alg None", forgeJWS(t, map[string]any{"alg": "None", "typ": "JWT", "kid": rsaKey.KeyID}, v.claims(), nil), `algorithm "None"`},
		{"no alg", forgeJWS(t, map[string]any{"typ": "JWT", "kid": rsaKey.KeyID}, v.claims(), nil), `algorithm ""`},
		{"RS256 without a signature", forgeJWS(t, map[string]any{"alg": "RS256", "kid": rsaKey.KeyID}, v.claims(), nil), ""},
		{"wrong aud", v.sign(authority.RS256, with(func(c map[string]any) { c["aud"] = "https://other-agent.example.test" })), "(aud)"},
		{"no aud", v.sign(authority.RS256, with(func(c map[string]any) { delete(c, "aud") })), "(aud)"},
		{"wrong iss", v.sign(authority.RS256, with(func(c map[string]any) { c["iss"] = "https://evil.example.test" })), "(iss)"},
		{"iss with a trailing slash", v.sign(authority.RS256, with(func(c map[string]any) { c["iss"] = v.issuer + "/" })), "(iss)"},
		{"expired", v.sign(authority.ES256, with(func(c map[string]any) {
			c["iat"] = v.Now().Add(-11 * time.Minute).Unix()
			c["exp"] = v.Now().Add(-time.Minute).Unix()
		})), "(exp)"},
		{"issued in the future", v.sign(authority.ES256, with(func(c map[string]any) { c["iat"] = v.Now().Add(5 * time.Minute).Unix() })), "(iat)"},
		{"no exp", v.sign(authority.RS256, with(func(c map[string]any) { delete(c, "exp") })), "exp and iat"},
		{"no iat", v.sign(authority.RS256, with(func(c map[string]any) { delete(c, "iat") })), "exp and iat"},
		{"no client_id", v.sign(authority.RS256, with(func(c map[string]any) { delete(c, "client_id") })), "are required"},
		{"no jti", v.sign(authority.RS256, with(func(c map[string]any) { delete(c, "jti") })), "are required"},
		{"no identifier", v.sign(authority.RS256, with(func(c map[string]any) { delete(c, "id4me.identifier") })), "are required"},
		{"no sub", v.sign(authority.RS256, with(func(c map[string]any) { delete(c, "sub") })), "are required"},
		{"unknown kid", signWith(jose.RS256, stranger, "made-up-kid", v.claims()), `no RS256 key "made-up-kid"`},
		{"no kid", signWith(jose.ES256, strangerEC, "", v.claims()), "(kid)"},
		{"a stranger's key under the authority's RSA kid", signWith(jose.RS256, stranger, rsaKey.KeyID, v.claims()), ""},
		{"a stranger's key under the authority's EC kid", signWith(jose.ES256, strangerEC, ecKey.KeyID, v.claims()), ""},
		{"RS256 under the authority's EC kid", signWith(jose.RS256, stranger, ecKey.KeyID, v.claims()), "no RS256 key"},
		{"PS256", signWith(jose.PS256, stranger, rsaKey.KeyID, v.claims()), `algorithm "PS256"`},
	}
	for form, secret := range publicKeySecrets(t, rsaKey) {
		cases = append(cases, refusal{"HS256 keyed with the RSA public key " + form,
			forgeJWS(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": rsaKey.KeyID}, v.claims(), hs256(secret)), `algorithm "HS256"`})
	}
	good := v.sign(authority.RS256, v.claims())
	parts := strings.Split(good, ".")
	tampered := v.claims()
	tampered["clm"] = []string{"email", "name", "phone_number"}
	tb, _ := json.Marshal(tampered)
	cases = append(cases,
		refusal{"payload changed after signing", parts[0] + "." + base64.RawURLEncoding.EncodeToString(tb) + "." + parts[2], ""},
		refusal{"not a JWS", "not.a.jws", ""},
		refusal{"empty", "", ""},
	)

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := av.Verify(context.Background(), tc.token)
			if err == nil {
				t.Fatalf("Verify accepted it: %+v", got)
			}
			if !errors.Is(err, accesstoken.ErrInvalid) {
				t.Fatalf("Verify: %v, want an ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Verify: %v, want a refusal for %s", err, tc.reason)
			}
			if got.Subject != "" || got.Identifier != "" {
				t.Fatalf("a refusal returned claims %+v", got)
			}
		})
	}
	// The control: the same verifier accepts the good token.
	if _, err := av.Verify(context.Background(), good); err != nil {
		t.Fatalf("the good token: %v", err)
	}
	// A token for another agent passes that agent's verifier only.
	other, err := accesstoken.NewVerifier(context.Background(), v.srv.Client(), v.issuer, "https://other-agent.example.test", accesstoken.WithClock(v.Now))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Verify(context.Background(), good); !errors.Is(err, accesstoken.ErrInvalid) {
		t.Fatalf("another agent's verifier: %v, want a refusal", err)
	}
}

// TestAccessTokenVerifierRefresh: a new kid (an immediate rotation) is fetched once; made-up
// kids fetch at most once per refresh interval; keys older than the maximum age are fetched
// again, and used as they were while the authority does not answer.
func TestAccessTokenVerifierRefresh(t *testing.T) {
	ctx := context.Background()
	v := newVerifierEnv(t)
	av := v.verifier(accesstoken.WithJWKSRefreshInterval(time.Minute), accesstoken.WithJWKSMaxAge(time.Hour))
	if n := v.fetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches at start, want 1", n)
	}
	if _, err := av.Verify(ctx, v.sign(authority.RS256, v.claims())); err != nil {
		t.Fatal(err)
	}
	if n := v.fetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches after a known kid, want 1", n)
	}

	v.Advance(2 * time.Minute)
	if _, err := v.keys.Rotate(ctx, authority.RS256, true); err != nil {
		t.Fatal(err)
	}
	rotated := v.sign(authority.RS256, v.claims())
	if _, err := av.Verify(ctx, rotated); err != nil {
		t.Fatalf("a token of the new key: %v", err)
	}
	if n := v.fetches.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches after a new kid, want 2", n)
	}

	stranger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	madeUp := func(kid string) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: stranger, KeyID: kid}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(v.claims())
		jws, _ := s.Sign(b)
		tok, _ := jws.CompactSerialize()
		return tok
	}
	for k := range 20 {
		if _, err := av.Verify(ctx, madeUp("made-up-"+string(rune('a'+k)))); !errors.Is(err, accesstoken.ErrInvalid) {
			t.Fatalf("made-up kid: %v", err)
		}
	}
	if n := v.fetches.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches after made-up kids within the refresh interval, want still 2", n)
	}
	v.Advance(time.Minute)
	if _, err := av.Verify(ctx, madeUp("made-up-later")); !errors.Is(err, accesstoken.ErrInvalid) {
		t.Fatalf("made-up kid: %v", err)
	}
	if n := v.fetches.Load(); n != 3 {
		t.Fatalf("%d JWKS fetches after a made-up kid past the refresh interval, want 3", n)
	}

	// Past the maximum age a known kid fetches again; while the authority does not answer,
	// the keys it published go on verifying.
	v.Advance(time.Hour)
	v.down.Store(true)
	if _, err := av.Verify(ctx, v.sign(authority.RS256, v.claims())); err != nil {
		t.Fatalf("stale keys while the authority is down: %v", err)
	}
	if n := v.fetches.Load(); n != 4 {
		t.Fatalf("%d JWKS fetches with stale keys, want 4", n)
	}
	// An unknown kid while the authority is down is the authority's trouble, not the token's.
	v.Advance(time.Minute)
	if _, err := av.Verify(ctx, madeUp("made-up-while-down")); err == nil || errors.Is(err, accesstoken.ErrInvalid) {
		t.Fatalf("unknown kid while the JWKS is down: %v, want a fetch error", err)
	}
	v.down.Store(false)
	v.Advance(time.Minute)
	if _, err := av.Verify(ctx, v.sign(authority.ES256, v.claims())); err != nil {
		t.Fatal(err)
	}
}

func TestAccessTokenVerifierDiscoveryRefusals(t *testing.T) {
	v := newVerifierEnv(t)
	for _, tc := range []struct {
		name      string
		issuer    string
		discovery map[string]any
	}{
		{"another issuer in discovery", "", map[string]any{"issuer": "https://evil.example.test", "jwks_uri": "{issuer}/jwks.json"}},
		{"jwks_uri over http", "", map[string]any{"issuer": "{issuer}", "jwks_uri": "http://127.0.0.1/jwks.json"}},
		{"no jwks_uri", "", map[string]any{"issuer": "{issuer}"}},
		{"http issuer", "http://" + strings.TrimPrefix(v.srv.URL, "https://"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d map[string]any
			for k, val := range tc.discovery {
				if d == nil {
					d = map[string]any{}
				}
				d[k] = strings.ReplaceAll(val.(string), "{issuer}", v.issuer)
			}
			v.mu.Lock()
			v.discovery = d
			v.mu.Unlock()
			issuer := tc.issuer
			if issuer == "" {
				issuer = v.issuer
			}
			if av, err := accesstoken.NewVerifier(context.Background(), v.srv.Client(), issuer, agentIssuer); err == nil {
				t.Fatalf("NewVerifier accepted it: %v", av)
			}
		})
	}
}
