package authority

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/id4me/id4me-registry/registry"
)

// Messages of the login page. A wrong identifier and a wrong password read the same.
const (
	msgWrongCredentials = "The identifier or the password is wrong."
	msgCannotLogIn      = "This identifier cannot log in at present. Its agent can tell you why."
	msgNoCredentials    = "No password has been set for this identifier yet. Ask your agent for a setup link."
	msgWrongCode        = "The code is wrong or has expired. Enter the current code from your authenticator app."
	msgUsedCode         = "That code has been used already. Wait for the next one and enter it."
)

// loginForm is what the login and TOTP pages show.
type loginForm struct {
	Request    string
	CSRF       string
	Client     ClientMetadata
	Identifier string
	Error      string
}

func (a *Authority) serveLoginPage(w http.ResponseWriter, r *http.Request) {
	req, c, ok := a.pendingRequest(w, r, r.URL.Query().Get("req"))
	if !ok {
		return
	}
	browser := a.browserID(w, r)
	a.pages.render(w, http.StatusOK, "login", loginForm{Request: req.ID, CSRF: csrfToken(browser, "login"+req.ID), Client: c.Metadata, Identifier: req.Params.LoginHint})
}

// serveLogin checks an identifier and password.
func (a *Authority) serveLogin(w http.ResponseWriter, r *http.Request) {
	req, c, ok := a.pendingRequest(w, r, r.PostFormValue("req"))
	if !ok {
		return
	}
	browser, ok := checkCSRF(r, "login"+req.ID)
	if !ok {
		a.errorPage(w, r, http.StatusForbidden, "The form could not be verified.", "Reload the sign-in page and try again.")
		return
	}
	form := loginForm{Request: req.ID, CSRF: csrfToken(browser, "login"+req.ID), Client: c.Metadata, Identifier: strings.TrimSpace(r.PostFormValue("identifier"))}
	fail := func(status int, msg string) {
		form.Error = msg
		a.pages.render(w, status, "login", form)
	}
	if ok, wait := a.logins.allow(r, a.cfg.Now()); !ok {
		fail(http.StatusTooManyRequests, tooMany(wait))
		return
	}
	password := r.PostFormValue("password")
	if form.Identifier == "" || password == "" || len(password) > 4*MaxPasswordLength {
		fail(http.StatusBadRequest, "Enter your identifier and your password.")
		return
	}
	ctx := r.Context()
	res, cred, msg, err := a.holder(ctx, form.Identifier)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	if msg != "" {
		// Hash anyway, so that a wrong identifier takes as long as a wrong password.
		a.checkPassword(ctx, password, a.dummyHash())
		fail(http.StatusUnauthorized, msg)
		return
	}
	form.Identifier = res.Identifier
	now := a.now()
	if now.Before(cred.LockedUntil) {
		fail(http.StatusTooManyRequests, lockedMessage(cred.LockedUntil))
		return
	}
	good, err := a.checkPassword(ctx, password, cred.PasswordHash)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	if !good {
		fail(a.loginFailed(ctx, cred.IdentityID, now, msgWrongCredentials))
		return
	}
	if cred.TOTPSecret != "" {
		req.PendingIdentityID, req.PendingIdentifier, req.PendingAMR = res.IdentityID, res.Identifier, []string{"pwd"}
		if err := a.store.UpdateAuthRequest(ctx, req); err != nil {
			a.internalErrorPage(w, r, err)
			return
		}
		a.pages.render(w, http.StatusOK, "totp", loginForm{Request: req.ID, CSRF: csrfToken(browser, "totp"+req.ID), Client: c.Metadata, Identifier: res.Identifier})
		return
	}
	a.loggedIn(w, r, c, req, res, []string{"pwd"})
}

// serveTOTP checks the second factor of a holder whose password was right.
func (a *Authority) serveTOTP(w http.ResponseWriter, r *http.Request) {
	req, c, ok := a.pendingRequest(w, r, r.PostFormValue("req"))
	if !ok {
		return
	}
	browser, ok := checkCSRF(r, "totp"+req.ID)
	if !ok || req.PendingIdentityID == "" {
		a.errorPage(w, r, http.StatusForbidden, "The form could not be verified.", "Go back to the site you came from and start again.")
		return
	}
	form := loginForm{Request: req.ID, CSRF: csrfToken(browser, "totp"+req.ID), Client: c.Metadata, Identifier: req.PendingIdentifier}
	fail := func(status int, msg string) {
		form.Error = msg
		a.pages.render(w, status, "totp", form)
	}
	if ok, wait := a.logins.allow(r, a.cfg.Now()); !ok {
		fail(http.StatusTooManyRequests, tooMany(wait))
		return
	}
	ctx := r.Context()
	res, cred, msg, err := a.holder(ctx, req.PendingIdentifier)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	if msg != "" || res.IdentityID != req.PendingIdentityID || cred.TOTPSecret == "" {
		a.errorPage(w, r, http.StatusForbidden, msgCannotLogIn, "")
		return
	}
	now := a.now()
	if now.Before(cred.LockedUntil) {
		fail(http.StatusTooManyRequests, lockedMessage(cred.LockedUntil))
		return
	}
	step, good := checkTOTP(cred.TOTPSecret, r.PostFormValue("code"), a.cfg.Now())
	if !good {
		fail(a.loginFailed(ctx, cred.IdentityID, now, msgWrongCode))
		return
	}
	if err := a.store.UseTOTPStep(ctx, cred.IdentityID, step); err != nil {
		if errors.Is(err, ErrConflict) {
			fail(a.loginFailed(ctx, cred.IdentityID, now, msgUsedCode))
			return
		}
		a.internalErrorPage(w, r, err)
		return
	}
	a.loggedIn(w, r, c, req, res, append(req.PendingAMR, "otp", "mfa"))
}

