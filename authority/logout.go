package authority

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// OpenID Connect RP-Initiated Logout 1.0. A client sends the browser to the end-session
// endpoint (GET or POST) with an id_token_hint, its client_id, a post_logout_redirect_uri it
// registered, and a state. The holder's session at the authority ends at once when a valid
// hint names it; otherwise the holder is asked first (a form, CSRF-protected, no
// JavaScript), so that no site can log a holder out by sending a browser here. Ending the
// session queues the back-channel logouts (backchannel.go). The browser then goes back to
// the post_logout_redirect_uri with the state, or sees that it is logged out.

// logoutRequest is a validated end-session request.
type logoutRequest struct {
	// client is the client that sent it, named by client_id or by the hint's aud; nil when
	// neither names one.
	client *Client
	// redirectURI is the post_logout_redirect_uri, one the client registered; empty when none
	// was given.
	redirectURI string
	state       string
	// hint is the verified id_token_hint; nil when none was given or it did not verify.
	hint *idTokenHint
}

// idTokenHint is what the end-session endpoint reads of an ID token the authority issued.
type idTokenHint struct {
	Issuer    string      `json:"iss"`
	Subject   string      `json:"sub"`
	Audience  jwtAudience `json:"aud"`
	AuthTime  int64       `json:"auth_time"`
	SessionID string      `json:"sid"`
}

// jwtAudience is an "aud" claim: one string or an array of them.
type jwtAudience []string

func (a *jwtAudience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = jwtAudience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// logoutPage is the page that asks the holder whether to log out.
type logoutPage struct {
	Identifier  string
	Client      *ClientMetadata
	ClientID    string
	RedirectURI string
	State       string
	CSRF        string
}

// loggedOutPage is the page a holder sees once logged out when the client gave no
// post_logout_redirect_uri.
type loggedOutPage struct {
	Client *ClientMetadata
	// ReturnURI, if set, is the client's post_logout_redirect_uri (with state), linked.
	ReturnURI string
}

// logoutParams are the parameters of an end-session request the authority reads or checks.
var logoutParams = []string{"id_token_hint", "client_id", "post_logout_redirect_uri", "state", "logout_hint", "ui_locales"}

// csrfLogout is the purpose of the CSRF token of the logout form.
const csrfLogout = "logout"

// serveLogout is the end-session endpoint.
func (a *Authority) serveLogout(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		a.errorPage(w, r, http.StatusBadRequest, "The sign-out request is malformed.", err.Error())
		return
	}
	lr, ok := a.logoutRequest(w, r, r.Form)
	if !ok {
		return
	}
	now := a.now()
	s, ok := a.currentSession(r, now)
	if !ok {
		// Nothing to end here: the holder is logged out already.
		setCookie(w, sessionCookie, "", -1)
		a.loggedOut(w, r, lr, false)
		return
	}
	if lr.hint != nil && a.hintNamesSession(r.Context(), *lr.hint, lr.client, s) {
		if err := a.endSession(w, r, s); err != nil {
			a.internalErrorPage(w, r, err)
			return
		}
		a.loggedOut(w, r, lr, false)
		return
	}
	p := logoutPage{Identifier: s.Identifier, RedirectURI: lr.redirectURI, State: lr.state, CSRF: csrfToken(a.browserID(w, r), csrfLogout)}
	if lr.client != nil {
		p.Client, p.ClientID = &lr.client.Metadata, lr.client.ID
	}
	a.pages.render(w, http.StatusOK, "logout", p)
}

// serveLogoutPost answers an end-session request posted by a client's page: the browser
// sends the session cookie (SameSite=Lax) with a cross-site GET only, so the request is sent
// on as a GET of the same parameters.
func (a *Authority) serveLogoutPost(w http.ResponseWriter, r *http.Request) {
	q := url.Values{}
	for _, k := range logoutParams {
		if vs := r.PostForm[k]; len(vs) > 0 {
			q[k] = vs
		}
	}
	http.Redirect(w, r, pathLogout+"?"+q.Encode(), http.StatusSeeOther)
}

// serveLogoutConfirm takes the holder's answer to the logout page.
func (a *Authority) serveLogoutConfirm(w http.ResponseWriter, r *http.Request) {
	if _, ok := checkCSRF(r, csrfLogout); !ok {
		a.errorPage(w, r, http.StatusForbidden, "This sign-out form has expired.", "Go back to the site you came from and sign out again.")
		return
	}
	// The form carries what the first request said, checked again: client_id (the hint's
	// client, when the hint named it), post_logout_redirect_uri and state.
	form := url.Values{}
	for _, k := range []string{"client_id", "post_logout_redirect_uri", "state"} {
		if v := r.PostForm.Get(k); v != "" {
			form.Set(k, v)
		}
	}
	lr, ok := a.logoutRequest(w, r, form)
	if !ok {
		return
	}
	if s, ok := a.currentSession(r, a.now()); ok {
		if err := a.endSession(w, r, s); err != nil {
			a.internalErrorPage(w, r, err)
			return
		}
	} else {
		setCookie(w, sessionCookie, "", -1)
	}
	a.loggedOut(w, r, lr, true)
}

