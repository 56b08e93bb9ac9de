package authority_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/internal/oidctest"
	"github.com/id4me/id4me-registry/registry"
)

// loggedOutURI is where the test RPs ask to be sent back after a logout.
const loggedOutURI = "https://rp.test/logged-out"

// idTokenOf returns the raw ID token of a login.
func idTokenOf(t *testing.T, res *oidctest.Result) string {
	t.Helper()
	raw, _ := res.Token.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("the token response has no id_token")
	}
	return raw
}

// logoutURL is the end-session endpoint with params.
func (e *authEnv) logoutURL(params url.Values) string { return e.issuer + "/logout?" + params.Encode() }

// wantLoginRequired fails unless an authorization request of rp with prompt=none in h's
// browser comes back with login_required.
func (e *authEnv) wantLoginRequired(t *testing.T, rp *oidctest.RP, h *oidctest.Holder) {
	t.Helper()
	req := rp.AuthRequest(map[string]string{"prompt": "none"})
	p, err := h.Get(req.URL)
	e.wantCallbackError(t, p, err, oidctest.RedirectURI, req.State, "login_required")
}

// wantSilentLogin fails unless an authorization request of rp with prompt=none in h's
// browser gives a code: the holder's session answers it.
func (e *authEnv) wantSilentLogin(t *testing.T, rp *oidctest.RP, h *oidctest.Holder) {
	t.Helper()
	req := rp.AuthRequest(map[string]string{"prompt": "none"})
	p, err := h.Get(req.URL)
	if !errors.Is(err, oidctest.ErrLeft) || !strings.HasPrefix(p.URL, oidctest.RedirectURI+"?code=") {
		t.Fatalf("prompt=none: %v, page %d %q (%s), want a code", err, p.Status, p.Title(), p.URL)
	}
}

// wantBack fails unless the authority sent the browser back to loggedOutURI with state.
func wantBack(t *testing.T, p oidctest.Page, err error, state string) {
	t.Helper()
	want := loggedOutURI
	if state != "" {
		want += "?state=" + state
	}
	if !errors.Is(err, oidctest.ErrLeft) || p.URL != want {
		t.Fatalf("logout: %v, page %d %q (%s), want a redirect to %s", err, p.Status, p.Title(), p.URL, want)
	}
}

// copyBrowser returns a browser holding h's cookies: what a thief of them would have.
func (e *authEnv) copyBrowser(h *oidctest.Holder) *oidctest.Holder {
	c := oidctest.HTTPClient(e.roots, true)
	u, _ := url.Parse(e.issuer)
	c.Jar.SetCookies(u, h.Client.Jar.Cookies(u))
	return &oidctest.Holder{Client: c, Identifier: h.Identifier, Password: h.Password}
}

// TestAuthorityRPInitiatedLogout: an ID token the RP got, expired by now, names the session
// it was issued in (sid); sent as id_token_hint with a registered post_logout_redirect_uri,
// it ends the session at once and the browser goes back with the state. Afterwards
// prompt=none gets login_required, in that browser and with a copy of its old cookies: the
// session ended at the authority, not only in the browser.
func TestAuthorityRPInitiatedLogout(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	h := e.holderFor(e.newAgent("alpha"), "alice.example.test", false)
	rp := e.newRP(map[string]any{"post_logout_redirect_uris": []string{loggedOutURI}})
	if got, _ := json.Marshal(rp.Registration["post_logout_redirect_uris"]); string(got) != `["`+loggedOutURI+`"]` {
		t.Fatalf("registration answered post_logout_redirect_uris %s", got)
	}
	res := e.login(rp, h, nil)
	if sid, _ := res.Claims["sid"].(string); len(sid) != 22 {
		t.Fatalf("ID token sid %v, want the session's", res.Claims["sid"])
	}
	e.wantSilentLogin(t, rp, h)
	thief := e.copyBrowser(h)

	e.clock.Advance(time.Hour)
	p, err := h.Get(e.logoutURL(url.Values{"id_token_hint": {idTokenOf(t, res)}, "post_logout_redirect_uri": {loggedOutURI}, "state": {"st-1"}}))
	wantBack(t, p, err, "st-1")
	if e.hasSession(h) {
		t.Error("the browser still holds the session cookie")
	}
	if n := e.countRows("authority_sessions", ""); n != 0 {
		t.Errorf("%d sessions left after the logout", n)
	}
	e.wantLoginRequired(t, rp, h)
	e.wantLoginRequired(t, rp, thief)

	// Logged out already, the same request goes straight back.
	p, err = h.Get(e.logoutURL(url.Values{"id_token_hint": {idTokenOf(t, res)}, "post_logout_redirect_uri": {loggedOutURI}}))
	wantBack(t, p, err, "")
}

