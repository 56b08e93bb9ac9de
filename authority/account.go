package authority

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pquerna/otp/totp"

	"github.com/id4me/id4me-registry/registry"
)

// The account page (/account): a holder, logged in at the authority, sees and changes what
// their identity gives: the sites they shared data with (and revokes each), their sessions
// (and ends any), their passkeys (adds and removes them) and their password.

const (
	pathAccount       = "/account"
	pathAccountLogin  = "/account/login"
	pathLoginRecovery = "/login/recovery"
)

// accountClientID is the client of the authorization requests that log a holder in at the
// account page: no relying party, so a registered client's ID (random) never equals it.
const accountClientID = "id4me:account"

// accountClient stands for the account page on the login pages.
var accountClient = Client{ID: accountClientID, Metadata: ClientMetadata{ClientName: "Your ID4me account page"}}

// accountFresh is how recent a login must be to add or remove a passkey.
const accountFresh = 15 * time.Minute

// isAccountRequest reports whether req logs a holder in at the account page.
func (req AuthRequest) isAccountRequest() bool { return req.Params.ClientID == accountClientID }

// accountSite is a site the holder consented to share data with, as the page shows it.
type accountSite struct {
	ClientID string
	Name     string
	Host     string
	LogoURI  string
	Claims   []string
	Scopes   []string
	When     time.Time
}

// accountSession is a session as the page shows it.
type accountSession struct {
	SID       string
	UserAgent string
	Address   string
	Start     time.Time
	AMR       string
	Current   bool
}

// accountPage is what the account page shows.
type accountPage struct {
	Identifier string
	CSRF       string
	Action     string
	Notice     string
	Error      string
	Sites      []accountSite
	Sessions   []accountSession
	Passkeys   []Passkey
	Passkey    *passkeyOffer
	Fresh      bool
	Rules      []string
	Activity   []accountActivity
	HasTOTP    bool
	// RecoveryLeft counts the unused recovery codes; RecoveryCodes are new ones, shown once.
	RecoveryLeft  int
	RecoveryCodes []string
}

// Notices of the account page after a change (?done=).
var accountNotices = map[string]string{
	"site":     "The site can no longer get your data: its access was revoked.",
	"session":  "The session was ended.",
	"passkey":  "Your passkey was added.",
	"removed":  "The passkey was removed.",
	"password": "Your password was changed. Your other sessions were ended.",
	"totp":     "Your authenticator app is set up: logins after your password ask for its code.",
	"nototp":   "The authenticator app was removed.",
}

// accountSession returns the holder's session at the account page, valid at now and whose
// identifier still stands for its identity.
func (a *Authority) accountSession(r *http.Request) (Session, bool) {
	s, ok := a.currentSession(r, a.now())
	if !ok {
		return s, false
	}
	res, err := a.resolver.Resolve(r.Context(), s.Identifier)
	return s, err == nil && res.IdentityID == s.IdentityID
}

// serveAccountLogin starts a login for the account page; fresh=1 asks for one even when a
// session exists (before credential changes).
func (a *Authority) serveAccountLogin(w http.ResponseWriter, r *http.Request) {
	browser := a.browserID(w, r)
	now := a.now()
	p := AuthParams{ClientID: accountClientID}
	if r.URL.Query().Get("fresh") == "1" {
		p.Prompt = []string{"login"}
	}
	if s, ok := a.accountSession(r); ok {
		p.LoginHint = s.Identifier
	}
	req := AuthRequest{ID: randomToken(), BrowserHash: hashToken(browser), Params: p, CreateTime: now, ExpireTime: now.Add(a.cfg.AuthRequestTTL)}
	if err := a.store.CreateAuthRequest(r.Context(), req); err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	http.Redirect(w, r, pathLogin+"?req="+url.QueryEscape(req.ID), http.StatusSeeOther)
}

