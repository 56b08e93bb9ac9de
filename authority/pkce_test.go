package authority_test

import (
	"net/http"
	"testing"

	"golang.org/x/oauth2"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/internal/oidctest"
)

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
		status, m, _ := e.postToken(oidctest.TokenRequest{Basic: []string{public.ClientID, confidential.ClientSecret}, Form: map[string][]string{
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
