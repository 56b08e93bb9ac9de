package authority

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/id4me/id4me-registry/registry"
)

// tokenResponse is a successful token response (RFC 6749 §5.1, OpenID Connect Core §3.1.3.3).
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	IDToken     string `json:"id_token"`
	Scope       string `json:"scope"`
}

// idTokenClaims are the claims of an ID token (DESIGN: iss, sub, aud, exp, iat, auth_time,
// nonce, amr, id4me.identifier; sid, the session's, for logout).
type idTokenClaims struct {
	Issuer     string   `json:"iss"`
	Subject    string   `json:"sub"`
	Audience   string   `json:"aud"`
	Expiry     int64    `json:"exp"`
	IssuedAt   int64    `json:"iat"`
	AuthTime   int64    `json:"auth_time"`
	Nonce      string   `json:"nonce,omitempty"`
	AMR        []string `json:"amr"`
	ACR        string   `json:"acr"`
	Identifier string   `json:"id4me.identifier"`
	SessionID  string   `json:"sid,omitempty"`
}

// serveToken is the token endpoint: the authorization_code grant, for confidential clients
// authenticating with client_secret_basic or client_secret_post, whichever they registered,
// and for public clients (none) that name themselves with client_id; PKCE as the
// authorization request used it (checkPKCE). The code is used only once the client, its
// authentication, the redirect URI and PKCE check out; presented again by its client, it
// revokes what it gave. What can fail for a while, the registry's mapping and the client's
// encryption key, is read before the code is used too, so that the client can retry.
func (a *Authority) serveToken(w http.ResponseWriter, r *http.Request) {
	now := a.now()
	c, ok := a.clientRequest(w, r, now, "token")
	if !ok {
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "authorization_code" {
		writeOAuthError(w, http.StatusBadRequest, errorf("unsupported_grant_type", "only grant_type=authorization_code is supported"))
		return
	}
	ctx := r.Context()
	codeHash := hashToken(r.PostForm.Get("code"))
	g, err := a.store.GetGrant(ctx, codeHash)
	switch {
	case errors.Is(err, ErrNotFound):
		writeOAuthError(w, http.StatusBadRequest, errorf("invalid_grant", "the code is not valid"))
		return
	case err != nil:
		a.internalError(w, r, err)
		return
	}
	// Everything the request says is checked before the code is used, so that a stranger
	// who presents a stolen code can neither use it up nor revoke what it gave.
	switch {
	case g.ClientID != c.ID:
		writeOAuthError(w, http.StatusBadRequest, errorf("invalid_grant", "the code was issued to another client"))
		return
	case r.PostForm.Get("redirect_uri") != g.RedirectURI:
		writeOAuthError(w, http.StatusBadRequest, errorf("invalid_grant", "redirect_uri differs from the authorization request's"))
		return
	}
	if oe := checkPKCE(r.PostForm.Get("code_verifier"), g.CodeChallenge, c.public() || a.cfg.RequirePKCE); oe != nil {
		writeOAuthError(w, http.StatusBadRequest, oe)
		return
	}
	if !g.UseTime.IsZero() {
		a.codeReplayed(w, r, g, now)
		return
	}
	switch {
	case !g.RevokeTime.IsZero():
		writeOAuthError(w, http.StatusBadRequest, errorf("invalid_grant", "the code is not valid"))
		return
	case !now.Before(g.CreateTime.Add(a.cfg.CodeTTL)):
		writeOAuthError(w, http.StatusBadRequest, errorf("invalid_grant", "the code has expired"))
		return
	}
	// What can fail for a while (the registry's database, the client's jwks_uri) is done
	// before the code is used, so that the client can try again with it.
	res, err := a.resolver.Resolve(ctx, g.Identifier)
	switch {
	case registry.KindOf(err) == registry.KindNotFound, err == nil && res.IdentityID != g.IdentityID:
		// The holder lost the identifier since logging in.
		writeOAuthError(w, http.StatusBadRequest, errorf("invalid_grant", "the identifier no longer resolves to the identity that logged in"))
		return
	case err != nil:
		a.internalError(w, r, err)
		return
	}
	encKey, err := a.idTokenKey(ctx, c)
	if err != nil {
		a.responseError(w, r, err)
		return
	}
	g, err = a.store.RedeemGrant(ctx, codeHash, now)
	switch {
	case errors.Is(err, ErrConflict):
		// Redeemed by a concurrent request of the same client since it was read.
		a.codeReplayed(w, r, g, now)
		return
	case errors.Is(err, ErrNotFound):
		writeOAuthError(w, http.StatusBadRequest, errorf("invalid_grant", "the code is not valid"))
		return
	case err != nil:
		a.internalError(w, r, err)
		return
	case !g.RevokeTime.IsZero():
		writeOAuthError(w, http.StatusBadRequest, errorf("invalid_grant", "the code is not valid"))
		return
	}
	access := randomToken()
	at := AccessToken{
		TokenHash: hashToken(access), GrantID: g.ID, ClientID: c.ID, IdentityID: g.IdentityID, Identifier: g.Identifier,
		Subject: g.Subject, Scopes: g.Scopes, Claims: g.Claims, CreateTime: now, ExpireTime: now.Add(a.cfg.AccessTokenTTL),
	}
	if err := a.store.CreateAccessToken(ctx, at); errors.Is(err, ErrNotFound) {
		// The client was deleted since the code was redeemed: its grant went with it.
		writeOAuthError(w, http.StatusBadRequest, errorf("invalid_grant", "the code is not valid"))
		return
	} else if err != nil {
		a.internalError(w, r, err)
		return
	}
	idt, err := a.signJSON(c.Metadata.IDTokenSignedResponseAlg, idTokenClaims{
		Issuer: a.issuer, Subject: g.Subject, Audience: c.ID, IssuedAt: now.Unix(), Expiry: now.Add(a.cfg.IDTokenTTL).Unix(),
		AuthTime: g.AuthTime.Unix(), Nonce: g.Nonce, AMR: g.AMR, ACR: acrOf(g.AMR), Identifier: g.Identifier, SessionID: g.SessionID,
	}, "JWT")
	if err == nil {
		idt, err = a.encryptIDToken(c, encKey, idt)
	}
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	h := w.Header()
	h["Cache-Control"], h["Pragma"] = noStore, noCache
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: access, TokenType: "Bearer", ExpiresIn: int64(a.cfg.AccessTokenTTL / time.Second),
		IDToken: idt, Scope: strings.Join(g.Scopes, " "),
	})
}

