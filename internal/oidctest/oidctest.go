// Package oidctest plays the other parties of an ID4me login against a running authority, for
// tests and benchmarks: a relying party built on go-oidc and x/oauth2 that registers itself
// dynamically, one shaped like the ID4me RP libraries (plain HTTP, no PKCE by default), a
// holder that fills the authority's forms over HTTP, and an agent (a TLS server) that
// verifies the authority's access tokens and answers with claims.
package oidctest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// RedirectURI is where test relying parties say they live. Nothing listens there: the
// holder's client stops at the redirect and hands the URL over.
const RedirectURI = "https://rp.test/callback"

// HTTPClient returns a client that trusts roots (the authority's and the agents'
// certificates) and, with a cookie jar, keeps a browser's cookies. It never follows a
// redirect away from the host it started on.
func HTTPClient(roots *x509.CertPool, jar bool) *http.Client {
	c := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, MaxIdleConnsPerHost: 64, ForceAttemptHTTP2: true},
	}
	if jar {
		c.Jar, _ = cookiejar.New(nil)
	}
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != via[0].URL.Host {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return c
}

// HTTPClientFrom returns a browser-like client (with a cookie jar, as HTTPClient) whose
// connections come from the local address source, e.g. 127.0.0.2: another source address
// on loopback.
func HTTPClientFrom(roots *x509.CertPool, source string) *http.Client {
	c := HTTPClient(roots, true)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 10 * time.Second}
	c.Transport.(*http.Transport).DialContext = d.DialContext
	return c
}

// Pool returns a pool with the given DER certificates.
func Pool(ders ...[]byte) *x509.CertPool {
	p := x509.NewCertPool()
	for _, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			panic(err)
		}
		p.AddCert(c)
	}
	return p
}

// RP is a relying party registered with the authority.
type RP struct {
	Provider *oidc.Provider
	OAuth    oauth2.Config
	// Registration is the registration response.
	Registration map[string]any
	// DecryptionKey is the RP's private key (*rsa.PrivateKey or *ecdsa.PrivateKey) for the
	// encrypted ID tokens and userinfo responses it registered; nil if it registered none.
	DecryptionKey any
	// AgentAccept is the Accept header DistributedClaims sends to the agents: empty for a
	// signed answer (the default), application/json for JSON.
	AgentAccept string
	client      *http.Client
	ctx         context.Context
	// now is the clock of the last Finish.
	now func() time.Time
}

// NewRP discovers the authority at issuer and registers a client with metadata (redirect
// URIs default to RedirectURI).
func NewRP(ctx context.Context, client *http.Client, issuer string, metadata map[string]any) (*RP, error) {
	ctx = oidc.ClientContext(ctx, client)
	p, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	var disco struct {
		Registration string `json:"registration_endpoint"`
	}
	if err := p.Claims(&disco); err != nil {
		return nil, err
	}
	if metadata == nil {
		metadata = map[string]any{}
	}
	if _, ok := metadata["redirect_uris"]; !ok {
		metadata["redirect_uris"] = []string{RedirectURI}
	}
	status, reg, err := PostJSON(client, disco.Registration, metadata)
	if err != nil {
		return nil, err
	}
	if status != http.StatusCreated {
		return nil, fmt.Errorf("registration: %d %v", status, reg)
	}
	id, _ := reg["client_id"].(string)
	secret, _ := reg["client_secret"].(string)
	redirect := metadata["redirect_uris"].([]string)[0]
	rp := &RP{
		Provider: p, Registration: reg, client: client, ctx: ctx,
		OAuth: oauth2.Config{ClientID: id, ClientSecret: secret, Endpoint: p.Endpoint(), RedirectURL: redirect, Scopes: []string{oidc.ScopeOpenID}},
	}
	if m, _ := reg["token_endpoint_auth_method"].(string); m == "client_secret_post" {
		rp.OAuth.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	} else {
		rp.OAuth.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	}
	return rp, nil
}

// PostJSON posts v as JSON and decodes the JSON answer.
func PostJSON(client *http.Client, url string, v any) (int, map[string]any, error) {
	b, _ := json.Marshal(v)
	resp, err := client.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("decoding %s answer: %w", url, err)
	}
	return resp.StatusCode, out, nil
}

