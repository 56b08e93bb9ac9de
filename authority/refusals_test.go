package authority_test

import (
	"context"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/id4me/id4me-registry/agent/accesstoken"
	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/internal/oidctest"
	"github.com/id4me/id4me-registry/registry"
)

// TestAuthorityWrongCredentials: a wrong password, an unknown identifier and a malformed one
// read the same, and log nobody in.
func TestAuthorityWrongCredentials(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	agent := e.newAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	rp := e.newRP(nil)
	before := e.issued()
	for _, tc := range []struct{ name, identifier, password string }{
		{"wrong password", "alice.example.test", "not the password at all"},
		{"wrong password, identifier in other case", "Alice.Example.Test", "not the password at all"},
		{"unknown identifier", "nobody.example.test", h.Password},
		{"malformed identifier", "not an identifier!", h.Password},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := e.submitLogin(rp, h, tc.identifier, tc.password)
			oidctest.WantRefusedPage(t, p, err, http.StatusUnauthorized, alertWrongCredentials)
			if p.Action() != "/login" {
				t.Fatalf("the refusal is not the login form again: %q", p.Action())
			}
			if e.hasSession(h) {
				t.Fatal("a refused login left a session cookie")
			}
			e.wantNothingIssued(t, before)
		})
	}
	p, err := e.submitLogin(rp, h, h.Identifier, h.Password)
	oidctest.WantPastLogin(t, p, err)
}

// TestAuthorityNobodyCanLockAHolderOut: failed logins slow further attempts down but never
// lock a holder out. One source's failures slow that source only; guessing spread over many
// sources slows the sources that have used up their own free attempts, and neither a source
// that has not been guessing nor the holder's own browser; an identifier that does not exist
// answers exactly like one that does, and no answer counts attempts or speaks of a lock.
func TestAuthorityNobodyCanLockAHolderOut(t *testing.T) {
	e := newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) {
		c.SourceBackoff = authority.Backoff{Free: 3, Base: time.Second, Max: time.Minute, Forget: time.Hour}
		c.IdentifierBackoff = authority.Backoff{Free: 6, Base: time.Second, Max: 30 * time.Second, Forget: time.Hour}
		// The per-source flood limit is not what this is about.
		c.LoginRate, c.LoginBurst = 1000, 1000
	}})
	agent := e.newAgent("alpha")
	home := e.holderFor(agent, "alice.example.test", false)
	rp := e.newRP(nil)
	// The holder's own browser has logged in before: it is a known device.
	e.login(rp, home, nil)
	from := func(source string) *oidctest.Holder {
		return &oidctest.Holder{Client: oidctest.HTTPClientFrom(e.roots, source), Identifier: home.Identifier, Password: home.Password}
	}
	waitRe := regexp.MustCompile(`^Too many attempts\. Wait (\d+) seconds and try again\.$`)
	type answer struct {
		status int
		alert  string
	}
	attempt := func(h *oidctest.Holder, identifier, password string) answer {
		t.Helper()
		p, err := e.submitLogin(rp, h, identifier, password)
		if errors.Is(err, oidctest.ErrLeft) || (err == nil && p.Action() == "/consent") {
			return answer{http.StatusOK, ""}
		}
		if err != nil {
			t.Fatalf("login attempt: %v", err)
		}
		for _, word := range []string{"lock", "more attempt", "more failed"} {
			if strings.Contains(strings.ToLower(p.Alert()), word) {
				t.Fatalf("the answer %q speaks of %q", p.Alert(), word)
			}
		}
		return answer{p.Status, p.Alert()}
	}
	wrong := answer{http.StatusUnauthorized, alertWrongCredentials}
	wait := func(seconds int) answer {
		return answer{http.StatusTooManyRequests, fmt.Sprintf("Too many attempts. Wait %d seconds and try again.", seconds)}
	}
	before := e.issued()

	// One source guessing: three free attempts, then a second's wait, then two. The same for
	// an identifier that does not exist, from another source.
	for _, tc := range []struct{ source, identifier string }{
		{"127.0.0.2", "alice.example.test"},
		{"127.0.0.3", "nobody.example.test"},
	} {
		attacker := from(tc.source)
		var got []answer
		for range 4 {
			got = append(got, attempt(attacker, tc.identifier, "guess"))
		}
		e.clock.Advance(time.Second)
		got = append(got, attempt(attacker, tc.identifier, "guess"), attempt(attacker, tc.identifier, "guess"))
		e.clock.Advance(-time.Second)
		want := []answer{wrong, wrong, wrong, wait(1), wrong, wait(2)}
		if !slices.Equal(got, want) {
			t.Fatalf("%s guessing %s: answers %v, want %v", tc.source, tc.identifier, got, want)
		}
	}
	e.wantNothingIssued(t, before)
	if e.hasSession(from("127.0.0.2")) {
		t.Fatal("a refused attempt left a session")
	}
	e.clock.Advance(time.Second)

	// The holder, on a new device elsewhere, is not slowed by that source's guesses.
	if got := attempt(from("127.0.0.4"), home.Identifier, home.Password); got.status != http.StatusOK {
		t.Fatalf("holder from another source after one source's guessing: %v, want logged in", got)
	}

	// Guesses from many sources: two more use up their own free attempts, which the
	// identifier's budget counts too (four by 127.0.0.2, three each here; the holder's
	// logins gave theirs back): past its six free attempts, it holds back every source that
	// has used up its own.
	for _, src := range []string{"127.0.0.5", "127.0.0.6"} {
		for range 3 {
			if got := attempt(from(src), "alice.example.test", "guess"); got != wrong {
				t.Fatalf("%s, within its free attempts: %v, want %v", src, got, wrong)
			}
		}
	}
	// A holder on a new device, at a source that has not been guessing, is not held back at
	// all, nor is the holder's own browser.
	if got := attempt(from("127.0.0.7"), home.Identifier, home.Password); got.status != http.StatusOK {
		t.Fatalf("holder on a new device during distributed guessing: %v, want logged in at once", got)
	}
	if got := attempt(home, home.Identifier, home.Password); got.status != http.StatusOK {
		t.Fatalf("holder on a known device during distributed guessing: %v, want logged in", got)
	}
	// A guessing source, its own wait over, waits for the identifier's budget: slowed,
	// never locked out.
	e.clock.Advance(time.Second)
	got := attempt(from("127.0.0.5"), "alice.example.test", "guess")
	m := waitRe.FindStringSubmatch(got.alert)
	if got.status != http.StatusTooManyRequests || m == nil {
		t.Fatalf("a guessing source, its own wait over, while the identifier's budget waits: %v, want to be told to wait", got)
	}
	n, _ := strconv.Atoi(m[1])
	if n < 2 || n > 30 {
		t.Fatalf("the wait is %d seconds, want the identifier's, at most its 30", n)
	}
	e.clock.Advance(time.Duration(n) * time.Second)
	if got := attempt(from("127.0.0.5"), "alice.example.test", "guess"); got != wrong {
		t.Fatalf("the guessing source after the wait: %v, want %v", got, wrong)
	}
}

