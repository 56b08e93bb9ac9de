package server_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/internal/oidctest"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// authEnv is a registry with its authority on a real HTTPS listener, and what a login needs:
// clients that trust it.
type authEnv struct {
	*env
	// rpClient is the relying parties' and agents' client; browser makes holders' clients.
	rpClient *http.Client
}

func newAuthEnv(t *testing.T, opts envOptions) *authEnv {
	t.Helper()
	opts.authority = true
	e := newEnv(t, opts)
	return &authEnv{env: e, rpClient: oidctest.HTTPClient(e.roots, false)}
}

// startAgent starts a test agent's claims endpoint and creates the agent with it.
func (e *authEnv) startAgent(name string) (testAgent, *oidctest.Agent) {
	e.t.Helper()
	ag := oidctest.StartAgent(e.rpClient, e.issuer, e.clock.Now)
	e.t.Cleanup(ag.Server.Close)
	e.rpClient.Transport.(*http.Transport).TLSClientConfig.RootCAs.AddCert(ag.Server.Certificate())
	return e.newAgentAt(name, ag.Issuer, ag.Endpoint), ag
}

// holderFor registers identifier with agent a and has its holder set a password (and a
// TOTP secret, when withTOTP) through the credential link of the registration.
func (e *authEnv) holderFor(a testAgent, identifier string, withTOTP bool) *oidctest.Holder {
	e.t.Helper()
	return e.setCredentials(identifier, e.registerForLink(a, identifier), withTOTP)
}

// registerForLink registers identifier with agent a and returns the setup credential link.
func (e *authEnv) registerForLink(a testAgent, identifier string) string {
	e.t.Helper()
	c := e.validChallenge(a, identifier)
	resp, err := e.registry.RegisterIdentifier(a.ctx(), &registryv1.RegisterIdentifierRequest{ChallengeId: c.Id})
	if err != nil {
		e.t.Fatalf("RegisterIdentifier: %v", err)
	}
	link := resp.GetCredentialLink()
	if link.GetUrl() == "" || link.GetPurpose() != registryv1.CredentialLink_PURPOSE_SETUP {
		e.t.Fatalf("registration gave credential link %v, want a setup link", link)
	}
	return link.GetUrl()
}

func (e *authEnv) setCredentials(identifier, link string, withTOTP bool) *oidctest.Holder {
	e.t.Helper()
	h := &oidctest.Holder{Client: oidctest.HTTPClient(e.roots, true), Identifier: identifier, Password: "correct horse battery staple " + rand.Text()}
	p, err := h.SetCredentials(link, withTOTP, e.totpCode)
	if err != nil || p.Title() != "Your credentials are set" {
		e.t.Fatalf("setting credentials: %v; page %d %q %q", err, p.Status, p.Title(), p.Alert())
	}
	return h
}

// totpCode is the current TOTP code of secret by the env's clock.
func (e *authEnv) totpCode(secret string) string {
	code, err := totp.GenerateCodeCustom(secret, e.clock.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		e.t.Fatal(err)
	}
	return code
}

// newRP registers a relying party.
func (e *authEnv) newRP(metadata map[string]any) *oidctest.RP {
	e.t.Helper()
	rp, err := oidctest.NewRP(context.Background(), e.rpClient, e.issuer, metadata)
	if err != nil {
		e.t.Fatalf("RP: %v", err)
	}
	return rp
}

// login runs a whole login of h at rp with extra authorization parameters.
func (e *authEnv) login(rp *oidctest.RP, h *oidctest.Holder, extra map[string]string) *oidctest.Result {
	e.t.Helper()
	req := rp.AuthRequest(extra)
	cb, p, err := h.Login(req.URL)
	if err != nil {
		e.t.Fatalf("login: %v (page %d %q: %q)", err, p.Status, p.Title(), p.Alert())
	}
	res, err := rp.Finish(req, cb, e.clock.Now)
	if err != nil {
		e.t.Fatalf("finishing the login: %v", err)
	}
	return res
}

