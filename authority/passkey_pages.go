package authority

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"html/template"
	"net/http"
	"slices"

	"github.com/id4me/id4me-registry/registry"
)

// passkeyScript runs the WebAuthn ceremonies of the pages (static/passkey.js). The pages'
// Content-Security-Policy admits it by its hash, and only it.
//
//go:embed static/passkey.js
var passkeyScript []byte

var passkeyScriptHash = func() string {
	sum := sha256.Sum256(passkeyScript)
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}()

const (
	pathPasskeyScript = "/assets/passkey.js"
	pathLoginPasskey  = "/login/passkey"
)

// pageFuncs are the functions the page templates call.
var pageFuncs = template.FuncMap{
	"passkeyScriptIntegrity": func() string { return passkeyScriptHash },
	// The script's URL changes with it, so that a browser never holds an old one, cached,
	// that the new hash refuses.
	"passkeyScriptVersion": func() string { return passkeyScriptHash[7:19] },
	"passkeyKind":          passkeyKind,
	"credentialID":         func(p Passkey) string { return base64.RawURLEncoding.EncodeToString(p.CredentialID) },
}

// passkeyKind names what kind of passkey p is, for the holder.
func passkeyKind(p Passkey) string {
	creds, err := decodeCredentials([]Passkey{p})
	if err != nil {
		return "passkey"
	}
	if creds[0].Flags.BackupEligible {
		return "synced passkey"
	}
	return "device-bound passkey"
}

func servePasskeyScript(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	w.Write(passkeyScript)
}

// Messages of a passkey login.
const (
	msgPasskeyRefused  = "This passkey cannot log in here. Use another passkey, or your password."
	msgPasskeyExpired  = "The passkey request has expired. Try again."
	msgACRNeedsPasskey = "The site asks you to log in with a passkey. Use your passkey, or your password and then your passkey."
)

// offerPasskeyLogin adds a discoverable passkey login to the login page's form.
func (a *Authority) offerPasskeyLogin(ctx context.Context, browser string, form *loginForm) {
	offer, err := a.beginLoginOffer(ctx, browser, "", nil)
	if err != nil {
		a.log.WarnContext(ctx, "authority: offering a passkey login", "err", err)
		return
	}
	form.Passkey, form.PasskeyCSRF = offer, csrfToken(browser, "passkey"+form.Request)
}

// secondFactorPage asks a holder whose password was right for the second factor: a TOTP
// code when they have a TOTP secret, one of their passkeys when they have any.
func (a *Authority) secondFactorPage(w http.ResponseWriter, r *http.Request, status int, browser string, form loginForm, identityID string, hasTOTP bool, passkeys []Passkey) {
	form.CSRF, form.NoTOTP = csrfToken(browser, "totp"+form.Request), !hasTOTP
	if len(passkeys) > 0 {
		offer, err := a.beginLoginOffer(r.Context(), browser, identityID, passkeys)
		if err != nil {
			a.internalErrorPage(w, r, err)
			return
		}
		form.Passkey, form.PasskeyCSRF = offer, csrfToken(browser, "passkey"+form.Request)
	}
	a.pages.render(w, status, "totp", form)
}

