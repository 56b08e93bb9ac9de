package authority

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/id4me/id4me-registry/internal/publicaddr"
)

// tokenAuthMethods are the client authentication methods of the token endpoint; "none" is
// a public client's (RFC 7591 §2): it has no secret and must use PKCE.
var tokenAuthMethods = []string{"client_secret_basic", "client_secret_post", "none"}

// maxRedirectURIs bounds the redirect URIs of one client.
const maxRedirectURIs = 20

// registrationRequest is a client registration request (RFC 7591 §2, OpenID Connect
// Dynamic Client Registration §2). Members not listed are ignored, as RFC 7591 §2 allows.
type registrationRequest struct {
	RedirectURIs              []string `json:"redirect_uris"`
	ResponseTypes             []string `json:"response_types"`
	GrantTypes                []string `json:"grant_types"`
	ApplicationType           string   `json:"application_type"`
	ClientName                string   `json:"client_name"`
	ClientURI                 string   `json:"client_uri"`
	LogoURI                   string   `json:"logo_uri"`
	PolicyURI                 string   `json:"policy_uri"`
	TOSURI                    string   `json:"tos_uri"`
	Contacts                  []string `json:"contacts"`
	TokenEndpointAuthMethod   string   `json:"token_endpoint_auth_method"`
	IDTokenSignedResponseAlg  string   `json:"id_token_signed_response_alg"`
	UserinfoSignedResponseAlg string   `json:"userinfo_signed_response_alg"`
	SubjectType               string   `json:"subject_type"`
	SectorIdentifierURI       string   `json:"sector_identifier_uri"`
	// Encrypted responses, and the keys to encrypt them to (encryption.go).
	IDTokenEncryptedResponseAlg  string          `json:"id_token_encrypted_response_alg"`
	IDTokenEncryptedResponseEnc  string          `json:"id_token_encrypted_response_enc"`
	UserinfoEncryptedResponseAlg string          `json:"userinfo_encrypted_response_alg"`
	UserinfoEncryptedResponseEnc string          `json:"userinfo_encrypted_response_enc"`
	JWKS                         json.RawMessage `json:"jwks"`
	JWKSURI                      string          `json:"jwks_uri"`
	// Logout (logout.go, backchannel.go).
	PostLogoutRedirectURIs           []string `json:"post_logout_redirect_uris"`
	BackchannelLogoutURI             string   `json:"backchannel_logout_uri"`
	BackchannelLogoutSessionRequired bool     `json:"backchannel_logout_session_required"`
}

// registrationResponse is the client information response (RFC 7591 §3.2.1, RFC 7592 §3).
type registrationResponse struct {
	ClientID                string `json:"client_id"`
	ClientSecret            string `json:"client_secret,omitempty"`
	ClientIDIssuedAt        int64  `json:"client_id_issued_at"`
	ClientSecretExpiresAt   int64  `json:"client_secret_expires_at"`
	RegistrationAccessToken string `json:"registration_access_token,omitempty"`
	RegistrationClientURI   string `json:"registration_client_uri"`
	ClientMetadata
}

func (a *Authority) serveRegister(w http.ResponseWriter, r *http.Request) {
	if !a.registrationAllowed(w, r) {
		return
	}
	var initialToken []byte
	if a.cfg.Registration == RegistrationToken {
		var ok bool
		if initialToken, ok = a.initialAccessToken(w, r); !ok {
			return
		}
	}
	req, ok := readRegistration(w, r, nil)
	if !ok {
		return
	}
	md, err := a.clientMetadata(r.Context(), req)
	if err != nil {
		a.metadataError(w, r, err)
		return
	}
	ctx := r.Context()
	now := a.now()
	regToken := randomToken()
	c := Client{ID: randomID(), RegistrationTokenHash: hashToken(regToken), Metadata: md, CreateTime: now}
	secret := a.issueSecret(&c, now)
	if initialToken == nil {
		err = a.store.CreateClient(ctx, c)
	} else {
		err = a.store.UseInitialAccessToken(ctx, initialToken, now, c)
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
			// Used up, expired or revoked since it was checked.
			refuseInitialAccessToken(w, "the initial access token is no longer valid")
			return
		}
	}
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	a.answerClient(w, r, "client registered", http.StatusCreated, c, secret, regToken)
}