// TestAuthorityLogoutPosted: an RP's page may post the request; the browser sends the
// session cookie along with a cross-site GET only, so the authority answers with one.
func TestAuthorityLogoutPosted(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	h := e.holderFor(e.newAgent("alpha"), "alice.example.test", false)
	rp := e.newRP(map[string]any{"post_logout_redirect_uris": []string{loggedOutURI}})
	res := e.login(rp, h, nil)
	p, err := readPage(h.Client.PostForm(e.issuer+"/logout", url.Values{
		"id_token_hint": {idTokenOf(t, res)}, "post_logout_redirect_uri": {loggedOutURI}, "state": {"posted"},
	}))
	wantBack(t, p, err, "posted")
	e.wantLoginRequired(t, rp, h)
}

// readPage reads an answer as oidctest.Holder.Get does.
func readPage(resp *http.Response, err error) (oidctest.Page, error) {
	if err != nil {
		return oidctest.Page{}, err
	}
	defer resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && loc != "" {
		return oidctest.Page{URL: loc, Status: resp.StatusCode, Header: resp.Header}, oidctest.ErrLeft
	}
	b, err := io.ReadAll(resp.Body)
	return oidctest.Page{URL: resp.Request.URL.String(), Status: resp.StatusCode, Body: string(b), Header: resp.Header}, err
}

// TestAuthorityLogoutConfirmation: without a hint that names the session (none, one the
// authority did not sign, one of an earlier session), the holder is asked first, on a page
// without script whose form carries a CSRF token; the session ends only when the holder
// confirms. A post_logout_redirect_uri the client did not register, or a hint of another
// client, gets an error page and leaves the session.
func TestAuthorityLogoutConfirmation(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	h := e.holderFor(e.newAgent("alpha"), "alice.example.test", false)
	rp := e.newRP(map[string]any{"post_logout_redirect_uris": []string{loggedOutURI}, "client_name": "Shop"})
	other := e.newRP(map[string]any{"post_logout_redirect_uris": []string{"https://other.test/bye"}})
	first := e.login(rp, h, nil)

	// An earlier session's ID token: log out, log in again.
	p, err := h.Get(e.logoutURL(url.Values{"id_token_hint": {idTokenOf(t, first)}}))
	if err != nil || p.Status != http.StatusOK || p.Title() != "You are logged out" {
		t.Fatalf("logout without a redirect: %v, page %d %q", err, p.Status, p.Title())
	}
	e.login(rp, h, nil)

	forged := forgedIDToken(t, e.issuer, rp.OAuth.ClientID)
	for name, params := range map[string]url.Values{
		"no hint":          {"client_id": {rp.OAuth.ClientID}, "post_logout_redirect_uri": {loggedOutURI}, "state": {"st-2"}},
		"forged hint":      {"id_token_hint": {forged}, "client_id": {rp.OAuth.ClientID}, "post_logout_redirect_uri": {loggedOutURI}, "state": {"st-2"}},
		"earlier session":  {"id_token_hint": {idTokenOf(t, first)}, "post_logout_redirect_uri": {loggedOutURI}, "state": {"st-2"}},
		"nothing at all":   {},
		"client_id alone":  {"client_id": {rp.OAuth.ClientID}},
		"hint of a client": {"id_token_hint": {forged}},
	} {
		p, err := h.Get(e.logoutURL(params))
		if err != nil || p.Status != http.StatusOK || p.Title() != "Log out?" || p.Action() != "/logout/confirm" || p.Hidden().Get("csrf") == "" {
			t.Fatalf("%s: %v, page %d %q (%s), want the logout form", name, err, p.Status, p.Title(), p.URL)
		}
		if csp := p.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(p.Body, "<script") {
			t.Fatalf("%s: the logout page has CSP %q or a script", name, csp)
		}
	}
	e.wantSilentLogin(t, rp, h)

	for name, tc := range map[string]struct {
		params url.Values
		title  string
	}{
		"unregistered redirect": {
			url.Values{"client_id": {rp.OAuth.ClientID}, "post_logout_redirect_uri": {"https://rp.test/elsewhere"}},
			"The site that sent you here asked to return to an address it did not register.",
		},
		"another client's redirect": {
			url.Values{"client_id": {rp.OAuth.ClientID}, "post_logout_redirect_uri": {"https://other.test/bye"}},
			"The site that sent you here asked to return to an address it did not register.",
		},
		"redirect without a client": {
			url.Values{"post_logout_redirect_uri": {loggedOutURI}},
			"The sign-out request names no site to return to.",
		},
		"hint of another client": {
			url.Values{"id_token_hint": {idTokenOf(t, first)}, "client_id": {other.OAuth.ClientID}},
			"The sign-out request is not valid.",
		},
		"unknown client": {
			url.Values{"client_id": {"nobody"}},
			"The site that sent you here is not registered with this authority.",
		},
	} {
		p, err := h.Get(e.logoutURL(tc.params))
		if err != nil || p.Status != http.StatusBadRequest || p.Title() != tc.title {
			t.Fatalf("%s: %v, page %d %q (%s), want 400 %q", name, err, p.Status, p.Title(), p.URL, tc.title)
		}
	}
	e.wantSilentLogin(t, rp, h)

	form, err := h.Get(e.logoutURL(url.Values{"client_id": {rp.OAuth.ClientID}, "post_logout_redirect_uri": {loggedOutURI}, "state": {"st-3"}}))
	if err != nil || !strings.Contains(form.Body, "Shop") || !strings.Contains(form.Body, "alice.example.test") {
		t.Fatalf("the logout page does not name the client and the identifier: %v\n%s", err, form.Body)
	}
	// Another browser, or a page that forged the form, has no CSRF token of this browser.
	p, err = h.Submit(form, url.Values{"csrf": {"forged"}})
	oidctest.WantErrorPage(t, p, err, http.StatusForbidden, "This sign-out form has expired.")
	e.wantSilentLogin(t, rp, h)

	p, err = h.Submit(form, nil)
	wantBack(t, p, err, "st-3")
	e.wantLoginRequired(t, rp, h)
}

