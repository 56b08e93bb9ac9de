package claims_test

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
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/id4me/id4me-registry/agent/accesstoken"
	"github.com/id4me/id4me-registry/agent/claims"
	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/internal/fakeclock"
	"github.com/id4me/id4me-registry/sqlstore"
)

// holders are the claims the agents of these tests keep.
var holders = claims.Static{
	"alice.example.test": {"email": "alice@example.test", "name": "Alice", "phone_number": "+49 1", "iss": "https://evil.test"},
}

// carelessSource answers every claim it holds, whatever was asked: the handler must answer
// only those of clm all the same.
var carelessSource = claims.SourceFunc(func(ctx context.Context, identifier string, names []string) (map[string]any, error) {
	if _, ok := claims.TokenFromContext(ctx); !ok {
		return nil, errors.New("the source is asked without the token in its context")
	}
	held, ok := holders[identifier]
	if !ok {
		return nil, claims.ErrUnknownIdentifier
	}
	return held, nil
})

// env is an authority as an agent sees it (discovery and the JWKS of the authority's real
// KeySet, over TLS) and an agent's claims.Server over TLS, sharing a settable clock.
type env struct {
	t         *testing.T
	authKeys  *authority.KeySet
	authority *httptest.Server
	agent     *httptest.Server
	agentKeys *claims.KeySet
	server    *claims.Server
	// client trusts both servers.
	client *http.Client
	// Clock is the env's time (Now, Advance).
	*fakeclock.Clock
}

type envOptions struct {
	verifierOpts []accesstoken.Option
	keys         claims.KeySetOptions
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, Clock: fakeclock.New(time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC))}
	store, err := sqlstore.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e.authKeys, err = authority.NewKeySet(ctx, store.Authority(), authority.KeyConfig{Now: e.Now})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"issuer": e.authority.URL, "jwks_uri": e.authority.URL + "/jwks.json"})
	})
	mux.HandleFunc("GET /jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(e.authKeys.JWKS())
	})
	e.authority = httptest.NewTLSServer(mux)
	t.Cleanup(e.authority.Close)

	var handler http.Handler
	e.agent = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(e.agent.Close)
	roots := x509.NewCertPool()
	roots.AddCert(e.authority.Certificate())
	roots.AddCert(e.agent.Certificate())
	e.client = &http.Client{Transport: &http.Transport{TLSClientConfig: e.authority.Client().Transport.(*http.Transport).TLSClientConfig.Clone()}}
	e.client.Transport.(*http.Transport).TLSClientConfig.RootCAs = roots

	o.keys.Now = e.Now
	if e.agentKeys, err = claims.NewKeySet(o.keys); err != nil {
		t.Fatal(err)
	}
	v, err := accesstoken.NewVerifier(ctx, e.client, e.authority.URL, e.agent.URL, append([]accesstoken.Option{accesstoken.WithClock(e.Now)}, o.verifierOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	e.server, err = claims.NewServer(claims.Config{Issuer: e.agent.URL, Verifier: v, Source: carelessSource, Keys: e.agentKeys, Now: e.Now})
	if err != nil {
		t.Fatal(err)
	}
	handler = e.server
	return e
}

// tokenClaims are the claims of a good access token for the env's agent, as the authority
// makes them.
func (e *env) tokenClaims() map[string]any {
	now := e.Now().Unix()
	return map[string]any{
		"iss": e.authority.URL, "sub": "subject-of-alice", "aud": e.agent.URL, "id4me.identifier": "alice.example.test",
		"clm": []string{"email", "name"}, "scope": []string{"openid"}, "client_id": "client-1",
		"iat": now, "exp": now + 600, "jti": rand.Text(),
	}
}

// token signs c with the authority's current key of alg.
func (e *env) token(alg string, c map[string]any) string {
	e.t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		e.t.Fatal(err)
	}
	tok, err := e.authKeys.Sign(alg, b, "JWT")
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// answer is the claims endpoint's answer.
type answer struct {
	status      int
	contentType string
	wwwAuth     string
	body        string
}

// ask sends req to the agent.
func (e *env) ask(req *http.Request) answer {
	e.t.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return answer{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), wwwAuth: resp.Header.Get("WWW-Authenticate"), body: string(b)}
}

// get asks the claims endpoint with token as a bearer token and accept as Accept.
func (e *env) get(token, accept string) answer {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.server.ClaimsEndpoint, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	return e.ask(req)
}

