package authority

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/id4me/id4me-registry/registry"
)

// Messages of the login page. With a wrong password every identifier reads the same: one
// that does not exist, one without a password yet, one on hold or pending delete. Only the
// right password learns that an identifier cannot log in at present.
const (
	msgWrongCredentials = "The identifier or the password is wrong."
	msgCannotLogIn      = "This identifier cannot log in at present. Its agent can tell you why."
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
	// Passkey offers a passkey login (passkey_pages.go), with the CSRF token of its form;
	// PasskeyOnly says the request asks for one (acr_values); NoTOTP that the second factor
	// can only be a passkey.
	Passkey     *passkeyOffer
	PasskeyCSRF string
	PasskeyOnly bool
	NoTOTP      bool
}

func (a *Authority) serveLoginPage(w http.ResponseWriter, r *http.Request) {
	req, c, ok := a.pendingRequest(w, r, r.URL.Query().Get("req"))
	if !ok {
		return
	}
	browser := a.browserID(w, r)
	form := loginForm{Request: req.ID, CSRF: csrfToken(browser, "login"+req.ID), Client: c.Metadata, Identifier: req.Params.LoginHint, PasskeyOnly: req.Params.wantsPasskey()}
	a.offerPasskeyLogin(r.Context(), browser, &form)
	a.pages.render(w, http.StatusOK, "login", form)
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
	form := loginForm{Request: req.ID, CSRF: csrfToken(browser, "login"+req.ID), Client: c.Metadata, Identifier: strings.TrimSpace(r.PostFormValue("identifier")), PasskeyOnly: req.Params.wantsPasskey()}
	fail := func(status int, msg string) {
		form.Error = msg
		a.offerPasskeyLogin(r.Context(), browser, &form)
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
	h, err := a.holder(ctx, form.Identifier)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	// Counted before anything is checked, and alike whether the identifier exists or not.
	keys, err := a.throttleKeys(ctx, r, throttleIdentifier(form.Identifier), h.res.IdentityID, stepPassword)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	if !a.claimed(w, r, keys, fail) {
		return
	}
	// Without a password, the check is made against one nobody has, so that every failure
	// takes as long.
	hash := h.cred.PasswordHash
	if hash == "" {
		hash = a.dummyHash()
	}
	good, err := a.checkPassword(ctx, password, hash)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	if !good || h.cred.PasswordHash == "" {
		fail(http.StatusUnauthorized, msgWrongCredentials)
		return
	}
	if h.held {
		fail(http.StatusUnauthorized, msgCannotLogIn)
		return
	}
	form.Identifier = h.res.Identifier
	// A holder with a passkey has a second factor, like one with a TOTP secret.
	passkeys, err := a.store.Passkeys(ctx, h.res.IdentityID)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	if h.cred.TOTPSecret != "" || len(passkeys) > 0 {
		if err := a.passwordRight(ctx, keys); err != nil {
			a.log.WarnContext(ctx, "authority: giving back a login attempt", "err", err)
		}
		req.PendingIdentityID, req.PendingIdentifier, req.PendingAMR = h.res.IdentityID, h.res.Identifier, []string{"pwd"}
		if err := a.store.UpdateAuthRequest(ctx, req); err != nil {
			a.internalErrorPage(w, r, err)
			return
		}
		a.secondFactorPage(w, r, http.StatusOK, browser, loginForm{Request: req.ID, Client: c.Metadata, Identifier: h.res.Identifier}, h.res.IdentityID, h.cred.TOTPSecret != "", passkeys)
		return
	}
	a.loggedIn(w, r, c, req, h.res, h.cred, keys, []string{"pwd"})
}

// claimed counts a login attempt against keys; when a budget says to wait it answers with
// fail (429, and Retry-After) and returns false.
func (a *Authority) claimed(w http.ResponseWriter, r *http.Request, keys []ThrottleKey, fail func(int, string)) bool {
	wait, err := a.claimAttempt(r.Context(), keys)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return false
	}
	if wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(waitSeconds(wait)))
		fail(http.StatusTooManyRequests, fmt.Sprintf("Too many attempts. Wait %d seconds and try again.", waitSeconds(wait)))
		return false
	}
	return true
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
	h, err := a.holder(ctx, req.PendingIdentifier)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	if h.held || h.res.IdentityID != req.PendingIdentityID || h.cred.TOTPSecret == "" {
		a.errorPage(w, r, http.StatusForbidden, msgCannotLogIn, "")
		return
	}
	keys, err := a.throttleKeys(ctx, r, throttleIdentifier(h.res.Identifier), h.res.IdentityID, stepCode)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	if !a.claimed(w, r, keys, fail) {
		return
	}
	cred := h.cred
	step, good := checkTOTP(cred.TOTPSecret, r.PostFormValue("code"), a.cfg.Now())
	if !good {
		fail(http.StatusUnauthorized, msgWrongCode)
		return
	}
	if err := a.store.UseTOTPStep(ctx, cred.IdentityID, step); err != nil {
		if errors.Is(err, ErrConflict) {
			fail(http.StatusUnauthorized, msgUsedCode)
			return
		}
		a.internalErrorPage(w, r, err)
		return
	}
	a.loggedIn(w, r, c, req, h.res, cred, keys, append(req.PendingAMR, "otp", "mfa"))
}