// TestAuthorityLoginThrottle: login attempts from one source are throttled whatever the
// identifier, with a message that says how long to wait.
func TestAuthorityLoginThrottle(t *testing.T) {
	e := newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) {
		c.LoginRate = 1.0 / 60
		c.LoginBurst = 2
	}})
	agent := e.newAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	rp := e.newRP(nil)
	// The credential page took a token from the bucket: fill it again.
	e.clock.Advance(2 * time.Minute)
	before := e.issued()

	for _, id := range []string{"alice.example.test", "nobody.example.test"} {
		p, err := e.submitLogin(rp, h, id, "not the password at all")
		oidctest.WantRefusedPage(t, p, err, http.StatusUnauthorized, alertWrongCredentials)
	}
	tooMany := regexp.MustCompile(`^Too many attempts from your network\. Wait (\d+) seconds and try again\.$`)
	p, err := e.submitLogin(rp, h, h.Identifier, h.Password)
	if err != nil || p.Status != http.StatusTooManyRequests || !tooMany.MatchString(p.Alert()) {
		t.Fatalf("third attempt: %v, page %d %q, want 429 and the wait", err, p.Status, p.Alert())
	}
	if wait := tooMany.FindStringSubmatch(p.Alert())[1]; wait != "60" && wait != "61" {
		t.Fatalf("the page says to wait %s seconds, want a minute", wait)
	}
	if e.hasSession(h) {
		t.Fatal("a throttled login got a session cookie")
	}
	e.wantNothingIssued(t, before)

	e.clock.Advance(61 * time.Second)
	p, err = e.submitLogin(rp, h, h.Identifier, h.Password)
	oidctest.WantPastLogin(t, p, err)
}

// TestAuthorityTOTPRefusals: a wrong, malformed or too old code is refused, and so is a good
// code used a second time.
func TestAuthorityTOTPRefusals(t *testing.T) {
	e := newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) {
		// Every code tried below is a second attempt after the right password.
		c.SourceBackoff = authority.Backoff{Free: 100, Base: time.Second, Max: time.Minute, Forget: time.Hour}
	}})
	agent := e.newAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", true)
	rp := e.newRP(nil)
	// The code that confirmed the enrolment is used: start with the next one.
	e.clock.Advance(30 * time.Second)
	totpPage := func() oidctest.Page {
		t.Helper()
		p, err := e.submitLogin(rp, h, h.Identifier, h.Password)
		if err != nil || p.Status != http.StatusOK || p.Action() != "/login/totp" {
			t.Fatalf("password step: %v, page %d %q %q, want the code form", err, p.Status, p.Title(), p.Alert())
		}
		return p
	}
	codeAt := func(d time.Duration) string {
		e.clock.Advance(d)
		defer e.clock.Advance(-d)
		return h.TOTP()
	}
	current := h.TOTP()
	wrong := "000000"
	if current == wrong {
		wrong = "111111"
	}
	before := e.issued()
	for _, tc := range []struct{ name, code string }{
		{"wrong code", wrong},
		{"too short", current[:5]},
		{"letters", "abcdef"},
		{"two steps old", codeAt(-60 * time.Second)},
		{"two steps ahead", codeAt(60 * time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.code == current {
				t.Skip("the code happens to equal the current one")
			}
			p, err := h.Submit(totpPage(), url.Values{"code": {tc.code}})
			oidctest.WantRefusedPage(t, p, err, http.StatusUnauthorized, alertWrongCode)
			if p.Action() != "/login/totp" {
				t.Fatalf("the refusal is not the code form again: %q", p.Action())
			}
			if e.hasSession(h) {
				t.Fatal("a refused code left a session cookie")
			}
			e.wantNothingIssued(t, before)
		})
	}

	// The current code logs in once; within its step it is refused the second time.
	p, err := h.Submit(totpPage(), url.Values{"code": {current}})
	oidctest.WantPastLogin(t, p, err)
	sessions := e.countRows("authority_sessions", "")
	p, err = h.Submit(totpPage(), url.Values{"code": {current}})
	oidctest.WantRefusedPage(t, p, err, http.StatusUnauthorized, alertUsedCode)
	if n := e.countRows("authority_sessions", ""); n != sessions {
		t.Fatalf("a replayed code made a session: %d, %d before", n, sessions)
	}
	// The previous step's code, still within the drift window, is refused too: a later one
	// was used.
	p, err = h.Submit(totpPage(), url.Values{"code": {codeAt(-30 * time.Second)}})
	oidctest.WantRefusedPage(t, p, err, http.StatusUnauthorized, alertUsedCode)

	e.clock.Advance(30 * time.Second)
	p, err = h.Submit(totpPage(), url.Values{"code": {h.TOTP()}})
	oidctest.WantPastLogin(t, p, err)
}