// accountLoggedIn ends the login of an account request: back to the account page.
func (a *Authority) accountLoggedIn(w http.ResponseWriter, r *http.Request, req AuthRequest) {
	if err := a.store.DeleteAuthRequest(r.Context(), req.ID); err != nil {
		a.log.WarnContext(r.Context(), "authority: removing a finished account login", "err", err)
	}
	http.Redirect(w, r, pathAccount, http.StatusSeeOther)
}

func (a *Authority) serveAccount(w http.ResponseWriter, r *http.Request) {
	s, ok := a.accountSession(r)
	if !ok {
		a.serveAccountLogin(w, r)
		return
	}
	page := accountPage{Notice: accountNotices[r.URL.Query().Get("done")]}
	a.renderAccount(w, r, s, page, http.StatusOK)
}

// renderAccount fills the page for session s and renders it.
func (a *Authority) renderAccount(w http.ResponseWriter, r *http.Request, s Session, page accountPage, status int) {
	ctx := r.Context()
	browser := a.browserID(w, r)
	page.Identifier, page.CSRF, page.Action, page.Rules = s.Identifier, csrfToken(browser, "account"+s.SID()), pathAccount, passwordRules
	page.Fresh = a.now().Sub(s.AuthTime) <= accountFresh
	consents, err := a.store.Consents(ctx, s.IdentityID)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	for _, c := range consents {
		site := accountSite{ClientID: c.ClientID, Claims: c.Claims, Scopes: c.Scopes, When: c.UpdateTime, Name: "A site that is no longer registered"}
		if cl, err := a.client(ctx, c.ClientID); err == nil {
			site.Name, site.Host, site.LogoURI = cl.Metadata.ClientName, cl.Metadata.Sector, cl.Metadata.LogoURI
			if site.Name == "" {
				site.Name = "A site"
			}
		}
		page.Sites = append(page.Sites, site)
	}
	sessions, err := a.store.Sessions(ctx, s.IdentityID, a.now())
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	for _, o := range sessions {
		page.Sessions = append(page.Sessions, accountSession{
			SID: o.SID(), UserAgent: o.UserAgent, Address: o.Address, Start: o.CreateTime, AMR: strings.Join(o.AMR, " "),
			Current: hmac.Equal(o.IDHash, s.IDHash),
		})
	}
	if a.cfg.HolderJournal != nil {
		entries, err := a.cfg.HolderJournal.HolderActivity(ctx, s.Identifier, 4*activityShown)
		if err != nil {
			a.log.WarnContext(ctx, "authority: reading a holder's activity", "err", err)
		}
		for _, e := range entries {
			if len(page.Activity) == activityShown {
				break
			}
			what, ok := activityLabels[e.Action]
			if !ok {
				continue
			}
			page.Activity = append(page.Activity, accountActivity{Time: e.Time, What: what, Detail: activityDetail(e.After)})
		}
	}
	cred, err := a.store.GetHolderCredential(ctx, s.IdentityID)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	page.HasTOTP = cred.TOTPSecret != ""
	if page.RecoveryLeft, err = a.store.RecoveryCodesLeft(ctx, s.IdentityID); err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	if page.Passkeys, err = a.store.Passkeys(ctx, s.IdentityID); err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	if page.Fresh {
		if page.Passkey, err = a.beginEnrolment(ctx, browser, s.IdentityID, s.Identifier, ceremonyEnrolAccount, page.Passkeys); err != nil {
			a.internalErrorPage(w, r, err)
			return
		}
	}
	a.pages.render(w, status, "account", page)
}