const emailClaims = `{"userinfo":{"email":{"essential":true,"reason":"to send your receipts"},"name":null}}`

// TestAuthorityEndToEnd is the whole ID4me login: discovery, dynamic registration, login
// and consent through the authority's forms, the code exchanged for tokens, the ID token
// verified by go-oidc, userinfo with distributed claims, and the agent verifying the
// access token through the authority's discovery and JWKS before it answers.
func TestAuthorityEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name     string
		metadata map[string]any
		totp     bool
	}{
		{"RS256 JSON userinfo basic auth", map[string]any{"client_name": "Shop"}, false},
		{"ES256 signed userinfo post auth TOTP", map[string]any{
			"client_name": "Shop", "id_token_signed_response_alg": "ES256", "userinfo_signed_response_alg": "ES256",
			"token_endpoint_auth_method": "client_secret_post",
		}, true},
		{"RS256 signed userinfo public subject", map[string]any{"userinfo_signed_response_alg": "RS256", "subject_type": "public"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newAuthEnv(t, envOptions{})
			agent, claims := e.startAgent("alpha")
			h := e.holderFor(agent, "alice.example.test", tc.totp)
			claims.Claims["alice.example.test"] = map[string]any{"email": "alice@example.test", "name": "Alice", "phone_number": "+49 1"}
			rp := e.newRP(tc.metadata)
			// The code that confirmed the enrolment is used: the login needs the next one.
			e.clock.Advance(30 * time.Second)

			res := e.login(rp, h, map[string]string{"claims": emailClaims, "login_hint": "alice.example.test"})
			c := res.Claims
			if c["id4me.identifier"] != "alice.example.test" || c["sub"] == "" || len(c["sub"].(string)) != 64 {
				t.Fatalf("ID token claims %v", c)
			}
			wantAMR := []any{"pwd"}
			if tc.totp {
				wantAMR = []any{"pwd", "otp", "mfa"}
			}
			if !slices.Equal(c["amr"].([]any), wantAMR) || c["auth_time"] == nil {
				t.Fatalf("amr %v auth_time %v, want %v", c["amr"], c["auth_time"], wantAMR)
			}
			wantType := "application/json"
			if tc.metadata["userinfo_signed_response_alg"] != nil {
				wantType = "application/jwt"
			}
			if res.UserinfoType != wantType {
				t.Fatalf("userinfo content type %q, want %q", res.UserinfoType, wantType)
			}
			u := res.Userinfo
			if u["sub"] != c["sub"] {
				t.Fatalf("userinfo sub %v, ID token sub %v", u["sub"], c["sub"])
			}
			names := u["_claim_names"].(map[string]any)
			if len(names) != 2 || names["email"] == nil || names["name"] == nil {
				t.Fatalf("_claim_names %v: want email and name (asked for, consented) only", names)
			}
			src := u["_claim_sources"].(map[string]any)[names["email"].(string)].(map[string]any)
			if src["endpoint"] != claims.Endpoint {
				t.Fatalf("claims endpoint %v, want the sponsoring agent's %s", src["endpoint"], claims.Endpoint)
			}
			got, err := rp.DistributedClaims(u)
			if err != nil {
				t.Fatal(err)
			}
			if got["email"] != "alice@example.test" || got["name"] != "Alice" || got["phone_number"] != nil {
				t.Fatalf("distributed claims %v", got)
			}
			toks := claims.Tokens()
			if len(toks) != 1 {
				t.Fatalf("agent accepted %d tokens, want 1", len(toks))
			}
			at := toks[0]
			if at["iss"] != e.issuer || at["sub"] != c["sub"] || at["aud"] != claims.Issuer || at["client_id"] != rp.OAuth.ClientID ||
				at["id4me.identifier"] != "alice.example.test" {
				t.Fatalf("agent access token %v", at)
			}
			if clm, _ := json.Marshal(at["clm"]); string(clm) != `["email","name"]` {
				t.Fatalf("clm %s, want [email name]", clm)
			}
			if scope, _ := json.Marshal(at["scope"]); string(scope) != `["openid"]` {
				t.Fatalf("scope %s", scope)
			}

			// A second login of the same holder at the same RP needs no consent and no
			// password: the session and the remembered consent answer.
			req := rp.AuthRequest(map[string]string{"claims": emailClaims})
			resp, err := h.Client.Get(req.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("second authorization: status %d, want a redirect straight back", resp.StatusCode)
			}
			again, err := rp.Finish(req, resp.Header.Get("Location"), e.clock.Now)
			if err != nil {
				t.Fatal(err)
			}
			if again.Claims["sub"] != c["sub"] {
				t.Fatalf("second login sub %v, first %v", again.Claims["sub"], c["sub"])
			}
			resp, err = http.Get(e.ops.URL + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			loggedIn := `id4me_authority_events_total{event="login",outcome="303"} 1`
			if tc.totp {
				loggedIn = `id4me_authority_events_total{event="totp",outcome="303"} 1`
			}
			for _, want := range []string{
				loggedIn,
				`id4me_authority_events_total{event="token",outcome="200"} 2`,
				`id4me_authority_events_total{event="userinfo",outcome="200"} 2`,
				`id4me_authority_events_total{event="registration",outcome="201"} 1`,
			} {
				if !strings.Contains(string(body), want) {
					t.Errorf("/metrics lacks %s", want)
				}
			}
		})
	}
}