// TestAuthorityCodeReplay: a code works once; used again it is refused and the access token
// of its first use stops working.
func TestAuthorityCodeReplay(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	agent := e.newAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	rp := e.newRP(nil)
	req, code := e.authCode(rp, h, nil)

	status, first, _ := e.postToken(rp.Redemption(req, code))
	access, _ := first["access_token"].(string)
	if status != http.StatusOK || access == "" {
		t.Fatalf("first use: %d %v", status, first)
	}
	if status, _ := e.userinfoStatus(access); status != http.StatusOK {
		t.Fatalf("userinfo with the first token: %d", status)
	}
	before := e.issued()
	status, again, _ := e.postToken(rp.Redemption(req, code))
	if status != http.StatusBadRequest || again["error"] != "invalid_grant" || again["access_token"] != nil {
		t.Fatalf("second use: %d %v, want 400 invalid_grant", status, again)
	}
	e.wantUserinfoRefused(t, access)
	e.wantNothingIssued(t, before)
	// And a third time: still refused, nothing comes back to life.
	if status, m, _ := e.postToken(rp.Redemption(req, code)); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Fatalf("third use: %d %v", status, m)
	}
}

// TestAuthorityAuthorizeRefusals: until the client and its redirect URI are known good, a bad
// request gets an error page and never a redirect; after that, the error goes back to the
// client.
func TestAuthorityAuthorizeRefusals(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	rp := e.newRP(nil)
	h := &oidctest.Holder{Client: oidctest.HTTPClient(e.roots, true)}
	const (
		notRegistered = "The site that sent you here asked to return to an address it did not register."
		unknownClient = "The site that sent you here is not registered with this authority."
		noClient      = "The sign-in request names no client."
	)
	before := e.issued()
	requests := e.countRows("authority_auth_requests", "")
	for _, tc := range []struct {
		name   string
		change func(q url.Values)
		title  string
	}{
		{"redirect URI of another path", func(q url.Values) { q.Set("redirect_uri", oidctest.RedirectURI+"/other") }, notRegistered},
		{"redirect URI with a query added", func(q url.Values) { q.Set("redirect_uri", oidctest.RedirectURI+"?next=/admin") }, notRegistered},
		{"redirect URI with a trailing slash", func(q url.Values) { q.Set("redirect_uri", oidctest.RedirectURI+"/") }, notRegistered},
		{"redirect URI in other case", func(q url.Values) { q.Set("redirect_uri", strings.ToUpper(oidctest.RedirectURI)) }, notRegistered},
		{"unregistered redirect URI", func(q url.Values) { q.Set("redirect_uri", "https://evil.test/callback") }, notRegistered},
		{"no redirect URI", func(q url.Values) { q.Del("redirect_uri") }, notRegistered},
		{"unknown client_id", func(q url.Values) { q.Set("client_id", "no-such-client") }, unknownClient},
		{"no client_id", func(q url.Values) { q.Del("client_id") }, noClient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, _ := url.Parse(rp.AuthRequest(nil).URL)
			q := u.Query()
			tc.change(q)
			u.RawQuery = q.Encode()
			p, err := h.Get(u.String())
			oidctest.WantErrorPage(t, p, err, http.StatusBadRequest, tc.title)
		})
	}
	for _, tc := range []struct {
		name   string
		change func(q url.Values)
		code   string
	}{
		{"no code_challenge_method", func(q url.Values) { q.Del("code_challenge_method") }, "invalid_request"},
		{"code_challenge_method without a challenge", func(q url.Values) { q.Del("code_challenge") }, "invalid_request"},
		{"code_challenge not base64url", func(q url.Values) { q.Set("code_challenge", strings.Repeat("+", 43)) }, "invalid_request"},
		{"plain PKCE", func(q url.Values) { q.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"response_type token", func(q url.Values) { q.Set("response_type", "token") }, "unsupported_response_type"},
		{"no openid scope", func(q url.Values) { q.Set("scope", "email") }, "invalid_scope"},
		{"request object", func(q url.Values) { q.Set("request", "eyJhbGciOiJub25lIn0.e30.") }, "request_not_supported"},
		{"prompt none with login", func(q url.Values) { q.Set("prompt", "none login") }, "invalid_request"},
		{"claims not JSON", func(q url.Values) { q.Set("claims", "{email") }, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := rp.AuthRequest(nil)
			u, _ := url.Parse(req.URL)
			q := u.Query()
			tc.change(q)
			u.RawQuery = q.Encode()
			p, err := h.Get(u.String())
			e.wantCallbackError(t, p, err, oidctest.RedirectURI, req.State, tc.code)
		})
	}
	e.wantNothingIssued(t, before)
	if n := e.countRows("authority_auth_requests", ""); n != requests {
		t.Fatalf("refused requests were stored: %d, %d before", n, requests)
	}
}

