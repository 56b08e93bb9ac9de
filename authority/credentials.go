package authority

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"image/png"
	"net/http"
	"net/url"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/id4me/id4me-registry/registry"
)

var _ registry.CredentialLinkIssuer = (*Authority)(nil)

// IssueCredentialLink makes a single-use credential link for an identity's holder, bound to
// req's CredentialLinkBinding; it voids the holder's older links. A setup link is refused
// once the holder has a password: a reset link replaces credentials.
func (a *Authority) IssueCredentialLink(ctx context.Context, req registry.CredentialLinkRequest) (registry.CredentialLink, error) {
	if req.Purpose == registry.CredentialLinkSetup {
		_, err := a.store.GetHolderCredential(ctx, req.IdentityID)
		switch {
		case err == nil:
			return registry.CredentialLink{}, registry.NewError(registry.ReasonCredentialsAlreadySet, "the holder of %s has set a password already; ask for a PURPOSE_RESET link", req.Identifier)
		case !errors.Is(err, ErrNotFound):
			return registry.CredentialLink{}, err
		}
	}
	now := a.now()
	tok := randomToken()
	l := CredentialLink{
		TokenHash: hashToken(tok), IdentityID: req.IdentityID, Identifier: req.Identifier, Purpose: string(req.Purpose),
		AgentID: req.AgentID, IdentifierGeneration: req.IdentifierGeneration, AgentGeneration: req.AgentGeneration,
		CreateTime: now, ExpireTime: now.Add(a.cfg.CredentialLinkTTL),
	}
	link := registry.CredentialLink{URL: a.issuer + pathCredential + tok, ExpireTime: l.ExpireTime, Purpose: req.Purpose, Identifier: req.Identifier}
	var within func(context.Context, registry.Tx) error
	if req.Record != nil {
		within = func(ctx context.Context, tx registry.Tx) error { return req.Record(ctx, tx, link) }
	}
	if err := a.store.CreateCredentialLink(ctx, l, within); err != nil {
		return registry.CredentialLink{}, err
	}
	return link, nil
}

// credentialForm is what the credential pages show.
type credentialForm struct {
	Action     string
	CSRF       string
	Identifier string
	Reset      bool
	Rules      []string
	WantTOTP   bool
	Error      string
	// QR is the TOTP secret's otpauth:// URI as a PNG data URI; Secret is the same secret
	// as text, for typing in.
	QR     template.URL
	Secret string
	// Passkey offers a passkey's enrolment; Passkeys are those added on the link so far,
	// Added the name of the one just added (passkey_pages.go).
	Passkey  *passkeyOffer
	Passkeys []Passkey
	Added    string
}

// errLinkVoid says a credential link is no longer valid: a newer link or new credentials
// voided it, or the registry no longer holds the state it was bound to.
var errLinkVoid = fmt.Errorf("the credential link is void: %w", ErrConflict)

// stillBound returns errLinkVoid unless current, the binding the registry gives the link's
// holder now (with its error err), is the one l was made with; an error of the registry
// other than "no link can be used" is returned as it is.
func stillBound(l CredentialLink, current registry.CredentialLinkBinding, err error) error {
	if err != nil {
		if k := registry.KindOf(err); k == registry.KindNotFound || k == registry.KindFailedPrecondition {
			return errLinkVoid
		}
		return err
	}
	if current != l.Binding() {
		return errLinkVoid
	}
	return nil
}

// voidLinkPage tells the holder that a link is no longer valid, and nothing of why: whether
// the identifier moved, was held or deleted, or its agent was suspended is not the business
// of whoever holds the link.
func (a *Authority) voidLinkPage(w http.ResponseWriter, r *http.Request, l CredentialLink) {
	a.log.InfoContext(r.Context(), "void credential link refused", "identifier", l.Identifier, "agent", l.AgentID, "purpose", l.Purpose)
	a.errorPage(w, r, http.StatusGone, "This link is no longer valid.", "Ask your agent for a new one.")
}

