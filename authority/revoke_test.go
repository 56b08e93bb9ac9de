package authority_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/id4me/id4me-registry/internal/oidctest"
)

// revoke posts a revocation request (RFC 7009) with form, authenticated as basic says
// (client_id and secret), and returns the status and the JSON answer.
func (e *authEnv) revoke(form url.Values, basic ...string) (int, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.issuer+"/revoke", strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != nil {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	status, m, h := oidctest.SendJSON(e.t, e.rpClient, req)
	if h.Get("Cache-Control") != "no-store" {
		e.t.Errorf("revocation answered Cache-Control %q, want no-store", h.Get("Cache-Control"))
	}
	return status, m
}

// credentials are rp's client_id and secret.
func credentials(rp *oidctest.RP) []string { return []string{rp.OAuth.ClientID, rp.OAuth.ClientSecret} }

// TestAuthorityRevocation: a client revokes its access token at the revocation endpoint;
// userinfo then refuses it, and so gives out no agent token for it any more, although it
// had made and kept one. Another client's revocation of it, or one of an unknown token,
// answers 200 and changes nothing; token_type_hint does not matter. The client must
// authenticate as at the token endpoint.
func TestAuthorityRevocation(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	agent, claims := e.startAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	claims.Claims["alice.example.test"] = map[string]any{"email": "alice@example.test"}
	rp := e.newRP(nil)
	other := e.newRP(nil)
	res := e.login(rp, h, map[string]string{"claims": emailClaims})
	access := res.Token.AccessToken
	minted := agentTokenOf(t, res.Userinfo)
	if again := agentTokenAt(t, rp, access); again != minted {
		t.Fatal("userinfo gave another agent token the second time")
	}

	for name, tc := range map[string]struct {
		form   url.Values
		basic  []string
		status int
		code   string
	}{
		"no client":       {url.Values{"token": {access}}, nil, http.StatusUnauthorized, "invalid_client"},
		"wrong secret":    {url.Values{"token": {access}}, []string{rp.OAuth.ClientID, "wrong"}, http.StatusUnauthorized, "invalid_client"},
		"secret in body":  {url.Values{"token": {access}, "client_id": {rp.OAuth.ClientID}, "client_secret": {rp.OAuth.ClientSecret}}, nil, http.StatusUnauthorized, "invalid_client"},
		"no token":        {url.Values{}, credentials(rp), http.StatusBadRequest, "invalid_request"},
		"two tokens":      {url.Values{"token": {access, access}}, credentials(rp), http.StatusBadRequest, "invalid_request"},
		"another client":  {url.Values{"token": {access}}, credentials(other), http.StatusOK, ""},
		"an unknown one":  {url.Values{"token": {"not-a-token"}, "token_type_hint": {"access_token"}}, credentials(rp), http.StatusOK, ""},
		"an unknown hint": {url.Values{"token": {"not-a-token"}, "token_type_hint": {"id_token"}}, credentials(rp), http.StatusOK, ""},
	} {
		status, m := e.revoke(tc.form, tc.basic...)
		if code, _ := m["error"].(string); status != tc.status || code != tc.code {
			t.Fatalf("%s: %d %v, want %d %q", name, status, m, tc.status, tc.code)
		}
	}
	if got := agentTokenAt(t, rp, access); got != minted {
		t.Fatal("the access token stopped working before its client revoked it")
	}

	if status, m := e.revoke(url.Values{"token": {access}, "token_type_hint": {"access_token"}}, credentials(rp)...); status != http.StatusOK || m != nil {
		t.Fatalf("revocation: %d %v, want 200 and no body", status, m)
	}
	e.wantUserinfoRefused(t, access)
	if u, raw, _, err := rp.Userinfo(access); err == nil || strings.Contains(string(raw), "_claim_sources") || u != nil {
		t.Fatalf("userinfo after revocation gave %v %s", err, raw)
	}
	// Revoking again is harmless.
	if status, _ := e.revoke(url.Values{"token": {access}}, credentials(rp)...); status != http.StatusOK {
		t.Fatalf("revoking again: %d, want 200", status)
	}

	// A hint that names another type does not keep the access token from being found.
	second := e.login(rp, h, map[string]string{"claims": emailClaims}).Token.AccessToken
	if status, _ := e.revoke(url.Values{"token": {second}, "token_type_hint": {"refresh_token"}}, credentials(rp)...); status != http.StatusOK {
		t.Fatalf("revocation with a refresh_token hint: %d, want 200", status)
	}
	e.wantUserinfoRefused(t, second)
}

// TestAuthorityRevocationPublicClient: a public client names itself with client_id alone.
func TestAuthorityRevocationPublicClient(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	h := e.holderFor(e.newAgent("alpha"), "alice.example.test", false)
	rp := e.newRP(map[string]any{"token_endpoint_auth_method": "none"})
	access := e.login(rp, h, nil).Token.AccessToken
	if status, m := e.revoke(url.Values{"token": {access}, "client_id": {rp.OAuth.ClientID}}); status != http.StatusOK {
		t.Fatalf("revocation: %d %v, want 200", status, m)
	}
	e.wantUserinfoRefused(t, access)
}