// serveAccountPost makes one change of the account page: its form's step says which.
func (a *Authority) serveAccountPost(w http.ResponseWriter, r *http.Request) {
	s, ok := a.accountSession(r)
	if !ok {
		a.errorPage(w, r, http.StatusForbidden, "You are not logged in.", "Open the account page again and log in.")
		return
	}
	browser, ok := checkCSRF(r, "account"+s.SID())
	if !ok {
		a.errorPage(w, r, http.StatusForbidden, "The form could not be verified.", "Open the account page again and retry.")
		return
	}
	ctx := r.Context()
	fail := func(status int, msg string) {
		a.renderAccount(w, r, s, accountPage{Error: msg}, status)
	}
	done := func(what string) { http.Redirect(w, r, pathAccount+"?done="+what, http.StatusSeeOther) }
	switch r.PostFormValue("step") {
	case "revoke-site":
		clientID := r.PostFormValue("client_id")
		err := a.store.RevokeConsent(ctx, clientID, s.IdentityID, a.now())
		if err != nil && !errors.Is(err, ErrNotFound) {
			a.internalErrorPage(w, r, err)
			return
		}
		a.log.InfoContext(ctx, "holder revoked a site's access", "identifier", s.Identifier, "client_id", clientID)
		a.holderChange(ctx, s.IdentityID, s.Identifier, "consent.revoke", map[string]any{"client_id": clientID}, false)
		done("site")
	case "end-session":
		sid := r.PostFormValue("sid")
		sessions, err := a.store.Sessions(ctx, s.IdentityID, a.now())
		if err != nil {
			a.internalErrorPage(w, r, err)
			return
		}
		for _, o := range sessions {
			if o.SID() != sid {
				continue
			}
			if hmac.Equal(o.IDHash, s.IDHash) {
				if err := a.endSession(w, r, o); err != nil {
					a.internalErrorPage(w, r, err)
					return
				}
				http.Redirect(w, r, pathAccount, http.StatusSeeOther)
				return
			}
			if err := a.endOtherSession(ctx, o); err != nil {
				a.internalErrorPage(w, r, err)
				return
			}
			a.log.InfoContext(ctx, "holder ended a session", "identifier", s.Identifier)
			a.holderChange(ctx, s.IdentityID, s.Identifier, "session.end", map[string]any{"started": o.CreateTime, "user_agent": o.UserAgent}, false)
			done("session")
			return
		}
		fail(http.StatusNotFound, "That session has ended already.")
	case "passkey":
		if a.now().Sub(s.AuthTime) > accountFresh {
			fail(http.StatusForbidden, "Log in again before you add a passkey.")
			return
		}
		existing, err := a.store.Passkeys(ctx, s.IdentityID)
		if err != nil {
			a.internalErrorPage(w, r, err)
			return
		}
		p, msg, err := a.finishEnrolment(ctx, browser, ceremonyEnrolAccount, r.PostFormValue("ceremony"), r.PostFormValue("credential"), r.PostFormValue("name"), s.IdentityID, s.Identifier, existing)
		switch {
		case err != nil:
			a.internalErrorPage(w, r, err)
			return
		case msg != "":
			fail(http.StatusBadRequest, msg)
			return
		}
		p.SessionIDHash = s.IDHash
		if err := a.store.AddPasskey(ctx, p); errors.Is(err, ErrSessionEnded) {
			a.sessionEndedPage(w, r)
			return
		} else if errors.Is(err, ErrConflict) {
			fail(http.StatusConflict, "This passkey is registered already.")
			return
		} else if err != nil {
			a.internalErrorPage(w, r, err)
			return
		}
		a.log.InfoContext(ctx, "holder added a passkey", "identifier", s.Identifier)
		a.holderChange(ctx, s.IdentityID, s.Identifier, "holder_credential.passkey_add", map[string]any{"name": p.Name}, true)
		done("passkey")
	case "remove-passkey":
		if a.now().Sub(s.AuthTime) > accountFresh {
			fail(http.StatusForbidden, "Log in again before you remove a passkey.")
			return
		}
		id, err := base64.RawURLEncoding.DecodeString(r.PostFormValue("credential_id"))
		if err != nil {
			fail(http.StatusBadRequest, "No such passkey.")
			return
		}
		if err := a.store.DeletePasskey(ctx, s.IdentityID, id); errors.Is(err, ErrNotFound) {
			fail(http.StatusNotFound, "That passkey was removed already.")
			return
		} else if err != nil {
			a.internalErrorPage(w, r, err)
			return
		}
		a.log.InfoContext(ctx, "holder removed a passkey", "identifier", s.Identifier)
		a.holderChange(ctx, s.IdentityID, s.Identifier, "holder_credential.passkey_remove", nil, true)
		done("removed")
	case "password":
		a.changePassword(w, r, s, fail, done)
	case "recovery":
		if a.now().Sub(s.AuthTime) > accountFresh {
			fail(http.StatusForbidden, "Log in again before you make recovery codes.")
			return
		}
		a.newRecoveryCodes(w, r, s)
	case "totp-begin", "totp", "totp-remove":
		if a.now().Sub(s.AuthTime) > accountFresh {
			fail(http.StatusForbidden, "Log in again before you change your authenticator app.")
			return
		}
		a.accountTOTP(w, r, s, browser, fail, done)
	default:
		fail(http.StatusBadRequest, "The form could not be read.")
	}
}

