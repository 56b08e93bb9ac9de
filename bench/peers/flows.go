package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"

	"github.com/id4me/id4me-registry/internal/oidctest"
)

// redirectURI is the relying party's callback; nothing listens there: the flows read the
// code from the redirect.
const redirectURI = oidctest.RedirectURI

// claimsParam is the claims parameter of every authorization request: two claims, which
// userinfo distributes to the agent.
const claimsParam = `{"userinfo":{"email":{"essential":true,"reason":"to send your receipts"},"name":null}}`

// user is a holder with an identifier and a password on both authorities.
type user struct {
	identifier, password string
	// jar holds the user's browser session after setup's login.
	jar http.CookieJar
}

// client is a relying party registered with a target.
type client struct {
	id, secret string
}

// target is one contender: an authority, its process and what setup made on it.
type target struct {
	name    string
	proc    *process
	issuer  string
	roots   *x509.CertPool
	disc    discovery
	users   []user
	plain   client // userinfo as JSON
	signed  client // userinfo as a signed JWT
	regBody []byte // the registration request of the registration figure
}

// discovery are the endpoints a target publishes.
type discovery struct {
	Authorization string `json:"authorization_endpoint"`
	Token         string `json:"token_endpoint"`
	Userinfo      string `json:"userinfo_endpoint"`
	Registration  string `json:"registration_endpoint"`
}