// answerClient logs what happened to client c and answers with its information, the secret
// and registration access token included when they are new (shown this once).
func (a *Authority) answerClient(w http.ResponseWriter, r *http.Request, what string, status int, c Client, secret, regToken string) {
	md := c.Metadata
	a.log.Info(what, "client_id", c.ID, "client_name", md.ClientName, "redirect_uris", md.RedirectURIs,
		"token_endpoint_auth_method", md.TokenEndpointAuthMethod, "source", sourceOf(r))
	resp := a.clientInfo(c)
	resp.ClientSecret, resp.RegistrationAccessToken = secret, regToken
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, resp)
}

// registrationAllowed takes one of the source's registrations (and updates, which fetch a
// jwks_uri as registrations do); when the source has made too many it answers 429 with
// Retry-After and returns false.
func (a *Authority) registrationAllowed(w http.ResponseWriter, r *http.Request) bool {
	ok, wait := a.regs.allow(r, a.cfg.Now())
	if !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		writeOAuthError(w, http.StatusTooManyRequests, errorf("rate_limited", "too many registrations or updates from this address; try again later"))
	}
	return ok
}

// readRegistration reads the JSON object of client metadata a registration or an update
// carries, into req and, if extra is not nil, into extra too. On failure it answers
// invalid_client_metadata and returns false.
func readRegistration(w http.ResponseWriter, r *http.Request, extra any) (registrationRequest, bool) {
	var req registrationRequest
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeOAuthError(w, http.StatusBadRequest, errorf("invalid_client_metadata", "the request body must be application/json"))
		return req, false
	}
	// The body is capped at maxBody (limitBodies).
	body, err := io.ReadAll(r.Body)
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		writeOAuthError(w, http.StatusRequestEntityTooLarge, errorf("invalid_client_metadata", fmt.Sprintf("the request body is larger than %d KiB", maxBody>>10)))
		return req, false
	}
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err == nil && extra != nil {
		err = json.Unmarshal(body, extra)
	}
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, errorf("invalid_client_metadata", "the request body is not a JSON object of client metadata: "+err.Error()))
		return req, false
	}
	return req, true
}

// metadataError answers a refusal of clientMetadata (an *oauthError) or a failure.
func (a *Authority) metadataError(w http.ResponseWriter, r *http.Request, err error) {
	var oe *oauthError
	if errors.As(err, &oe) {
		writeOAuthError(w, http.StatusBadRequest, oe)
		return
	}
	a.internalError(w, r, err)
}

// issueSecret gives c a new secret, which expires after Config.ClientSecretTTL, and
// returns it; a public client gets none.
func (a *Authority) issueSecret(c *Client, now time.Time) string {
	c.SecretHash, c.SecretExpireTime = nil, time.Time{}
	if c.public() {
		return ""
	}
	secret := randomToken()
	c.SecretHash = hashToken(secret)
	if a.cfg.ClientSecretTTL > 0 {
		c.SecretExpireTime = now.Add(a.cfg.ClientSecretTTL)
	}
	return secret
}

// public reports whether c is a public client: one without a secret.
func (c Client) public() bool { return c.Metadata.TokenEndpointAuthMethod == "none" }

func (a *Authority) clientInfo(c Client) registrationResponse {
	resp := registrationResponse{
		ClientID: c.ID, ClientIDIssuedAt: c.CreateTime.Unix(),
		RegistrationClientURI: a.issuer + pathRegister + "/" + c.ID,
		ClientMetadata:        c.Metadata,
	}
	if !c.SecretExpireTime.IsZero() {
		resp.ClientSecretExpiresAt = c.SecretExpireTime.Unix()
	}
	return resp
}