// logoutRequest validates the parameters of an end-session request (RP-Initiated Logout
// §2, §3). A hint the authority did not issue counts as none; a post_logout_redirect_uri
// needs a client that registered it exactly. What cannot be honoured gets an error page,
// and false.
func (a *Authority) logoutRequest(w http.ResponseWriter, r *http.Request, q url.Values) (logoutRequest, bool) {
	for _, k := range logoutParams {
		if len(q[k]) > 1 {
			a.errorPage(w, r, http.StatusBadRequest, "The sign-out request is malformed.", "Parameter "+k+" is given more than once.")
			return logoutRequest{}, false
		}
	}
	lr := logoutRequest{redirectURI: q.Get("post_logout_redirect_uri"), state: q.Get("state")}
	if len(lr.state) > 2048 {
		a.errorPage(w, r, http.StatusBadRequest, "The sign-out request is malformed.", "state is too long.")
		return logoutRequest{}, false
	}
	if raw := q.Get("id_token_hint"); raw != "" {
		if h, ok := a.verifyIDTokenHint(raw); ok {
			lr.hint = &h
		}
	}
	clientID := q.Get("client_id")
	if clientID == "" && lr.hint != nil && len(lr.hint.Audience) == 1 {
		clientID = lr.hint.Audience[0]
	}
	if clientID != "" {
		c, err := a.client(r.Context(), clientID)
		switch {
		case errors.Is(err, ErrNotFound) && q.Get("client_id") != "":
			a.errorPage(w, r, http.StatusBadRequest, "The site that sent you here is not registered with this authority.", "Unknown client_id.")
			return logoutRequest{}, false
		case errors.Is(err, ErrNotFound):
			// The hint's client is gone: the hint names no client any more.
			lr.hint = nil
		case err != nil:
			a.internalErrorPage(w, r, err)
			return logoutRequest{}, false
		default:
			lr.client = &c
		}
	}
	if lr.hint != nil && lr.client != nil && !slices.Contains(lr.hint.Audience, lr.client.ID) {
		a.errorPage(w, r, http.StatusBadRequest, "The sign-out request is not valid.", "The id_token_hint was issued to another client than client_id names.")
		return logoutRequest{}, false
	}
	if lr.redirectURI != "" {
		if lr.client == nil {
			a.errorPage(w, r, http.StatusBadRequest, "The sign-out request names no site to return to.", "post_logout_redirect_uri needs client_id or a valid id_token_hint.")
			return logoutRequest{}, false
		}
		if !slices.Contains(lr.client.Metadata.PostLogoutRedirectURIs, lr.redirectURI) {
			a.errorPage(w, r, http.StatusBadRequest, "The site that sent you here asked to return to an address it did not register.", "post_logout_redirect_uri does not match a registered post_logout_redirect_uri exactly.")
			return logoutRequest{}, false
		}
	}
	return lr, true
}

// verifyIDTokenHint verifies that raw is an ID token the authority signed with a key it
// still publishes, expired or not (RP-Initiated Logout §2: an expired ID token is a valid
// hint), and returns its claims. An encrypted ID token is no hint: the client must send the
// signed token inside it.
func (a *Authority) verifyIDTokenHint(raw string) (idTokenHint, bool) {
	if len(raw) > 16<<10 {
		return idTokenHint{}, false
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil || len(jws.Signatures) != 1 {
		return idTokenHint{}, false
	}
	key, ok := a.keys.publishedKey(jws.Signatures[0].Header.KeyID, a.cfg.Now())
	if !ok {
		return idTokenHint{}, false
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return idTokenHint{}, false
	}
	var h idTokenHint
	// Only ID tokens carry auth_time: a signed userinfo response or an agent token is no
	// hint.
	if json.Unmarshal(payload, &h) != nil || h.Issuer != a.issuer || h.Subject == "" || len(h.Audience) == 0 || h.AuthTime == 0 {
		return idTokenHint{}, false
	}
	return h, true
}

// publishedKey returns the public key kid, if it is published at now.
func (k *KeySet) publishedKey(kid string, now time.Time) (jose.JSONWebKey, bool) {
	for _, key := range k.state.Load().keys {
		if key.ID == kid && isPublished(key.SigningKey, now) {
			return key.public, true
		}
	}
	return jose.JSONWebKey{}, false
}

// hintNamesSession reports whether the ID token h was issued in session s: by its sid, or,
// for an ID token without one, by its subject, which must be the session's holder's at the
// client.
func (a *Authority) hintNamesSession(ctx context.Context, h idTokenHint, c *Client, s Session) bool {
	if h.SessionID != "" {
		return h.SessionID == s.SID()
	}
	if c == nil {
		return false
	}
	seed, err := a.resolver.SubjectSeed(ctx, s.IdentityID)
	if err != nil {
		return false
	}
	return subject(seed, SubjectType(c.Metadata.SubjectType), c.Metadata.Sector) == h.Subject
}

// loggedOut finishes a logout: back to the client's post_logout_redirect_uri with the state,
// or a page that says the holder is logged out.
//
// The browser is sent on to post_logout_redirect_uri at once only when the request carried
// an ID token the authority issued to that client (id_token_hint), or when the holder
// confirmed on the authority's own page: registration is open, so a client_id and a URI it
// registered alone would make the end-session endpoint a redirector to any site. Otherwise
// the page links to it.
func (a *Authority) loggedOut(w http.ResponseWriter, r *http.Request, lr logoutRequest, confirmed bool) {
	var back string
	if lr.redirectURI != "" {
		v := url.Values{}
		if lr.state != "" {
			v.Set("state", lr.state)
		}
		back = withQuery(lr.redirectURI, v)
		if lr.hint != nil || confirmed {
			http.Redirect(w, r, back, http.StatusSeeOther)
			return
		}
	}
	p := loggedOutPage{ReturnURI: back}
	if lr.client != nil {
		p.Client = &lr.client.Metadata
	}
	a.pages.render(w, http.StatusOK, "loggedout", p)
}