// verify verifies a signed answer as a relying party does: the agent's discovery names the
// JWKS, whose key of the answer's kid must verify it; it returns the claims and the kid.
func (e *env) verify(raw string) (map[string]any, string) {
	e.t.Helper()
	var disco struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	e.getJSON(e.agent.URL+claims.DiscoveryPath, &disco)
	if disco.Issuer != e.agent.URL || disco.JWKSURI != e.server.JWKSURI {
		e.t.Fatalf("the agent's discovery %+v", disco)
	}
	var set jose.JSONWebKeySet
	e.getJSON(disco.JWKSURI, &set)
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		e.t.Fatalf("the answer %q: %v", raw, err)
	}
	kid := tok.Headers[0].KeyID
	keys := set.Key(kid)
	if len(keys) != 1 {
		e.t.Fatalf("the agent's JWKS holds %d keys of kid %q", len(keys), kid)
	}
	var m map[string]any
	if err := tok.Claims(keys[0].Key, &m); err != nil {
		e.t.Fatalf("the answer does not verify with the agent's published key: %v", err)
	}
	return m, kid
}

func (e *env) getJSON(u string, dst any) {
	e.t.Helper()
	resp, err := e.client.Get(u)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(dst); err != nil {
		e.t.Fatalf("GET %s: %v", u, err)
	}
}

// wantAnswer fails t unless got is the answer to a token of c, at the env's clock.
func (e *env) wantAnswer(got map[string]any, c map[string]any, want map[string]any) {
	e.t.Helper()
	now := e.Now().Unix()
	full := map[string]any{
		"iss": e.agent.URL, "sub": c["sub"], "aud": c["client_id"], "iat": float64(now), "exp": float64(now + 600),
		"id4me.identifier": c["id4me.identifier"], "id4me.identity": e.authority.URL + "#" + c["sub"].(string),
	}
	maps.Copy(full, want)
	if !maps.Equal(got, full) {
		e.t.Fatalf("answer %v\nwant %v", got, full)
	}
}

func TestClaimsAnswerSigned(t *testing.T) {
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.ES256} {
		t.Run(string(alg), func(t *testing.T) {
			e := newEnv(t, envOptions{keys: claims.KeySetOptions{Algorithm: alg}})
			c := e.tokenClaims()
			a := e.get(e.token(authority.RS256, c), "")
			if a.status != http.StatusOK || a.contentType != "application/jwt" {
				t.Fatalf("answer %d %s: %s", a.status, a.contentType, a.body)
			}
			got, _ := e.verify(a.body)
			// clm lists email and name: not the phone number, nor the source's "iss".
			e.wantAnswer(got, c, map[string]any{"email": "alice@example.test", "name": "Alice"})
			var h struct {
				Alg string `json:"alg"`
				Typ string `json:"typ"`
			}
			hb, _ := base64.RawURLEncoding.DecodeString(strings.Split(a.body, ".")[0])
			if json.Unmarshal(hb, &h) != nil || h.Alg != string(alg) || h.Typ != "JWT" {
				t.Fatalf("header %s, want alg %s typ JWT", hb, alg)
			}
		})
	}
}

// TestClaimsOnlyClm: the answer holds the claims clm lists that the source has, and none
// other; a clm naming a claim the handler sets (sub, iss) does not let the source set it.
func TestClaimsOnlyClm(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, tc := range []struct {
		name string
		clm  []string
		want map[string]any
	}{
		{"email only", []string{"email"}, map[string]any{"email": "alice@example.test"}},
		{"none", []string{}, map[string]any{}},
		{"one the agent lacks", []string{"address", "phone_number"}, map[string]any{"phone_number": "+49 1"}},
		{"reserved names", []string{"iss", "sub", "name"}, map[string]any{"name": "Alice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.tokenClaims()
			c["clm"] = tc.clm
			a := e.get(e.token(authority.ES256, c), "")
			if a.status != http.StatusOK {
				t.Fatalf("answer %d: %s", a.status, a.body)
			}
			got, _ := e.verify(a.body)
			e.wantAnswer(got, c, tc.want)
		})
	}
}

