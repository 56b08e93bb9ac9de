package server_test

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/internal/oidctest"
	"github.com/id4me/id4me-registry/internal/testenv"
)

// TestLogoutAndRevocationThroughTheServer: the whole stack as the binary wires it (the
// authority at the root of the server's HTTPS listener): an RP-initiated logout ends the
// session (prompt=none then gets login_required) and the RP's backchannel_logout_uri, a
// real HTTPS server on loopback, receives a valid logout token; another RP revokes its
// access token, and userinfo refuses it. The operator's metrics count both.
func TestLogoutAndRevocationThroughTheServer(t *testing.T) {
	recv := oidctest.StartLogoutReceiver()
	t.Cleanup(recv.Server.Close)
	e := testenv.New(t, testenv.Options{Authority: true, ConfigureAuthority: func(c *authority.Config) {
		c.AllowPrivateJWKSURI = true
		c.JWKSURIRootCAs = oidctest.Pool(recv.Server.Certificate().Raw)
	}})
	agent, claims := e.StartAgent("alpha")
	h := e.HolderFor(agent, "alice.example.test", false)
	claims.Claims["alice.example.test"] = map[string]any{"email": "alice@example.test"}
	const back = "https://rp.test/logged-out"
	rp := e.NewRP(map[string]any{"backchannel_logout_uri": recv.URL, "post_logout_redirect_uris": []string{back}})
	other := e.NewRP(nil)

	access := e.Login(other, h, map[string]string{"claims": emailClaims}).Token.AccessToken
	req, _ := http.NewRequest(http.MethodPost, e.Issuer+"/revoke", strings.NewReader(url.Values{"token": {access}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(other.OAuth.ClientID, other.OAuth.ClientSecret)
	if status, m, _ := oidctest.SendJSON(t, e.RPClient, req); status != http.StatusOK {
		t.Fatalf("revocation: %d %v", status, m)
	}
	oidctest.WantUserinfoRefused(t, e.RPClient, e.Issuer, access)

	res := e.Login(rp, h, nil)
	hint, _ := res.Token.Extra("id_token").(string)
	p, err := h.Get(e.Issuer + "/logout?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {back}, "state": {"s"}}.Encode())
	if !errors.Is(err, oidctest.ErrLeft) || p.URL != back+"?state=s" {
		t.Fatalf("logout: %v, page %d %q (%s)", err, p.Status, p.Title(), p.URL)
	}
	nr := rp.AuthRequest(map[string]string{"prompt": "none"})
	p, err = h.Get(nr.URL)
	oidctest.WantCallbackError(t, p, err, e.Issuer, oidctest.RedirectURI, nr.State, "login_required")

	if n, err := e.Auth.SendBackchannelLogouts(t.Context()); err != nil || n != 1 {
		t.Fatalf("SendBackchannelLogouts = %d, %v; want 1", n, err)
	}
	tokens := recv.Tokens()
	if len(tokens) != 1 {
		t.Fatalf("the RP received %d logout tokens, want 1", len(tokens))
	}
	lt, err := rp.VerifyLogoutToken(tokens[0], e.Clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if lt["sid"] != res.Claims["sid"] || lt["sub"] != res.IDToken.Subject {
		t.Fatalf("logout token %v does not name the ID token's session and subject", lt)
	}

	resp, err := http.Get(e.Ops.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`id4me_authority_events_total{event="logout",outcome="303"} 1`,
		`id4me_authority_events_total{event="revocation",outcome="200"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