// changePassword replaces the password after checking the current one, and ends the
// holder's other sessions.
func (a *Authority) changePassword(w http.ResponseWriter, r *http.Request, s Session, fail func(int, string), done func(string)) {
	ctx := r.Context()
	if ok, wait := a.logins.allow(r, a.cfg.Now()); !ok {
		fail(http.StatusTooManyRequests, tooMany(wait))
		return
	}
	cred, err := a.store.GetHolderCredential(ctx, s.IdentityID)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	current := r.PostFormValue("current")
	if current == "" || len(current) > 4*MaxPasswordLength {
		fail(http.StatusBadRequest, "Enter your current password.")
		return
	}
	good, err := a.checkPassword(ctx, current, cred.PasswordHash)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	if !good {
		fail(http.StatusUnauthorized, "Your current password is wrong.")
		return
	}
	password := r.PostFormValue("password")
	if msg := checkNewPassword(password, r.PostFormValue("confirm"), s.Identifier); msg != "" {
		fail(http.StatusBadRequest, msg)
		return
	}
	hash, err := a.hashNewPassword(ctx, password)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	if err := a.store.ChangePassword(ctx, s.IdentityID, cred.PasswordHash, hash, a.now()); errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) {
		fail(http.StatusConflict, "Your credentials changed meanwhile. Reload the page and try again.")
		return
	} else if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	sessions, err := a.store.Sessions(ctx, s.IdentityID, a.now())
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	for _, o := range sessions {
		if !hmac.Equal(o.IDHash, s.IDHash) {
			if err := a.endOtherSession(ctx, o); err != nil {
				a.internalErrorPage(w, r, err)
				return
			}
		}
	}
	a.log.InfoContext(ctx, "holder changed the password; the other sessions are ended", "identifier", s.Identifier)
	a.holderChange(ctx, s.IdentityID, s.Identifier, "holder_credential.password_change", nil, true)
	done("password")
}

// endOtherSession ends a session of another browser, queueing its back-channel logouts.
func (a *Authority) endOtherSession(ctx context.Context, s Session) error {
	queued, dropped, err := a.store.EndSession(ctx, s.IDHash, s.SID(), a.now(), backchannelGiveUp, a.cfg.BackchannelLogoutQueue)
	if err != nil {
		return err
	}
	if dropped > 0 {
		a.log.WarnContext(ctx, "authority: the back-channel logout queue is full; logouts dropped", "dropped", dropped)
	}
	if queued > 0 {
		a.backchannel.wake()
	}
	return nil
}