// credentialLink loads the link of a credential page and checks that it can still be used:
// unused, unexpired, not void, and bound to the state the registry holds now (its agent
// still sponsors the identifier, and nothing voided it since). Otherwise it answers with an
// error page and returns false.
func (a *Authority) credentialLink(w http.ResponseWriter, r *http.Request) (CredentialLink, bool) {
	tok := r.PathValue("token")
	l, err := a.store.GetCredentialLink(r.Context(), hashToken(tok))
	switch {
	case errors.Is(err, ErrNotFound):
		a.errorPage(w, r, http.StatusNotFound, "This link is not valid.", "Check that you copied all of it, or ask your agent for a new one.")
		return l, false
	case err != nil:
		a.internalErrorPage(w, r, err)
		return l, false
	case !l.UseTime.IsZero():
		a.errorPage(w, r, http.StatusGone, "This link has been used already.", "Each link works once. Ask your agent for a new one if you need to change your credentials again.")
		return l, false
	case !a.now().Before(l.ExpireTime):
		a.errorPage(w, r, http.StatusGone, "This link has expired.", "Ask your agent for a new one.")
		return l, false
	case !l.VoidTime.IsZero():
		a.voidLinkPage(w, r, l)
		return l, false
	}
	b, err := a.resolver.CredentialLinkBinding(r.Context(), l.Identifier, l.IdentityID)
	switch err := stillBound(l, b, err); {
	case errors.Is(err, errLinkVoid):
		a.voidLinkPage(w, r, l)
		return l, false
	case err != nil:
		a.internalErrorPage(w, r, err)
		return l, false
	}
	return l, true
}

func credentialPurpose(l CredentialLink) string {
	return "credential" + hex.EncodeToString(l.TokenHash)
}

func (a *Authority) serveCredentialPage(w http.ResponseWriter, r *http.Request) {
	l, ok := a.credentialLink(w, r)
	if !ok {
		return
	}
	browser := a.browserID(w, r)
	w.Header().Set("Cache-Control", "no-store")
	a.credentialPage(w, r, l, credentialForm{
		Action: r.URL.Path, CSRF: csrfToken(browser, credentialPurpose(l)), Identifier: l.Identifier,
		Reset: l.Purpose == string(registry.CredentialLinkReset), Rules: passwordRules,
	}, http.StatusOK)
}

// serveCredential takes the holder's new password (step "password") and, when they chose a
// second factor, the first code of the new TOTP secret (step "totp"). The link is used up
// only when everything is set.
func (a *Authority) serveCredential(w http.ResponseWriter, r *http.Request) {
	l, ok := a.credentialLink(w, r)
	if !ok {
		return
	}
	browser, ok := checkCSRF(r, credentialPurpose(l))
	if !ok {
		a.errorPage(w, r, http.StatusForbidden, "The form could not be verified.", "Open the link again and retry.")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	form := credentialForm{
		Action: r.URL.Path, CSRF: csrfToken(browser, credentialPurpose(l)), Identifier: l.Identifier,
		Reset: l.Purpose == string(registry.CredentialLinkReset), Rules: passwordRules, WantTOTP: r.PostFormValue("totp") == "on",
	}
	if ok, wait := a.logins.allow(r, a.cfg.Now()); !ok {
		form.Error = tooMany(wait)
		a.pages.render(w, http.StatusTooManyRequests, "credential", form)
		return
	}
	ctx := r.Context()
	switch r.PostFormValue("step") {
	case "totp":
		a.confirmTOTP(w, r, l, form)
		return
	case "passkey":
		a.enrolLinkPasskey(w, r, l, browser, form)
		return
	}
	password := r.PostFormValue("password")
	if msg := checkNewPassword(password, r.PostFormValue("confirm"), l.Identifier); msg != "" {
		form.Error = msg
		a.credentialPage(w, r, l, form, http.StatusBadRequest)
		return
	}
	hash, err := a.hashNewPassword(ctx, password)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	if !form.WantTOTP {
		a.redeemLink(w, r, l, HolderCredential{IdentityID: l.IdentityID, PasswordHash: hash})
		return
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: a.host, AccountName: l.Identifier, Period: totpOpts.Period, Digits: totpOpts.Digits, Algorithm: totpOpts.Algorithm})
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	if err := a.store.SetCredentialLinkPending(ctx, l.TokenHash, hash, key.Secret()); err != nil {
		a.lostLinkPage(w, r, l, err)
		return
	}
	l.PendingTOTPSecret = key.Secret()
	a.renderTOTPEnrolment(w, r, l, form, http.StatusOK)
}

