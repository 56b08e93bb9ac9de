package authority_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/internal/oidctest"
)

// clientConfig sends a request to a client configuration endpoint (RFC 7592) with a
// registration access token (none when empty) and a body (JSON, when not nil: a string is
// sent as it is), and returns the status, the JSON answer (nil for none) and the headers.
func (e *authEnv) clientConfig(method, uri, token string, body any) (int, map[string]any, http.Header) {
	e.t.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			e.t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, uri, bytes.NewReader(b))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return oidctest.SendJSON(e.t, e.rpClient, req)
}

// wantTokenRefused fails unless a configuration request was refused as RFC 6750 asks: 401
// invalid_token with WWW-Authenticate, and no client information.
func wantTokenRefused(t *testing.T, what string, status int, m map[string]any, hdr http.Header) {
	t.Helper()
	if status != http.StatusUnauthorized || m["error"] != "invalid_token" || m["client_id"] != nil ||
		!strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("%s: %d %v WWW-Authenticate %q, want 401 invalid_token", what, status, m, hdr.Get("WWW-Authenticate"))
	}
}

// registration returns what a registration response says of the registration endpoint: the
// client's configuration URI and registration access token.
func registration(t *testing.T, reg map[string]any) (string, string) {
	t.Helper()
	uri, _ := reg["registration_client_uri"].(string)
	token, _ := reg["registration_access_token"].(string)
	if uri == "" || token == "" {
		t.Fatalf("registration %v has no configuration endpoint or token", reg)
	}
	return uri, token
}

// TestAuthorityClientRead: a read (RFC 7592 §2.1) gives the client's metadata and a new
// registration access token, as the stored one is hashed; the token used stops working.
func TestAuthorityClientRead(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	rp := e.newID4meRP(map[string]any{"client_name": "Shop"})
	other := e.newID4meRP(nil)
	uri, token := registration(t, rp.Registration)
	_, otherToken := registration(t, other.Registration)
	if !strings.HasPrefix(uri, e.issuer+"/register/") {
		t.Fatalf("registration_client_uri %s", uri)
	}
	before := e.issued()

	for k := range 3 {
		status, m, hdr := e.clientConfig(http.MethodGet, uri, token, nil)
		next, _ := m["registration_access_token"].(string)
		if status != http.StatusOK || m["client_id"] != rp.ClientID || m["client_name"] != "Shop" || m["registration_client_uri"] != uri ||
			m["application_type"] != "native" || m["token_endpoint_auth_method"] != "client_secret_basic" || next == "" || next == token {
			t.Fatalf("read %d: %d %v, want the client and a new token", k+1, status, m)
		}
		if m["client_secret"] != nil || m["client_secret_expires_at"] != 0.0 || hdr.Get("Cache-Control") != "no-store" {
			t.Fatalf("read %d: %v, Cache-Control %q: want no secret, no expiry, no-store", k+1, m, hdr.Get("Cache-Control"))
		}
		status, m, hdr = e.clientConfig(http.MethodGet, uri, token, nil)
		wantTokenRefused(t, fmt.Sprintf("read %d again with the token it replaced", k+1), status, m, hdr)
		token = next
	}
	for name, bearer := range map[string]string{
		"wrong token":            "not-the-token",
		"another client's token": otherToken,
		"the client secret":      rp.ClientSecret,
		"no token":               "",
	} {
		status, m, hdr := e.clientConfig(http.MethodGet, uri, bearer, nil)
		wantTokenRefused(t, "read with "+name, status, m, hdr)
	}
	status, m, hdr := e.clientConfig(http.MethodGet, e.issuer+"/register/no-such-client", token, nil)
	wantTokenRefused(t, "read of an unknown client", status, m, hdr)
	e.wantNothingIssued(t, before)
	// The refusals left the last token working, and the client as it was.
	if status, m, _ := e.clientConfig(http.MethodGet, uri, token, nil); status != http.StatusOK || m["client_name"] != "Shop" {
		t.Fatalf("read after the refusals: %d %v", status, m)
	}
}