// TestAuthorityTokenRefusals: the token endpoint checks the client, the redirect URI and the
// PKCE verifier; a refusal issues nothing.
func TestAuthorityTokenRefusals(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	agent := e.newAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	const otherRedirect = "https://rp.test/other-callback"
	basic := e.newRP(map[string]any{"redirect_uris": []string{oidctest.RedirectURI, otherRedirect}})
	post := e.newRP(map[string]any{"token_endpoint_auth_method": "client_secret_post"})
	other := e.newRP(nil)

	// Client authentication fails before the code is looked at: the code still works after.
	t.Run("client authentication", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			rp   *oidctest.RP
			auth func(r *oidctest.TokenRequest, rp *oidctest.RP)
		}{
			{"wrong secret, basic", basic, func(r *oidctest.TokenRequest, rp *oidctest.RP) { r.Basic[1] = "not-the-secret" }},
			{"wrong secret, post", post, func(r *oidctest.TokenRequest, rp *oidctest.RP) { r.Form.Set("client_secret", "not-the-secret") }},
			{"another client's secret", basic, func(r *oidctest.TokenRequest, rp *oidctest.RP) { r.Basic[1] = other.OAuth.ClientSecret }},
			{"unknown client", basic, func(r *oidctest.TokenRequest, rp *oidctest.RP) { r.Basic = []string{"no-such-client", "secret"} }},
			{"no authentication", basic, func(r *oidctest.TokenRequest, rp *oidctest.RP) { r.Basic = nil }},
			{"post client using basic", post, func(r *oidctest.TokenRequest, rp *oidctest.RP) {
				r.Basic = []string{r.Form.Get("client_id"), r.Form.Get("client_secret")}
				r.Form.Del("client_id")
				r.Form.Del("client_secret")
			}},
			{"basic client using post", basic, func(r *oidctest.TokenRequest, rp *oidctest.RP) {
				r.Form.Set("client_id", r.Basic[0])
				r.Form.Set("client_secret", r.Basic[1])
				r.Basic = nil
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req, code := e.authCode(tc.rp, h, nil)
				before := e.issued()
				r := tc.rp.Redemption(req, code)
				tc.auth(&r, tc.rp)
				status, m, hdr := e.postToken(r)
				if status != http.StatusUnauthorized || m["error"] != "invalid_client" || m["access_token"] != nil {
					t.Fatalf("%d %v, want 401 invalid_client", status, m)
				}
				if !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic") {
					t.Fatalf("WWW-Authenticate %q", hdr.Get("WWW-Authenticate"))
				}
				e.wantNothingIssued(t, before)
				if status, m, _ := e.postToken(tc.rp.Redemption(req, code)); status != http.StatusOK {
					t.Fatalf("the code after a failed client authentication: %d %v", status, m)
				}
			})
		}
	})

	// A request that names the code wrongly is refused before the code is used: a stranger
	// who holds the code cannot burn it, and the client's own request still works after.
	t.Run("grant", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			rp     *oidctest.RP
			change func(r *oidctest.TokenRequest)
		}{
			{"redirect_uri of the other registered one", basic, func(r *oidctest.TokenRequest) { r.Form.Set("redirect_uri", otherRedirect) }},
			{"no redirect_uri", basic, func(r *oidctest.TokenRequest) { r.Form.Del("redirect_uri") }},
			{"wrong code_verifier", basic, func(r *oidctest.TokenRequest) { r.Form.Set("code_verifier", strings.Repeat("A", 43)) }},
			{"code_challenge as the verifier", post, func(r *oidctest.TokenRequest) {
				sum := sha256.Sum256([]byte(r.Form.Get("code_verifier")))
				r.Form.Set("code_verifier", base64.RawURLEncoding.EncodeToString(sum[:]))
			}},
			{"no code_verifier", post, func(r *oidctest.TokenRequest) { r.Form.Del("code_verifier") }},
			{"code of another client", basic, func(r *oidctest.TokenRequest) { r.Basic = []string{other.OAuth.ClientID, other.OAuth.ClientSecret} }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req, code := e.authCode(tc.rp, h, nil)
				before := e.issued()
				r := tc.rp.Redemption(req, code)
				tc.change(&r)
				status, m, _ := e.postToken(r)
				if status != http.StatusBadRequest || m["error"] != "invalid_grant" || m["access_token"] != nil {
					t.Fatalf("%d %v, want 400 invalid_grant", status, m)
				}
				e.wantNothingIssued(t, before)
				if status, m, _ := e.postToken(tc.rp.Redemption(req, code)); status != http.StatusOK || m["access_token"] == nil {
					t.Fatalf("the right request after a refused one: %d %v, want the tokens", status, m)
				}
			})
		}
	})

	t.Run("unknown code", func(t *testing.T) {
		req, _ := e.authCode(basic, h, nil)
		status, m, _ := e.postToken(basic.Redemption(req, "no-such-code"))
		if status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Fatalf("%d %v, want 400 invalid_grant", status, m)
		}
	})
	t.Run("unsupported grant type", func(t *testing.T) {
		req, code := e.authCode(basic, h, nil)
		r := basic.Redemption(req, code)
		r.Form.Set("grant_type", "refresh_token")
		status, m, _ := e.postToken(r)
		if status != http.StatusBadRequest || m["error"] != "unsupported_grant_type" {
			t.Fatalf("%d %v, want 400 unsupported_grant_type", status, m)
		}
	})
	t.Run("expired code", func(t *testing.T) {
		req, code := e.authCode(basic, h, nil)
		e.clock.Advance(61 * time.Second)
		before := e.issued()
		status, m, _ := e.postToken(basic.Redemption(req, code))
		if status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Fatalf("%d %v, want 400 invalid_grant", status, m)
		}
		e.wantNothingIssued(t, before)
	})
}