// Request is one authorization request of an RP, with its secrets.
type Request struct {
	URL      string
	State    string
	Nonce    string
	Verifier string
}

// AuthRequest builds an authorization request; extra parameters (claims, login_hint,
// prompt, …) are added as given.
func (rp *RP) AuthRequest(extra map[string]string) Request {
	r := Request{State: rand.Text(), Nonce: rand.Text(), Verifier: oauth2.GenerateVerifier()}
	opts := []oauth2.AuthCodeOption{oidc.Nonce(r.Nonce), oauth2.S256ChallengeOption(r.Verifier)}
	for k, v := range extra {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	r.URL = rp.OAuth.AuthCodeURL(r.State, opts...)
	return r
}

// Result is what an RP got from a login.
type Result struct {
	Token    *oauth2.Token
	IDToken  *oidc.IDToken
	Claims   map[string]any
	Userinfo map[string]any
	// RawUserinfo is the userinfo body as received (JSON or a JWT).
	RawUserinfo []byte
	// UserinfoType is the userinfo Content-Type.
	UserinfoType string
	// IDTokenJWE and UserinfoJWE are the headers of the encrypted ID token and userinfo
	// response; nil when they came unencrypted.
	IDTokenJWE, UserinfoJWE *jose.Header
}

// Finish takes the URL the holder's browser was sent back to, checks its state and iss,
// redeems the code and verifies the ID token with go-oidc (now is the verifier's clock),
// then fetches userinfo.
func (rp *RP) Finish(req Request, callback string, now func() time.Time) (*Result, error) {
	rp.now = now
	u, err := url.Parse(callback)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	if e := q.Get("error"); e != "" {
		return nil, &CallbackError{Code: e, Description: q.Get("error_description")}
	}
	if q.Get("state") != req.State {
		return nil, fmt.Errorf("state %q, want %q", q.Get("state"), req.State)
	}
	if q.Get("iss") != issuerOf(rp) {
		return nil, fmt.Errorf("iss %q is not the issuer", q.Get("iss"))
	}
	tok, err := rp.OAuth.Exchange(rp.ctx, q.Get("code"), oauth2.VerifierOption(req.Verifier))
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	var idtJWE *jose.Header
	if isJWE(raw) {
		inner, h, err := rp.Decrypt(raw)
		if err != nil {
			return nil, fmt.Errorf("ID token: %w", err)
		}
		raw, idtJWE = string(inner), &h
	}
	v := rp.Provider.Verifier(&oidc.Config{ClientID: rp.OAuth.ClientID, Now: now, SupportedSigningAlgs: []string{"RS256", "ES256"}})
	idt, err := v.Verify(rp.ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("ID token: %w", err)
	}
	if idt.Nonce != req.Nonce {
		return nil, fmt.Errorf("nonce %q, want %q", idt.Nonce, req.Nonce)
	}
	res := &Result{Token: tok, IDToken: idt, IDTokenJWE: idtJWE}
	if err := idt.Claims(&res.Claims); err != nil {
		return nil, err
	}
	res.Userinfo, res.RawUserinfo, res.UserinfoType, res.UserinfoJWE, err = rp.userinfo(tok.AccessToken)
	return res, err
}

func issuerOf(rp *RP) string {
	var c struct {
		Issuer string `json:"issuer"`
	}
	rp.Provider.Claims(&c)
	return c.Issuer
}

// Userinfo fetches userinfo with an access token; a JWT answer is decrypted with
// DecryptionKey when it is encrypted, and verified with the authority's keys when it is
// signed.
func (rp *RP) Userinfo(accessToken string) (map[string]any, []byte, string, error) {
	m, body, ct, _, err := rp.userinfo(accessToken)
	return m, body, ct, err
}

func (rp *RP) userinfo(accessToken string) (map[string]any, []byte, string, *jose.Header, error) {
	m, body, ct, err := rp.fetchUserinfo(accessToken)
	if err != nil || !strings.HasPrefix(ct, "application/jwt") || !isJWE(string(body)) {
		return m, body, ct, nil, err
	}
	payload, h, err := rp.Decrypt(string(body))
	if err != nil {
		return nil, body, ct, nil, fmt.Errorf("userinfo: %w", err)
	}
	if cty, _ := h.ExtraHeaders[jose.HeaderContentType].(string); strings.EqualFold(cty, "JWT") {
		m, err = rp.verifyUserinfo(payload)
	} else {
		err = json.Unmarshal(payload, &m)
	}
	return m, body, ct, &h, err
}

func (rp *RP) fetchUserinfo(accessToken string) (map[string]any, []byte, string, error) {
	req, _ := http.NewRequest(http.MethodGet, rp.Provider.UserInfoEndpoint(), nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := rp.client.Do(req)
	if err != nil {
		return nil, nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, "", err
	}
	ct := resp.Header.Get("Content-Type")
	if resp.StatusCode != http.StatusOK {
		return nil, body, ct, &HTTPError{Status: resp.StatusCode, Body: string(body), WWWAuthenticate: resp.Header.Get("WWW-Authenticate")}
	}
	if isJWE(string(body)) {
		return nil, body, ct, nil
	}
	if strings.HasPrefix(ct, "application/jwt") {
		m, err := rp.verifyUserinfo(body)
		return m, body, ct, err
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, body, ct, err
	}
	return m, body, ct, nil
}

// verifyUserinfo verifies a signed userinfo JWT with the authority's keys: it carries the
// client as aud, like an ID token.
func (rp *RP) verifyUserinfo(jwt []byte) (map[string]any, error) {
	v := rp.Provider.Verifier(&oidc.Config{ClientID: rp.OAuth.ClientID, SkipExpiryCheck: true, SupportedSigningAlgs: []string{"RS256", "ES256"}})
	t, err := v.Verify(rp.ctx, string(jwt))
	if err != nil {
		return nil, fmt.Errorf("userinfo JWT: %w", err)
	}
	var m map[string]any
	if err := t.Claims(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// DistributedClaims follows userinfo's _claim_sources: it asks each source's endpoint with
// its access token and returns the claims named in _claim_names. A signed answer is verified
// with the agent's keys (CheckAgentAnswer), against the clock of the last Finish.
func (rp *RP) DistributedClaims(userinfo map[string]any) (map[string]any, error) {
	return distributedClaims(rp.client, userinfo, AgentCheck{ClientID: rp.OAuth.ClientID, Accept: rp.AgentAccept, Now: rp.now})
}

// CallbackError is an error the authority sent back to the RP's redirect URI.
type CallbackError struct{ Code, Description string }

func (e *CallbackError) Error() string { return e.Code + ": " + e.Description }

// HTTPError is an unexpected HTTP answer.
type HTTPError struct {
	Status          int
	Body            string
	WWWAuthenticate string
}

func (e *HTTPError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body) }

// Holder is an identifier's holder with a browser-like client (cookies, no JavaScript).
type Holder struct {
	Client     *http.Client
	Identifier string
	Password   string
	// TOTP returns the current code when the holder enrolled a second factor.
	TOTP func() string
}

// Page is an HTML page the holder received.
type Page struct {
	URL    string
	Status int
	Body   string
	// Header is the answer's header.
	Header http.Header
}

var (
	hiddenRe = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
	formRe   = regexp.MustCompile(`<form method="post" action="([^"]+)">`)
	alertRe  = regexp.MustCompile(`<p class="alert" role="alert" id="error">([^<]*)</p>`)
	titleRe  = regexp.MustCompile(`<h1>([^<]*)</h1>`)
	secretRe = regexp.MustCompile(`<output id="secret" class="secret">([A-Z2-7]+)</output>`)
)

// Hidden returns the page's hidden form fields.
func (p Page) Hidden() url.Values {
	v := url.Values{}
	for _, m := range hiddenRe.FindAllStringSubmatch(p.Body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

// Action returns the page's form action.
func (p Page) Action() string {
	m := formRe.FindStringSubmatch(p.Body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// Alert returns the page's error message, if any.
func (p Page) Alert() string {
	m := alertRe.FindStringSubmatch(p.Body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// Title returns the page's heading.
func (p Page) Title() string {
	m := titleRe.FindStringSubmatch(p.Body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// TOTPSecret returns the secret a TOTP enrolment page shows.
func (p Page) TOTPSecret() string {
	m := secretRe.FindStringSubmatch(p.Body)
	if m == nil {
		return ""
	}
	return m[1]
}

// ErrLeft is returned with the URL the authority sent the browser to when it left the
// authority (back to the RP).
var ErrLeft = errors.New("left the authority")

// Get fetches a page. When the authority redirects elsewhere, it returns the target and
// ErrLeft.
func (h *Holder) Get(u string) (Page, error) {
	resp, err := h.Client.Get(u)
	return readPage(resp, err)
}

// Submit posts the page's form with its hidden fields and fields; base resolves the action.
func (h *Holder) Submit(p Page, fields url.Values) (Page, error) {
	v := p.Hidden()
	for k, vs := range fields {
		v[k] = vs
	}
	base, err := url.Parse(p.URL)
	if err != nil {
		return Page{}, err
	}
	action, err := base.Parse(p.Action())
	if err != nil {
		return Page{}, err
	}
	resp, err := h.Client.PostForm(action.String(), v)
	return readPage(resp, err)
}

func readPage(resp *http.Response, err error) (Page, error) {
	if err != nil {
		return Page{}, err
	}
	defer resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && loc != "" {
		return Page{URL: loc, Status: resp.StatusCode, Header: resp.Header}, ErrLeft
	}
	b, err := io.ReadAll(resp.Body)
	return Page{URL: resp.Request.URL.String(), Status: resp.StatusCode, Body: string(b), Header: resp.Header}, err
}

// SetCredentials opens a credential link and sets the holder's password; with enrolTOTP it
// also enrols a TOTP secret, confirmed with a code from codeFor, and sets h.TOTP.
func (h *Holder) SetCredentials(link string, enrolTOTP bool, codeFor func(secret string) string) (Page, error) {
	p, err := h.Get(link)
	if err != nil {
		return p, err
	}
	f := url.Values{"password": {h.Password}, "confirm": {h.Password}}
	if enrolTOTP {
		f.Set("totp", "on")
	}
	p, err = h.Submit(p, f)
	if err != nil || !enrolTOTP || p.Status != http.StatusOK {
		return p, err
	}
	secret := p.TOTPSecret()
	if secret == "" {
		return p, fmt.Errorf("no TOTP secret on the page %q", p.Title())
	}
	h.TOTP = func() string { return codeFor(secret) }
	return h.Submit(p, url.Values{"code": {codeFor(secret)}})
}

// Login follows an authorization request through the login (and TOTP) and consent pages,
// allowing, and returns the URL the authority sent the browser back to. A page that is not
// the one expected is returned with an error.
func (h *Holder) Login(authURL string) (string, Page, error) {
	p, err := h.Get(authURL)
	for step := 0; step < 6; step++ {
		if errors.Is(err, ErrLeft) {
			if strings.HasPrefix(p.URL, "/") {
				base, _ := url.Parse(authURL)
				next, _ := base.Parse(p.URL)
				p, err = h.Get(next.String())
				continue
			}
			return p.URL, p, nil
		}
		if err != nil {
			return "", p, err
		}
		if p.Status != http.StatusOK {
			return "", p, fmt.Errorf("page %q: status %d: %s", p.Title(), p.Status, p.Alert())
		}
		switch p.Action() {
		case "/login":
			p, err = h.Submit(p, url.Values{"identifier": {h.Identifier}, "password": {h.Password}})
		case "/login/totp":
			if h.TOTP == nil {
				return "", p, errors.New("asked for a TOTP code")
			}
			p, err = h.Submit(p, url.Values{"code": {h.TOTP()}})
		case "/consent":
			p, err = h.Submit(p, url.Values{"decision": {"allow"}})
		default:
			return "", p, fmt.Errorf("unexpected page %q", p.Title())
		}
	}
	return "", p, errors.New("too many pages")
}