// TestAuthorityClientUpdate: an update (RFC 7592 §2.2) replaces the metadata, validated as a
// registration is (the same refusals, and RFC 7592's rules for client_id and the secret),
// and the change takes effect at once; a refused update changes nothing.
func TestAuthorityClientUpdate(t *testing.T) {
	// Updates count against the per-source registration limit, which is not what this is
	// about.
	e := newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) { c.RegistrationBurst = 1000 }})
	agent, claims := e.startAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	claims.Claims["alice.example.test"] = map[string]any{"email": "alice@example.test"}
	rp := e.newID4meRP(map[string]any{"client_name": "Shop"})
	uri, token := registration(t, rp.Registration)
	before := e.issued()

	// Every registration refusal, as an update: refused the same way.
	for _, tc := range registrationRefusals {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			var m map[string]any
			if json.Unmarshal([]byte(body), &m) == nil {
				m["client_id"] = rp.ClientID
				b, _ := json.Marshal(m)
				body = string(b)
			}
			req, _ := http.NewRequest(http.MethodPut, uri, strings.NewReader(body))
			req.Header.Set("Content-Type", tc.contentType)
			req.Header.Set("Authorization", "Bearer "+token)
			status, got, _ := oidctest.SendJSON(t, e.rpClient, req)
			if status != http.StatusBadRequest || got["error"] != tc.code || got["client_id"] != nil {
				t.Fatalf("%d %v, want 400 %s", status, got, tc.code)
			}
		})
	}
	valid := oidctest.ID4meMetadata(map[string]any{
		"client_id": rp.ClientID, "client_name": "Shop 2", "redirect_uris": []string{"https://rp.test/new-callback"},
		"userinfo_signed_response_alg": "ES256",
	})
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for mk, mv := range valid {
			m[mk] = mv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name string
		body map[string]any
	}{
		{"no client_id", with("client_id", nil)},
		{"another client_id", with("client_id", "another-client")},
		{"a wrong client_secret", with("client_secret", "not-the-secret")},
		{"registration_access_token", with("registration_access_token", token)},
		{"registration_client_uri", with("registration_client_uri", uri)},
		{"client_secret_expires_at", with("client_secret_expires_at", 0)},
		{"client_id_issued_at", with("client_id_issued_at", rp.Registration["client_id_issued_at"])},
	} {
		status, m, _ := e.clientConfig(http.MethodPut, uri, token, tc.body)
		if status != http.StatusBadRequest || m["error"] != "invalid_request" || m["client_id"] != nil {
			t.Fatalf("update with %s: %d %v, want 400 invalid_request", tc.name, status, m)
		}
	}
	e.wantNothingIssued(t, before)
	// The refused updates changed nothing: the client is as registered, its token works.
	req := rp.AuthRequest(oidctest.ID4meLogin{Nonce: true, Claims: emailClaims})
	res, err := rp.Finish(req, e.callback(h, req), e.clock.Now)
	if err != nil || res.UserinfoType != "application/json" {
		t.Fatalf("login before the update: %v, %+v", err, res)
	}

	// A valid update, with the client's own secret (which RFC 7592 allows to be sent).
	status, m, hdr := e.clientConfig(http.MethodPut, uri, token, with("client_secret", rp.ClientSecret))
	next, _ := m["registration_access_token"].(string)
	if status != http.StatusOK || m["client_id"] != rp.ClientID || m["client_name"] != "Shop 2" || next == "" || next == token ||
		m["userinfo_signed_response_alg"] != "ES256" || fmt.Sprint(m["redirect_uris"]) != "[https://rp.test/new-callback]" || m["client_secret"] != nil {
		t.Fatalf("update: %d %v", status, m)
	}
	if hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("Cache-Control %q", hdr.Get("Cache-Control"))
	}
	status, m, hdr = e.clientConfig(http.MethodGet, uri, token, nil)
	wantTokenRefused(t, "read with the token the update replaced", status, m, hdr)
	token = next

	// It takes effect at once: the old redirect URI is refused, the new one works, and
	// userinfo comes signed; the secret is the same.
	p, err := h.Get(rp.AuthRequest(oidctest.ID4meLogin{Nonce: true}).URL)
	oidctest.WantErrorPage(t, p, err, http.StatusBadRequest, "The site that sent you here asked to return to an address it did not register.")
	rp.RedirectURI = "https://rp.test/new-callback"
	req = rp.AuthRequest(oidctest.ID4meLogin{Nonce: true, Claims: emailClaims})
	cb := e.callback(h, req)
	if !strings.HasPrefix(cb, "https://rp.test/new-callback?") {
		t.Fatalf("sent back to %s, want the new redirect URI", cb)
	}
	res, err = rp.Finish(req, cb, e.clock.Now)
	if err != nil || res.UserinfoType != "application/jwt" {
		t.Fatalf("login after the update: %v, %+v", err, res)
	}

	// To a public client: the secret is gone; back to a confidential one: a new secret.
	status, m, _ = e.clientConfig(http.MethodPut, uri, token, with("token_endpoint_auth_method", "none"))
	if status != http.StatusOK || m["token_endpoint_auth_method"] != "none" || m["client_secret"] != nil {
		t.Fatalf("update to a public client: %d %v", status, m)
	}
	token = m["registration_access_token"].(string)
	req = rp.AuthRequest(oidctest.ID4meLogin{PKCE: true})
	code, err := rp.Code(req, e.callback(h, req))
	if err != nil {
		t.Fatal(err)
	}
	if status, m, _ := e.postToken(oidctest.TokenRequest{Basic: []string{rp.ClientID, rp.ClientSecret}, Form: map[string][]string{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rp.RedirectURI}, "code_verifier": {req.Verifier},
	}}); status != http.StatusUnauthorized || m["error"] != "invalid_client" {
		t.Fatalf("the secret of a client now public: %d %v, want 401 invalid_client", status, m)
	}
	status, m, _ = e.clientConfig(http.MethodPut, uri, token, valid)
	secret, _ := m["client_secret"].(string)
	if status != http.StatusOK || secret == "" || secret == rp.ClientSecret || m["client_secret_expires_at"] != 0.0 {
		t.Fatalf("update to a confidential client: %d %v, want a new secret", status, m)
	}
	rp.Registration["token_endpoint_auth_method"], rp.ClientSecret = "client_secret_basic", secret
	req = rp.AuthRequest(oidctest.ID4meLogin{Nonce: true})
	if _, err := rp.Finish(req, e.callback(h, req), e.clock.Now); err != nil {
		t.Fatalf("login with the new secret: %v", err)
	}
}