// clientMetadata validates a registration request and applies the defaults; what cannot be
// honoured is an *oauthError with an RFC 7591 code.
func (a *Authority) clientMetadata(ctx context.Context, req registrationRequest) (ClientMetadata, error) {
	bad := func(format string, args ...any) (ClientMetadata, error) {
		return ClientMetadata{}, errorf("invalid_client_metadata", fmt.Sprintf(format, args...))
	}
	md := ClientMetadata{
		ResponseTypes: orDefault(req.ResponseTypes, []string{"code"}), GrantTypes: orDefault(req.GrantTypes, []string{"authorization_code"}),
		ApplicationType: cmp.Or(req.ApplicationType, "web"), ClientName: req.ClientName, Contacts: req.Contacts,
		TokenEndpointAuthMethod:   cmp.Or(req.TokenEndpointAuthMethod, "client_secret_basic"),
		IDTokenSignedResponseAlg:  cmp.Or(req.IDTokenSignedResponseAlg, "RS256"),
		UserinfoSignedResponseAlg: req.UserinfoSignedResponseAlg,
		SubjectType:               cmp.Or(req.SubjectType, string(a.cfg.SubjectType)),
	}
	switch {
	case md.ApplicationType != "web" && md.ApplicationType != "native":
		return bad("application_type must be web or native, not %q", md.ApplicationType)
	case slices.ContainsFunc(md.ResponseTypes, func(s string) bool { return s != "code" }):
		return bad("only the response type code is supported, not %v", md.ResponseTypes)
	case slices.ContainsFunc(md.GrantTypes, func(s string) bool { return s != "authorization_code" }):
		return bad("only the grant type authorization_code is supported, not %v", md.GrantTypes)
	case !slices.Contains(tokenAuthMethods, md.TokenEndpointAuthMethod):
		return bad("token_endpoint_auth_method must be one of %v, not %q", tokenAuthMethods, md.TokenEndpointAuthMethod)
	case !isSigningAlg(md.IDTokenSignedResponseAlg):
		return bad("id_token_signed_response_alg must be one of %v, not %q", signingAlgs, md.IDTokenSignedResponseAlg)
	case md.UserinfoSignedResponseAlg != "" && !isSigningAlg(md.UserinfoSignedResponseAlg):
		return bad("userinfo_signed_response_alg must be one of %v, not %q", signingAlgs, md.UserinfoSignedResponseAlg)
	case md.SubjectType != string(SubjectPairwise) && md.SubjectType != string(SubjectPublic):
		return bad("subject_type must be pairwise or public, not %q", md.SubjectType)
	case req.SectorIdentifierURI != "":
		return bad("sector_identifier_uri is not supported; register one client per redirect host")
	case len(req.ClientName) > 200:
		return bad("client_name is longer than 200 characters")
	case len(req.Contacts) > 10:
		return bad("at most 10 contacts")
	}
	for _, f := range []struct {
		name string
		v    string
		dst  *string
	}{{"client_uri", req.ClientURI, &md.ClientURI}, {"logo_uri", req.LogoURI, &md.LogoURI}, {"policy_uri", req.PolicyURI, &md.PolicyURI}, {"tos_uri", req.TOSURI, &md.TOSURI}} {
		if f.v == "" {
			continue
		}
		if !isHTTPSURL(f.v) {
			return bad("%s must be an https URL", f.name)
		}
		*f.dst = f.v
	}
	if len(req.RedirectURIs) == 0 {
		return ClientMetadata{}, errorf("invalid_redirect_uri", "redirect_uris is required")
	}
	if len(req.RedirectURIs) > maxRedirectURIs {
		return ClientMetadata{}, errorf("invalid_redirect_uri", fmt.Sprintf("at most %d redirect_uris", maxRedirectURIs))
	}
	for _, raw := range req.RedirectURIs {
		host, err := a.checkRedirectURI(raw, md.ApplicationType)
		if err != nil {
			return ClientMetadata{}, err
		}
		if md.Sector != "" && md.Sector != host {
			return ClientMetadata{}, errorf("invalid_redirect_uri", "redirect_uris on more than one host need a sector_identifier_uri, which this authority does not support")
		}
		md.Sector = host
	}
	md.RedirectURIs = slices.Clone(req.RedirectURIs)
	if err := a.clientLogout(req, &md); err != nil {
		return ClientMetadata{}, err
	}
	if err := a.clientEncryption(ctx, req, &md); err != nil {
		return ClientMetadata{}, err
	}
	return md, nil
}

