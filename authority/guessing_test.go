package authority_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/internal/oidctest"
	"github.com/id4me/id4me-registry/registry"
)

// guesser is a browser at one source that posts wrong passwords for an identifier on one
// login form, again and again.
type guesser struct {
	h    *oidctest.Holder
	form oidctest.Page
}

func (e *authEnv) newGuesser(rp *oidctest.RP, source, identifier string) *guesser {
	e.t.Helper()
	h := &oidctest.Holder{Client: oidctest.HTTPClientFrom(e.roots, source), Identifier: identifier, Password: "wrong guess " + source}
	return &guesser{h: h, form: oidctest.LoginForm(e.t, h, rp)}
}

// guess posts a wrong password and reports whether it was checked (401) rather than held
// back (429).
func (g *guesser) guess(t *testing.T) bool {
	t.Helper()
	p, err := g.h.Submit(g.form, url.Values{"identifier": {g.h.Identifier}, "password": {g.h.Password}})
	switch {
	case err != nil:
		t.Fatalf("guess: %v", err)
	case p.Status == http.StatusUnauthorized && p.Alert() == alertWrongCredentials:
		return true
	case p.Status != http.StatusTooManyRequests:
		t.Fatalf("guess: page %d %q %q", p.Status, p.Title(), p.Alert())
	}
	return false
}

// loginAttempt posts the holder's identifier and password (or another password) on a new
// login form in a new browser at source and reports whether it went through; a refusal
// must be a wrong password or a wait.
func (e *authEnv) loginAttempt(rp *oidctest.RP, source string, h *oidctest.Holder, password string) (bool, oidctest.Page) {
	e.t.Helper()
	b := &oidctest.Holder{Client: oidctest.HTTPClientFrom(e.roots, source), Identifier: h.Identifier, Password: password}
	p, err := e.submitLogin(rp, b, h.Identifier, password)
	if errors.Is(err, oidctest.ErrLeft) || (err == nil && p.Action() == "/consent") {
		return true, p
	}
	if err != nil || (p.Status != http.StatusUnauthorized && p.Status != http.StatusTooManyRequests) {
		e.t.Fatalf("login attempt: %v, page %d %q %q", err, p.Status, p.Title(), p.Alert())
	}
	return false, p
}

// TestAuthorityHolderGetsInDuringSustainedGuessing: guessers at four sources post a wrong
// password for the holder's identifier every second, with the default budgets, and go on
// being heard only as the budgets allow; meanwhile the holder, each minute in a new browser
// at a source that has not been guessing, gets in at the first try (once after mistyping
// the password) without waiting at all.
func TestAuthorityHolderGetsInDuringSustainedGuessing(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	agent := e.newAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	rp := e.newRP(nil)
	e.clock.Advance(time.Minute) // the credential page's post used the holder's source's bucket
	var guessers []*guesser
	for k := range 4 {
		guessers = append(guessers, e.newGuesser(rp, fmt.Sprintf("127.0.0.%d", 10+k), h.Identifier))
	}
	const attack = 15 * time.Minute
	checked, polls, logins := 0, 0, 0
	for second := range int(attack / time.Second) {
		for _, g := range guessers {
			polls++
			if g.guess(t) {
				checked++
			}
		}
		if second%60 == 59 {
			password := h.Password
			if second == 119 {
				// Mistyped first, then right.
				if ok, p := e.loginAttempt(rp, "127.0.0.20", h, "correct horse battery stapel"); ok || p.Alert() != alertWrongCredentials {
					t.Fatalf("minute %d: a mistyped password: %v %q, want it refused as wrong", second/60+1, ok, p.Alert())
				}
			}
			if ok, p := e.loginAttempt(rp, "127.0.0.20", h, password); !ok {
				t.Fatalf("minute %d of the guessing: the holder on a new device was refused: %d %q", second/60+1, p.Status, p.Alert())
			}
			logins++
		}
		e.clock.Advance(time.Second)
	}
	// The guessers were heard for their sources' free attempts, then only as often as the
	// identifier's budget lets sources that used theirs up: after its free attempts, once
	// per wait of 1 s, doubling, up to 5 minutes.
	allowance, spent := 0, time.Duration(0)
	b := authority.DefaultIdentifierBackoff
	for n := 4 * authority.DefaultSourceBackoff.Free; spent <= attack; n++ {
		allowance++
		spent += b.Delay(n)
	}
	if limit := 4*authority.DefaultSourceBackoff.Free + allowance; checked > limit {
		t.Fatalf("%d of %d guesses were checked, want at most %d", checked, polls, limit)
	}
	t.Logf("%v of guessing from 4 sources, each once a second: %d guesses, %d checked, the others told to wait; the holder on a new device logged in %d times out of %d, each at the first try with the right password, after 0 s of waiting",
		attack, polls, checked, logins, logins)
}

