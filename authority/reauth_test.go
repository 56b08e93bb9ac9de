package authority_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/internal/oidctest"
	"github.com/id4me/id4me-registry/registry"
)

// csrfFor returns the CSRF token h's browser would find in a form for purpose: a page an
// attacker can script in the holder's browser knows it as well, so refusals must not rest on
// it.
func (e *authEnv) csrfFor(h *oidctest.Holder, purpose string) string {
	e.t.Helper()
	u, _ := url.Parse(e.issuer)
	for _, c := range h.Client.Jar.Cookies(u) {
		if c.Name == "__Host-id4me-browser" {
			m := hmac.New(sha256.New, []byte(c.Value))
			m.Write([]byte(purpose))
			return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
		}
	}
	e.t.Fatal("the browser has no browser cookie")
	return ""
}

// TestAuthorityReauthenticationCannotBeSkipped: a request that demands a login (prompt=login,
// max_age=0, a max_age the session is older than, a login_hint naming another identifier)
// gets no code from a session that predates it, not even by going to the consent page
// directly, at its GET or its POST: every step sends the browser to the login page, and only
// after a login made during the request does it go on, with that login's auth_time.
func TestAuthorityReauthenticationCannotBeSkipped(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	agent := e.newAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	e.holderFor(agent, "bob.example.test", false)
	rp := e.newRP(nil)
	first := e.login(rp, h, nil)
	oldAuthTime := first.IDToken.IssuedAt.Unix()

	for _, tc := range []struct {
		name  string
		extra map[string]string
	}{
		{"prompt=login", map[string]string{"prompt": "login"}},
		{"max_age=0", map[string]string{"max_age": "0"}},
		{"max_age older than the session", map[string]string{"max_age": "30"}},
		{"login_hint of another identifier", map[string]string{"login_hint": "bob.example.test"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Advance(time.Minute)
			before := e.issued()
			req := rp.AuthRequest(tc.extra)
			p, err := h.Get(req.URL)
			if err != nil || p.Action() != "/login" {
				t.Fatalf("authorization: %v, page %d %q, want the login form", err, p.Status, p.Title())
			}
			id := p.Hidden().Get("req")

			// Straight to the consent page, skipping the login.
			p, err = h.Get(e.issuer + "/consent?req=" + url.QueryEscape(id))
			if err != nil || p.Action() != "/login" {
				t.Fatalf("consent page without the login: %v, page %d %q, want the login form", err, p.Status, p.Title())
			}
			// Straight to the consent form's POST, with the form's CSRF token.
			resp, err := h.Client.PostForm(e.issuer+"/consent", url.Values{
				"req": {id}, "csrf": {e.csrfFor(h, "consent"+id)}, "decision": {"allow"},
			})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if loc := resp.Request.URL.Path; resp.StatusCode != http.StatusOK || loc != "/login" {
				t.Fatalf("consent posted without the login: %d at %s, want the login page", resp.StatusCode, loc)
			}
			e.wantNothingIssued(t, before)

			// The login made now goes on, and its time is what the ID token says.
			cb, p, err := h.Login(e.issuer + "/login?req=" + url.QueryEscape(id))
			if err != nil {
				t.Fatalf("login: %v, page %d %q %q", err, p.Status, p.Title(), p.Alert())
			}
			res, err := rp.Finish(req, cb, e.clock.Now)
			if err != nil {
				t.Fatal(err)
			}
			if got := int64(res.Claims["auth_time"].(float64)); got != e.clock.Now().Unix() || got <= oldAuthTime {
				t.Fatalf("auth_time %d, want the new login's %d (the old one was %d)", got, e.clock.Now().Unix(), oldAuthTime)
			}
		})
	}

	// A login_hint naming the session's identifier, within max_age, needs no new login.
	req := rp.AuthRequest(map[string]string{"login_hint": "Alice.Example.Test", "max_age": "3600"})
	p, err := h.Get(req.URL)
	if !strings.HasPrefix(p.URL, oidctest.RedirectURI+"?code=") {
		t.Fatalf("a request the session serves: %v, page %d %q (%s), want a code", err, p.Status, p.Title(), p.URL)
	}
}