// TestAuthorityCredentialLinkRefusals: a link works once and until it expires; a setup link
// is refused once a password is set; a reset link replaces the password.
func TestAuthorityCredentialLinkRefusals(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	agent := e.newAgent("alpha")
	setup := e.registerForLink(agent, "alice.example.test")
	h := e.setCredentials("alice.example.test", setup, false)
	rp := e.newRP(nil)
	browser := &oidctest.Holder{Client: oidctest.HTTPClient(e.roots, true)}

	t.Run("used link", func(t *testing.T) {
		p, err := browser.Get(setup)
		oidctest.WantErrorPage(t, p, err, http.StatusGone, "This link has been used already.")
		if p.Action() != "" {
			t.Fatal("a used link shows a form")
		}
	})
	t.Run("unknown link", func(t *testing.T) {
		p, err := browser.Get(e.issuer + "/credential/" + strings.Repeat("A", 43))
		oidctest.WantErrorPage(t, p, err, http.StatusNotFound, "This link is not valid.")
	})
	t.Run("setup link once a password is set", func(t *testing.T) {
		_, err := e.createLink(agent, "alice.example.test", registry.CredentialLinkSetup)
		wantRefusal(t, err, registry.KindFailedPrecondition, "CREDENTIALS_ALREADY_SET")
	})
	t.Run("expired link", func(t *testing.T) {
		link, err := e.createLink(agent, "alice.example.test", registry.CredentialLinkReset)
		if err != nil {
			t.Fatal(err)
		}
		// A page opened before the link expires cannot be posted after.
		page, err := browser.Get(link.URL)
		if err != nil || page.Status != http.StatusOK {
			t.Fatalf("fresh reset link: %v, page %d %q", err, page.Status, page.Title())
		}
		e.clock.Advance(link.ExpireTime.Sub(e.clock.Now()) + time.Second)
		p, err := browser.Get(link.URL)
		oidctest.WantErrorPage(t, p, err, http.StatusGone, "This link has expired.")
		p, err = browser.Submit(page, url.Values{"password": {"a brand new password 1234"}, "confirm": {"a brand new password 1234"}})
		oidctest.WantErrorPage(t, p, err, http.StatusGone, "This link has expired.")
		// The password is as it was.
		p, err = e.submitLogin(rp, h, h.Identifier, h.Password)
		oidctest.WantPastLogin(t, p, err)
	})
	t.Run("reset", func(t *testing.T) {
		link, err := e.createLink(agent, "alice.example.test", registry.CredentialLinkReset)
		if err != nil {
			t.Fatal(err)
		}
		if link.Purpose != registry.CredentialLinkReset {
			t.Fatalf("link %v", link)
		}
		renewed := e.setCredentials("alice.example.test", link.URL, false)
		p, err := e.submitLogin(rp, h, h.Identifier, h.Password)
		oidctest.WantRefusedPage(t, p, err, http.StatusUnauthorized, alertWrongCredentials)
		p, err = e.submitLogin(rp, renewed, renewed.Identifier, renewed.Password)
		oidctest.WantPastLogin(t, p, err)
		// Used: a second holder cannot set a password with it.
		p, err = browser.Get(link.URL)
		oidctest.WantErrorPage(t, p, err, http.StatusGone, "This link has been used already.")
	})
}

// TestAuthorityHeldIdentifier: an identifier on hold or pending delete cannot log in (which
// only the right password is told), its sessions no longer serve, and its codes and access
// tokens stop working.
func TestAuthorityHeldIdentifier(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reason string
		apply  func(e *authEnv, a registry.Agent)
	}{
		{"on hold", "IDENTIFIER_ON_HOLD", func(e *authEnv, a registry.Agent) {
			e.serverStatus("alice.example.test", "abuse report", registry.StatusServerHold)
		}},
		{"pending delete", "IDENTIFIER_PENDING_DELETE", func(e *authEnv, a registry.Agent) { e.deleteIdentifier(a, "alice.example.test") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newAuthEnv(t, envOptions{})
			agent := e.newAgent("alpha")
			h := e.holderFor(agent, "alice.example.test", false)
			rp := e.newRP(nil)
			res := e.login(rp, h, nil)
			// A code not yet redeemed and a reset link not yet used, both from before.
			req, code := e.authCode(rp, h, nil)
			link, err := e.createLink(agent, "alice.example.test", registry.CredentialLinkReset)
			if err != nil {
				t.Fatal(err)
			}

			tc.apply(e, agent)
			before := e.issued()
			// A wrong password reads as for any other identifier: nothing says it is held.
			p, err := e.submitLogin(rp, h, h.Identifier, "not the password at all")
			oidctest.WantRefusedPage(t, p, err, http.StatusUnauthorized, alertWrongCredentials)

			e.wantUserinfoRefused(t, res.Token.AccessToken)
			if status, m, _ := e.postToken(rp.Redemption(req, code)); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
				t.Fatalf("a code from before: %d %v, want 400 invalid_grant", status, m)
			}
			// The session does not answer silently any more.
			none := rp.AuthRequest(map[string]string{"prompt": "none"})
			p, err = h.Get(none.URL)
			e.wantCallbackError(t, p, err, oidctest.RedirectURI, none.State, "login_required")
			p, err = h.Get(rp.AuthRequest(nil).URL)
			if err != nil || p.Action() != "/login" {
				t.Fatalf("authorization with the session: %v, page %d %q, want the login form", err, p.Status, p.Title())
			}
			p, err = h.Submit(p, url.Values{"identifier": {h.Identifier}, "password": {h.Password}})
			oidctest.WantRefusedPage(t, p, err, http.StatusUnauthorized, alertCannotLogIn)
			// Credentials cannot be changed meanwhile.
			p, err = h.Get(link.URL)
			oidctest.WantErrorPage(t, p, err, http.StatusGone, "This link is no longer valid.")
			_, err = e.createLink(agent, "alice.example.test", registry.CredentialLinkReset)
			wantRefusal(t, err, registry.KindFailedPrecondition, tc.reason)
			e.wantNothingIssued(t, before)
		})
	}

	t.Run("hold lifted", func(t *testing.T) {
		e := newAuthEnv(t, envOptions{})
		agent := e.newAgent("alpha")
		h := e.holderFor(agent, "alice.example.test", false)
		rp := e.newRP(nil)
		e.serverStatus("alice.example.test", "abuse report", registry.StatusServerHold)
		p, err := e.submitLogin(rp, h, h.Identifier, h.Password)
		oidctest.WantRefusedPage(t, p, err, http.StatusUnauthorized, alertCannotLogIn)
		e.serverStatus("alice.example.test", "cleared")
		p, err = e.submitLogin(rp, h, h.Identifier, h.Password)
		oidctest.WantPastLogin(t, p, err)
	})
}