// forgedIDToken is an ID token for clientID in the issuer's name, signed with a key the
// authority never had.
func forgedIDToken(t *testing.T, issuer, clientID string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "forged"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	b, _ := json.Marshal(map[string]any{"iss": issuer, "aud": clientID, "sub": "someone", "iat": now, "exp": now + 600, "auth_time": now})
	jws, err := signer.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// backchannelEnv is an authority whose relying parties' backchannel_logout_uri is recv,
// on loopback.
func backchannelEnv(t *testing.T, recv *oidctest.LogoutReceiver, configure func(*authority.Config)) *authEnv {
	t.Helper()
	return newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) {
		c.AllowPrivateJWKSURI = true
		c.JWKSURIRootCAs = oidctest.Pool(recv.Server.Certificate().Raw)
		if configure != nil {
			configure(c)
		}
	}})
}

// waitFor waits until cond holds, failing t after a generous while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAuthorityBackchannelLogout: ending a session posts a logout token to each client the
// session logged in at that registered a backchannel_logout_uri, and to no other, from the
// queue that Run sends: the logout is answered while the client's server still holds the
// token's request. The token is valid as Back-Channel Logout §2.6 says (signed, typ
// logout+jwt, iss, aud, iat, exp, jti, the event, no nonce) and names the session (sid)
// and the holder (sub) as the RP's ID token did.
func TestAuthorityBackchannelLogout(t *testing.T) {
	recv := oidctest.StartLogoutReceiver()
	t.Cleanup(recv.Server.Close)
	e := backchannelEnv(t, recv, nil)
	h := e.holderFor(e.newAgent("alpha"), "alice.example.test", false)
	rp := e.newRP(map[string]any{
		"backchannel_logout_uri": recv.URL, "backchannel_logout_session_required": true,
		"post_logout_redirect_uris": []string{loggedOutURI},
	})
	if rp.Registration["backchannel_logout_uri"] != recv.URL || rp.Registration["backchannel_logout_session_required"] != true {
		t.Fatalf("registration answered %v", rp.Registration)
	}
	plain := e.newRP(nil)
	res := e.login(rp, h, nil)
	e.login(plain, h, nil)

	release := make(chan struct{})
	recv.HoldUntil(release)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		e.auth.Run(ctx, time.Hour)
	}()
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
		cancel()
		<-stopped
	})

	p, err := h.Get(e.logoutURL(url.Values{"id_token_hint": {idTokenOf(t, res)}, "post_logout_redirect_uri": {loggedOutURI}, "state": {"bye"}}))
	wantBack(t, p, err, "bye")
	waitFor(t, "the logout token's request", func() bool { return recv.Posts() == 1 })
	released = true
	close(release)
	waitFor(t, "the queue to empty", func() bool { return e.countRows("authority_backchannel_logouts", "") == 0 })
	tokens := recv.Tokens()
	if len(tokens) != 1 {
		t.Fatalf("the RP received %d logout tokens, want 1", len(tokens))
	}
	claims, err := rp.VerifyLogoutToken(tokens[0], e.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if claims["sid"] != res.Claims["sid"] || claims["sub"] != res.IDToken.Subject || claims["iss"] != e.issuer {
		t.Fatalf("logout token %v: want sid %v and sub %v of the ID token", claims, res.Claims["sid"], res.IDToken.Subject)
	}
	if _, err := plain.VerifyLogoutToken(tokens[0], e.clock.Now); err == nil {
		t.Fatal("the logout token verifies for another client")
	}
	e.wantLoginRequired(t, rp, h)
}