// confirmTOTP checks the first code of the TOTP secret chosen on the link and then sets the
// credentials.
func (a *Authority) confirmTOTP(w http.ResponseWriter, r *http.Request, l CredentialLink, form credentialForm) {
	if l.PendingTOTPSecret == "" || l.PendingPasswordHash == "" {
		form.Error = "Choose your password first."
		a.pages.render(w, http.StatusBadRequest, "credential", form)
		return
	}
	step, ok := checkTOTP(l.PendingTOTPSecret, r.PostFormValue("code"), a.cfg.Now())
	if !ok {
		form.Error = msgWrongCode
		a.renderTOTPEnrolment(w, r, l, form, http.StatusBadRequest)
		return
	}
	// The confirming code is used: it cannot log in afterwards.
	a.redeemLink(w, r, l, HolderCredential{IdentityID: l.IdentityID, PasswordHash: l.PendingPasswordHash, TOTPSecret: l.PendingTOTPSecret, TOTPLastStep: step})
}

func (a *Authority) renderTOTPEnrolment(w http.ResponseWriter, r *http.Request, l CredentialLink, form credentialForm, status int) {
	v := url.Values{"secret": {l.PendingTOTPSecret}, "issuer": {a.host}, "algorithm": {"SHA1"}, "digits": {"6"}, "period": {"30"}}
	u := url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + a.host + ":" + l.Identifier, RawQuery: v.Encode()}
	key, err := otp.NewKeyFromURL(u.String())
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	img, err := key.Image(240, 240)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	form.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()))
	form.Secret = l.PendingTOTPSecret
	a.pages.render(w, status, "totp-enrol", form)
}

// lostLinkPage answers a write to link l that failed with err: when the link was used by a
// concurrent post, or expired or became void since it was checked (ErrConflict), with the
// page that says so.
func (a *Authority) lostLinkPage(w http.ResponseWriter, r *http.Request, l CredentialLink, err error) {
	if !errors.Is(err, ErrConflict) {
		a.internalErrorPage(w, r, err)
		return
	}
	if cur, gerr := a.store.GetCredentialLink(r.Context(), l.TokenHash); gerr == nil && !cur.UseTime.IsZero() {
		a.errorPage(w, r, http.StatusGone, "This link has been used already.", "Each link works once.")
		return
	}
	a.voidLinkPage(w, r, l)
}