// TestAuthorityHolderLoginsCountOnce: a holder's logins, with a second factor, from new
// devices at several sources, take nothing from the identifier's budget: the right password
// gives back the attempt it took, and the code counts against the budget of codes, not the
// identifier's again. A guessing source that has used up its own free attempts finds the
// identifier's budget as it left it.
func TestAuthorityHolderLoginsCountOnce(t *testing.T) {
	e := newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) {
		// Two free attempts per source: the password and the code of one login.
		c.SourceBackoff = authority.Backoff{Free: 2, Base: time.Second, Max: time.Minute, Forget: time.Hour}
		c.IdentifierBackoff = authority.Backoff{Free: 3, Base: time.Minute, Max: time.Hour, Forget: 2 * time.Hour}
		c.LoginRate, c.LoginBurst = 1000, 1000
	}})
	agent := e.newAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", true)
	rp := e.newRP(nil)
	g := e.newGuesser(rp, "127.0.0.2", h.Identifier)
	for k := range 2 {
		if !g.guess(t) {
			t.Fatalf("the guesser's free attempt %d was held back", k+1)
		}
	}
	for k := range 5 {
		// A new step, so that each login has a code of its own.
		e.clock.Advance(30 * time.Second)
		b := &oidctest.Holder{Client: oidctest.HTTPClientFrom(e.roots, fmt.Sprintf("127.0.0.%d", 30+k)), Identifier: h.Identifier, Password: h.Password, TOTP: h.TOTP}
		e.login(rp, b, map[string]string{"prompt": "login"})
	}
	// The identifier's budget counts the guesser's two attempts: one of its three free
	// ones is left, so the guesser, its own wait over, is heard once, and then waits.
	if !g.guess(t) {
		t.Fatal("a guessing source was held back by the identifier's budget after the holder's logins: they were counted")
	}
	e.clock.Advance(10 * time.Second) // the guesser's own wait, not the identifier's minute
	if g.guess(t) {
		t.Fatal("the guesser was heard past the identifier's free attempts")
	}
}

// TestAuthorityCredentialLinkMakesAKnownDevice: a holder whose source has been guessing (a
// network shared with whoever guesses) is held back there; a reset link from the agent,
// used in that browser, makes it a known device, which logs in at once, whatever the source
// and the identifier's budget say.
func TestAuthorityCredentialLinkMakesAKnownDevice(t *testing.T) {
	e := newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) {
		c.LoginRate, c.LoginBurst = 1000, 1000
	}})
	agent := e.newAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	rp := e.newRP(nil)
	g := e.newGuesser(rp, "127.0.0.2", h.Identifier)
	for range 8 {
		g.guess(t)
	}
	waitRe := regexp.MustCompile(`^Too many attempts\. Wait \d+ seconds and try again\.$`)
	browser := &oidctest.Holder{Client: oidctest.HTTPClientFrom(e.roots, "127.0.0.2"), Identifier: h.Identifier, Password: h.Password}
	p, err := e.submitLogin(rp, browser, h.Identifier, h.Password)
	if err != nil || p.Status != http.StatusTooManyRequests || !waitRe.MatchString(p.Alert()) {
		t.Fatalf("the holder at the guessing source: %v, page %d %q, want to be told to wait", err, p.Status, p.Alert())
	}
	link, err := e.createLink(agent, h.Identifier, registry.CredentialLinkReset)
	if err != nil {
		t.Fatal(err)
	}
	browser.Password = "another horse battery staple"
	e.wantCredentialsSet(browser.SetCredentials(link.URL, false, e.totpCode))
	for range 3 {
		g.guess(t)
	}
	p, err = e.submitLogin(rp, browser, h.Identifier, browser.Password)
	oidctest.WantPastLogin(t, p, err)
}

// TestAuthorityIdentifierBackoffHoldsAll: with the stricter setting, guessing spread over
// many sources is slowed from its first attempts: once the identifier's budget has counted its
// free attempts, a fresh source waits too; the holder's known device still gets in at once.
func TestAuthorityIdentifierBackoffHoldsAll(t *testing.T) {
	e := newAuthEnv(t, envOptions{configureAuthority: func(c *authority.Config) {
		c.SourceBackoff = authority.Backoff{Free: 3, Base: time.Second, Max: time.Minute, Forget: time.Hour}
		c.IdentifierBackoff = authority.Backoff{Free: 4, Base: time.Minute, Max: time.Hour, Forget: 2 * time.Hour}
		c.IdentifierBackoffHoldsAll = true
		c.LoginRate, c.LoginBurst = 1000, 1000
	}})
	agent := e.newAgent("alpha")
	h := e.holderFor(agent, "alice.example.test", false)
	rp := e.newRP(nil)
	e.login(rp, h, nil) // the holder's browser is a known device
	// Four sources, one guess each: the identifier's four free attempts.
	for k := range 4 {
		if ok, p := e.loginAttempt(rp, fmt.Sprintf("127.0.0.%d", 30+k), h, "guess"); ok || p.Alert() != alertWrongCredentials {
			t.Fatalf("guess %d: %v %q, want it checked and refused", k+1, ok, p.Alert())
		}
	}
	// A fresh source now waits, the holder's new device too.
	for _, src := range []string{"127.0.0.40", "127.0.0.41"} {
		if ok, p := e.loginAttempt(rp, src, h, h.Password); ok || p.Status != http.StatusTooManyRequests {
			t.Fatalf("a fresh source %s after the identifier's free attempts: %v %d %q, want told to wait", src, ok, p.Status, p.Alert())
		}
	}
	// The known device is not.
	p, err := e.submitLogin(rp, h, h.Identifier, h.Password)
	oidctest.WantPastLogin(t, p, err)
}