// serveLoginPasskey logs a holder in with a passkey: alone (step "login", a discoverable
// credential) or after the password (step "second-factor", one of the holder's).
func (a *Authority) serveLoginPasskey(w http.ResponseWriter, r *http.Request) {
	req, c, ok := a.pendingRequest(w, r, r.PostFormValue("req"))
	if !ok {
		return
	}
	browser, ok := checkCSRF(r, "passkey"+req.ID)
	second := r.PostFormValue("step") == "second-factor"
	if !ok || a.webauthn == nil || second && req.PendingIdentityID == "" {
		a.errorPage(w, r, http.StatusForbidden, "The form could not be verified.", "Go back to the site you came from and start again.")
		return
	}
	ctx := r.Context()
	form := loginForm{Request: req.ID, Client: c.Metadata, Identifier: req.Params.LoginHint, PasskeyOnly: req.Params.wantsPasskey()}
	fail := func(status int, msg string) {
		form.Error = msg
		if !second {
			form.CSRF = csrfToken(browser, "login"+req.ID)
			a.offerPasskeyLogin(ctx, browser, &form)
			a.pages.render(w, status, "login", form)
			return
		}
		h, err := a.holder(ctx, req.PendingIdentifier)
		if err != nil {
			a.internalErrorPage(w, r, err)
			return
		}
		passkeys, err := a.store.Passkeys(ctx, req.PendingIdentityID)
		if err != nil {
			a.internalErrorPage(w, r, err)
			return
		}
		form.Identifier = req.PendingIdentifier
		a.secondFactorPage(w, r, status, browser, form, req.PendingIdentityID, h.cred.TOTPSecret != "", passkeys)
	}
	if ok, wait := a.logins.allow(r, a.cfg.Now()); !ok {
		fail(http.StatusTooManyRequests, tooMany(wait))
		return
	}
	purpose := ceremonyLogin
	if second {
		purpose = ceremonySecondFactor
	}
	cer, sess, err := a.takeCeremony(ctx, r.PostFormValue("ceremony"), browser, purpose)
	switch {
	case errors.Is(err, errCeremony) || err == nil && second && cer.IdentityID != req.PendingIdentityID:
		fail(http.StatusBadRequest, msgPasskeyExpired)
		return
	case err != nil:
		a.internalErrorPage(w, r, err)
		return
	}
	login, err := a.finishLogin(ctx, cer, sess, r.PostFormValue("credential"))
	if errors.Is(err, errPasskeyRefused) {
		a.log.InfoContext(ctx, "passkey login refused", "client_id", c.ID, "second_factor", second, "err", err)
		if second {
			fail(http.StatusUnauthorized, "That passkey is not one of "+req.PendingIdentifier+"'s. Use one of yours.")
		} else {
			fail(http.StatusUnauthorized, msgPasskeyRefused)
		}
		return
	}
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	h, err := a.holder(ctx, login.passkey.Identifier)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	switch {
	case h.res.IdentityID != login.passkey.IdentityID || h.cred.PasswordHash == "":
		// The identifier was deleted and registered again: a new identity.
		fail(http.StatusUnauthorized, msgPasskeyRefused)
		return
	case h.held:
		fail(http.StatusUnauthorized, msgCannotLogIn)
		return
	}
	amr := login.amr
	if second {
		amr = append(slices.Clip(req.PendingAMR), append(login.amr, "mfa")...)
	}
	a.loggedIn(w, r, c, req, h.res, h.cred, nil, amr)
}

// acrRefused answers a login whose methods amr do not reach the classes the request asked
// for (acr_values) with the login page, which says so, and returns true.
func (a *Authority) acrRefused(w http.ResponseWriter, r *http.Request, c Client, req AuthRequest, res registry.Resolution, amr []string) bool {
	if req.Params.acrSatisfied(amr) {
		return false
	}
	browser := a.browserID(w, r)
	form := loginForm{Request: req.ID, CSRF: csrfToken(browser, "login"+req.ID), Client: c.Metadata, Identifier: res.Identifier, Error: msgACRNeedsPasskey, PasskeyOnly: true}
	a.offerPasskeyLogin(r.Context(), browser, &form)
	a.pages.render(w, http.StatusUnauthorized, "login", form)
	return true
}

// credentialPage renders the credential page of link l with form, adding the passkeys added
// on the link so far and a new passkey's enrolment.
func (a *Authority) credentialPage(w http.ResponseWriter, r *http.Request, l CredentialLink, form credentialForm, status int) {
	ctx := r.Context()
	pending, err := a.store.LinkPasskeys(ctx, l.TokenHash)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	form.Passkeys = pending
	browser := a.browserID(w, r)
	if form.Passkey, err = a.beginEnrolment(ctx, browser, l.IdentityID, l.Identifier, ceremonyEnrolLink+hex.EncodeToString(l.TokenHash), pending); err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	a.pages.render(w, status, "credential", form)
}

// enrolLinkPasskey adds a passkey on a credential link (step "passkey"). It works once the
// link is redeemed, with the password the holder sets on it.
func (a *Authority) enrolLinkPasskey(w http.ResponseWriter, r *http.Request, l CredentialLink, browser string, form credentialForm) {
	ctx := r.Context()
	pending, err := a.store.LinkPasskeys(ctx, l.TokenHash)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	p, msg, err := a.finishEnrolment(ctx, browser, ceremonyEnrolLink+hex.EncodeToString(l.TokenHash), r.PostFormValue("ceremony"), r.PostFormValue("credential"), r.PostFormValue("name"), l.IdentityID, l.Identifier, pending)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	if msg != "" {
		form.Error = msg
		a.credentialPage(w, r, l, form, http.StatusBadRequest)
		return
	}
	p.LinkHash = l.TokenHash
	if err := a.store.AddPasskey(ctx, p); errors.Is(err, ErrConflict) {
		if cur, gerr := a.store.GetCredentialLink(ctx, l.TokenHash); gerr == nil && cur.UseTime.IsZero() && cur.VoidTime.IsZero() {
			form.Error = "This passkey is registered already."
			a.credentialPage(w, r, l, form, http.StatusConflict)
			return
		}
		a.lostLinkPage(w, r, l, err)
		return
	} else if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	a.log.InfoContext(ctx, "passkey added on a credential link", "identifier", l.Identifier, "purpose", l.Purpose)
	form.Added = p.Name
	a.credentialPage(w, r, l, form, http.StatusOK)
}