// loggedIn starts the holder's session and goes on to consent.
func (a *Authority) loggedIn(w http.ResponseWriter, r *http.Request, c Client, req AuthRequest, res registry.Resolution, amr []string) {
	ctx := r.Context()
	if err := a.store.RecordLoginSuccess(ctx, res.IdentityID); err != nil {
		a.log.WarnContext(ctx, "authority: clearing login failures", "err", err)
	}
	s, err := a.startSession(w, r, res.IdentityID, res.Identifier, amr)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	a.log.InfoContext(ctx, "holder logged in", "identifier", res.Identifier, "client_id", c.ID, "amr", amr)
	a.afterLogin(w, r, c, req, s, true)
}

// holder resolves an identifier and reads its credentials. A non-empty message says why it
// cannot log in; err is a failure of the authority.
func (a *Authority) holder(ctx context.Context, identifier string) (registry.Resolution, HolderCredential, string, error) {
	res, err := a.mapping.Resolve(ctx, identifier)
	switch {
	case registry.ReasonOf(err) == "IDENTIFIER_ON_HOLD" || registry.ReasonOf(err) == "IDENTIFIER_PENDING_DELETE":
		return res, HolderCredential{}, msgCannotLogIn, nil
	case registry.KindOf(err) == registry.KindNotFound || registry.KindOf(err) == registry.KindInvalidArgument:
		return res, HolderCredential{}, msgWrongCredentials, nil
	case err != nil:
		return res, HolderCredential{}, "", err
	}
	cred, err := a.store.GetHolderCredential(ctx, res.IdentityID)
	switch {
	case errors.Is(err, ErrNotFound):
		return res, HolderCredential{}, msgNoCredentials, nil
	case err != nil:
		return res, HolderCredential{}, "", err
	}
	return res, cred, "", nil
}

// loginFailed counts a failure and says what to show: msg, or that the identity is locked.
func (a *Authority) loginFailed(ctx context.Context, identityID string, now time.Time, msg string) (int, string) {
	cred, err := a.store.RecordLoginFailure(ctx, identityID, now, a.cfg.LockAfter, a.cfg.LockFor)
	if err != nil {
		a.log.WarnContext(ctx, "authority: counting a failed login", "err", err)
	}
	if now.Before(cred.LockedUntil) {
		a.log.WarnContext(ctx, "identity locked after failed logins", "identity", identityID, "until", cred.LockedUntil)
		return http.StatusTooManyRequests, lockedMessage(cred.LockedUntil)
	}
	left := a.cfg.LockAfter - cred.FailedLogins
	if left <= 2 {
		attempts := "attempts lock"
		if left == 1 {
			attempts = "attempt locks"
		}
		msg += fmt.Sprintf(" %d more failed %s this identifier for %v.", left, attempts, a.cfg.LockFor)
	}
	return http.StatusUnauthorized, msg
}

func lockedMessage(until time.Time) string {
	return "Too many failed attempts: this identifier is locked until " + until.UTC().Format("15:04 MST") + ". Try again then, or ask your agent for a reset link."
}

func tooMany(wait time.Duration) string {
	return fmt.Sprintf("Too many attempts from your network. Wait %d seconds and try again.", int(wait.Seconds())+1)
}

// checkPassword verifies a password, holding one of the hash slots.
func (a *Authority) checkPassword(ctx context.Context, password, hash string) (ok bool, err error) {
	err = a.withHashSlot(ctx, func() { ok, err = checkPassword(password, hash) })
	return ok, err
}

// hashNewPassword hashes a password with the configured cost, holding one of the hash slots.
func (a *Authority) hashNewPassword(ctx context.Context, password string) (hash string, err error) {
	err = a.withHashSlot(ctx, func() { hash, err = hashPassword(password, a.cfg.Password) })
	return hash, err
}

// withHashSlot runs fn holding one of the hash slots: each argon2id hash takes
// Password.Memory KiB, so only so many run at once.
func (a *Authority) withHashSlot(ctx context.Context, fn func()) error {
	select {
	case a.hashSlot <- struct{}{}:
		defer func() { <-a.hashSlot }()
	case <-ctx.Done():
		return ctx.Err()
	}
	fn()
	return nil
}

// totpOpts are the RFC 6238 parameters: 30-second steps, 6 digits, SHA-1 — what every
// authenticator app understands.
var totpOpts = totp.ValidateOpts{Period: 30, Skew: 0, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// checkTOTP checks a code against the current step and the one before and after (clock
// drift), and returns the step it matched.
func checkTOTP(secret, code string, now time.Time) (int64, bool) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) != 6 {
		return 0, false
	}
	step := now.Unix() / int64(totpOpts.Period)
	for _, d := range []int64{0, -1, 1} {
		t := time.Unix((step+d)*int64(totpOpts.Period), 0)
		if ok, err := totp.ValidateCustom(code, secret, t, totpOpts); err == nil && ok {
			return step + d, true
		}
	}
	return 0, false
}
