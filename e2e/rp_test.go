package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/internal/oidctest"
	"github.com/id4me/id4me-registry/internal/testenv"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// TestAuthorityEndToEnd is the whole ID4me login: discovery, dynamic registration, login
// and consent through the authority's forms, the code exchanged for tokens, the ID token
// verified by go-oidc, userinfo with distributed claims, and the agent (agent/claims's
// handler) verifying the access token through the authority's discovery and JWKS before it
// answers: a JWT the RP verifies with the agent's JWKS, or JSON when the RP asks for it.
func TestAuthorityEndToEnd(t *testing.T) {
	long(t, "RP logins through the whole stack")
	for _, tc := range []struct {
		name     string
		metadata map[string]any
		totp     bool
		// agentAccept is the RP's Accept header at the agent.
		agentAccept string
	}{
		{"RS256 JSON userinfo basic auth", map[string]any{"client_name": "Shop"}, false, ""},
		{"ES256 signed userinfo post auth TOTP", map[string]any{
			"client_name": "Shop", "id_token_signed_response_alg": "ES256", "userinfo_signed_response_alg": "ES256",
			"token_endpoint_auth_method": "client_secret_post",
		}, true, "application/jwt"},
		{"RS256 signed userinfo public subject, JSON from the agent", map[string]any{"userinfo_signed_response_alg": "RS256", "subject_type": "public"}, false, "application/json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := testenv.New(t, testenv.Options{Authority: true})
			agent, claims := e.StartAgent("alpha")
			h := e.HolderFor(agent, "alice.example.test", tc.totp)
			claims.Claims["alice.example.test"] = map[string]any{"email": "alice@example.test", "name": "Alice", "phone_number": "+49 1"}
			rp := e.NewRP(tc.metadata)
			rp.AgentAccept = tc.agentAccept
			// The code that confirmed the enrolment is used: the login needs the next one.
			e.Clock.Advance(30 * time.Second)

			res := e.Login(rp, h, map[string]string{"claims": testenv.EmailClaims, "login_hint": "alice.example.test"})
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
			// The agent's whole answer: the claims consented to and the identity, nothing else.
			answer, err := oidctest.FetchAgentClaims(e.RPClient, claims.Endpoint, src["access_token"].(string), u["sub"].(string),
				oidctest.AgentCheck{ClientID: rp.OAuth.ClientID, Accept: tc.agentAccept, Now: e.Clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			wantSigned := tc.agentAccept != "application/json"
			if answer.Signed != wantSigned {
				t.Fatalf("agent answered %s (signed %v), want signed %v", answer.ContentType, answer.Signed, wantSigned)
			}
			var keys []string
			for k := range answer.Claims {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			wantKeys := []string{"aud", "email", "exp", "iat", "id4me.identifier", "id4me.identity", "iss", "name", "sub"}
			if !slices.Equal(keys, wantKeys) || answer.Claims["iss"] != claims.Issuer || answer.Claims["aud"] != rp.OAuth.ClientID ||
				answer.Claims["id4me.identity"] != e.Issuer+"#"+c["sub"].(string) {
				t.Fatalf("agent's answer %v, want the claims %v with the agent as iss and the RP as aud", answer.Claims, wantKeys)
			}
			toks := claims.Tokens()
			if len(toks) != 2 {
				t.Fatalf("agent accepted %d tokens, want 2 (the RP's and the check's)", len(toks))
			}
			at := toks[0]
			if at["iss"] != e.Issuer || at["sub"] != c["sub"] || at["aud"] != claims.Issuer || at["client_id"] != rp.OAuth.ClientID ||
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
			req := rp.AuthRequest(map[string]string{"claims": testenv.EmailClaims})
			resp, err := h.Client.Get(req.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("second authorization: status %d, want a redirect straight back", resp.StatusCode)
			}
			again, err := rp.Finish(req, resp.Header.Get("Location"), e.Clock.Now)
			if err != nil {
				t.Fatal(err)
			}
			if again.Claims["sub"] != c["sub"] {
				t.Fatalf("second login sub %v, first %v", again.Claims["sub"], c["sub"])
			}
			resp, err = http.Get(e.Ops.URL + "/metrics")
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
	long(t, "subjects across RPs, a transfer and a re-registration")
	e := testenv.New(t, testenv.Options{Authority: true})
	alpha, alphaClaims := e.StartAgent("alpha")
	beta, betaClaims := e.StartAgent("beta")
	h := e.HolderFor(alpha, "bob.example.test", false)
	rp := e.NewRP(nil)
	other := e.NewRP(map[string]any{"redirect_uris": []string{"https://other-rp.test/cb"}})

	first := e.Login(rp, h, map[string]string{"claims": testenv.EmailClaims})
	sub := first.Claims["sub"]
	otherReq := other.AuthRequest(nil)
	cb, _, err := h.Login(otherReq.URL)
	if err != nil {
		t.Fatal(err)
	}
	otherRes, err := other.Finish(otherReq, cb, e.Clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if otherRes.Claims["sub"] == sub {
		t.Fatal("two RPs on different hosts got the same pairwise subject")
	}

	c := e.ValidChallenge(beta, "bob.example.test", registryv1.Purpose_PURPOSE_TRANSFER)
	if _, err := e.RegistryAPI.RequestTransfer(beta.Ctx(), &registryv1.RequestTransferRequest{ChallengeId: c.Id}); err != nil {
		t.Fatalf("RequestTransfer: %v", err)
	}
	after := e.Login(rp, h, map[string]string{"claims": testenv.EmailClaims, "prompt": "login"})
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
	if _, err := e.RegistryAPI.DeleteIdentifier(beta.Ctx(), &registryv1.DeleteIdentifierRequest{Identifier: "bob.example.test"}); err != nil {
		t.Fatalf("DeleteIdentifier: %v", err)
	}
	e.Clock.Advance(31 * 24 * time.Hour)
	if n, err := e.Svc.SweepPurges(context.Background()); n != 1 || err != nil {
		t.Fatalf("purged %d (%v), want 1", n, err)
	}
	h2 := e.HolderFor(alpha, "bob.example.test", false)
	again := e.Login(rp, h2, map[string]string{"prompt": "login"})
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

// freshBrowser is h in a new browser: no session, so the login form comes again.
func freshBrowser(e *testenv.Env, h *oidctest.Holder) *oidctest.Holder {
	return &oidctest.Holder{Client: oidctest.HTTPClient(e.Roots, true), Identifier: h.Identifier, Password: h.Password}
}

// TestAuthorityID4meRP: relying parties built like the RP libraries the ID4me ecosystem
// ships log in and reach the agent's claims: confidential clients with client_secret_basic
// and no PKCE (with a nonce; with neither nonce nor PKCE and an empty prompt=; with signed
// userinfo asked as application/json+jwt), and a public native client with PKCE.
func TestAuthorityID4meRP(t *testing.T) {
	long(t, "logins of RPs shaped like the ID4me RP libraries")
	e := testenv.New(t, testenv.Options{Authority: true})
	agent, claims := e.StartAgent("alpha")
	h := e.HolderFor(agent, "alice.example.test", false)
	claims.Claims["alice.example.test"] = map[string]any{"email": "alice@example.test", "name": "Alice", "phone_number": "+49 1"}
	for _, tc := range []struct {
		name     string
		metadata map[string]any
		login    oidctest.ID4meLogin
		wantType string
	}{
		{"confidential, nonce, no PKCE", nil, oidctest.ID4meLogin{Nonce: true}, "application/json"},
		{"confidential, no nonce, no PKCE, empty prompt", nil, oidctest.ID4meLogin{EmptyPrompt: true}, "application/json"},
		{"confidential, signed userinfo", map[string]any{"userinfo_signed_response_alg": "RS256"}, oidctest.ID4meLogin{Nonce: true}, "application/jwt"},
		{"public native client with PKCE", map[string]any{"token_endpoint_auth_method": "none"}, oidctest.ID4meLogin{Nonce: true, PKCE: true}, "application/json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rp := e.NewID4meRP(tc.metadata)
			public := tc.metadata["token_endpoint_auth_method"] == "none"
			if secret := rp.Registration["client_secret"]; (secret == nil) != public || rp.Registration["client_secret_expires_at"] != 0.0 {
				t.Fatalf("registration %v: want a secret that never expires, none for a public client", rp.Registration)
			}
			tc.login.LoginHint, tc.login.Claims = h.Identifier, testenv.EmailClaims
			req := rp.AuthRequest(tc.login)
			if strings.Contains(req.URL, "code_challenge") != tc.login.PKCE || strings.Contains(req.URL, "prompt=") != tc.login.EmptyPrompt {
				t.Fatalf("authorization request %s is not of the form under test", req.URL)
			}
			cb, p, err := freshBrowser(e, h).Login(req.URL)
			if err != nil {
				t.Fatalf("login: %v (page %d %q: %q)", err, p.Status, p.Title(), p.Alert())
			}
			accepted := len(claims.Tokens())
			res, err := rp.Finish(req, cb, e.Clock.Now)
			if err != nil {
				t.Fatal(err)
			}
			c := res.Claims
			if c["id4me.identifier"] != "alice.example.test" || len(c["sub"].(string)) != 64 || c["aud"] != rp.ClientID {
				t.Fatalf("ID token claims %v", c)
			}
			if _, hasNonce := c["nonce"]; hasNonce != tc.login.Nonce {
				t.Fatalf("ID token nonce %v, sent one: %v", c["nonce"], tc.login.Nonce)
			}
			if res.UserinfoType != tc.wantType {
				t.Fatalf("userinfo content type %q, want %q", res.UserinfoType, tc.wantType)
			}
			u := res.Userinfo
			names, _ := u["_claim_names"].(map[string]any)
			if u["sub"] != c["sub"] || len(names) != 2 || names["email"] == nil || names["name"] == nil {
				t.Fatalf("userinfo %v: want the ID token's sub and email and name as distributed claims", u)
			}
			got, err := rp.DistributedClaims(u)
			if err != nil {
				t.Fatal(err)
			}
			if got["email"] != "alice@example.test" || got["name"] != "Alice" || got["phone_number"] != nil {
				t.Fatalf("distributed claims %v", got)
			}
			toks := claims.Tokens()
			if len(toks) != accepted+1 || toks[len(toks)-1]["client_id"] != rp.ClientID {
				t.Fatalf("the agent accepted %d tokens (%d before), the last %v", len(toks), accepted, toks[len(toks)-1])
			}
		})
	}
}
