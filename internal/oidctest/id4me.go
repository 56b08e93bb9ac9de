package oidctest

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// ID4meRP is a relying party shaped like the RP libraries of the ID4me ecosystem rather
// than like an OpenID Connect library: plain HTTP; by default a native client with an https
// redirect URI authenticating with client_secret_basic; authorization requests with
// scope=openid and the claims parameter, a nonce or not, an empty prompt= or not, and PKCE
// only when asked; the code redeemed with HTTP Basic (or, for a public client, client_id
// in the body); userinfo asked with the Accept header its registration calls for; ID
// tokens and signed userinfo verified against the JWKS with go-jose.
type ID4meRP struct {
	Discovery ID4meDiscovery
	// Registration is the registration response.
	Registration map[string]any
	ClientID     string
	ClientSecret string
	RedirectURI  string
	// AgentAccept is the Accept header DistributedClaims sends to the agents: empty for a
	// signed answer (the default), application/json for JSON.
	AgentAccept string
	client      *http.Client
	// now is the clock of the last Finish.
	now func() time.Time
}

// ID4meDiscovery is what an ID4me RP reads from the authority's discovery.
type ID4meDiscovery struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	UserinfoEndpoint      string `json:"userinfo_endpoint"`
	JWKSURI               string `json:"jwks_uri"`
	RegistrationEndpoint  string `json:"registration_endpoint"`
}