// redeemLink sets the credentials and uses the link up, in one transaction, which also ends
// every session, grant and access token of the identity and forgets its known devices; the
// browser that posted is then its one known device. The binding is checked again in
// that transaction: a transfer, delete, hold or suspension committed since the form was
// posted (and the password hashed) either comes after the new credentials or stops them.
func (a *Authority) redeemLink(w http.ResponseWriter, r *http.Request, l CredentialLink, c HolderCredential) {
	now := a.now()
	c.UpdateTime = now
	// The sessions the redemption ends, read before it: the relying parties they logged in at
	// get back-channel logouts once it has committed (endSessionsOf).
	ending, err := a.store.Sessions(r.Context(), l.IdentityID, now)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	err = a.store.RedeemCredentialLink(r.Context(), l.TokenHash, now, c, func(ctx context.Context, tx registry.Tx) error {
		b, err := registry.ReadCredentialLinkBinding(ctx, tx, l.Identifier, l.IdentityID)
		if err := stillBound(l, b, err); err != nil {
			return err
		}
		return journalCredentials(ctx, tx, now, l, c)
	})
	if err != nil {
		a.lostLinkPage(w, r, l, err)
		return
	}
	a.log.InfoContext(r.Context(), "holder credentials set; the identity's sessions and tokens are ended", "identifier", l.Identifier, "purpose", l.Purpose, "totp", c.TOTPSecret != "")
	for _, o := range ending {
		// The row is gone already; this queues the session's back-channel logouts.
		if err := a.endOtherSession(r.Context(), o); err != nil {
			a.log.WarnContext(r.Context(), "authority: queueing the back-channel logouts of a session the new credentials ended", "err", err)
		}
	}
	// The browser that set the credentials is the holder's: its login attempts count
	// against its own budget, which nobody else's guessing touches (throttle.go). So a
	// holder can always get in through a link from their agent.
	if err := a.rememberDevice(r.Context(), w, r, l.IdentityID); err != nil {
		a.log.WarnContext(r.Context(), "authority: remembering the browser that set credentials", "err", err)
	}
	passkeys, err := a.store.Passkeys(r.Context(), l.IdentityID)
	if err != nil {
		a.log.WarnContext(r.Context(), "authority: listing the passkeys just set", "err", err)
	}
	a.pages.render(w, http.StatusOK, "credential-done", credentialForm{Identifier: l.Identifier, WantTOTP: c.TOTPSecret != "", Passkeys: passkeys})
}

// credentialJournalView is what the identifier's journal keeps of new holder credentials:
// which link set them, never a secret or a hash.
type credentialJournalView struct {
	Purpose    string `json:"purpose"`
	IdentityID string `json:"identity_id"`
	// LinkAgentID is the agent that asked for the link.
	LinkAgentID string `json:"link_agent_id"`
	TOTP        bool   `json:"totp"`
}

// journalCredentials writes new credentials into the identifier's journal, in the
// transaction that sets them: "holder_credential.set" (a setup link) or
// "holder_credential.reset" (a reset link), and "holder_credential.totp_enrol" when they
// carry a TOTP secret. The actor is the holder ("holder:<identifier>").
func journalCredentials(ctx context.Context, tx registry.Tx, at time.Time, l CredentialLink, c HolderCredential) error {
	view := credentialJournalView{Purpose: l.Purpose, IdentityID: l.IdentityID, LinkAgentID: l.AgentID, TOTP: c.TOTPSecret != ""}
	after, err := json.Marshal(view)
	if err != nil {
		return err
	}
	actions := []string{"holder_credential.set"}
	if l.Purpose == string(registry.CredentialLinkReset) {
		actions[0] = "holder_credential.reset"
	}
	if c.TOTPSecret != "" {
		actions = append(actions, "holder_credential.totp_enrol")
	}
	for _, action := range actions {
		e := registry.JournalEntry{Time: at, Actor: "holder:" + l.Identifier, Action: action, ObjectType: "identifier", ObjectID: l.Identifier, After: string(after)}
		if _, err := tx.AppendJournal(ctx, e); err != nil {
			return fmt.Errorf("journal of new credentials: %w", err)
		}
	}
	// The sponsoring agent, which asked for the link (the transaction checks it still
	// sponsors the identifier), learns that the credentials changed.
	ev := registry.Event{AgentID: l.AgentID, Type: registry.EventCredentialsChanged, Identifier: l.Identifier, Time: at, Data: registry.EventData{Reason: actions[0]}}
	if _, err := tx.AppendEvent(ctx, ev); err != nil {
		return fmt.Errorf("event of new credentials: %w", err)
	}
	return nil
}