// TestAuthorityWrongPasswordRevealsNothing: with a wrong password, an identifier on hold,
// one pending delete and one whose holder has set no password yet are answered exactly as an
// identifier that does not exist: the same status, message and page. The page's hint tells a
// holder without a password where to get one.
func TestAuthorityWrongPasswordRevealsNothing(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	agent := e.newAgent("alpha")
	held := e.holderFor(agent, "held.example.test", false)
	deleted := e.holderFor(agent, "deleted.example.test", false)
	e.registerForLink(agent, "fresh.example.test")
	e.serverStatus("held.example.test", "abuse report", registry.StatusServerHold)
	e.deleteIdentifier(agent, "deleted.example.test")
	rp := e.newRP(nil)
	// Each from a source of its own, so that no budget tells them apart.
	answer := func(source, identifier, password string) (int, string, string) {
		t.Helper()
		b := &oidctest.Holder{Client: oidctest.HTTPClientFrom(e.roots, source)}
		p, err := e.submitLogin(rp, b, identifier, password)
		if err != nil {
			t.Fatalf("%s: %v", identifier, err)
		}
		// The page, but for the request's own hidden fields and the identifier typed.
		body := regexp.MustCompile(`name="(req|csrf)" value="[^"]*"`).ReplaceAllString(p.Body, `name="$1"`)
		body = strings.ReplaceAll(body, identifier, "IDENTIFIER")
		return p.Status, p.Alert(), body
	}
	wantStatus, wantAlert, wantBody := answer("127.0.0.2", "nobody.example.test", "not the password at all")
	if wantStatus != http.StatusUnauthorized || wantAlert != alertWrongCredentials {
		t.Fatalf("unknown identifier: %d %q", wantStatus, wantAlert)
	}
	if !strings.Contains(wantBody, "Forgot your password, or never set one? Your agent (where you registered the identifier) can send you a link to set it.") {
		t.Fatal("the login page does not say where a password is set")
	}
	for _, tc := range []struct{ name, source, identifier, password string }{
		{"on hold", "127.0.0.3", "held.example.test", "not the password at all"},
		{"pending delete", "127.0.0.4", "deleted.example.test", "not the password at all"},
		{"no password yet", "127.0.0.5", "fresh.example.test", "not the password at all"},
		{"no password yet, and none given that could be", "127.0.0.6", "fresh.example.test", "correct horse battery staple"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, alert, body := answer(tc.source, tc.identifier, tc.password)
			if status != wantStatus || alert != wantAlert || body != wantBody {
				t.Fatalf("%d %q, want %d %q as for an unknown identifier; page differs: %v", status, alert, wantStatus, wantAlert, body != wantBody)
			}
		})
	}
	// The right password learns that the identifier cannot log in at present.
	for source, h := range map[string]*oidctest.Holder{"127.0.0.7": held, "127.0.0.8": deleted} {
		if status, alert, _ := answer(source, h.Identifier, h.Password); status != http.StatusUnauthorized || alert != alertCannotLogIn {
			t.Fatalf("%s with the right password: %d %q, want 401 %q", h.Identifier, status, alert, alertCannotLogIn)
		}
	}
}

// TestAuthorityPromptNone: prompt=none answers at once: login_required without a session,
// consent_required without a remembered consent, a code with both.
func TestAuthorityPromptNone(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	agent := e.newAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	rp := e.newRP(nil)
	other := e.newRP(map[string]any{"redirect_uris": []string{"https://other-rp.test/cb"}})
	none := map[string]string{"prompt": "none"}
	before := e.issued()

	req := rp.AuthRequest(none)
	p, err := h.Get(req.URL)
	e.wantCallbackError(t, p, err, oidctest.RedirectURI, req.State, "login_required")
	e.wantNothingIssued(t, before)

	e.login(rp, h, nil)
	before = e.issued()
	req = other.AuthRequest(none)
	p, err = h.Get(req.URL)
	e.wantCallbackError(t, p, err, "https://other-rp.test/cb", req.State, "consent_required")
	// More than the remembered consent covers is not consented either.
	req = rp.AuthRequest(map[string]string{"prompt": "none", "claims": emailClaims})
	p, err = h.Get(req.URL)
	e.wantCallbackError(t, p, err, oidctest.RedirectURI, req.State, "consent_required")
	e.wantNothingIssued(t, before)

	req = rp.AuthRequest(none)
	p, err = h.Get(req.URL)
	if !errors.Is(err, oidctest.ErrLeft) || !strings.HasPrefix(p.URL, oidctest.RedirectURI+"?code=") {
		t.Fatalf("prompt=none with session and consent: %v %s, want a code", err, p.URL)
	}
}

// postRegistration posts body with contentType to the registration endpoint.
func (e *authEnv) postRegistration(contentType, body string) (int, map[string]any, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.issuer+"/register", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	return oidctest.SendJSON(e.t, e.rpClient, req)
}