// TestAuthorityCodeIsUsedOnlyByItsClient: the token endpoint uses a code only once the
// client, its authentication, the redirect URI and PKCE check out, so a stranger presenting
// it (another client, a wrong verifier, a wrong redirect URI, two authentication methods at
// once) neither gets tokens nor burns it; the client's own request then works, and the same
// client presenting it again revokes what it gave.
func TestAuthorityCodeIsUsedOnlyByItsClient(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	agent := e.newAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	rp := e.newRP(nil)
	stranger := e.newRP(map[string]any{"redirect_uris": []string{"https://evil.test/cb"}})
	req, code := e.authCode(rp, h, nil)
	before := e.issued()

	for _, tc := range []struct {
		name   string
		status int
		err    string
		change func(r *oidctest.TokenRequest)
	}{
		{"another client", http.StatusBadRequest, "invalid_grant", func(r *oidctest.TokenRequest) {
			r.Basic = []string{stranger.OAuth.ClientID, stranger.OAuth.ClientSecret}
		}},
		{"another client, its redirect URI", http.StatusBadRequest, "invalid_grant", func(r *oidctest.TokenRequest) {
			r.Basic = []string{stranger.OAuth.ClientID, stranger.OAuth.ClientSecret}
			r.Form.Set("redirect_uri", "https://evil.test/cb")
			r.Form.Del("code_verifier")
		}},
		{"wrong verifier", http.StatusBadRequest, "invalid_grant", func(r *oidctest.TokenRequest) { r.Form.Set("code_verifier", strings.Repeat("B", 43)) }},
		{"wrong redirect URI", http.StatusBadRequest, "invalid_grant", func(r *oidctest.TokenRequest) { r.Form.Set("redirect_uri", "https://rp.test/other") }},
		{"Basic and client_secret in the body", http.StatusBadRequest, "invalid_request", func(r *oidctest.TokenRequest) {
			r.Form.Set("client_secret", r.Basic[1])
		}},
		{"Basic and another client_id in the body", http.StatusBadRequest, "invalid_request", func(r *oidctest.TokenRequest) {
			r.Form.Set("client_id", stranger.OAuth.ClientID)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rp.Redemption(req, code)
			tc.change(&r)
			status, m, _ := e.postToken(r)
			if status != tc.status || m["error"] != tc.err || m["access_token"] != nil {
				t.Fatalf("%d %v, want %d %s", status, m, tc.status, tc.err)
			}
			e.wantNothingIssued(t, before)
		})
	}

	// The client's own request, with client_id in the body beside Basic as some libraries
	// send it, works after all those.
	r := rp.Redemption(req, code)
	r.Form.Set("client_id", rp.OAuth.ClientID)
	status, m, _ := e.postToken(r)
	if status != http.StatusOK || m["access_token"] == nil {
		t.Fatalf("the client's request after the strangers': %d %v, want the tokens", status, m)
	}
	access := m["access_token"].(string)
	if s, _ := e.userinfoStatus(access); s != http.StatusOK {
		t.Fatalf("userinfo with the token: %d", s)
	}
	// A stranger presenting the used code revokes nothing.
	r = rp.Redemption(req, code)
	r.Basic = []string{stranger.OAuth.ClientID, stranger.OAuth.ClientSecret}
	if status, m, _ := e.postToken(r); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Fatalf("a stranger with the used code: %d %v, want invalid_grant", status, m)
	}
	if s, _ := e.userinfoStatus(access); s != http.StatusOK {
		t.Fatalf("userinfo after a stranger presented the used code: %d, want the token still good", s)
	}
	// The client presenting it again revokes what it gave.
	if status, m, _ := e.postToken(rp.Redemption(req, code)); status != http.StatusBadRequest || m["error"] != "invalid_grant" ||
		!strings.Contains(m["error_description"].(string), "revoked") {
		t.Fatalf("the client's replay: %d %v, want invalid_grant saying its tokens are revoked", status, m)
	}
	e.wantUserinfoRefused(t, access)
}

// sessionHook is the authority's store with a hook run before a session is stored.
type sessionHook struct {
	authority.Store
	before *atomic.Pointer[func()]
}

func (s sessionHook) CreateSession(ctx context.Context, ss authority.Session) error {
	if f := s.before.Swap(nil); f != nil {
		(*f)()
	}
	return s.Store.CreateSession(ctx, ss)
}

// TestAuthorityResetDuringLoginEndsIt: a login whose old password was checked just before new
// credentials were set, and whose session would be stored just after, does not survive the
// reset.
func TestAuthorityResetDuringLoginEndsIt(t *testing.T) {
	var hook atomic.Pointer[func()]
	e := newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) {
		c.Store = sessionHook{Store: c.Store, before: &hook}
	}})
	agent := e.newAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	rp := e.newRP(nil)
	link, err := e.createLink(agent, "alice.example.test", registry.CredentialLinkReset)
	if err != nil {
		t.Fatal(err)
	}
	reset := func() {
		owner := &oidctest.Holder{Client: oidctest.HTTPClient(e.roots, true), Identifier: h.Identifier, Password: "a brand new passphrase " + rand.Text()}
		if p, err := owner.SetCredentials(link.URL, false, e.totpCode); err != nil || p.Title() != "Your credentials are set" {
			t.Errorf("the reset: %v, page %d %q %q", err, p.Status, p.Title(), p.Alert())
		}
	}
	hook.Store(&reset)

	p, err := e.submitLogin(rp, h, h.Identifier, h.Password)
	oidctest.WantErrorPage(t, p, err, http.StatusConflict, "Your credentials changed while you were logging in.")
	if hook.Load() != nil {
		t.Fatal("the reset did not run during the login")
	}
	if e.hasSession(h) || e.countRows("authority_sessions", "") != 0 {
		t.Fatal("a session of the old credentials survived the reset")
	}
	none := rp.AuthRequest(map[string]string{"prompt": "none"})
	p, err = h.Get(none.URL)
	e.wantCallbackError(t, p, err, oidctest.RedirectURI, none.State, "login_required")
}