func TestClaimsNegotiation(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, tc := range []struct {
		accept string
		json   bool
	}{
		{"", false},
		{"application/jwt", false},
		{"*/*", false},
		{"application/json", true},
		{"application/json, application/jwt", false},
		{"application/jwt;q=0.5, application/json", true},
		{"application/json;q=0", false},
		{"text/html, application/json;q=0.9", true},
	} {
		t.Run(tc.accept, func(t *testing.T) {
			c := e.tokenClaims()
			a := e.get(e.token(authority.RS256, c), tc.accept)
			if a.status != http.StatusOK {
				t.Fatalf("answer %d: %s", a.status, a.body)
			}
			var got map[string]any
			if tc.json {
				if a.contentType != "application/json" {
					t.Fatalf("Accept %q: %s, want JSON", tc.accept, a.contentType)
				}
				if err := json.Unmarshal([]byte(a.body), &got); err != nil {
					t.Fatal(err)
				}
			} else {
				if a.contentType != "application/jwt" {
					t.Fatalf("Accept %q: %s, want a JWT", tc.accept, a.contentType)
				}
				got, _ = e.verify(a.body)
			}
			e.wantAnswer(got, c, map[string]any{"email": "alice@example.test", "name": "Alice"})
		})
	}
}

// forgeJWS builds a compact JWS by hand: header, claims and a signature made by sign over
// the signing input (nil: empty signature).
func forgeJWS(t *testing.T, header, c map[string]any, sign func(input []byte) []byte) string {
	t.Helper()
	h, _ := json.Marshal(header)
	b, _ := json.Marshal(c)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(b)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// publishedRSAKey returns the authority's published RSA key.
func (e *env) publishedRSAKey() jose.JSONWebKey {
	e.t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(e.authKeys.JWKS(), &set); err != nil {
		e.t.Fatal(err)
	}
	for _, k := range set.Keys {
		if k.Algorithm == authority.RS256 {
			return k
		}
	}
	e.t.Fatal("no RSA key published")
	return jose.JSONWebKey{}
}

// wantRefused fails t unless a is an RFC 6750 refusal with status and code.
func wantRefused(t *testing.T, a answer, realm string, status int, code string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("answer %d %s, want %d %s", a.status, a.body, status, code)
	}
	if !strings.HasPrefix(a.wwwAuth, `Bearer realm="`+realm+`"`) {
		t.Fatalf("WWW-Authenticate %q, want a Bearer challenge of realm %s", a.wwwAuth, realm)
	}
	if code == "" {
		if strings.Contains(a.wwwAuth, "error=") {
			t.Fatalf("WWW-Authenticate %q: no error code for a request without a token (RFC 6750 §3.1)", a.wwwAuth)
		}
		return
	}
	if !strings.Contains(a.wwwAuth, `error="`+code+`"`) || !strings.Contains(a.wwwAuth, `error_description="`) {
		t.Fatalf("WWW-Authenticate %q, want error %q with a description", a.wwwAuth, code)
	}
	var body struct{ Error string }
	if json.Unmarshal([]byte(a.body), &body) != nil || body.Error != code {
		t.Fatalf("body %q, want the OAuth error %s", a.body, code)
	}
}