// registrationRefusals are registrations the authority cannot honour, with the RFC 7591
// error code of each; an update (RFC 7592) with the same metadata is refused the same way.
var registrationRefusals = []struct {
	name, contentType, body, code string
}{
	{"http redirect URI for a web client", "application/json", `{"redirect_uris":["http://rp.test/cb"]}`, "invalid_redirect_uri"},
	{"http loopback redirect URI for a web client", "application/json", `{"redirect_uris":["http://127.0.0.1:8080/cb"]}`, "invalid_redirect_uri"},
	{"http redirect URI for a native client off loopback", "application/json", `{"application_type":"native","redirect_uris":["http://rp.test/cb"]}`, "invalid_redirect_uri"},
	{"fragment in a redirect URI", "application/json", `{"redirect_uris":["https://rp.test/cb#top"]}`, "invalid_redirect_uri"},
	{"empty fragment in a redirect URI", "application/json", `{"redirect_uris":["https://rp.test/cb#"]}`, "invalid_redirect_uri"},
	{"relative redirect URI", "application/json", `{"redirect_uris":["/cb"]}`, "invalid_redirect_uri"},
	{"javascript redirect URI", "application/json", `{"redirect_uris":["javascript:alert(1)"]}`, "invalid_redirect_uri"},
	{"no redirect URIs", "application/json", `{"client_name":"Shop"}`, "invalid_redirect_uri"},
	{"ID tokens signed with none", "application/json", `{"redirect_uris":["https://rp.test/cb"],"id_token_signed_response_alg":"none"}`, "invalid_client_metadata"},
	{"ID tokens signed with HS256", "application/json", `{"redirect_uris":["https://rp.test/cb"],"id_token_signed_response_alg":"HS256"}`, "invalid_client_metadata"},
	{"userinfo signed with none", "application/json", `{"redirect_uris":["https://rp.test/cb"],"userinfo_signed_response_alg":"none"}`, "invalid_client_metadata"},
	{"userinfo signed with HS256", "application/json", `{"redirect_uris":["https://rp.test/cb"],"userinfo_signed_response_alg":"HS256"}`, "invalid_client_metadata"},
	{"ID token encryption with RSA-OAEP (SHA-1)", "application/json", `{"redirect_uris":["https://rp.test/cb"],"id_token_encrypted_response_alg":"RSA-OAEP"}`, "invalid_client_metadata"},
	{"userinfo encryption with RSA-OAEP (SHA-1)", "application/json", `{"redirect_uris":["https://rp.test/cb"],"userinfo_encrypted_response_alg":"RSA-OAEP"}`, "invalid_client_metadata"},
	{"token auth method private_key_jwt", "application/json", `{"redirect_uris":["https://rp.test/cb"],"token_endpoint_auth_method":"private_key_jwt"}`, "invalid_client_metadata"},
	{"implicit response type", "application/json", `{"redirect_uris":["https://rp.test/cb"],"response_types":["id_token"]}`, "invalid_client_metadata"},
	{"body not JSON", "application/json", `redirect_uris=https://rp.test/cb`, "invalid_client_metadata"},
	{"body a JSON array", "application/json", `[{"redirect_uris":["https://rp.test/cb"]}]`, "invalid_client_metadata"},
	{"form content type", "application/x-www-form-urlencoded", `{"redirect_uris":["https://rp.test/cb"]}`, "invalid_client_metadata"},
}

// TestAuthorityRegistrationRefusals: what the authority cannot honour is refused with the
// RFC 7591 error codes, and registers nothing.
func TestAuthorityRegistrationRefusals(t *testing.T) {
	e := newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) { c.RegistrationBurst = 100 }})
	const jsonType = "application/json"
	before := e.issued()
	for _, tc := range registrationRefusals {
		t.Run(tc.name, func(t *testing.T) {
			status, m, hdr := e.postRegistration(tc.contentType, tc.body)
			if status != http.StatusBadRequest || m["error"] != tc.code || m["client_id"] != nil {
				t.Fatalf("%d %v, want 400 %s", status, m, tc.code)
			}
			if hdr.Get("Cache-Control") != "no-store" {
				t.Fatalf("Cache-Control %q", hdr.Get("Cache-Control"))
			}
			e.wantNothingIssued(t, before)
		})
	}
	// The control: a native client may use http on loopback.
	if status, m, _ := e.postRegistration(jsonType, `{"application_type":"native","redirect_uris":["http://127.0.0.1:8080/cb"]}`); status != http.StatusCreated {
		t.Fatalf("native loopback client: %d %v", status, m)
	}
}

// TestAuthorityRegistrationRateLimit: registrations from one source are limited.
func TestAuthorityRegistrationRateLimit(t *testing.T) {
	e := newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) {
		c.RegistrationRate = 1.0 / 3600
		c.RegistrationBurst = 2
	}})
	body := `{"redirect_uris":["https://rp.test/cb"]}`
	for k := range 2 {
		if status, m, _ := e.postRegistration("application/json", body); status != http.StatusCreated {
			t.Fatalf("registration %d: %d %v", k+1, status, m)
		}
	}
	before := e.issued()
	status, m, hdr := e.postRegistration("application/json", body)
	if status != http.StatusTooManyRequests || m["client_id"] != nil || m["error"] == nil || hdr.Get("Retry-After") == "" {
		t.Fatalf("third registration: %d %v Retry-After %q, want 429", status, m, hdr.Get("Retry-After"))
	}
	e.wantNothingIssued(t, before)
	e.clock.Advance(time.Hour)
	if status, m, _ := e.postRegistration("application/json", body); status != http.StatusCreated {
		t.Fatalf("registration an hour later: %d %v", status, m)
	}

	// An infinite rate (--registration-rate off) does not limit.
	unlimited := newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) {
		c.RegistrationRate = math.Inf(1)
		c.RegistrationBurst = 1
	}})
	for k := range 30 {
		if status, m, _ := unlimited.postRegistration("application/json", body); status != http.StatusCreated {
			t.Fatalf("registration %d without a limit: %d %v", k+1, status, m)
		}
	}
}

