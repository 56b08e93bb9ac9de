package server_test

import (
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/internal/oidctest"
)

// newID4meRP registers a relying party shaped like the ID4me RP libraries, with metadata
// added to (or replacing) theirs.
func (e *authEnv) newID4meRP(extra map[string]any) *oidctest.ID4meRP {
	e.t.Helper()
	rp, err := oidctest.NewID4meRP(e.rpClient, e.issuer, oidctest.ID4meMetadata(extra))
	if err != nil {
		e.t.Fatalf("ID4me RP: %v", err)
	}
	return rp
}

// freshBrowser is h in a new browser: no session, so the login form comes again.
func (e *authEnv) freshBrowser(h *oidctest.Holder) *oidctest.Holder {
	return &oidctest.Holder{Client: oidctest.HTTPClient(e.roots, true), Identifier: h.Identifier, Password: h.Password}
}

// id4meCode runs req in h's browser (logging in and consenting as needed) and returns the
// code the RP got.
func (e *authEnv) id4meCode(rp *oidctest.ID4meRP, h *oidctest.Holder, req oidctest.Request) string {
	e.t.Helper()
	cb, p, err := h.Login(req.URL)
	if err != nil {
		e.t.Fatalf("login: %v (page %d %q: %q)", err, p.Status, p.Title(), p.Alert())
	}
	code, err := rp.Code(req, cb)
	if err != nil {
		e.t.Fatalf("callback %s: %v", cb, err)
	}
	return code
}