// codeReplayed answers the client a code was issued to when it presents the code again:
// a code used twice was likely stolen, so what it gave is revoked (RFC 6749 §4.1.2).
func (a *Authority) codeReplayed(w http.ResponseWriter, r *http.Request, g Grant, now time.Time) {
	if err := a.store.RevokeGrant(r.Context(), g.ID, now); err != nil && !errors.Is(err, ErrNotFound) {
		a.internalError(w, r, err)
		return
	}
	a.log.WarnContext(r.Context(), "authorization code replayed; its tokens are revoked", "client_id", g.ClientID, "grant", g.ID)
	writeOAuthError(w, http.StatusBadRequest, errorf("invalid_grant", "the code was used already; the tokens it gave are revoked"))
}

// clientRequest reads the form of a request to an endpoint of clients (the token endpoint,
// revocation) and authenticates its client (authenticateClient). When it cannot, it answers
// the OAuth error itself, 401 with a Basic challenge for realm, or 400 for a malformed
// request, and returns false. limitBodies read the form already, within its cap.
func (a *Authority) clientRequest(w http.ResponseWriter, r *http.Request, now time.Time, realm string) (Client, bool) {
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, errorf("invalid_request", "the body must be application/x-www-form-urlencoded"))
		return Client{}, false
	}
	c, oe, err := a.authenticateClient(r, now)
	if err != nil {
		a.internalError(w, r, err)
		return Client{}, false
	}
	if oe != nil {
		status := http.StatusUnauthorized
		if oe.Code == "invalid_request" {
			status = http.StatusBadRequest
		} else {
			w.Header().Set("WWW-Authenticate", `Basic realm="`+realm+`"`)
		}
		writeOAuthError(w, status, oe)
		return Client{}, false
	}
	return c, true
}