// forgedJWS builds a compact JWS by hand: a header, a payload (base64url already) and the
// signature sign makes over the signing input (nil: none).
func forgedJWS(t *testing.T, header map[string]any, payload string, sign func([]byte) []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString(h) + "." + payload
	var sig []byte
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// TestAuthorityForgedAgentTokens: an agent access token re-signed with alg "none", or with
// HS256 keyed with the authority's RSA public key, is refused by the agent-side verifier,
// by go-oidc through the authority's JWKS, and by the test agent; the genuine token passes
// all three.
func TestAuthorityForgedAgentTokens(t *testing.T) {
	ctx := context.Background()
	e := newAuthEnv(t, envOptions{})
	agent, claims := e.startAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	claims.Claims["alice.example.test"] = map[string]any{"email": "alice@example.test"}
	rp := e.newRP(nil)
	res := e.login(rp, h, map[string]string{"claims": emailClaims})
	src, _ := res.Userinfo["_claim_sources"].(map[string]any)["src1"].(map[string]any)
	genuine, _ := src["access_token"].(string)
	if genuine == "" {
		t.Fatalf("userinfo %v has no agent access token", res.Userinfo)
	}

	ours, err := accesstoken.NewVerifier(ctx, e.rpClient, e.issuer, claims.Issuer, accesstoken.WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, e.rpClient), e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	theirs := provider.Verifier(&oidc.Config{ClientID: claims.Issuer, Now: e.clock.Now, SupportedSigningAlgs: []string{"RS256", "ES256"}})
	// agentAnswers asks the test agent's claims endpoint with a token.
	agentAnswers := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, claims.Endpoint, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := e.rpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}

	got, err := ours.Verify(ctx, genuine)
	if err != nil {
		t.Fatalf("the genuine token: %v", err)
	}
	if got.Issuer != e.issuer || got.Subject != res.Claims["sub"] || got.Identifier != "alice.example.test" ||
		got.ClientID != rp.OAuth.ClientID || strings.Join(got.Claims, " ") != "email name" || got.Expiry.Sub(got.IssuedAt) != 600*time.Second {
		t.Fatalf("the genuine token verified as %+v", got)
	}
	if _, err := theirs.Verify(oidc.ClientContext(ctx, e.rpClient), genuine); err != nil {
		t.Fatalf("go-oidc refused the genuine token: %v", err)
	}
	if status := agentAnswers(genuine); status != http.StatusOK {
		t.Fatalf("the agent answered the genuine token with %d", status)
	}
	accepted := len(claims.Tokens())

	parts := strings.Split(genuine, ".")
	var header map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if err := json.Unmarshal(hb, &header); err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	resp, err := e.rpClient.Get(e.issuer + "/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var rsaKey jose.JSONWebKey
	for _, k := range set.Keys {
		if k.Algorithm == "RS256" {
			rsaKey = k
		}
	}
	pub, ok := rsaKey.Key.(*rsa.PublicKey)
	if !ok {
		t.Fatalf("no RS256 key in the JWKS %v", set)
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := rsaKey.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]byte{
		"PEM":       pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}),
		"PEM PKCS1": pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(pub)}),
		"DER":       spki,
		"JWK":       jwk,
	}
	forged := map[string]string{
		"alg none":          forgedJWS(t, map[string]any{"alg": "none", "typ": "JWT"}, parts[1], nil),
		"alg none with kid": forgedJWS(t, map[string]any{"alg": "none", "typ": "JWT", "kid": rsaKey.KeyID}, parts[1], nil),
		"alg none, genuine signature kept": forgedJWS(t, map[string]any{"alg": "none", "typ": "JWT", "kid": header["kid"]}, parts[1], nil) +
			parts[2],
	}
	for form, secret := range secrets {
		forged["HS256 keyed with the RSA public key "+form] = forgedJWS(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": rsaKey.KeyID}, parts[1],
			func(input []byte) []byte {
				m := hmac.New(sha256.New, secret)
				m.Write(input)
				return m.Sum(nil)
			})
	}
	for name, token := range forged {
		t.Run(name, func(t *testing.T) {
			if _, err := ours.Verify(ctx, token); !errors.Is(err, accesstoken.ErrInvalid) {
				t.Fatalf("AccessTokenVerifier: %v, want a refusal", err)
			}
			if _, err := theirs.Verify(oidc.ClientContext(ctx, e.rpClient), token); err == nil {
				t.Fatal("go-oidc accepted it")
			}
			if status := agentAnswers(token); status != http.StatusUnauthorized {
				t.Fatalf("the agent answered %d, want 401", status)
			}
			// Nor is it a token of the authority's own: userinfo does not know it.
			e.wantUserinfoRefused(t, token)
		})
	}
	if n := len(claims.Tokens()); n != accepted {
		t.Fatalf("the agent accepted %d tokens, %d before the forgeries", n, accepted)
	}
}

// TestAuthorityBodiesAreCapped: a body over 64 KiB posted to the token, registration,
// authorization, login or consent endpoint is refused with 413 before anything is read or
// stored; a body within the cap still works.
func TestAuthorityBodiesAreCapped(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	agent := e.newAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	rp := e.newRP(nil)
	before := e.issued()
	clients := e.countRows("authority_clients", "")
	huge := strings.Repeat("a", 65<<10)

	for _, tc := range []struct {
		path, contentType, body string
		// json: an OAuth error answer; else an error page.
		json bool
	}{
		{"/token", "application/x-www-form-urlencoded", "grant_type=authorization_code&code=" + huge, true},
		{"/register", "application/json", `{"redirect_uris":["https://rp.test/cb"],"client_name":"` + huge + `"}`, true},
		{"/authorize", "application/x-www-form-urlencoded", "client_id=" + rp.OAuth.ClientID + "&state=" + huge, false},
		{"/login", "application/x-www-form-urlencoded", "identifier=alice.example.test&password=" + huge, false},
		{"/consent", "application/x-www-form-urlencoded", "decision=allow&req=" + huge, false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := h.Client.Post(e.issuer+tc.path, tc.contentType, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d, want 413", resp.StatusCode)
			}
			if tc.json {
				var m map[string]any
				if err := json.Unmarshal(body, &m); err != nil || m["error"] == nil {
					t.Fatalf("answer %s, want an OAuth error", body)
				}
			} else if p := (oidctest.Page{Status: resp.StatusCode, Body: string(body)}); p.Title() != "The form could not be read." {
				t.Fatalf("page %q, want the error page", p.Title())
			}
			e.wantNothingIssued(t, before)
			if n := e.countRows("authority_clients", ""); n != clients {
				t.Fatalf("%d clients, %d before", n, clients)
			}
		})
	}
	// Within the cap a login goes through as before.
	p, err := e.submitLogin(rp, h, h.Identifier, h.Password)
	oidctest.WantPastLogin(t, p, err)
}