func TestClaimsRefusesTokens(t *testing.T) {
	e := newEnv(t, envOptions{})
	pub := e.publishedRSAKey()
	spki, err := x509.MarshalPKIXPublicKey(pub.Key)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signWith := func(key any, alg jose.SignatureAlgorithm, kid string, c map[string]any) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.Signed(s).Claims(c).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, tc := range []struct {
		name  string
		token func(c map[string]any) string
	}{
		{"signed by another RSA key under the published kid", func(c map[string]any) string {
			return signWith(otherRSA, jose.RS256, pub.KeyID, c)
		}},
		{"signed by another EC key under its own kid", func(c map[string]any) string {
			return signWith(otherEC, jose.ES256, "not-published", c)
		}},
		{"alg none", func(c map[string]any) string {
			return forgeJWS(t, map[string]any{"alg": "none", "kid": pub.KeyID, "typ": "JWT"}, c, nil)
		}},
		{"HS256 keyed with the public key", func(c map[string]any) string {
			return forgeJWS(t, map[string]any{"alg": "HS256", "kid": pub.KeyID, "typ": "JWT"}, c, func(in []byte) []byte {
				m := hmac.New(sha256.New, pemKey)
				m.Write(in)
				return m.Sum(nil)
			})
		}},
		{"expired", func(c map[string]any) string {
			c["iat"], c["exp"] = c["iat"].(int64)-700, c["exp"].(int64)-700
			return e.token(authority.RS256, c)
		}},
		{"another agent's audience", func(c map[string]any) string {
			c["aud"] = "https://other-agent.example.test"
			return e.token(authority.RS256, c)
		}},
		{"another issuer", func(c map[string]any) string {
			c["iss"] = "https://other-authority.example.test"
			return e.token(authority.ES256, c)
		}},
		{"no client_id", func(c map[string]any) string {
			delete(c, "client_id")
			return e.token(authority.ES256, c)
		}},
		{"a changed payload", func(c map[string]any) string {
			good := strings.Split(e.token(authority.RS256, c), ".")
			c["clm"] = []string{"email", "name", "phone_number"}
			b, _ := json.Marshal(c)
			return good[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + good[2]
		}},
		{"not a JWT", func(map[string]any) string { return "opaque-token" }},
		{"an identifier the agent does not hold", func(c map[string]any) string {
			c["id4me.identifier"] = "bob.example.test"
			return e.token(authority.RS256, c)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := e.get(tc.token(e.tokenClaims()), "")
			wantRefused(t, a, e.agent.URL, http.StatusUnauthorized, "invalid_token")
		})
	}
}

func TestClaimsRefusesRequests(t *testing.T) {
	e := newEnv(t, envOptions{})
	good := func() string { return e.token(authority.RS256, e.tokenClaims()) }
	req := func(method, target, body string) *http.Request {
		r, _ := http.NewRequest(method, target, strings.NewReader(body))
		if body != "" {
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		return r
	}
	t.Run("no token", func(t *testing.T) {
		wantRefused(t, e.get("", ""), e.agent.URL, http.StatusUnauthorized, "")
	})
	t.Run("Basic authentication", func(t *testing.T) {
		r := req(http.MethodGet, e.server.ClaimsEndpoint, "")
		r.SetBasicAuth("client-1", "secret")
		wantRefused(t, e.ask(r), e.agent.URL, http.StatusBadRequest, "invalid_request")
	})
	t.Run("token in the URL", func(t *testing.T) {
		r := req(http.MethodGet, e.server.ClaimsEndpoint+"?access_token="+url.QueryEscape(good()), "")
		wantRefused(t, e.ask(r), e.agent.URL, http.StatusBadRequest, "invalid_request")
	})
	t.Run("two tokens", func(t *testing.T) {
		r := req(http.MethodPost, e.server.ClaimsEndpoint, url.Values{"access_token": {good()}}.Encode())
		r.Header.Set("Authorization", "Bearer "+good())
		wantRefused(t, e.ask(r), e.agent.URL, http.StatusBadRequest, "invalid_request")
	})
	t.Run("scope without openid", func(t *testing.T) {
		c := e.tokenClaims()
		c["scope"] = []string{"email"}
		a := e.get(e.token(authority.RS256, c), "")
		wantRefused(t, a, e.agent.URL, http.StatusForbidden, "insufficient_scope")
		if !strings.Contains(a.wwwAuth, `scope="openid"`) {
			t.Fatalf("WWW-Authenticate %q names no scope", a.wwwAuth)
		}
	})
	t.Run("PUT", func(t *testing.T) {
		r := req(http.MethodPut, e.server.ClaimsEndpoint, "")
		r.Header.Set("Authorization", "Bearer "+good())
		if a := e.ask(r); a.status != http.StatusMethodNotAllowed {
			t.Fatalf("PUT answered %d", a.status)
		}
	})
	t.Run("token in a form body", func(t *testing.T) {
		a := e.ask(req(http.MethodPost, e.server.ClaimsEndpoint, url.Values{"access_token": {good()}}.Encode()))
		if a.status != http.StatusOK || a.contentType != "application/jwt" {
			t.Fatalf("POST with the token in the body: %d %s %s", a.status, a.contentType, a.body)
		}
	})
}

// TestClaimsReplay: with the verifier's replay check, a token is answered once; without it
// (the default), as often as the relying party asks within its life.
func TestClaimsReplay(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   []accesstoken.Option
		second int
	}{
		{"default", nil, http.StatusOK},
		{"replay check", []accesstoken.Option{accesstoken.WithReplayCheck()}, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{verifierOpts: tc.opts})
			tok := e.token(authority.RS256, e.tokenClaims())
			if a := e.get(tok, ""); a.status != http.StatusOK {
				t.Fatalf("first use: %d %s", a.status, a.body)
			}
			if a := e.get(tok, ""); a.status != tc.second {
				t.Fatalf("second use: %d %s, want %d", a.status, a.body, tc.second)
			}
			if a := e.get(e.token(authority.RS256, e.tokenClaims()), ""); a.status != http.StatusOK {
				t.Fatalf("another token: %d %s", a.status, a.body)
			}
		})
	}
}