// TestAuthorityBackchannelLogoutRetries: a client that fails gets the logout again after a
// doubling backoff, BackchannelLogoutAttempts times in all, then never again; one that
// recovers gets it. The queue holds at most BackchannelLogoutQueue logouts: one more is
// dropped, and logged.
func TestAuthorityBackchannelLogoutRetries(t *testing.T) {
	recv := oidctest.StartLogoutReceiver()
	t.Cleanup(recv.Server.Close)
	recv.AnswerWith(http.StatusServiceUnavailable)
	e := backchannelEnv(t, recv, func(c *authority.Config) {
		c.BackchannelLogoutAttempts, c.BackchannelLogoutBackoff, c.BackchannelLogoutQueue = 3, 10*time.Second, 1
	})
	agent := e.newAgent("alpha")
	alice := e.holderFor(agent, "alice.example.test", false)
	bob := e.holderFor(agent, "bob.example.test", false)
	rp := e.newRP(map[string]any{"backchannel_logout_uri": recv.URL})
	logout := func(h *oidctest.Holder) {
		t.Helper()
		res := e.login(rp, h, nil)
		p, err := h.Get(e.logoutURL(url.Values{"id_token_hint": {idTokenOf(t, res)}}))
		if err != nil || p.Title() != "You are logged out" {
			t.Fatalf("logout: %v, page %d %q", err, p.Status, p.Title())
		}
	}
	ctx := context.Background()
	send := func(want int) {
		t.Helper()
		n, err := e.auth.SendBackchannelLogouts(ctx)
		if err != nil || n != want {
			t.Fatalf("SendBackchannelLogouts = %d, %v; want %d", n, err, want)
		}
	}

	logout(alice)
	logout(bob)
	if n := e.logs.count("authority: the back-channel logout queue is full; logouts dropped"); n != 1 {
		t.Errorf("%d log lines of a full queue, want 1", n)
	}
	if n := e.countRows("authority_backchannel_logouts", ""); n != 1 {
		t.Fatalf("%d logouts queued, want 1 (the bound)", n)
	}

	send(1)
	send(0)
	e.clock.Advance(9 * time.Second)
	send(0)
	e.clock.Advance(time.Second)
	send(1)
	e.clock.Advance(20 * time.Second)
	send(1)
	if posts := recv.Posts(); posts != 3 {
		t.Fatalf("the RP got %d posts, want 3 (the attempts)", posts)
	}
	e.clock.Advance(24 * time.Hour)
	send(0)
	if posts := recv.Posts(); posts != 3 {
		t.Fatalf("the RP got %d posts after the logout was given up, want 3", posts)
	}
	if n := e.countRows("authority_backchannel_logouts", ""); n != 0 {
		t.Fatalf("%d logouts queued after the last attempt, want none", n)
	}
	if n := e.logs.count("authority: back-channel logout given up"); n != 1 {
		t.Errorf("%d log lines of a logout given up, want 1", n)
	}

	// A client that recovers gets the next attempt.
	logout(alice)
	send(1)
	recv.AnswerWith(http.StatusOK)
	e.clock.Advance(10 * time.Second)
	send(1)
	tokens := recv.Tokens()
	if len(tokens) != 5 {
		t.Fatalf("the RP got %d logout tokens, want 5", len(tokens))
	}
	if _, err := rp.VerifyLogoutToken(tokens[4], e.clock.Now); err != nil {
		t.Fatal(err)
	}
	if n := e.countRows("authority_backchannel_logouts", ""); n != 0 {
		t.Fatalf("%d logouts queued after delivery, want none", n)
	}
}

