package authority

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// maxClaimsParam bounds the claims request parameter.
const maxClaimsParam = 8 << 10

// serveAuthorize is the authorization endpoint (OpenID Connect Core §3.1.2). Until the
// client and its redirect URI are known good, errors are shown on a page; after that they go
// back to the client.
func (a *Authority) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		a.errorPage(w, r, http.StatusBadRequest, "The sign-in request is malformed.", err.Error())
		return
	}
	q := r.Form
	clientID, redirectURI := q.Get("client_id"), q.Get("redirect_uri")
	if clientID == "" {
		a.errorPage(w, r, http.StatusBadRequest, "The sign-in request names no client.", "client_id is missing.")
		return
	}
	c, err := a.client(r.Context(), clientID)
	if errors.Is(err, ErrNotFound) {
		a.errorPage(w, r, http.StatusBadRequest, "The site that sent you here is not registered with this authority.", "Unknown client_id.")
		return
	}
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	if !slices.Contains(c.Metadata.RedirectURIs, redirectURI) {
		a.errorPage(w, r, http.StatusBadRequest, "The site that sent you here asked to return to an address it did not register.", "redirect_uri does not match a registered redirect URI exactly.")
		return
	}
	params, oe := parseAuthParams(q, c, redirectURI, a.cfg.RequirePKCE)
	if oe != nil {
		a.redirectError(w, r, redirectURI, q.Get("state"), oe)
		return
	}
	browser := a.browserID(w, r)
	now := a.now()
	req := AuthRequest{ID: randomToken(), BrowserHash: hashToken(browser), Params: params, CreateTime: now, ExpireTime: now.Add(a.cfg.AuthRequestTTL)}

	sess, ok := a.currentSession(r, now)
	if ok && !a.sessionServes(r.Context(), sess, req, now) {
		ok = false
	}
	if !ok {
		if params.has("none") {
			a.redirectError(w, r, redirectURI, params.State, errorf("login_required", "the holder is not logged in"))
			return
		}
		if err := a.store.CreateAuthRequest(r.Context(), req); err != nil {
			a.internalErrorPage(w, r, err)
			return
		}
		http.Redirect(w, r, pathLogin+"?req="+url.QueryEscape(req.ID), http.StatusSeeOther)
		return
	}
	a.afterLogin(w, r, c, req, sess, false)
}

// parseAuthParams validates the parameters of an authorization request whose client and
// redirect URI are known good. PKCE follows RFC 9700 §2.1.1: S256 only; mandatory for public
// clients, and for every client with requirePKCE; optional for confidential clients, which
// authenticate at the token endpoint (the ID4me RP libraries send none).
func parseAuthParams(q url.Values, c Client, redirectURI string, requirePKCE bool) (AuthParams, *oauthError) {
	p := AuthParams{ClientID: c.ID, RedirectURI: redirectURI, State: q.Get("state"), Nonce: q.Get("nonce"), LoginHint: q.Get("login_hint"), ACRValues: parseACRValues(q.Get("acr_values"))}
	for _, k := range []string{"client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge", "code_challenge_method", "claims", "prompt", "max_age", "login_hint", "acr_values"} {
		if len(q[k]) > 1 {
			return p, errorf("invalid_request", "parameter "+k+" is given more than once")
		}
	}
	switch {
	case q.Has("request"):
		return p, errorf("request_not_supported", "request objects are not supported")
	case q.Has("request_uri"):
		return p, errorf("request_uri_not_supported", "request_uri is not supported")
	case q.Get("response_type") != "code":
		return p, errorf("unsupported_response_type", "only response_type=code is supported")
	case q.Has("response_mode") && q.Get("response_mode") != "query":
		return p, errorf("invalid_request", "only response_mode=query is supported")
	case len(p.State) > 2048 || len(p.Nonce) > 2048 || len(p.LoginHint) > 512:
		return p, errorf("invalid_request", "state, nonce or login_hint is too long")
	}
	scopes := strings.Fields(q.Get("scope"))
	if !slices.Contains(scopes, "openid") {
		return p, errorf("invalid_scope", "the scope must include openid")
	}
	for _, s := range scopes {
		if slices.Contains(supportedScopes, s) && !slices.Contains(p.Scopes, s) {
			p.Scopes = append(p.Scopes, s)
		}
	}
	p.CodeChallenge = q.Get("code_challenge")
	method := q.Get("code_challenge_method")
	switch {
	case p.CodeChallenge == "" && method != "":
		return p, errorf("invalid_request", "code_challenge_method was sent without a code_challenge")
	case p.CodeChallenge == "" && c.public():
		return p, errorf("invalid_request", "PKCE is required for public clients: send code_challenge with code_challenge_method=S256")
	case p.CodeChallenge == "" && requirePKCE:
		return p, errorf("invalid_request", "PKCE is required: send code_challenge with code_challenge_method=S256")
	case p.CodeChallenge == "":
	case method != "S256":
		return p, errorf("invalid_request", "code_challenge_method must be S256")
	case !isCodeChallenge(p.CodeChallenge):
		return p, errorf("invalid_request", "code_challenge must be the base64url SHA-256 of the code verifier (43 characters)")
	}
	if raw := q.Get("claims"); raw != "" {
		if len(raw) > maxClaimsParam {
			return p, errorf("invalid_request", "the claims parameter is too long")
		}
		if err := json.Unmarshal([]byte(raw), &p.Claims); err != nil {
			return p, errorf("invalid_request", "the claims parameter is not a JSON claims request: "+err.Error())
		}
		p.ACRValues = withEssentialACR(p.ACRValues, p.Claims.IDToken["acr"])
	}
	if raw := q.Get("prompt"); raw != "" {
		p.Prompt = strings.Fields(raw)
		for _, v := range p.Prompt {
			switch v {
			case "none", "login", "consent", "select_account":
			default:
				return p, errorf("invalid_request", "unknown prompt value "+strconv.Quote(v))
			}
		}
		if slices.Contains(p.Prompt, "none") && len(p.Prompt) > 1 {
			return p, errorf("invalid_request", "prompt=none cannot be combined with other values")
		}
	}
	if raw := q.Get("max_age"); raw != "" {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 0 {
			return p, errorf("invalid_request", "max_age must be a non-negative number of seconds")
		}
		p.MaxAge = &n
	}
	return p, nil
}