// TestClaimsKeyRotation: the next key is published PublishLead before it signs, takes over
// when the current key has signed for RotateEvery, and the replaced key stays in the JWKS, so
// that what it signed still verifies, until RetireAfter has passed.
func TestClaimsKeyRotation(t *testing.T) {
	e := newEnv(t, envOptions{keys: claims.KeySetOptions{Algorithm: jose.ES256, RotateEvery: time.Hour, PublishLead: 10 * time.Minute, RetireAfter: 2 * time.Hour}})
	first := e.get(e.token(authority.RS256, e.tokenClaims()), "")
	_, kid1 := e.verify(first.body)
	if kids := publishedKIDs(e); !slices.Equal(kids, []string{kid1}) {
		t.Fatalf("JWKS kids %v, want %s alone", kids, kid1)
	}

	e.Advance(50 * time.Minute)
	ahead := publishedKIDs(e)
	if len(ahead) != 2 || ahead[0] != kid1 {
		t.Fatalf("JWKS kids %v PublishLead before the rotation, want %s and the next key", ahead, kid1)
	}
	if _, kid := e.verify(e.get(e.token(authority.RS256, e.tokenClaims()), "").body); kid != kid1 {
		t.Fatalf("before RotateEvery the answer is signed by %s, want %s still", kid, kid1)
	}

	e.Advance(10 * time.Minute)
	second := e.get(e.token(authority.RS256, e.tokenClaims()), "")
	_, kid2 := e.verify(second.body)
	if kid2 != ahead[1] {
		t.Fatalf("after RotateEvery the answer is signed by %s, want the key published ahead %s", kid2, ahead[1])
	}
	if _, kid := e.verify(first.body); kid != kid1 {
		t.Fatal("the first answer no longer verifies")
	}

	e.Advance(2 * time.Hour)
	if kids := publishedKIDs(e); !slices.Contains(kids, kid2) || slices.Contains(kids, kid1) {
		t.Fatalf("JWKS kids %v after RetireAfter: want %s without %s", kids, kid2, kid1)
	}
}

// publishedKIDs fetches the agent's JWKS and returns its kids.
func publishedKIDs(e *env) []string {
	e.t.Helper()
	var set jose.JSONWebKeySet
	e.getJSON(e.server.JWKSURI, &set)
	var kids []string
	for _, k := range set.Keys {
		if !k.IsPublic() {
			e.t.Fatalf("the JWKS publishes a private key %s", k.KeyID)
		}
		kids = append(kids, k.KeyID)
	}
	return kids
}

// TestClaimsAuthorityLate: an agent started before its authority answers 503 with
// Retry-After (not 401: the token may be good) and asks the authority's discovery again at
// most once per refresh interval; once the authority answers, tokens are verified.
func TestClaimsAuthorityLate(t *testing.T) {
	e := newEnv(t, envOptions{})
	var (
		mu        sync.Mutex
		up        bool
		discovers int
		late      *httptest.Server
	)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		discovers++
		if !up {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"issuer": late.URL, "jwks_uri": late.URL + "/jwks.json"})
	})
	mux.HandleFunc("GET /jwks.json", func(w http.ResponseWriter, r *http.Request) { w.Write(e.authKeys.JWKS()) })
	// An authority with the env's keys, behind a switch.
	late = httptest.NewTLSServer(mux)
	defer late.Close()
	client := late.Client()
	srv, err := claims.NewServer(claims.Config{
		Issuer:   e.agent.URL,
		Verifier: accesstoken.NewLazy(client, late.URL, e.agent.URL, accesstoken.WithClock(e.Now), accesstoken.WithJWKSRefreshInterval(time.Minute)),
		Source:   holders, Keys: e.agentKeys, Now: e.Now,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	a := httptest.NewServer(srv)
	defer a.Close()
	ask := func() (int, string) {
		req, _ := http.NewRequest(http.MethodGet, a.URL+claims.ClaimsPath, nil)
		c := e.tokenClaims()
		c["iss"] = late.URL
		req.Header.Set("Authorization", "Bearer "+e.token(authority.RS256, c))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	for range 3 {
		if status, retry := ask(); status != http.StatusServiceUnavailable || retry == "" {
			t.Fatalf("authority down: %d (Retry-After %q), want 503 with Retry-After", status, retry)
		}
	}
	mu.Lock()
	up = true
	if discovers != 1 {
		t.Fatalf("discovery asked %d times within the refresh interval, want once", discovers)
	}
	mu.Unlock()
	if status, _ := ask(); status != http.StatusServiceUnavailable {
		t.Fatalf("within the refresh interval: %d, want 503 still", status)
	}
	e.Advance(time.Minute)
	if status, _ := ask(); status != http.StatusOK {
		t.Fatalf("authority up: %d, want 200", status)
	}
}