// ID4meMetadata is the registration an ID4me RP library sends, with extra members added
// (or replacing the defaults).
func ID4meMetadata(extra map[string]any) map[string]any {
	m := map[string]any{
		"application_type":           "native",
		"redirect_uris":              []string{RedirectURI},
		"token_endpoint_auth_method": "client_secret_basic",
		"client_name":                "ID4me relying party",
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// NewID4meRP discovers the authority at issuer and registers with metadata (see
// ID4meMetadata).
func NewID4meRP(client *http.Client, issuer string, metadata map[string]any) (*ID4meRP, error) {
	resp, err := client.Get(strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration")
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	rp := &ID4meRP{client: client}
	if err := json.NewDecoder(resp.Body).Decode(&rp.Discovery); err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("discovery: %d %v", resp.StatusCode, err)
	}
	if rp.Discovery.Issuer != issuer {
		return nil, fmt.Errorf("discovery names issuer %q, not %q", rp.Discovery.Issuer, issuer)
	}
	status, reg, err := PostJSON(client, rp.Discovery.RegistrationEndpoint, metadata)
	if err != nil {
		return nil, err
	}
	if status != http.StatusCreated {
		return nil, fmt.Errorf("registration: %d %v", status, reg)
	}
	rp.Registration = reg
	rp.ClientID, _ = reg["client_id"].(string)
	rp.ClientSecret, _ = reg["client_secret"].(string)
	rp.RedirectURI = metadata["redirect_uris"].([]string)[0]
	return rp, nil
}

// ID4meLogin is what an authorization request of an ID4meRP carries besides scope=openid,
// response_type=code, client_id, redirect_uri and state.
type ID4meLogin struct {
	LoginHint string
	// Claims is the claims request parameter (JSON).
	Claims string
	Nonce  bool
	// EmptyPrompt sends "prompt=" without a value, as one of the libraries does.
	EmptyPrompt bool
	PKCE        bool
}

// AuthRequest builds an authorization request.
func (rp *ID4meRP) AuthRequest(l ID4meLogin) Request {
	r := Request{State: rand.Text()}
	q := url.Values{"scope": {"openid"}, "response_type": {"code"}, "client_id": {rp.ClientID}, "redirect_uri": {rp.RedirectURI}, "state": {r.State}}
	if l.LoginHint != "" {
		q.Set("login_hint", l.LoginHint)
	}
	if l.Claims != "" {
		q.Set("claims", l.Claims)
	}
	if l.Nonce {
		r.Nonce = rand.Text()
		q.Set("nonce", r.Nonce)
	}
	if l.EmptyPrompt {
		q.Set("prompt", "")
	}
	if l.PKCE {
		r.Verifier = oauth2.GenerateVerifier()
		q.Set("code_challenge", oauth2.S256ChallengeFromVerifier(r.Verifier))
		q.Set("code_challenge_method", "S256")
	}
	r.URL = rp.Discovery.AuthorizationEndpoint + "?" + q.Encode()
	return r
}

// Code checks the URL the holder's browser was sent back to (error, state, iss) and returns
// its code.
func (rp *ID4meRP) Code(req Request, callback string) (string, error) {
	u, err := url.Parse(callback)
	if err != nil {
		return "", err
	}
	q := u.Query()
	switch {
	case q.Get("error") != "":
		return "", &CallbackError{Code: q.Get("error"), Description: q.Get("error_description")}
	case q.Get("state") != req.State:
		return "", fmt.Errorf("state %q, want %q", q.Get("state"), req.State)
	case q.Get("iss") != rp.Discovery.Issuer:
		return "", fmt.Errorf("iss %q is not the issuer", q.Get("iss"))
	case q.Get("code") == "":
		return "", errors.New("no code")
	}
	return q.Get("code"), nil
}

// Redeem posts the token request for code as the client registered to authenticate, with
// the verifier when not empty, and returns the status and the JSON answer.
func (rp *ID4meRP) Redeem(code, verifier string) (int, map[string]any, error) {
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rp.RedirectURI}}
	if verifier != "" {
		f.Set("code_verifier", verifier)
	}
	method, _ := rp.Registration["token_endpoint_auth_method"].(string)
	switch method {
	case "none":
		f.Set("client_id", rp.ClientID)
	case "client_secret_post":
		f.Set("client_id", rp.ClientID)
		f.Set("client_secret", rp.ClientSecret)
	}
	req, err := http.NewRequest(http.MethodPost, rp.Discovery.TokenEndpoint, strings.NewReader(f.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if method == "client_secret_basic" {
		req.SetBasicAuth(rp.ClientID, rp.ClientSecret)
	}
	resp, err := rp.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("token answer %d: %w", resp.StatusCode, err)
	}
	return resp.StatusCode, m, nil
}

// ID4meResult is what an ID4meRP got from a login.
type ID4meResult struct {
	AccessToken string
	// Claims are the ID token's.
	Claims   map[string]any
	Userinfo map[string]any
	// UserinfoType is the userinfo Content-Type.
	UserinfoType string
}

// Finish takes the URL the holder's browser was sent back to, redeems its code, verifies
// the ID token (signature by the JWKS, iss, aud, exp by now, nonce) and fetches userinfo.
func (rp *ID4meRP) Finish(req Request, callback string, now func() time.Time) (*ID4meResult, error) {
	rp.now = now
	code, err := rp.Code(req, callback)
	if err != nil {
		return nil, err
	}
	status, tok, err := rp.Redeem(code, req.Verifier)
	if err != nil {
		return nil, err
	}
	access, _ := tok["access_token"].(string)
	raw, _ := tok["id_token"].(string)
	if status != http.StatusOK || access == "" || raw == "" || !strings.EqualFold(fmt.Sprint(tok["token_type"]), "Bearer") {
		return nil, fmt.Errorf("token: %d %v", status, tok)
	}
	res := &ID4meResult{AccessToken: access}
	if res.Claims, err = rp.verifyJWT(raw); err != nil {
		return nil, fmt.Errorf("ID token: %w", err)
	}
	exp, _ := res.Claims["exp"].(float64)
	nonce, _ := res.Claims["nonce"].(string)
	switch {
	case !now().Before(time.Unix(int64(exp), 0)):
		return nil, fmt.Errorf("ID token expired at %v", exp)
	case nonce != req.Nonce:
		return nil, fmt.Errorf("ID token nonce %q, want %q", nonce, req.Nonce)
	}
	res.Userinfo, res.UserinfoType, err = rp.Userinfo(access)
	return res, err
}

// Userinfo asks userinfo with an access token and the Accept header the libraries send:
// application/json, or application/json+jwt for a client that registered
// userinfo_signed_response_alg. A JWT answer is verified.
func (rp *ID4meRP) Userinfo(accessToken string) (map[string]any, string, error) {
	req, _ := http.NewRequest(http.MethodGet, rp.Discovery.UserinfoEndpoint, nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	accept := "application/json"
	if rp.Registration["userinfo_signed_response_alg"] != nil {
		accept = "application/json+jwt"
	}
	req.Header.Set("Accept", accept)
	resp, err := rp.client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	ct := resp.Header.Get("Content-Type")
	if resp.StatusCode != http.StatusOK {
		return nil, ct, &HTTPError{Status: resp.StatusCode, Body: string(body), WWWAuthenticate: resp.Header.Get("WWW-Authenticate")}
	}
	if strings.HasPrefix(ct, "application/jwt") {
		m, err := rp.verifyJWT(string(body))
		if err != nil {
			return nil, ct, fmt.Errorf("userinfo JWT: %w", err)
		}
		return m, ct, nil
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, ct, err
	}
	return m, ct, nil
}

// DistributedClaims follows userinfo's _claim_sources, as RP.DistributedClaims does.
func (rp *ID4meRP) DistributedClaims(userinfo map[string]any) (map[string]any, error) {
	return distributedClaims(rp.client, userinfo, AgentCheck{ClientID: rp.ClientID, Accept: rp.AgentAccept, Now: rp.now})
}

// verifyJWT verifies a JWT the authority signed for this client (RS256 or ES256, a key of
// the JWKS by kid, iss the issuer, aud the client) and returns its claims.
func (rp *ID4meRP) verifyJWT(raw string) (map[string]any, error) {
	algs := []jose.SignatureAlgorithm{jose.RS256, jose.ES256}
	jws, err := jose.ParseSigned(raw, algs)
	if err != nil {
		return nil, err
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("not one signature")
	}
	resp, err := rp.client.Get(rp.Discovery.JWKSURI)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		return nil, fmt.Errorf("the JWKS has %d keys of kid %q", len(keys), jws.Signatures[0].Header.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, err
	}
	aud := m["aud"]
	if list, ok := aud.([]any); ok && slices.Contains(list, any(rp.ClientID)) {
		aud = rp.ClientID
	}
	if m["iss"] != rp.Discovery.Issuer || aud != rp.ClientID {
		return nil, fmt.Errorf("iss %v aud %v, want %s and %s", m["iss"], m["aud"], rp.Discovery.Issuer, rp.ClientID)
	}
	return m, nil
}
