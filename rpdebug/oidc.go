package rpdebug

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// The algorithms the relying party accepts: ID4me authorities sign with RS256 (ES256 is
// welcome), and encrypt to the RP's RSA key with RSA-OAEP-256 and A128CBC-HS256.
var (
	signingAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256}
	keyAlgs     = []jose.KeyAlgorithm{jose.RSA_OAEP_256}
	contentEncs = []jose.ContentEncryption{jose.A128CBC_HS256}
)

// leeway is how far clocks may disagree on exp and iat.
const leeway = 30 * time.Second

// Check is one verification the relying party made, passed or failed.
type Check struct {
	What   string
	OK     bool
	Detail string
}

// Token is a JWT (or a JSON document) as received and decoded.
type Token struct {
	Title string
	// Raw is what was received.
	Raw string
	// JWEHeader is the header of the encryption around it, pretty JSON; empty if it came
	// unencrypted.
	JWEHeader string
	// Header and Payload are the JWS header and payload (the document itself for JSON),
	// pretty JSON.
	Header  string
	Payload string
	Checks  []Check
	claims  map[string]any
}

func (t *Token) check(what string, ok bool, detail string, args ...any) bool {
	t.Checks = append(t.Checks, Check{What: what, OK: ok, Detail: fmt.Sprintf(detail, args...)})
	return ok
}

// Failed reports whether a check failed.
func (t *Token) Failed() bool {
	return slices.ContainsFunc(t.Checks, func(c Check) bool { return !c.OK })
}

func pretty(b []byte) string {
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") != nil {
		return string(b)
	}
	return out.String()
}

// getJSON fetches u and decodes its JSON answer into v.
func getJSON(ctx context.Context, c *http.Client, purpose, u string, v any) error {
	req, err := http.NewRequestWithContext(withPurpose(ctx, purpose), http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", purpose, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", purpose, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s answered %s", purpose, u, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(v); err != nil {
		return fmt.Errorf("%s: the answer of %s: %w", purpose, u, err)
	}
	return nil
}

// providerMetadata is the part of an authority's discovery document the RP uses.
type providerMetadata struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	UserinfoEndpoint      string `json:"userinfo_endpoint"`
	JWKSURI               string `json:"jwks_uri"`
	RegistrationEndpoint  string `json:"registration_endpoint"`
}

// discoverProvider fetches issuer's discovery document and checks that it names issuer.
func discoverProvider(ctx context.Context, c *http.Client, purpose, issuer string) (providerMetadata, error) {
	var md providerMetadata
	if err := getJSON(ctx, c, purpose, strings.TrimSuffix(issuer, "/")+"/.well-known/openid-configuration", &md); err != nil {
		return md, err
	}
	if md.Issuer != issuer {
		return md, fmt.Errorf("%s: the document names issuer %q, not %q", purpose, md.Issuer, issuer)
	}
	return md, nil
}

