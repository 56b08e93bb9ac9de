package server_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/internal/oidctest"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
)

// titleVoidLink is the one page every void credential link gets: nothing of why.
const titleVoidLink = "This link is no longer valid."

// setAgentState suspends or resumes agent a as the operator.
func (e *env) setAgentState(a testAgent, state registryv1.Agent_State) {
	e.t.Helper()
	_, err := e.adminAPI.UpdateAgent(as(e.admin), &registryv1.UpdateAgentRequest{
		Agent: &registryv1.Agent{Id: a.agent.Id, State: state}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}},
	})
	if err != nil {
		e.t.Fatalf("UpdateAgent(%s, %v): %v", a.agent.Id, state, err)
	}
}

// restoreIdentifier restores identifier as its sponsor a.
func (e *env) restoreIdentifier(a testAgent, identifier string) {
	e.t.Helper()
	if _, err := e.registry.RestoreIdentifier(a.ctx(), &registryv1.RestoreIdentifierRequest{Identifier: identifier}); err != nil {
		e.t.Fatalf("RestoreIdentifier(%s): %v", identifier, err)
	}
}

// holderCredential reads the stored credentials of identifier's holder.
func (e *authEnv) holderCredential(identifier string) authority.HolderCredential {
	e.t.Helper()
	c, err := e.store.Authority().GetHolderCredential(context.Background(), e.identityOf(identifier).ID)
	if err != nil {
		e.t.Fatalf("credentials of %s: %v", identifier, err)
	}
	return c
}