// TestAuthorityLogoutDiscoveryAndRegistration: discovery names the end-session and
// revocation endpoints and the back-channel logout it does; registration keeps the logout
// metadata it can honour and refuses the rest, storing nothing.
func TestAuthorityLogoutDiscoveryAndRegistration(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	resp, err := e.rpClient.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	err = json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"end_session_endpoint":                       `"` + e.issuer + `/logout"`,
		"revocation_endpoint":                        `"` + e.issuer + `/revoke"`,
		"revocation_endpoint_auth_methods_supported": `["client_secret_basic","client_secret_post","none"]`,
		"backchannel_logout_supported":               "true",
		"backchannel_logout_session_supported":       "true",
		"frontchannel_logout_supported":              "false",
	} {
		if got, _ := json.Marshal(d[k]); string(got) != want {
			t.Errorf("discovery %s = %s, want %s", k, got, want)
		}
	}
	if claims, _ := json.Marshal(d["claims_supported"]); !strings.Contains(string(claims), `"sid"`) {
		t.Errorf("claims_supported %s lacks sid", claims)
	}

	for name, tc := range map[string]struct {
		md   map[string]any
		want string
	}{
		"http post-logout redirect":    {map[string]any{"post_logout_redirect_uris": []string{"http://rp.test/bye"}}, "post_logout_redirect_uris"},
		"post-logout with a fragment":  {map[string]any{"post_logout_redirect_uris": []string{"https://rp.test/bye#x"}}, "fragment"},
		"http back-channel":            {map[string]any{"backchannel_logout_uri": "http://rp.test/bcl"}, "backchannel_logout_uri must be an https URL"},
		"back-channel with a fragment": {map[string]any{"backchannel_logout_uri": "https://rp.test/bcl#x"}, "backchannel_logout_uri must be an https URL"},
		"back-channel on loopback":     {map[string]any{"backchannel_logout_uri": "https://127.0.0.1/bcl"}, "public address"},
		"session required alone":       {map[string]any{"backchannel_logout_session_required": true}, "needs a backchannel_logout_uri"},
	} {
		t.Run(name, func(t *testing.T) { registrationRefused(t, e, tc.md, tc.want) })
	}
}

// TestAuthorityLogoutIsNoRedirector: registration is open, so anyone can register a client
// whose post_logout_redirect_uri is their site. A browser sent to the end-session endpoint
// with that client_id and URI, but with no ID token the authority issued to the client, is
// not sent on: the logged-out page links to the site instead.
func TestAuthorityLogoutIsNoRedirector(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	const evil = "https://evil.test/phish"
	attacker := e.newRP(map[string]any{"post_logout_redirect_uris": []string{evil}, "client_name": "Evil"})
	victim := &oidctest.Holder{Client: oidctest.HTTPClient(e.roots, true)}
	p, err := victim.Get(e.logoutURL(url.Values{"client_id": {attacker.OAuth.ClientID}, "post_logout_redirect_uri": {evil}, "state": {"x"}}))
	if err != nil || p.Status != http.StatusOK || p.Title() != "You are logged out" || p.URL == evil+"?state=x" {
		t.Fatalf("a browser without a session was sent on: %v, page %d %q (%s)", err, p.Status, p.Title(), p.URL)
	}
	if !strings.Contains(p.Body, `href="`+evil+`?state=x"`) {
		t.Fatalf("the logged-out page does not link back to the client:\n%s", p.Body)
	}
}

// TestAuthorityResetLogsOutRelyingParties: new credentials set through a reset link end the
// identity's sessions, and the relying parties those sessions logged in at with a
// back-channel logout URI are told, as if the holder had logged out: after a compromise, the
// thief's sessions at those sites end too.
func TestAuthorityResetLogsOutRelyingParties(t *testing.T) {
	recv := oidctest.StartLogoutReceiver()
	t.Cleanup(recv.Server.Close)
	e := backchannelEnv(t, recv, nil)
	agent := e.newAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	rp := e.newRP(map[string]any{"backchannel_logout_uri": recv.URL})
	res := e.login(rp, h, nil)

	link, err := e.createLink(agent, "alice.example.test", registry.CredentialLinkReset)
	if err != nil {
		t.Fatal(err)
	}
	e.setCredentials("alice.example.test", link.URL, false)
	if n := e.countRows("authority_backchannel_logouts", ""); n != 1 {
		t.Fatalf("%d back-channel logouts queued by the reset, want 1", n)
	}
	if _, err := e.auth.SendBackchannelLogouts(context.Background()); err != nil {
		t.Fatal(err)
	}
	tokens := recv.Tokens()
	if len(tokens) != 1 {
		t.Fatalf("the RP received %d logout tokens, want 1", len(tokens))
	}
	claims, err := rp.VerifyLogoutToken(tokens[0], e.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if claims["sid"] != res.Claims["sid"] || claims["sub"] != res.IDToken.Subject {
		t.Fatalf("logout token %v: want the sid and sub of the ended session's ID token", claims)
	}
}