// TestAuthoritySubjects: subjects are pairwise per RP host by default; a transfer keeps
// the subject and moves _claim_sources to the gaining agent; a deleted, purged and
// re-registered identifier gets a new subject.
func TestAuthoritySubjects(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	alpha, alphaClaims := e.startAgent("alpha")
	beta, betaClaims := e.startAgent("beta")
	h := e.holderFor(alpha, "bob.example.test", false)
	rp := e.newRP(nil)
	other := e.newRP(map[string]any{"redirect_uris": []string{"https://other-rp.test/cb"}})

	first := e.login(rp, h, map[string]string{"claims": emailClaims})
	sub := first.Claims["sub"]
	otherReq := other.AuthRequest(nil)
	cb, _, err := h.Login(otherReq.URL)
	if err != nil {
		t.Fatal(err)
	}
	otherRes, err := other.Finish(otherReq, cb, e.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if otherRes.Claims["sub"] == sub {
		t.Fatal("two RPs on different hosts got the same pairwise subject")
	}

	e.requestTransfer(beta, "bob.example.test")
	after := e.login(rp, h, map[string]string{"claims": emailClaims, "prompt": "login"})
	if after.Claims["sub"] != sub {
		t.Fatalf("after the transfer sub %v, before %v", after.Claims["sub"], sub)
	}
	src := after.Userinfo["_claim_sources"].(map[string]any)["src1"].(map[string]any)
	if src["endpoint"] != betaClaims.Endpoint {
		t.Fatalf("after the transfer the claims endpoint is %v, want the gaining agent's %s", src["endpoint"], betaClaims.Endpoint)
	}
	if _, err := rp.DistributedClaims(after.Userinfo); err != nil {
		t.Fatalf("the gaining agent refused the token: %v", err)
	}
	if len(betaClaims.Tokens()) != 1 || len(alphaClaims.Tokens()) != 0 {
		t.Fatalf("tokens accepted: alpha %d, beta %d; want 0 and 1", len(alphaClaims.Tokens()), len(betaClaims.Tokens()))
	}

	// Delete, purge, register again (by another agent): a new identity, a new subject.
	e.deleteIdentifier(beta, "bob.example.test")
	e.clock.Advance(31 * 24 * time.Hour)
	if n := e.sweepPurges(); n != 1 {
		t.Fatalf("purged %d, want 1", n)
	}
	h2 := e.holderFor(alpha, "bob.example.test", false)
	again := e.login(rp, h2, map[string]string{"prompt": "login"})
	if again.Claims["sub"] == sub {
		t.Fatal("a re-registered identifier got the old holder's subject")
	}
	// The old holder's password does not open the new identity.
	req := rp.AuthRequest(map[string]string{"prompt": "login"})
	_, p, err := h.Login(req.URL)
	if err == nil || p.Status != http.StatusUnauthorized {
		t.Fatalf("old holder's login: %v, page %d %q", err, p.Status, p.Alert())
	}
}

// TestAuthorityDiscovery checks that discovery says what an ID4me relying party needs, and
// that the JWKS publishes both signing keys without private parts.
func TestAuthorityDiscovery(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	get := func(path string) map[string]any {
		resp, err := e.rpClient.Get(e.issuer + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, err)
		}
		return m
	}
	d := get("/.well-known/openid-configuration")
	want := map[string]string{
		"issuer":                                e.issuer,
		"registration_endpoint":                 e.issuer + "/register",
		"jwks_uri":                              e.issuer + "/jwks.json",
		"claims_parameter_supported":            "true",
		"response_types_supported":              `["code"]`,
		"code_challenge_methods_supported":      `["S256"]`,
		"id_token_signing_alg_values_supported": `["RS256","ES256"]`,
		"userinfo_signing_alg_values_supported": `["RS256","ES256"]`,
		"subject_types_supported":               `["pairwise","public"]`,
		"token_endpoint_auth_methods_supported": `["client_secret_basic","client_secret_post","none"]`,
	}
	for k, v := range want {
		got, _ := json.Marshal(d[k])
		if s, ok := d[k].(string); ok {
			got = []byte(s)
		}
		if string(got) != v {
			t.Errorf("discovery %s = %s, want %s", k, got, v)
		}
	}
	for _, k := range []string{"authorization_endpoint", "token_endpoint", "userinfo_endpoint", "claims_supported", "scopes_supported"} {
		if d[k] == nil {
			t.Errorf("discovery lacks %s", k)
		}
	}
	// Only what is issued: the authority issues neither acr nor azp.
	for _, c := range d["claims_supported"].([]any) {
		if c == "acr" || c == "azp" {
			t.Errorf("claims_supported lists %s, which the authority does not issue", c)
		}
	}
	for _, c := range []string{"sub", "auth_time", "nonce", "amr", "id4me.identifier", "email"} {
		if !slices.Contains(d["claims_supported"].([]any), any(c)) {
			t.Errorf("claims_supported lacks %s", c)
		}
	}
	for _, k := range []string{"op_policy_uri", "op_tos_uri", "service_documentation"} {
		if d[k] != nil {
			t.Errorf("discovery has %s = %v without its flag", k, d[k])
		}
	}
	keys := get("/jwks.json")["keys"].([]any)
	algs := map[string]bool{}
	for _, k := range keys {
		m := k.(map[string]any)
		algs[m["alg"].(string)] = true
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if m[private] != nil {
				t.Fatalf("JWKS publishes private member %s", private)
			}
		}
		if m["kid"] == "" || m["use"] != "sig" {
			t.Fatalf("JWK %v lacks kid or use", m)
		}
	}
	if !algs["RS256"] || !algs["ES256"] {
		t.Fatalf("JWKS algorithms %v, want RS256 and ES256", algs)
	}

	// The operator's documents, when configured.
	docs := map[string]string{
		"op_policy_uri": "https://id.example/privacy", "op_tos_uri": "https://id.example/terms",
		"service_documentation": "https://id.example/developers",
	}
	e = newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) {
		c.OPPolicyURI, c.OPTOSURI, c.ServiceDocumentation = docs["op_policy_uri"], docs["op_tos_uri"], docs["service_documentation"]
	}})
	d = get("/.well-known/openid-configuration")
	for k, v := range docs {
		if d[k] != v {
			t.Errorf("discovery %s = %v, want %s", k, d[k], v)
		}
	}
}