// TestCredentialLinkDiesWhenItsAgentStopsSponsoring: agent alpha makes a reset link for
// the holder of an identifier it sponsors, opens it, and even starts enrolling a TOTP
// secret on it. Then the identifier moves away, is deleted, put on hold, alpha is
// suspended, or a newer link is made; the undoing of it (a transfer back, a restore, a
// release, a resumption) revives nothing. The old link is refused, shown or posted, with
// one page that tells nothing of why; the holder's password and TOTP secret are as they
// were, alpha cannot log in with the password it chose, the holder can with theirs, and a
// link made by the agent that sponsors the identifier now works.
func TestCredentialLinkDiesWhenItsAgentStopsSponsoring(t *testing.T) {
	const name = "alice.example.test"
	for _, tc := range []struct {
		name string
		// void voids the link; undo, when set, undoes what void did.
		void, undo func(e *authEnv, alpha, beta testAgent)
		// sponsor is the agent that sponsors the identifier in the end.
		sponsor func(alpha, beta testAgent) testAgent
	}{
		{
			name:    "transfer",
			void:    func(e *authEnv, alpha, beta testAgent) { e.requestTransfer(beta, name) },
			sponsor: func(alpha, beta testAgent) testAgent { return beta },
		},
		{
			name: "transfer and transfer back",
			void: func(e *authEnv, alpha, beta testAgent) { e.requestTransfer(beta, name) },
			undo: func(e *authEnv, alpha, beta testAgent) { e.requestTransfer(alpha, name) },
		},
		{
			name: "delete and restore",
			void: func(e *authEnv, alpha, beta testAgent) { e.deleteIdentifier(alpha, name) },
			undo: func(e *authEnv, alpha, beta testAgent) { e.restoreIdentifier(alpha, name) },
		},
		{
			name: "hold and release",
			void: func(e *authEnv, alpha, beta testAgent) { e.serverStatus(name, "abuse report", stServerHold) },
			undo: func(e *authEnv, alpha, beta testAgent) { e.serverStatus(name, "cleared") },
		},
		{
			name: "agent suspended and resumed",
			void: func(e *authEnv, alpha, beta testAgent) { e.setAgentState(alpha, registryv1.Agent_STATE_SUSPENDED) },
			undo: func(e *authEnv, alpha, beta testAgent) { e.setAgentState(alpha, registryv1.Agent_STATE_ACTIVE) },
		},
		{
			name: "newer link",
			void: func(e *authEnv, alpha, beta testAgent) {
				if _, err := e.createLink(alpha, name, registryv1.CredentialLink_PURPOSE_RESET); err != nil {
					e.t.Fatal(err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newAuthEnv(t, lifecycleOptions(0))
			alpha, beta := e.newAgent("alpha"), e.newAgent("beta")
			h := e.holderFor(alpha, name, true)
			// The code that confirmed the enrolment is used: the holder's login needs the next.
			e.clock.Advance(30 * time.Second)
			creds := e.holderCredential(name)

			link, err := e.createLink(alpha, name, registryv1.CredentialLink_PURPOSE_RESET)
			if err != nil {
				t.Fatal(err)
			}
			// Alpha opens the link, and on a second page goes as far as the TOTP enrolment.
			const stolen = "alpha knows this password 1234"
			attacker := &oidctest.Holder{Client: oidctest.HTTPClient(e.roots, true), Identifier: name, Password: stolen}
			page, err := attacker.Get(link.Url)
			if err != nil || page.Status != http.StatusOK || page.Action() == "" {
				t.Fatalf("the fresh link: %v, page %d %q", err, page.Status, page.Title())
			}
			enrol, err := attacker.Submit(page, url.Values{"password": {stolen}, "confirm": {stolen}, "totp": {"on"}})
			if err != nil || enrol.Status != http.StatusOK || enrol.TOTPSecret() == "" {
				t.Fatalf("starting the TOTP enrolment: %v, page %d %q", err, enrol.Status, enrol.Title())
			}
			page, err = attacker.Get(link.Url)
			if err != nil || page.Status != http.StatusOK {
				t.Fatalf("the fresh link again: %v, page %d %q", err, page.Status, page.Title())
			}

			refused := func(when string) {
				t.Helper()
				p, err := attacker.Get(link.Url)
				wantErrorPage(t, p, err, http.StatusGone, titleVoidLink)
				if p.Action() != "" {
					t.Fatalf("%s: the void link shows a form", when)
				}
				p, err = attacker.Submit(page, url.Values{"password": {stolen}, "confirm": {stolen}})
				wantErrorPage(t, p, err, http.StatusGone, titleVoidLink)
				p, err = attacker.Submit(enrol, url.Values{"code": {e.totpCode(enrol.TOTPSecret())}})
				wantErrorPage(t, p, err, http.StatusGone, titleVoidLink)
				if got := e.holderCredential(name); got.PasswordHash != creds.PasswordHash || got.TOTPSecret != creds.TOTPSecret {
					t.Fatalf("%s: the holder's credentials changed through a void link", when)
				}
			}
			tc.void(e, alpha, beta)
			refused("voided")
			if tc.undo != nil {
				tc.undo(e, alpha, beta)
				refused("undone")
			}

			rp := e.newRP(nil)
			p, err := e.submitLogin(rp, attacker, name, stolen)
			wantRefusedPage(t, p, err, http.StatusUnauthorized, alertWrongCredentials)
			e.login(rp, h, nil)

			sponsor := alpha
			if tc.sponsor != nil {
				sponsor = tc.sponsor(alpha, beta)
			}
			fresh, err := e.createLink(sponsor, name, registryv1.CredentialLink_PURPOSE_RESET)
			if err != nil {
				t.Fatalf("a link of the sponsor: %v", err)
			}
			renewed := e.setCredentials(name, fresh.Url, false)
			if got := e.holderCredential(name); got.TOTPSecret != "" || got.PasswordHash == creds.PasswordHash {
				t.Fatal("the sponsor's link did not replace the credentials")
			}
			e.login(rp, renewed, map[string]string{"prompt": "login"})
		})
	}
}

// racingMapping is the registry's mapping as the authority reads it, but runs then, once,
// right after it answered for a credential link's binding: as if a change of the registry
// committed while the form was being posted.
type racingMapping struct {
	authority.Resolver
	mu   sync.Mutex
	then func()
}

func (m *racingMapping) CredentialLinkBinding(ctx context.Context, identifier, identityID string) (registry.CredentialLinkBinding, error) {
	b, err := m.Resolver.CredentialLinkBinding(ctx, identifier, identityID)
	m.mu.Lock()
	then := m.then
	m.then = nil
	m.mu.Unlock()
	if then != nil {
		then()
	}
	return b, err
}

// TestCredentialLinkRefusedWhenVoidedWhilePosted: a transfer that commits after the posted
// form was checked, while the new password is being hashed, still stops the link: the
// binding is checked again in the transaction that would set the credentials.
func TestCredentialLinkRefusedWhenVoidedWhilePosted(t *testing.T) {
	const name = "alice.example.test"
	racing := &racingMapping{}
	opts := lifecycleOptions(0)
	opts.ConfigureAuthority = func(c *authority.Config) {
		racing.Resolver = c.Resolver
		c.Resolver = racing
	}
	e := newAuthEnv(t, opts)
	alpha, beta := e.newAgent("alpha"), e.newAgent("beta")
	h := e.holderFor(alpha, name, false)
	creds := e.holderCredential(name)
	link, err := e.createLink(alpha, name, registryv1.CredentialLink_PURPOSE_RESET)
	if err != nil {
		t.Fatal(err)
	}
	const stolen = "alpha knows this password 1234"
	attacker := &oidctest.Holder{Client: oidctest.HTTPClient(e.roots, true), Identifier: name, Password: stolen}
	page, err := attacker.Get(link.Url)
	if err != nil || page.Status != http.StatusOK {
		t.Fatalf("the fresh link: %v, page %d %q", err, page.Status, page.Title())
	}

	c := e.transferChallenge(beta, name)
	var transferErr error
	racing.mu.Lock()
	racing.then = func() {
		_, transferErr = e.registry.RequestTransfer(beta.ctx(), &registryv1.RequestTransferRequest{ChallengeId: c.Id})
	}
	racing.mu.Unlock()
	p, err := attacker.Submit(page, url.Values{"password": {stolen}, "confirm": {stolen}})
	if transferErr != nil {
		t.Fatalf("the transfer: %v", transferErr)
	}
	if got := e.identifier(name).GetAgentId(); got != beta.agent.Id {
		t.Fatalf("the identifier is sponsored by %s, want beta %s", got, beta.agent.Id)
	}
	wantErrorPage(t, p, err, http.StatusGone, titleVoidLink)
	if got := e.holderCredential(name); got.PasswordHash != creds.PasswordHash {
		t.Fatal("the holder's password changed through a link voided while it was posted")
	}
	rp := e.newRP(nil)
	p, err = e.submitLogin(rp, attacker, name, stolen)
	wantRefusedPage(t, p, err, http.StatusUnauthorized, alertWrongCredentials)
	p, err = e.submitLogin(rp, h, name, h.Password)
	wantPastLogin(t, p, err)
}

// TestCredentialLinkVoidingIsPerIdentity: what voids the links of one identifier leaves
// the links of another identifier of the same agent working.
func TestCredentialLinkVoidingIsPerIdentity(t *testing.T) {
	e := newAuthEnv(t, lifecycleOptions(0))
	alpha, beta := e.newAgent("alpha"), e.newAgent("beta")
	e.holderFor(alpha, "alice.example.test", false)
	e.holderFor(alpha, "bob.example.test", false)
	bobs, err := e.createLink(alpha, "bob.example.test", registryv1.CredentialLink_PURPOSE_RESET)
	if err != nil {
		t.Fatal(err)
	}
	e.requestTransfer(beta, "alice.example.test")
	if _, err := e.createLink(alpha, "alice.example.test", registryv1.CredentialLink_PURPOSE_RESET); err == nil {
		t.Fatal("the losing agent made a link after the transfer")
	}
	if _, err := e.createLink(beta, "alice.example.test", registryv1.CredentialLink_PURPOSE_RESET); err != nil {
		t.Fatal(err)
	}
	e.setCredentials("bob.example.test", bobs.Url, false)
}

// TestNewCredentialsEndTheOldOnesReach: once a holder sets new credentials through a
// reset link, every session from before (theirs, and a thief's) stops answering
// prompt=none, every access token from before is refused at userinfo, and a code issued
// before does not redeem; the consent stays, so the next login goes straight back to the
// relying party.
func TestNewCredentialsEndTheOldOnesReach(t *testing.T) {
	const name = "alice.example.test"
	e := newAuthEnv(t, envOptions{})
	agent := e.newAgent("alpha")
	h := e.holderFor(agent, name, false)
	rp := e.newRP(nil)
	mine := e.login(rp, h, nil)
	// A thief who learned the password logs in from elsewhere; the consent is remembered.
	thief := &oidctest.Holder{Client: oidctest.HTTPClient(e.roots, true), Identifier: name, Password: h.Password}
	theirs := e.login(rp, thief, nil)
	req, code := e.authCode(rp, thief, nil)
	for _, tok := range []string{mine.Token.AccessToken, theirs.Token.AccessToken} {
		if status, _ := e.userinfoStatus(tok); status != http.StatusOK {
			t.Fatalf("userinfo before the reset: %d", status)
		}
	}

	link, err := e.createLink(agent, name, registryv1.CredentialLink_PURPOSE_RESET)
	if err != nil {
		t.Fatal(err)
	}
	renewed := e.setCredentials(name, link.Url, false)

	for who, b := range map[string]*oidctest.Holder{"holder": h, "thief": thief} {
		none := rp.AuthRequest(map[string]string{"prompt": "none"})
		p, err := b.Get(none.URL)
		e.wantCallbackError(t, p, err, oidctest.RedirectURI, none.State, "login_required")
		p, err = b.Get(rp.AuthRequest(nil).URL)
		if err != nil || p.Action() != "/login" {
			t.Fatalf("%s's session: %v, page %d %q, want the login form", who, err, p.Status, p.Title())
		}
	}
	e.wantUserinfoRefused(t, mine.Token.AccessToken)
	e.wantUserinfoRefused(t, theirs.Token.AccessToken)
	if status, m, _ := e.postToken(redeem(rp, req, code)); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Fatalf("a code from before: %d %v, want 400 invalid_grant", status, m)
	}
	if n := e.countRows("authority_sessions", "identity_id = ?", e.identityOf(name).ID); n != 0 {
		t.Fatalf("%d sessions of the identity are left", n)
	}
	p, err := e.submitLogin(rp, thief, name, h.Password)
	wantRefusedPage(t, p, err, http.StatusUnauthorized, alertWrongCredentials)

	// The holder logs in with the new password and goes straight back: no consent page.
	login := rp.AuthRequest(nil)
	p, err = renewed.Get(login.URL)
	if err != nil || p.Action() != "/login" {
		t.Fatalf("login form: %v, page %d %q", err, p.Status, p.Title())
	}
	p, err = renewed.Submit(p, url.Values{"identifier": {name}, "password": {renewed.Password}})
	if !errors.Is(err, oidctest.ErrLeft) || !strings.HasPrefix(p.URL, oidctest.RedirectURI+"?code=") {
		t.Fatalf("login with the new password: %v, page %d %q (%s), want straight back with a code", err, p.Status, p.Title(), p.URL)
	}
	res, err := rp.Finish(login, p.URL, e.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if res.Claims["sub"] != mine.Claims["sub"] {
		t.Fatalf("sub after the reset %v, before %v", res.Claims["sub"], mine.Claims["sub"])
	}
}