// authenticateClient checks the client's credentials, sent the way it registered: a
// confidential client's secret (HTTP Basic or in the form), or a public client's client_id
// alone (in the form, or Basic with an empty password). A failure to read the client is
// the error.
func (a *Authority) authenticateClient(r *http.Request, now time.Time) (Client, *oauthError, error) {
	id, secret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 §2.3.1: the Basic credentials are form-urlencoded.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return Client{}, errorf("invalid_client", "malformed Basic credentials"), nil
		}
		// One method per request (RFC 6749 §2.3). A client_id in the body as well is common
		// and harmless when it names the same client.
		if r.PostForm.Has("client_secret") {
			return Client{}, errorf("invalid_request", "the request authenticates the client twice, with HTTP Basic and with client_secret in the body; use one method"), nil
		}
		if bodyID := r.PostForm.Get("client_id"); bodyID != "" && bodyID != id {
			return Client{}, errorf("invalid_request", "client_id in the body names another client than the HTTP Basic credentials"), nil
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id == "" {
		return Client{}, errorf("invalid_client", "client authentication is required (client_secret_basic or client_secret_post; client_id alone for a public client)"), nil
	}
	c, err := a.client(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		return Client{}, errorf("invalid_client", "client authentication failed"), nil
	}
	if err != nil {
		return Client{}, nil, err
	}
	if c.public() {
		if secret != "" {
			return Client{}, errorf("invalid_client", "the client registered token_endpoint_auth_method none: send client_id without a secret"), nil
		}
		return c, nil, nil
	}
	if secret == "" {
		return Client{}, errorf("invalid_client", "client authentication is required: the client registered "+c.Metadata.TokenEndpointAuthMethod), nil
	}
	if subtle.ConstantTimeCompare(hashToken(secret), c.SecretHash) != 1 {
		return Client{}, errorf("invalid_client", "client authentication failed"), nil
	}
	method := "client_secret_post"
	if basic {
		method = "client_secret_basic"
	}
	if method != c.Metadata.TokenEndpointAuthMethod {
		return Client{}, errorf("invalid_client", "the client registered "+c.Metadata.TokenEndpointAuthMethod+", not "+method), nil
	}
	if !c.SecretExpireTime.IsZero() && !now.Before(c.SecretExpireTime) {
		return Client{}, errorf("invalid_client", "the client secret expired at "+c.SecretExpireTime.UTC().Format(time.RFC3339)+
			" (client_secret_expires_at); register the client again"), nil
	}
	return c, nil, nil
}

// checkPKCE applies PKCE at the token endpoint (RFC 7636 §4.6, RFC 9700 §2.1.1 and §4.8.2).
// A code whose authorization request carried a code_challenge needs the matching verifier.
// A code whose request carried none refuses a verifier: otherwise an attacker could inject a
// code obtained without PKCE into a client that uses it, and the client would not notice the
// downgrade. A client that must use PKCE (required) cannot redeem a code without it.
func checkPKCE(verifier, challenge string, required bool) *oauthError {
	switch {
	case challenge == "" && verifier != "":
		return errorf("invalid_grant", "a code_verifier was sent, but the authorization request had no code_challenge")
	case challenge == "" && required:
		return errorf("invalid_grant", "this client must use PKCE, and the authorization request had no code_challenge")
	case challenge == "":
		return nil
	case verifier == "":
		return errorf("invalid_grant", "the authorization request had a code_challenge: the code_verifier is required")
	case !pkceMatches(verifier, challenge):
		return errorf("invalid_grant", "the code_verifier does not match the code_challenge")
	}
	return nil
}

// pkceMatches checks a code verifier against an S256 code challenge (RFC 7636 §4.6).
func pkceMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}