// shortUserAgent keeps what the account page needs of a User-Agent to tell browsers apart.
func shortUserAgent(ua string) string {
	const limit = 200
	if len(ua) <= limit {
		return ua
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(ua[cut]) {
		cut--
	}
	return ua[:cut]
}

// remoteAddress is the peer's address, without port.
func remoteAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// HolderJournal records what holders do at the authority (registry.HolderJournal
// implements it): journaled for the identifier, without secrets, and told to the sponsoring
// agent when c.Notify is set.
type HolderJournal interface {
	RecordHolderChange(ctx context.Context, c registry.HolderChange) error
	// HolderActivity returns the last limit entries the holder of identifier made, newest
	// first.
	HolderActivity(ctx context.Context, identifier string, limit int) ([]registry.JournalEntry, error)
}

// activityLabels say what each journaled action of a holder was, on the account page.
var activityLabels = map[string]string{
	"holder.sign_in":                    "Signed in",
	"holder_credential.set":             "Credentials set through a link from your agent",
	"holder_credential.reset":           "Credentials reset through a link from your agent",
	"holder_credential.totp_enrol":      "Authenticator app (TOTP) enrolled",
	"holder_credential.password_change": "Password changed",
	"holder_credential.passkey_add":     "Passkey added",
	"holder_credential.passkey_remove":  "Passkey removed",
	"consent.revoke":                    "A site's access revoked",
	"session.end":                       "A session ended",
	"holder_credential.totp_remove":     "Authenticator app (TOTP) removed",
	"holder_credential.recovery_codes":  "New recovery codes made",
	"holder.recovery_code_used":         "A recovery code used to sign in",
}

// accountActivity is an entry of the holder's recent activity.
type accountActivity struct {
	Time   time.Time
	What   string
	Detail string
}

// activityShown is how many entries of recent activity the page shows.
const activityShown = 15

// holderChange records what a holder did; the change is made already, so a failure is
// logged, not answered.
func (a *Authority) holderChange(ctx context.Context, identityID, identifier, action string, detail map[string]any, notify bool) {
	if a.cfg.HolderJournal == nil {
		return
	}
	c := registry.HolderChange{Identifier: identifier, IdentityID: identityID, Action: action, Detail: detail, Notify: notify, Time: a.now()}
	if err := a.cfg.HolderJournal.RecordHolderChange(ctx, c); err != nil {
		a.log.WarnContext(ctx, "authority: journaling a holder's change", "identifier", identifier, "action", action, "err", err)
	}
}

// activityDetail is what the page shows of an entry's journaled detail: the methods of a
// sign-in, a passkey's name.
func activityDetail(after string) string {
	var d struct {
		AMR  []string `json:"amr"`
		Name string   `json:"name"`
	}
	if json.Unmarshal([]byte(after), &d) != nil {
		return ""
	}
	if len(d.AMR) > 0 {
		return "with " + strings.Join(d.AMR, " + ")
	}
	return d.Name
}

// totpCeremony is the ID of the TOTP enrolment a session has under way in browser (one at a
// time). The browser's secret is in it: the session's sid alone is no secret (every relying
// party gets it in its ID tokens), and with it a relying party could name the ceremony to
// the passkey forms and end it.
func totpCeremony(s Session, browser string) []byte {
	return hashToken("totp-enrol:" + s.SID() + "\x00" + browser)
}

// accountTOTP sets up an authenticator app (step totp-begin shows the secret, step totp
// checks its first code and sets it) or removes it (totp-remove).
func (a *Authority) accountTOTP(w http.ResponseWriter, r *http.Request, s Session, browser string, fail func(int, string), done func(string)) {
	ctx := r.Context()
	now := a.now()
	form := credentialForm{Action: pathAccount, CSRF: csrfToken(browser, "account"+s.SID()), Identifier: s.Identifier}
	pending := func(secret string) error {
		// A secret shown before is replaced.
		if _, err := a.store.TakeCeremony(ctx, totpCeremony(s, browser)); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return a.store.CreateCeremony(ctx, Ceremony{IDHash: totpCeremony(s, browser), BrowserHash: hashToken(browser), IdentityID: s.IdentityID, Purpose: "totp-enrol", Session: []byte(secret), ExpireTime: now.Add(ceremonyTTL)})
	}
	switch r.PostFormValue("step") {
	case "totp-begin":
		key, err := totp.Generate(totp.GenerateOpts{Issuer: a.host, AccountName: s.Identifier, Period: totpOpts.Period, Digits: totpOpts.Digits, Algorithm: totpOpts.Algorithm})
		if err != nil {
			a.internalErrorPage(w, r, err)
			return
		}
		if err := pending(key.Secret()); err != nil {
			a.internalErrorPage(w, r, err)
			return
		}
		a.renderTOTPEnrolment(w, r, CredentialLink{Identifier: s.Identifier, PendingTOTPSecret: key.Secret()}, form, http.StatusOK)
	case "totp":
		c, err := a.store.TakeCeremony(ctx, totpCeremony(s, browser))
		switch {
		case errors.Is(err, ErrNotFound) || err == nil && (c.Purpose != "totp-enrol" || c.IdentityID != s.IdentityID || !now.Before(c.ExpireTime)):
			fail(http.StatusBadRequest, "The authenticator app's setup has expired. Start again.")
			return
		case err != nil:
			a.internalErrorPage(w, r, err)
			return
		}
		secret := string(c.Session)
		step, ok := checkTOTP(secret, r.PostFormValue("code"), a.cfg.Now())
		if !ok {
			if err := pending(secret); err != nil {
				a.internalErrorPage(w, r, err)
				return
			}
			form.Error = msgWrongCode
			a.renderTOTPEnrolment(w, r, CredentialLink{Identifier: s.Identifier, PendingTOTPSecret: secret}, form, http.StatusBadRequest)
			return
		}
		// The confirming code is used: it cannot log in afterwards.
		if err := a.store.SetTOTPSecret(ctx, s.IdentityID, s.IDHash, secret, step, now); errors.Is(err, ErrSessionEnded) {
			a.sessionEndedPage(w, r)
			return
		} else if err != nil {
			a.internalErrorPage(w, r, err)
			return
		}
		a.log.InfoContext(ctx, "holder enrolled an authenticator app", "identifier", s.Identifier)
		a.holderChange(ctx, s.IdentityID, s.Identifier, "holder_credential.totp_enrol", nil, true)
		done("totp")
	case "totp-remove":
		if err := a.store.SetTOTPSecret(ctx, s.IdentityID, s.IDHash, "", 0, now); errors.Is(err, ErrSessionEnded) {
			a.sessionEndedPage(w, r)
			return
		} else if err != nil {
			a.internalErrorPage(w, r, err)
			return
		}
		a.log.InfoContext(ctx, "holder removed the authenticator app", "identifier", s.Identifier)
		a.holderChange(ctx, s.IdentityID, s.Identifier, "holder_credential.totp_remove", nil, true)
		done("nototp")
	}
}

// recoveryCodeCount is how many recovery codes a holder gets at once.
const recoveryCodeCount = 10

// recoveryEncoding spells recovery codes: lower-case letters and digits that do not look
// alike.
var recoveryEncoding = base32.NewEncoding("abcdefghijkmnpqrstuvwxyz23456789").WithPadding(base32.NoPadding)

// newRecoveryCode returns a code of 80 random bits, in four groups of four characters.
func newRecoveryCode() string {
	b := make([]byte, 10)
	rand.Read(b)
	s := recoveryEncoding.EncodeToString(b)
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16]
}