// loggedIn starts the holder's session, logged in with the credentials checked, and goes on
// to consent.
func (a *Authority) loggedIn(w http.ResponseWriter, r *http.Request, c Client, req AuthRequest, res registry.Resolution, checked HolderCredential, keys []ThrottleKey, amr []string) {
	ctx := r.Context()
	if a.acrRefused(w, r, c, req, res, amr) {
		return
	}
	if err := a.loginSucceeded(ctx, w, r, keys, res.IdentityID); err != nil {
		a.log.WarnContext(ctx, "authority: clearing login attempts", "err", err)
	}
	s, err := a.startSession(w, r, res.IdentityID, res.Identifier, amr)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	// New credentials end every session there is when they are set; one started after them
	// with the old ones, checked just before, ends here. New credentials always come with a
	// new password hash (a new salt).
	now, err := a.store.GetHolderCredential(ctx, res.IdentityID)
	if err != nil || now.PasswordHash != checked.PasswordHash || now.TOTPSecret != checked.TOTPSecret {
		if derr := a.store.DeleteSession(ctx, s.IDHash); derr != nil {
			a.log.WarnContext(ctx, "authority: ending a session of replaced credentials", "err", derr)
		}
		setCookie(w, sessionCookie, "", -1)
		if err != nil && !errors.Is(err, ErrNotFound) {
			a.internalErrorPage(w, r, err)
			return
		}
		a.errorPage(w, r, http.StatusConflict, "Your credentials changed while you were logging in.", "Go back to the site you came from and log in with the new ones.")
		return
	}
	// This session, and no other, answers the rest of the request (sessionServes).
	req.LoginSessionHash = s.IDHash
	if err := a.store.UpdateAuthRequest(ctx, req); err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	a.log.InfoContext(ctx, "holder logged in", "identifier", res.Identifier, "client_id", c.ID, "amr", amr)
	a.holderChange(ctx, res.IdentityID, res.Identifier, "holder.sign_in", map[string]any{"client_id": c.ID, "amr": amr}, false)
	a.afterLogin(w, r, c, req, s, true)
}

// loginHolder is what the identifier of a login form stands for.
type loginHolder struct {
	// res is the identifier's resolution: only Identifier and IdentityID when it is held;
	// zero when there is no such identifier.
	res registry.Resolution
	// cred are the holder's credentials; zero when none are set.
	cred HolderCredential
	// held says the identifier is on hold or pending delete: it cannot log in, which only
	// the right password is told.
	held bool
}

// holder resolves an identifier and reads its holder's credentials, those of an identifier
// on hold or pending delete too; err is a failure of the authority.
func (a *Authority) holder(ctx context.Context, identifier string) (loginHolder, error) {
	var h loginHolder
	res, err := a.resolver.Resolve(ctx, identifier)
	switch reason, kind := registry.ReasonOf(err), registry.KindOf(err); {
	case reason == registry.ReasonNotResolvedOnHold || reason == registry.ReasonNotResolvedPendingDelete:
		name, identityID, err := a.resolver.HolderIdentity(ctx, identifier)
		switch kind := registry.KindOf(err); {
		case kind == registry.KindNotFound || kind == registry.KindInvalidArgument:
			// Purged meanwhile.
			return h, nil
		case err != nil:
			return h, err
		}
		h.res, h.held = registry.Resolution{Identifier: name, IdentityID: identityID}, true
	case kind == registry.KindNotFound || kind == registry.KindInvalidArgument:
		return h, nil
	case err != nil:
		return h, err
	default:
		h.res = res
	}
	cred, err := a.store.GetHolderCredential(ctx, h.res.IdentityID)
	switch {
	case errors.Is(err, ErrNotFound):
		return h, nil
	case err != nil:
		return h, err
	}
	h.cred = cred
	return h, nil
}

func tooMany(wait time.Duration) string {
	return fmt.Sprintf("Too many attempts from your network. Wait %d seconds and try again.", int(wait.Seconds())+1)
}