// newHTTPClient returns a client with a connection of its own, speaking proto ("h1": HTTP/1.1
// only; "h2": HTTP/2), trusting roots, with jar if not nil. It follows redirects within the
// authority and stops at any other host (the relying party's callback).
func newHTTPClient(proto string, roots *x509.CertPool, jar http.CookieJar) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
	}
	if proto == "h2" {
		tr.ForceAttemptHTTP2 = true
	} else {
		tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: tr,
		Jar:       jar,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host != via[0].URL.Host {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

func newJar() http.CookieJar {
	j, _ := cookiejar.New(nil)
	return j
}

// drain reads and closes a response body so that the connection is kept.
func drain(resp *http.Response) {
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// getJSON fetches u into v.
func getJSON(c *http.Client, u string, v any) error {
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// registration is the metadata both authorities get: a confidential web client.
func registration(alg string, signedUserinfo bool) map[string]any {
	m := map[string]any{
		"redirect_uris":                []string{redirectURI},
		"client_name":                  "bench relying party",
		"token_endpoint_auth_method":   "client_secret_basic",
		"id_token_signed_response_alg": alg,
	}
	if signedUserinfo {
		m["userinfo_signed_response_alg"] = alg
	}
	return m
}

// register registers a client with body and returns it.
func register(c *http.Client, endpoint string, body []byte) (client, error) {
	resp, err := c.Post(endpoint, "application/json", bytes.NewReader(body))
	if err != nil {
		return client{}, err
	}
	defer drain(resp)
	var out struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		Error        string `json:"error"`
		Description  string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return client{}, fmt.Errorf("registration: status %d: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusCreated || out.ClientID == "" {
		return client{}, fmt.Errorf("registration: status %d: %s %s", resp.StatusCode, out.Error, out.Description)
	}
	return client{id: out.ClientID, secret: out.ClientSecret}, nil
}

// authRequest is one authorization request with its secrets.
type authRequest struct {
	url, state, verifier string
}

func (t *target) authRequest(rp client) authRequest {
	r := authRequest{state: rand.Text(), verifier: rand.Text() + rand.Text()}
	sum := sha256.Sum256([]byte(r.verifier))
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {rp.id},
		"redirect_uri":          {redirectURI},
		"scope":                 {"openid"},
		"state":                 {r.state},
		"nonce":                 {rand.Text()},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
		"claims":                {claimsParam},
	}
	r.url = t.disc.Authorization + "?" + q.Encode()
	return r
}

// codeFrom checks that loc is the relying party's callback for r and returns its code.
func codeFrom(loc string, r authRequest) (string, error) {
	u, err := url.Parse(loc)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(loc, redirectURI) {
		return "", fmt.Errorf("redirected to %s, not the callback", loc)
	}
	q := u.Query()
	if q.Get("error") != "" {
		return "", fmt.Errorf("callback error %s: %s", q.Get("error"), q.Get("error_description"))
	}
	if q.Get("state") != r.state || q.Get("code") == "" {
		return "", fmt.Errorf("callback %s: wrong state or no code", loc)
	}
	return q.Get("code"), nil
}

// authorize makes the authorization request r with c's session, which must be answered with
// a code at once (a logged-in user who allowed the relying party before).
func authorize(c *http.Client, r authRequest) (string, error) {
	resp, err := c.Get(r.url)
	if err != nil {
		return "", err
	}
	drain(resp)
	if resp.StatusCode/100 != 3 {
		return "", fmt.Errorf("authorize: status %d at %s, not a redirect to the callback (session lost?)", resp.StatusCode, resp.Request.URL)
	}
	return codeFrom(resp.Header.Get("Location"), r)
}

// login makes the authorization request r in the browser c as the holder u: it fills the
// login form, and the consent form if one is shown, and returns the code.
func login(c *http.Client, u user, r authRequest) (string, error) {
	h := &oidctest.Holder{Client: c, Identifier: u.identifier, Password: u.password}
	p, err := h.Get(r.url)
	for step := 0; step < 6; step++ {
		if errors.Is(err, oidctest.ErrLeft) {
			if strings.HasPrefix(p.URL, "/") {
				base, _ := url.Parse(r.url)
				next, _ := base.Parse(p.URL)
				p, err = h.Get(next.String())
				continue
			}
			return codeFrom(p.URL, r)
		}
		if err != nil {
			return "", err
		}
		if p.Status != http.StatusOK {
			return "", fmt.Errorf("page %q: status %d: %s", p.Title(), p.Status, p.Alert())
		}
		switch a := p.Action(); {
		case strings.HasSuffix(a, "/login"):
			p, err = h.Submit(p, url.Values{"identifier": {u.identifier}, "password": {u.password}})
		case strings.HasSuffix(a, "/consent"), strings.HasSuffix(a, "/confirm"):
			p, err = h.Submit(p, url.Values{"decision": {"allow"}})
		default:
			return "", fmt.Errorf("unexpected page %q (form action %q)", p.Title(), a)
		}
	}
	return "", errors.New("login: too many pages")
}

// redeem exchanges code at the token endpoint and returns the access token.
func (t *target) redeem(c *http.Client, rp client, r authRequest, code string) (string, error) {
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {redirectURI},
		"code_verifier": {r.verifier},
	}
	req, err := http.NewRequest(http.MethodPost, t.disc.Token, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(rp.id), url.QueryEscape(rp.secret))
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer drain(resp)
	var out struct {
		AccessToken string `json:"access_token"`
		IDToken     string `json:"id_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", fmt.Errorf("token: status %d: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || out.AccessToken == "" || out.IDToken == "" {
		return "", fmt.Errorf("token: status %d: %s %s", resp.StatusCode, out.Error, out.Description)
	}
	return out.AccessToken, nil
}

// userinfo calls userinfo with token; signed asks for (and checks) a JWT. It checks that the
// answer distributes the requested claims to the agent.
func (t *target) userinfo(c *http.Client, token string, signed bool) error {
	req, err := http.NewRequest(http.MethodGet, t.disc.Userinfo, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if signed {
		req.Header.Set("Accept", "application/jwt")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("userinfo: status %d: %s", resp.StatusCode, body)
	}
	ct := resp.Header.Get("Content-Type")
	if signed {
		if !strings.HasPrefix(ct, "application/jwt") || bytes.Count(body, []byte(".")) != 2 {
			return fmt.Errorf("userinfo: %s answer, want a signed JWT", ct)
		}
		return nil
	}
	if !bytes.Contains(body, []byte(`"_claim_sources"`)) || !bytes.Contains(body, []byte(agentEndpoint)) {
		return fmt.Errorf("userinfo: no distributed claims in %s", body)
	}
	return nil
}

// mint logs c's session in through a code flow and returns a fresh access token for rp.
func (t *target) mint(c *http.Client, rp client) (string, error) {
	r := t.authRequest(rp)
	code, err := authorize(c, r)
	if err != nil {
		return "", err
	}
	return t.redeem(c, rp, r, code)
}

// setupClients registers the target's two relying parties and logs each user in through the
// login form, allowing both, so that their sessions (kept in their jars) get codes at once.
func (t *target) setupClients(alg string) error {
	c := newHTTPClient("h1", t.roots, nil)
	defer c.CloseIdleConnections()
	if err := getJSON(c, t.issuer+"/.well-known/openid-configuration", &t.disc); err != nil {
		return err
	}
	if t.disc.Registration == "" || t.disc.Userinfo == "" {
		return fmt.Errorf("%s: discovery names no registration or userinfo endpoint", t.name)
	}
	var err error
	t.regBody, _ = json.Marshal(registration(alg, false))
	if t.plain, err = register(c, t.disc.Registration, t.regBody); err != nil {
		return err
	}
	signed, _ := json.Marshal(registration(alg, true))
	if t.signed, err = register(c, t.disc.Registration, signed); err != nil {
		return err
	}
	for k := range t.users {
		u := &t.users[k]
		u.jar = newJar()
		b := newHTTPClient("h1", t.roots, u.jar)
		for _, rp := range []client{t.plain, t.signed} {
			r := t.authRequest(rp)
			code, err := login(b, *u, r)
			if err != nil {
				return fmt.Errorf("%s: first login of %s: %w", t.name, u.identifier, err)
			}
			tok, err := t.redeem(b, rp, r, code)
			if err != nil {
				return fmt.Errorf("%s: first login of %s: %w", t.name, u.identifier, err)
			}
			if err := t.userinfo(b, tok, rp == t.signed); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			// The session now answers at once.
			if _, err := t.mint(b, rp); err != nil {
				return fmt.Errorf("%s: second authorization of %s: %w", t.name, u.identifier, err)
			}
		}
		b.CloseIdleConnections()
	}
	return nil
}