// register registers a client with the authority by dynamic registration (RFC 7591).
func register(ctx context.Context, c *http.Client, md providerMetadata, redirectURI string, o Options, now time.Time) (Registration, error) {
	if md.RegistrationEndpoint == "" {
		return Registration{}, errors.New("registration: the authority offers no registration_endpoint")
	}
	meta := map[string]any{
		"client_name":                  "ID4me debugging relying party",
		"application_type":             "web",
		"redirect_uris":                []string{redirectURI},
		"response_types":               []string{"code"},
		"grant_types":                  []string{"authorization_code"},
		"token_endpoint_auth_method":   o.authMethod(),
		"id_token_signed_response_alg": "RS256",
	}
	if o.UserinfoAlg != "" {
		meta["userinfo_signed_response_alg"] = o.UserinfoAlg
	}
	reg := Registration{Issuer: md.Issuer, Profile: o.profile(redirectURI), Created: now}
	if o.Encrypt {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return reg, err
		}
		kid := rand.Text()
		reg.DecryptionKey = &jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: string(jose.RSA_OAEP_256), Use: "enc"}
		pub := reg.DecryptionKey.Public()
		meta["jwks"] = jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}}
		for _, m := range []string{"id_token", "userinfo"} {
			meta[m+"_encrypted_response_alg"] = string(jose.RSA_OAEP_256)
			meta[m+"_encrypted_response_enc"] = string(jose.A128CBC_HS256)
		}
	}
	body, _ := json.Marshal(meta)
	req, err := http.NewRequestWithContext(withPurpose(ctx, "registration"), http.MethodPost, md.RegistrationEndpoint, bytes.NewReader(body))
	if err != nil {
		return reg, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return reg, fmt.Errorf("registration: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return reg, fmt.Errorf("registration: %w", err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return reg, fmt.Errorf("registration: the authority answered %s: %s", resp.Status, raw)
	}
	var answer struct {
		ClientID        string `json:"client_id"`
		ClientSecret    string `json:"client_secret"`
		SecretExpiresAt int64  `json:"client_secret_expires_at"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil || answer.ClientID == "" {
		return reg, fmt.Errorf("registration: an answer without client_id: %s", raw)
	}
	reg.ClientID, reg.ClientSecret, reg.SecretExpiresAt = answer.ClientID, answer.ClientSecret, answer.SecretExpiresAt
	reg.Response = raw
	return reg, nil
}

// authorizationURL builds the authorization request of a login.
func authorizationURL(md providerMetadata, reg Registration, redirectURI string, f *flow) string {
	q := url.Values{
		"response_type": {"code"},
		"client_id":     {reg.ClientID},
		"redirect_uri":  {redirectURI},
		"scope":         {"openid"},
		"state":         {f.state},
		"nonce":         {f.nonce},
		"login_hint":    {f.Discovery.Identifier},
	}
	if f.ClaimsParameter != "" {
		q.Set("claims", f.ClaimsParameter)
	}
	if f.Options.Prompt != "" {
		q.Set("prompt", f.Options.Prompt)
	}
	if f.Options.PKCE {
		q.Set("code_challenge", oauth2.S256ChallengeFromVerifier(f.verifier))
		q.Set("code_challenge_method", "S256")
	}
	sep := "?"
	if strings.Contains(md.AuthorizationEndpoint, "?") {
		sep = "&"
	}
	return md.AuthorizationEndpoint + sep + q.Encode()
}

// tokenResponse is the token endpoint's answer.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	IDToken     string `json:"id_token"`
	ExpiresIn   int64  `json:"expires_in"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// redeem exchanges the code at the token endpoint.
func redeem(ctx context.Context, c *http.Client, md providerMetadata, reg Registration, redirectURI, code string, f *flow) (tokenResponse, error) {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}
	if f.Options.PKCE {
		form.Set("code_verifier", f.verifier)
	}
	basic := f.Options.authMethod() == "client_secret_basic"
	if !basic {
		form.Set("client_id", reg.ClientID)
		form.Set("client_secret", reg.ClientSecret)
	}
	req, err := http.NewRequestWithContext(withPurpose(ctx, "token"), http.MethodPost, md.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return tokenResponse{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if basic {
		// RFC 6749 §2.3.1: both are form-encoded before they go into Basic.
		req.SetBasicAuth(url.QueryEscape(reg.ClientID), url.QueryEscape(reg.ClientSecret))
	}
	resp, err := c.Do(req)
	if err != nil {
		return tokenResponse{}, fmt.Errorf("token: %w", err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		return tr, fmt.Errorf("token: the answer (%s): %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK || tr.Error != "" {
		return tr, fmt.Errorf("token: %s %s: %s", resp.Status, tr.Error, tr.Description)
	}
	if tr.AccessToken == "" || tr.IDToken == "" {
		return tr, errors.New("token: the answer lacks access_token or id_token")
	}
	return tr, nil
}

// keySet fetches a JWK Set.
func keySet(ctx context.Context, c *http.Client, purpose, u string) (*jose.JSONWebKeySet, error) {
	var s jose.JSONWebKeySet
	if err := getJSON(ctx, c, purpose, u, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// decodeJWT fills t from the compact JWT raw: it decrypts a JWE with key (a nested JWT
// inside, or JSON), and verifies a JWS with the key of keys its kid names. keys may be nil
// to decode without verifying. It reports whether a signature was verified.
func decodeJWT(t *Token, raw string, decryptionKey *jose.JSONWebKey, keys *jose.JSONWebKeySet) {
	t.Raw = raw
	if strings.Count(raw, ".") == 4 {
		if decryptionKey == nil {
			t.check("decryption", false, "the answer is encrypted, but this client registered no encryption key")
			return
		}
		jwe, err := jose.ParseEncrypted(raw, keyAlgs, contentEncs)
		if !t.check("encryption", err == nil, "JWE, RSA-OAEP-256 and A128CBC-HS256%s", errSuffix(err)) {
			return
		}
		h, _ := json.Marshal(jweHeader(jwe.Header))
		t.JWEHeader = pretty(h)
		inner, err := jwe.Decrypt(decryptionKey.Key)
		if !t.check("decryption", err == nil, "decrypted with the client's key %s%v", decryptionKey.KeyID, errSuffix(err)) {
			return
		}
		if cty, _ := jwe.Header.ExtraHeaders[jose.HeaderContentType].(string); !strings.EqualFold(cty, "JWT") {
			t.Payload = pretty(inner)
			t.check("signature", true, "encrypted JSON: nothing signed")
			_ = json.Unmarshal(inner, &t.claims)
			return
		}
		raw = string(inner)
	}
	jws, err := jose.ParseSigned(raw, signingAlgs)
	if !t.check("format", err == nil, "a JWS signed with RS256 or ES256%s", errSuffix(err)) {
		return
	}
	sig := jws.Signatures[0]
	h, _ := json.Marshal(map[string]any{"alg": sig.Header.Algorithm, "kid": sig.Header.KeyID, "typ": sig.Header.ExtraHeaders[jose.HeaderType]})
	t.Header = pretty(h)
	payload := jws.UnsafePayloadWithoutVerification()
	t.Payload = pretty(payload)
	if err := json.Unmarshal(payload, &t.claims); err != nil {
		t.check("payload", false, "not a JSON object: %v", err)
		return
	}
	if keys == nil {
		return
	}
	candidates := keys.Key(sig.Header.KeyID)
	if len(candidates) == 0 {
		t.check("signature", false, "no key with kid %q in the JWKS", sig.Header.KeyID)
		return
	}
	if _, err := jws.Verify(candidates[0].Key); err != nil {
		t.check("signature", false, "%s with kid %q: %v", sig.Header.Algorithm, sig.Header.KeyID, err)
		return
	}
	t.check("signature", true, "%s, verified with the JWKS key %q", sig.Header.Algorithm, sig.Header.KeyID)
}

func jweHeader(h jose.Header) map[string]any {
	m := map[string]any{"alg": h.Algorithm, "kid": h.KeyID}
	for k, v := range h.ExtraHeaders {
		m[string(k)] = v
	}
	return m
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

// checkTimes checks exp and iat at now.
func (t *Token) checkTimes(now time.Time) {
	exp, okExp := t.claims["exp"].(float64)
	if t.check("exp", okExp && now.Before(time.Unix(int64(exp), 0).Add(leeway)), "%s", unixTime(t.claims["exp"])) {
		iat, ok := t.claims["iat"].(float64)
		t.check("iat", ok && time.Unix(int64(iat), 0).Before(now.Add(leeway)), "%s", unixTime(t.claims["iat"]))
	}
}

func unixTime(v any) string {
	f, ok := v.(float64)
	if !ok {
		return fmt.Sprintf("%v: not a number", v)
	}
	return time.Unix(int64(f), 0).UTC().Format(time.RFC3339)
}

// checkClaim checks that claim is want.
func (t *Token) checkClaim(claim string, want any) {
	got := t.claims[claim]
	t.check(claim, got == want, "%v%s", got, map[bool]string{true: "", false: fmt.Sprintf(", want %v", want)}[got == want])
}

// checkAudience checks that aud is (or holds) want.
func (t *Token) checkAudience(want string) {
	ok := false
	switch a := t.claims["aud"].(type) {
	case string:
		ok = a == want
	case []any:
		ok = slices.Contains(a, any(want))
	}
	t.check("aud", ok, "%v (the client is %s)", t.claims["aud"], want)
}

// fetchUserinfo asks the userinfo endpoint with the access token.
func fetchUserinfo(ctx context.Context, c *http.Client, md providerMetadata, accessToken string) (body []byte, contentType string, err error) {
	return bearerGET(ctx, c, "userinfo", md.UserinfoEndpoint, accessToken, "application/json, application/jwt")
}

// bearerGET fetches u with a bearer token.
func bearerGET(ctx context.Context, c *http.Client, purpose, u, token, accept string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(withPurpose(ctx, purpose), http.MethodGet, u, nil)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", purpose, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", accept)
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", purpose, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", purpose, err)
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusOK {
		detail := resp.Header.Get("WWW-Authenticate")
		if detail == "" {
			detail = strings.TrimSpace(string(body))
		}
		return body, ct, fmt.Errorf("%s: %s answered %s: %s", purpose, u, resp.Status, detail)
	}
	return body, ct, nil
}

// unverifiedClaim reads a claim from a JWT's payload without verifying anything: to learn
// whose keys verify it.
func unverifiedClaim(raw, claim string) string {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return ""
	}
	s, _ := m[claim].(string)
	return s
}