// isCodeChallenge reports whether s can be an S256 code challenge: 43 base64url characters.
func isCodeChallenge(s string) bool {
	if len(s) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}

// has reports whether the request's prompt includes v.
func (p AuthParams) has(v string) bool { return slices.Contains(p.Prompt, v) }

// requestedClaim is one claim a client asks for, as the consent page shows it.
type requestedClaim struct {
	Name      string
	Essential bool
	Reason    string
}

// requestedClaims returns the claims the request asks for, from its scopes and its claims
// parameter (both members: the agent serves them all), without those the authority asserts
// itself; sorted by name.
func (p AuthParams) requestedClaims() []requestedClaim {
	m := make(map[string]*requestedClaim)
	add := func(name string, cr *ClaimRequest) {
		if slices.Contains(protocolClaims, name) || len(name) > 100 {
			return
		}
		rc, ok := m[name]
		if !ok {
			rc = &requestedClaim{Name: name}
			m[name] = rc
		}
		if cr != nil {
			rc.Essential = rc.Essential || cr.Essential
			if rc.Reason == "" && len(cr.Reason) <= 500 {
				rc.Reason = cr.Reason
			}
		}
	}
	for _, s := range p.Scopes {
		for _, c := range scopeClaims[s] {
			add(c, nil)
		}
	}
	for _, members := range []map[string]*ClaimRequest{p.Claims.Userinfo, p.Claims.IDToken} {
		for name, cr := range members {
			add(name, cr)
		}
	}
	out := make([]requestedClaim, 0, len(m))
	for _, rc := range m {
		out = append(out, *rc)
	}
	slices.SortFunc(out, func(x, y requestedClaim) int { return strings.Compare(x.Name, y.Name) })
	return out
}

func claimNames(cs []requestedClaim) []string {
	out := make([]string, len(cs))
	for k, c := range cs {
		out[k] = c.Name
	}
	return out
}

// afterLogin goes on once the holder is logged in: to the consent page unless a remembered
// consent covers the request, else straight back to the client with a code. fromForm says
// whether the holder just posted a form (so a redirect is a 303 to a GET).
func (a *Authority) afterLogin(w http.ResponseWriter, r *http.Request, c Client, req AuthRequest, s Session, fromForm bool) {
	if req.isAccountRequest() {
		a.accountLoggedIn(w, r, req)
		return
	}
	asked := claimNames(req.Params.requestedClaims())
	if !req.Params.has("consent") {
		prev, err := a.store.GetConsent(r.Context(), c.ID, s.IdentityID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			a.internalErrorPage(w, r, err)
			return
		}
		if err == nil && subset(asked, prev.Claims) && subset(req.Params.Scopes, prev.Scopes) {
			a.finish(w, r, c, req, s, asked, fromForm)
			return
		}
	}
	if req.Params.has("none") {
		a.redirectError(w, r, req.Params.RedirectURI, req.Params.State, errorf("consent_required", "the holder has not consented to this client's request"))
		return
	}
	if !fromForm {
		// The request came straight from the client: it has no stored copy yet.
		if err := a.store.CreateAuthRequest(r.Context(), req); err != nil {
			a.internalErrorPage(w, r, err)
			return
		}
	}
	http.Redirect(w, r, pathConsent+"?req="+url.QueryEscape(req.ID), http.StatusSeeOther)
}