// TestAuthorityClientDelete: a deletion (RFC 7592 §2.3) takes the client with its grants,
// consents and tokens: codes issued before no longer redeem, access tokens stop working at
// userinfo, the registration access token stops working, and the client is unknown. On
// another instance that still has the client in memory, its codes and tokens fail at once
// too, as they are gone from the store.
func TestAuthorityClientDelete(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	agent, claims := e.startAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	claims.Claims["alice.example.test"] = map[string]any{"email": "alice@example.test"}
	rp := e.newID4meRP(nil)
	uri, token := registration(t, rp.Registration)
	other := e.newID4meRP(map[string]any{"redirect_uris": []string{"https://other-rp.test/cb"}})

	// A second instance on the same store, which keeps clients in memory for an hour.
	_, second := e.otherInstance(func(c *authority.Config) { c.ClientCacheTTL = time.Hour })
	secondRP := *rp
	secondRP.Discovery.TokenEndpoint, secondRP.Discovery.UserinfoEndpoint = second+"/token", second+"/userinfo"
	secondRP.Discovery.JWKSURI = second + "/jwks.json"

	loginReq := rp.AuthRequest(oidctest.ID4meLogin{Nonce: true, Claims: emailClaims})
	res, err := rp.Finish(loginReq, e.callback(h, loginReq), e.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	// Codes not yet redeemed, for each instance, and the second instance's cache warmed
	// with the client by a login through it.
	codes := make([]string, 2)
	for k := range codes {
		req := rp.AuthRequest(oidctest.ID4meLogin{Nonce: true})
		codes[k] = e.id4meCode(rp, h, req)
	}
	warm := rp.AuthRequest(oidctest.ID4meLogin{Nonce: true, Claims: emailClaims})
	secondRes, err := secondRP.Finish(warm, e.callback(h, warm), e.clock.Now)
	if err != nil {
		t.Fatalf("login through the second instance: %v", err)
	}
	for _, access := range []string{res.AccessToken, secondRes.AccessToken} {
		if status, _ := e.userinfoStatus(access); status != http.StatusOK {
			t.Fatalf("userinfo before the deletion: %d", status)
		}
	}
	otherRes := e.id4meLogin(other, h)
	if n := e.countRows("authority_consents", "client_id = ?", rp.ClientID); n != 1 {
		t.Fatalf("%d consents of the client before the deletion", n)
	}

	status, m, hdr := e.clientConfig(http.MethodDelete, uri, "not-the-token", nil)
	wantTokenRefused(t, "delete with a wrong token", status, m, hdr)
	status, m, _ = e.clientConfig(http.MethodDelete, uri, token, nil)
	if status != http.StatusNoContent || m != nil {
		t.Fatalf("delete: %d %v, want 204", status, m)
	}

	for table, where := range map[string]string{
		"authority_clients": "id = ?", "authority_grants": "client_id = ?", "authority_access_tokens": "client_id = ?",
		"authority_consents": "client_id = ?",
	} {
		if n := e.countRows(table, where, rp.ClientID); n != 0 {
			t.Errorf("%s: %d rows of the deleted client", table, n)
		}
	}
	for _, access := range []string{res.AccessToken, secondRes.AccessToken} {
		e.wantUserinfoRefused(t, access)
	}
	if _, _, err := secondRP.Userinfo(res.AccessToken); err == nil {
		t.Fatal("the second instance answered userinfo with a deleted client's token")
	}
	// Here the client is unknown at once; there it is still in memory, and the code is not.
	if status, m, _ := rp.Redeem(codes[0], ""); status != http.StatusUnauthorized || m["error"] != "invalid_client" {
		t.Fatalf("a code of the deleted client: %d %v, want 401 invalid_client", status, m)
	}
	if status, m, _ := secondRP.Redeem(codes[1], ""); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Fatalf("a code of the deleted client at the second instance: %d %v, want 400 invalid_grant", status, m)
	}
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		var body any
		if method == http.MethodPut {
			body = oidctest.ID4meMetadata(map[string]any{"client_id": rp.ClientID})
		}
		status, m, hdr := e.clientConfig(method, uri, token, body)
		wantTokenRefused(t, method+" after the deletion", status, m, hdr)
	}
	p, err := h.Get(rp.AuthRequest(oidctest.ID4meLogin{Nonce: true}).URL)
	oidctest.WantErrorPage(t, p, err, http.StatusBadRequest, "The site that sent you here is not registered with this authority.")

	// The other client keeps its token and consent.
	if status, _ := e.userinfoStatus(otherRes.AccessToken); status != http.StatusOK {
		t.Fatalf("the other client's token after the deletion: %d", status)
	}
	if n := e.countRows("authority_consents", "client_id = ?", other.ClientID); n != 1 {
		t.Fatalf("the other client has %d consents", n)
	}
}