// TestAuthorityID4meRP: relying parties built like the RP libraries the ID4me ecosystem
// ships log in and reach the agent's claims: confidential clients with client_secret_basic
// and no PKCE (with a nonce; with neither nonce nor PKCE and an empty prompt=; with signed
// userinfo asked as application/json+jwt), and a public native client with PKCE.
func TestAuthorityID4meRP(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	agent, claims := e.startAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
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
			rp := e.newID4meRP(tc.metadata)
			public := tc.metadata["token_endpoint_auth_method"] == "none"
			if secret := rp.Registration["client_secret"]; (secret == nil) != public || rp.Registration["client_secret_expires_at"] != 0.0 {
				t.Fatalf("registration %v: want a secret that never expires, none for a public client", rp.Registration)
			}
			tc.login.LoginHint, tc.login.Claims = h.Identifier, emailClaims
			req := rp.AuthRequest(tc.login)
			if strings.Contains(req.URL, "code_challenge") != tc.login.PKCE || strings.Contains(req.URL, "prompt=") != tc.login.EmptyPrompt {
				t.Fatalf("authorization request %s is not of the form under test", req.URL)
			}
			cb, p, err := e.freshBrowser(h).Login(req.URL)
			if err != nil {
				t.Fatalf("login: %v (page %d %q: %q)", err, p.Status, p.Title(), p.Alert())
			}
			accepted := len(claims.Tokens())
			res, err := rp.Finish(req, cb, e.clock.Now)
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

// TestAuthorityPKCEDowngrade: PKCE cannot be stripped or added half-way. A code requested
// with a code_challenge does not redeem without its verifier; one requested without
// refuses a verifier (RFC 9700 §4.8.2); a public client cannot ask without PKCE, nor
// anyone with RequirePKCE. Each refusal issues nothing, and leaves no code to redeem.
func TestAuthorityPKCEDowngrade(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	agent := e.newAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	confidential := e.newID4meRP(nil)
	public := e.newID4meRP(map[string]any{"token_endpoint_auth_method": "none"})

	// wantRedeemRefused fails unless redeeming code with verifier is refused with
	// invalid_grant and issues nothing, and the code still redeems with the right verifier
	// (retry): a refused request does not use it up.
	wantRedeemRefused := func(t *testing.T, rp *oidctest.ID4meRP, code, verifier, retry string) {
		t.Helper()
		before := e.issued()
		status, m, err := rp.Redeem(code, verifier)
		if err != nil || status != http.StatusBadRequest || m["error"] != "invalid_grant" || m["access_token"] != nil {
			t.Fatalf("%d %v %v, want 400 invalid_grant", status, m, err)
		}
		e.wantNothingIssued(t, before)
		if status, m, _ := rp.Redeem(code, retry); status != http.StatusOK || m["access_token"] == nil {
			t.Fatalf("the code with the right verifier after the refusal: %d %v, want the tokens", status, m)
		}
	}

	t.Run("challenge sent, no verifier", func(t *testing.T) {
		for _, rp := range []*oidctest.ID4meRP{confidential, public} {
			req := rp.AuthRequest(oidctest.ID4meLogin{Nonce: true, PKCE: true})
			wantRedeemRefused(t, rp, e.id4meCode(rp, h, req), "", req.Verifier)
		}
	})
	t.Run("verifier sent, no challenge", func(t *testing.T) {
		req := confidential.AuthRequest(oidctest.ID4meLogin{Nonce: true})
		wantRedeemRefused(t, confidential, e.id4meCode(confidential, h, req), oauth2.GenerateVerifier(), "")
	})
	t.Run("public client without PKCE", func(t *testing.T) {
		before := e.issued()
		requests := e.countRows("authority_auth_requests", "")
		for _, login := range []oidctest.ID4meLogin{{Nonce: true}, {EmptyPrompt: true}} {
			req := public.AuthRequest(login)
			p, err := h.Get(req.URL)
			e.wantCallbackError(t, p, err, oidctest.RedirectURI, req.State, "invalid_request")
		}
		e.wantNothingIssued(t, before)
		if n := e.countRows("authority_auth_requests", ""); n != requests {
			t.Fatalf("refused requests were stored: %d, %d before", n, requests)
		}
	})
	t.Run("public client sending a secret", func(t *testing.T) {
		req := public.AuthRequest(oidctest.ID4meLogin{PKCE: true})
		code := e.id4meCode(public, h, req)
		before := e.issued()
		status, m, _ := e.postToken(tokenRequest{basic: []string{public.ClientID, confidential.ClientSecret}, form: map[string][]string{
			"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {public.RedirectURI}, "code_verifier": {req.Verifier},
		}})
		if status != http.StatusUnauthorized || m["error"] != "invalid_client" {
			t.Fatalf("%d %v, want 401 invalid_client", status, m)
		}
		e.wantNothingIssued(t, before)
		// Client authentication failed before the code was looked at: it still works.
		if status, m, _ := public.Redeem(code, req.Verifier); status != http.StatusOK {
			t.Fatalf("the code after a failed client authentication: %d %v", status, m)
		}
	})

	t.Run("RequirePKCE", func(t *testing.T) {
		e := newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) { c.RequirePKCE = true }})
		agent, claims := e.startAgent("alpha")
		h := e.holderFor(agent, "alice.example.test", false)
		claims.Claims["alice.example.test"] = map[string]any{"email": "alice@example.test"}
		rp := e.newID4meRP(nil)
		before := e.issued()
		requests := e.countRows("authority_auth_requests", "")
		for _, login := range []oidctest.ID4meLogin{{Nonce: true}, {EmptyPrompt: true}} {
			req := rp.AuthRequest(login)
			p, err := h.Get(req.URL)
			e.wantCallbackError(t, p, err, oidctest.RedirectURI, req.State, "invalid_request")
		}
		e.wantNothingIssued(t, before)
		if n := e.countRows("authority_auth_requests", ""); n != requests {
			t.Fatalf("refused requests were stored: %d, %d before", n, requests)
		}
		// With PKCE the same client logs in; so does go-oidc's flow.
		req := rp.AuthRequest(oidctest.ID4meLogin{Nonce: true, PKCE: true, Claims: emailClaims})
		cb, p, err := h.Login(req.URL)
		if err != nil {
			t.Fatalf("login: %v (page %d %q: %q)", err, p.Status, p.Title(), p.Alert())
		}
		res, err := rp.Finish(req, cb, e.clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := rp.DistributedClaims(res.Userinfo); err != nil || got["email"] != "alice@example.test" {
			t.Fatalf("distributed claims %v, %v", got, err)
		}
		e.login(e.newRP(nil), h, nil)
	})
}