// recoveryCodeHash is how a recovery code is kept: SHA-256 of the code without its dashes
// and spaces, in lower case (80 random bits need no slow hash).
func recoveryCodeHash(code string) []byte {
	code = strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return unicode.ToLower(r)
	}, code)
	return hashToken("recovery:" + code)
}

// looksLikeRecoveryCode reports whether a typed code may be a recovery code.
func looksLikeRecoveryCode(code string) bool {
	n := 0
	for _, r := range code {
		if r != '-' && r != ' ' {
			n++
		}
	}
	return n == 16
}

// newRecoveryCodes makes the holder's recovery codes anew and shows them, once.
func (a *Authority) newRecoveryCodes(w http.ResponseWriter, r *http.Request, s Session) {
	ctx := r.Context()
	codes := make([]string, recoveryCodeCount)
	hashes := make([][]byte, recoveryCodeCount)
	for k := range codes {
		codes[k] = newRecoveryCode()
		hashes[k] = recoveryCodeHash(codes[k])
	}
	if err := a.store.SetRecoveryCodes(ctx, s.IdentityID, s.IDHash, hashes, a.now()); errors.Is(err, ErrSessionEnded) {
		a.sessionEndedPage(w, r)
		return
	} else if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	a.log.InfoContext(ctx, "holder made new recovery codes", "identifier", s.Identifier)
	a.holderChange(ctx, s.IdentityID, s.Identifier, "holder_credential.recovery_codes", map[string]any{"count": recoveryCodeCount}, true)
	a.pages.render(w, http.StatusOK, "recovery-codes", accountPage{Identifier: s.Identifier, RecoveryCodes: codes})
}