// clientLogout validates the logout metadata of a registration request (RP-Initiated
// Logout §3.1, Back-Channel Logout §2.2) into md: post_logout_redirect_uris as redirect URIs
// are (checkRedirectURI), on any host; a backchannel_logout_uri that is an https URL without
// fragment, on a public address unless Config.AllowPrivateJWKSURI.
func (a *Authority) clientLogout(req registrationRequest, md *ClientMetadata) error {
	if len(req.PostLogoutRedirectURIs) > maxRedirectURIs {
		return errorf("invalid_client_metadata", fmt.Sprintf("at most %d post_logout_redirect_uris", maxRedirectURIs))
	}
	for _, raw := range req.PostLogoutRedirectURIs {
		if _, err := a.checkRedirectURI(raw, md.ApplicationType); err != nil {
			var oe *oauthError
			if errors.As(err, &oe) {
				return errorf("invalid_client_metadata", "post_logout_redirect_uris: "+oe.Description)
			}
			return err
		}
	}
	md.PostLogoutRedirectURIs = slices.Clone(req.PostLogoutRedirectURIs)
	if raw := req.BackchannelLogoutURI; raw != "" {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" || strings.Contains(raw, "#") || len(raw) > 2000 {
			return errorf("invalid_client_metadata", "backchannel_logout_uri must be an https URL without user information or fragment")
		}
		if !a.cfg.AllowPrivateJWKSURI {
			if checkJWKSURIHost(u.Hostname()) != nil {
				return errorf("invalid_client_metadata", "backchannel_logout_uri must be on a public address: the authority posts logout tokens to public addresses only")
			}
		}
		md.BackchannelLogoutURI = raw
	}
	if req.BackchannelLogoutSessionRequired && md.BackchannelLogoutURI == "" {
		return errorf("invalid_client_metadata", "backchannel_logout_session_required needs a backchannel_logout_uri")
	}
	md.BackchannelLogoutSessionRequired = req.BackchannelLogoutSessionRequired
	return nil
}

// checkRedirectURI validates one redirect URI and returns its host (the pairwise sector):
// https; http only on a loopback host for native clients (RFC 8252 §7.3), or for every
// client in development; a private-use scheme for native clients (RFC 8252 §7.1); never a
// fragment.
func (a *Authority) checkRedirectURI(raw, appType string) (string, error) {
	bad := func(format string, args ...any) (string, error) {
		return "", errorf("invalid_redirect_uri", fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || len(raw) > 2000 {
		return bad("redirect URI %q is not an absolute URL", raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return bad("redirect URI %q has a fragment", raw)
	}
	if u.User != nil {
		return bad("redirect URI %q carries user information", raw)
	}
	switch {
	case u.Scheme == "https" && u.Host != "":
		return u.Hostname(), nil
	case u.Scheme == "http" && publicaddr.IsLoopbackHost(u.Hostname()) && (appType == "native" || a.cfg.AllowLoopbackHTTP):
		return u.Hostname(), nil
	case u.Scheme == "http":
		return bad("redirect URI %q must use https (http is allowed on loopback for native clients only)", raw)
	case appType == "native" && strings.Contains(u.Scheme, "."):
		return u.Scheme, nil
	}
	return bad("redirect URI %q must use https", raw)
}

// isHTTPSURL reports whether s is an absolute https URL without user information, of at
// most 2000 bytes.
func isHTTPSURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https" && u.Host != "" && u.User == nil && len(s) <= 2000
}

func orDefault(v, def []string) []string {
	if len(v) == 0 {
		return def
	}
	return v
}