func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// finish issues an authorization code for the request and sends the browser back to the
// client with it (and the state and iss, RFC 9207). stored says whether the request has a
// stored copy to remove: one that came straight from the client and was answered at once
// has none.
func (a *Authority) finish(w http.ResponseWriter, r *http.Request, c Client, req AuthRequest, s Session, claims []string, stored bool) {
	ctx := r.Context()
	seed, err := a.resolver.SubjectSeed(ctx, s.IdentityID)
	if err != nil {
		a.internalErrorPage(w, r, err)
		return
	}
	now := a.now()
	code := randomToken()
	var idTokenClaims []string
	for name := range req.Params.Claims.IDToken {
		if slices.Contains(claims, name) {
			idTokenClaims = append(idTokenClaims, name)
		}
	}
	slices.Sort(idTokenClaims)
	g := Grant{
		ID: randomID(), CodeHash: hashToken(code), ClientID: c.ID, RedirectURI: req.Params.RedirectURI,
		IdentityID: s.IdentityID, Identifier: s.Identifier,
		Subject: subject(seed, SubjectType(c.Metadata.SubjectType), c.Metadata.Sector),
		Scopes:  req.Params.Scopes, Claims: claims, IDTokenClaims: idTokenClaims,
		Nonce: req.Params.Nonce, CodeChallenge: req.Params.CodeChallenge,
		// The grant outlives its code (CodeTTL, checked at the token endpoint) as long as the
		// tokens it gives, so that a replay of the code can still revoke them.
		AuthTime: s.AuthTime, AMR: s.AMR, SessionID: s.SID(), CreateTime: now, ExpireTime: now.Add(max(a.cfg.CodeTTL, a.cfg.AccessTokenTTL)),
	}
	if err := a.store.CreateGrant(ctx, g); err != nil {
		a.clientGoneOrFailed(w, r, err)
		return
	}
	a.recordSessionClient(ctx, c, s, g.Subject, now)
	if stored {
		if err := a.store.DeleteAuthRequest(ctx, req.ID); err != nil {
			a.log.WarnContext(ctx, "authority: removing a finished authorization request", "err", err)
		}
	}
	v := url.Values{"code": {code}, "iss": {a.issuer}}
	if req.Params.State != "" {
		v.Set("state", req.Params.State)
	}
	http.Redirect(w, r, withQuery(req.Params.RedirectURI, v), http.StatusSeeOther)
}

// redirectError sends an authorization error back to a client whose redirect URI is known
// good (RFC 6749 §4.1.2.1).
func (a *Authority) redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state string, e *oauthError) {
	v := url.Values{"error": {e.Code}, "error_description": {e.Description}, "iss": {a.issuer}}
	if state != "" {
		v.Set("state", state)
	}
	http.Redirect(w, r, withQuery(redirectURI, v), http.StatusSeeOther)
}

// withQuery adds v to the query of a URI that may have one already.
func withQuery(uri string, v url.Values) string {
	u, err := url.Parse(uri)
	if err != nil {
		return uri
	}
	q := u.Query()
	for k, vs := range v {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// pendingRequest loads the authorization request a page or form names and checks that it
// belongs to this browser; otherwise it answers with an error page and returns false.
func (a *Authority) pendingRequest(w http.ResponseWriter, r *http.Request, id string) (AuthRequest, Client, bool) {
	req, err := a.store.GetAuthRequest(r.Context(), id)
	if err == nil && !a.now().Before(req.ExpireTime) {
		err = ErrNotFound
	}
	if errors.Is(err, ErrNotFound) {
		a.errorPage(w, r, http.StatusBadRequest, "This sign-in has ended or expired.", "Go back to the site you came from and start again.")
		return AuthRequest{}, Client{}, false
	}
	if err != nil {
		a.internalErrorPage(w, r, err)
		return AuthRequest{}, Client{}, false
	}
	bc, cerr := r.Cookie(browserCookie)
	if cerr != nil || !hmac.Equal(hashToken(bc.Value), req.BrowserHash) {
		a.errorPage(w, r, http.StatusForbidden, "This sign-in was started in another browser.", "Go back to the site you came from and start again in this browser.")
		return AuthRequest{}, Client{}, false
	}
	if req.isAccountRequest() {
		return req, accountClient, true
	}
	c, err := a.client(r.Context(), req.Params.ClientID)
	if err != nil {
		a.clientGoneOrFailed(w, r, err)
		return AuthRequest{}, Client{}, false
	}
	return req, c, true
}

// clientGoneOrFailed answers a sign-in whose client could not be read or written for: an
// error page that says the client was deleted meanwhile (ErrNotFound), or a failure.
func (a *Authority) clientGoneOrFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrNotFound) {
		a.errorPage(w, r, http.StatusBadRequest, "The site that sent you here is no longer registered with this authority.", "Go back to the site you came from and start again.")
		return
	}
	a.internalErrorPage(w, r, err)
}

// withEssentialACR adds to the classes of acr_values those of an essential acr claim request
// (OpenID Connect Core §5.5.1.1: the login must reach one of them, or fails): its value or
// values that the authority knows. A voluntary acr request asks for nothing.
func withEssentialACR(classes []string, cr *ClaimRequest) []string {
	if cr == nil || !cr.Essential {
		return classes
	}
	for _, v := range append([]any{cr.Value}, cr.Values...) {
		if s, ok := v.(string); ok && slices.Contains(acrValues, s) && !slices.Contains(classes, s) {
			classes = append(classes, s)
		}
	}
	return classes
}