// serveRecoveryLogin takes a recovery code as the second factor of a holder whose password
// was right: it counts like a TOTP code against the login budgets, and works once.
func (a *Authority) serveRecoveryLogin(w http.ResponseWriter, r *http.Request) {
	req, c, ok := a.pendingRequest(w, r, r.PostFormValue("req"))
	if !ok {
		return
	}
	browser, ok := checkCSRF(r, "totp"+req.ID)
	if !ok || req.PendingIdentityID == "" {
		a.errorPage(w, r, http.StatusForbidden, "The form could not be verified.", "Go back to the site you came from and start again.")
		return
	}
	ctx := r.Context()
	h, err := a.holder(ctx, req.PendingIdentifier)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	if h.held || h.res.IdentityID != req.PendingIdentityID {
		a.errorPage(w, r, http.StatusForbidden, msgCannotLogIn, "")
		return
	}
	passkeys, err := a.store.Passkeys(ctx, h.res.IdentityID)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	fail := func(status int, msg string) {
		form := loginForm{Request: req.ID, Client: c.Metadata, Identifier: req.PendingIdentifier, Error: msg}
		a.secondFactorPage(w, r, status, browser, form, h.res.IdentityID, h.cred.TOTPSecret != "", passkeys)
	}
	if ok, wait := a.logins.allow(r, a.cfg.Now()); !ok {
		fail(http.StatusTooManyRequests, tooMany(wait))
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
	code := r.PostFormValue("recovery")
	if !looksLikeRecoveryCode(code) {
		fail(http.StatusUnauthorized, msgWrongRecoveryCode)
		return
	}
	if err := a.store.UseRecoveryCode(ctx, h.res.IdentityID, recoveryCodeHash(code), a.now()); errors.Is(err, ErrNotFound) {
		fail(http.StatusUnauthorized, msgWrongRecoveryCode)
		return
	} else if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	a.holderChange(ctx, h.res.IdentityID, h.res.Identifier, "holder.recovery_code_used", nil, true)
	// A recovery code is a one-time password (RFC 8176 "otp").
	a.loggedIn(w, r, c, req, h.res, h.cred, keys, append(slices.Clip(req.PendingAMR), "otp", "mfa"))
}

const msgWrongRecoveryCode = "That recovery code is wrong or has been used already."

// sessionEndedPage answers a change of the account page whose session ended while it was
// made: new credentials, set through a link meanwhile, end every session, and what the
// ended one asked for is not done.
func (a *Authority) sessionEndedPage(w http.ResponseWriter, r *http.Request) {
	setCookie(w, sessionCookie, "", -1)
	a.errorPage(w, r, http.StatusConflict, "Your login has ended.", "Your credentials changed meanwhile, which ends every login; nothing was changed. Log in again.")
}
