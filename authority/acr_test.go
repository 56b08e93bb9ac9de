package authority_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/internal/oidctest"
)

// TestACRValues: the ID token's acr says what the login reached (a password: the
// authority's pwd class; with TOTP: mfa); a session of a password login does not answer a
// request for a phishing-resistant one (prompt=none gets login_required), and a password
// login cannot meet it either: the login page says a passkey is needed, and no code is
// issued. An essential acr claim request counts as acr_values. Unknown acr_values are ignored, as OpenID Connect Core §3.1.2.1 lets an OP do.
func TestACRValues(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	a := e.newAgent("alpha")
	rp := e.newRP(nil)
	h := e.holderFor(a, "acr.example.test", false)
	if got := e.login(rp, h, map[string]string{"acr_values": "urn:example:unknown"}).Claims["acr"]; got != "urn:id4me:acr:pwd" {
		t.Fatalf("acr of a password login %v, want urn:id4me:acr:pwd", got)
	}
	// The session answers a request for what it reached, or less.
	if got := e.login(rp, h, map[string]string{"prompt": "none", "acr_values": "urn:id4me:acr:pwd"}).Claims["acr"]; got != "urn:id4me:acr:pwd" {
		t.Fatalf("acr of the session's answer %v", got)
	}
	for _, acr := range []string{"phr", "urn:id4me:acr:mfa phr"} {
		none := rp.AuthRequest(map[string]string{"prompt": "none", "acr_values": acr})
		p, err := h.Get(none.URL)
		e.wantCallbackError(t, p, err, oidctest.RedirectURI, none.State, "login_required")
	}
	// An essential acr in the claims parameter (Core §5.5.1.1) asks as acr_values does; a
	// voluntary one asks for nothing.
	essential := rp.AuthRequest(map[string]string{"prompt": "none", "claims": `{"id_token":{"acr":{"essential":true,"values":["phr"]}}}`})
	p, err := h.Get(essential.URL)
	e.wantCallbackError(t, p, err, oidctest.RedirectURI, essential.State, "login_required")
	if got := e.login(rp, h, map[string]string{"prompt": "none", "claims": `{"id_token":{"acr":{"values":["phr"]}}}`}).Claims["acr"]; got != "urn:id4me:acr:pwd" {
		t.Fatalf("acr of the session's answer to a voluntary acr request %v", got)
	}
	before := e.issued()
	req := rp.AuthRequest(map[string]string{"acr_values": "phr"})
	p, err = h.Get(req.URL)
	if err != nil || !strings.Contains(p.Body, "asks for a login with a passkey") {
		t.Fatalf("login page for acr_values=phr: %v %q", err, p.Body)
	}
	p, err = h.Submit(p, map[string][]string{"identifier": {h.Identifier}, "password": {h.Password}})
	if err != nil || p.Status != http.StatusUnauthorized || !strings.Contains(p.Alert(), "asks you to log in with a passkey") {
		t.Fatalf("a password login for acr_values=phr: %v, status %d, %q", err, p.Status, p.Alert())
	}
	e.wantNothingIssued(t, before)

	t2 := e.holderFor(a, "acr-totp.example.test", true)
	e.clock.Advance(30 * time.Second) // the enrolment used the current code
	if got := e.login(rp, t2, map[string]string{"acr_values": "urn:id4me:acr:mfa"}).Claims["acr"]; got != "urn:id4me:acr:mfa" {
		t.Fatalf("acr of a password and TOTP login %v, want urn:id4me:acr:mfa", got)
	}
}