// TestAuthorityClientDeletedMidLogin: a client deleted while its holder is at the login or
// consent page gets no code: the holder is told the site is no longer registered.
func TestAuthorityClientDeletedMidLogin(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	agent := e.newAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	rp := e.newID4meRP(nil)
	uri, token := registration(t, rp.Registration)
	p, err := h.Get(rp.AuthRequest(oidctest.ID4meLogin{Nonce: true}).URL)
	if err != nil || p.Action() != "/login" {
		t.Fatalf("login page: %v, %d %q", err, p.Status, p.Title())
	}
	consent, err := h.Submit(p, map[string][]string{"identifier": {h.Identifier}, "password": {h.Password}})
	if err != nil || consent.Action() != "/consent" {
		t.Fatalf("consent page: %v, %d %q", err, consent.Status, consent.Title())
	}
	if status, _, _ := e.clientConfig(http.MethodDelete, uri, token, nil); status != http.StatusNoContent {
		t.Fatalf("delete: %d", status)
	}
	before := e.issued()
	p, err = h.Submit(consent, map[string][]string{"decision": {"allow"}})
	oidctest.WantErrorPage(t, p, err, http.StatusBadRequest, "The site that sent you here is no longer registered with this authority.")
	e.wantNothingIssued(t, before)
}

// TestAuthorityClientSecretTTL: with a secret lifetime, registration says when the secret
// expires (client_secret_expires_at), and from then the token endpoint refuses it with
// invalid_client, saying it expired; the RP registers again and goes on.
func TestAuthorityClientSecretTTL(t *testing.T) {
	e := newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) { c.ClientSecretTTL = 24 * time.Hour }})
	agent := e.newAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	registered := e.clock.Now()
	rp := e.newID4meRP(nil)
	expires := int64(rp.Registration["client_secret_expires_at"].(float64))
	if want := registered.Add(24 * time.Hour).Unix(); expires != want {
		t.Fatalf("client_secret_expires_at %d, want %d", expires, want)
	}
	uri, token := registration(t, rp.Registration)
	if _, m, _ := e.clientConfig(http.MethodGet, uri, token, nil); m["client_secret_expires_at"] != float64(expires) {
		t.Fatalf("read: client_secret_expires_at %v, want %d", m["client_secret_expires_at"], expires)
	}
	public := e.newID4meRP(map[string]any{"token_endpoint_auth_method": "none"})
	if public.Registration["client_secret_expires_at"] != 0.0 {
		t.Fatalf("a public client's client_secret_expires_at %v, want 0", public.Registration["client_secret_expires_at"])
	}

	e.clock.Advance(24*time.Hour - time.Second)
	e.id4meLogin(rp, h)
	e.clock.Advance(time.Second)
	req := rp.AuthRequest(oidctest.ID4meLogin{Nonce: true})
	code := e.id4meCode(rp, h, req)
	before := e.issued()
	status, m, err := rp.Redeem(code, "")
	description, _ := m["error_description"].(string)
	if err != nil || status != http.StatusUnauthorized || m["error"] != "invalid_client" || !strings.Contains(description, "expired") {
		t.Fatalf("an expired secret: %d %v %v, want 401 invalid_client saying it expired", status, m, err)
	}
	e.wantNothingIssued(t, before)

	// The public client has no secret to expire, and a new registration works.
	e.id4meLogin(e.newID4meRP(nil), h)
	pkce := public.AuthRequest(oidctest.ID4meLogin{PKCE: true})
	if _, err := public.Finish(pkce, e.callback(h, pkce), e.clock.Now); err != nil {
		t.Fatalf("public client: %v", err)
	}
}

// TestAuthorityRegistrationTokens: with RegistrationToken, registering needs an initial
// access token (RFC 7591 §3) sent as a Bearer token: none, a wrong one, and one that is used
// up, expired or revoked are refused with 401 invalid_token and register nothing; a valid
// one registers, and counts the use.
func TestAuthorityRegistrationTokens(t *testing.T) {
	e := newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) {
		c.Registration = authority.RegistrationToken
		c.RegistrationBurst = 100
	}})
	ctx := context.Background()
	store := e.store.Authority()
	issue := func(maxUses int, expire time.Time) (authority.InitialAccessToken, string) {
		t.Helper()
		tok, secret, err := authority.IssueInitialAccessToken(ctx, store, "test", maxUses, expire, e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok, secret
	}
	onceTok, once := issue(1, time.Time{})
	_, expiring := issue(0, e.clock.Now().Add(time.Hour))
	revokedTok, revoked := issue(0, time.Time{})
	if err := store.RevokeInitialAccessToken(ctx, revokedTok.ID, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	register := func(authorization string) (int, map[string]any, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/register", strings.NewReader(`{"application_type":"native","redirect_uris":["https://rp.test/cb"]}`))
		req.Header.Set("Content-Type", "application/json")
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		return oidctest.SendJSON(t, e.rpClient, req)
	}
	refused := func(name, authorization, says string) {
		t.Helper()
		before := e.issued()
		status, m, hdr := register(authorization)
		wantTokenRefused(t, name, status, m, hdr)
		if d, _ := m["error_description"].(string); !strings.Contains(d, says) {
			t.Fatalf("%s: error_description %q does not say %q", name, d, says)
		}
		if strings.HasPrefix(authorization, "Bearer ") && !strings.Contains(hdr.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("%s: WWW-Authenticate %q", name, hdr.Get("WWW-Authenticate"))
		}
		e.wantNothingIssued(t, before)
	}

	refused("no token", "", "initial access token")
	refused("a wrong token", "Bearer not-a-token", "not valid")
	refused("the token as Basic credentials", "Basic "+once, "initial access token")
	if status, m, _ := register("Bearer " + once); status != http.StatusCreated || m["client_id"] == nil || m["client_secret"] == nil {
		t.Fatalf("with a valid token: %d %v", status, m)
	}
	if got, err := store.GetInitialAccessToken(ctx, onceTok.TokenHash); err != nil || got.Uses != 1 {
		t.Fatalf("the token's uses: %+v, %v", got, err)
	}
	refused("a used up token", "Bearer "+once, "used up")
	refused("a revoked token", "Bearer "+revoked, "revoked")
	for k := range 2 {
		if status, m, _ := register("Bearer " + expiring); status != http.StatusCreated {
			t.Fatalf("registration %d with a token good for any number: %d %v", k+1, status, m)
		}
	}
	e.clock.Advance(time.Hour)
	refused("an expired token", "Bearer "+expiring, "expired")
}
