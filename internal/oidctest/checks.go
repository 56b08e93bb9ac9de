package oidctest

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The helpers below are the steps and checks the authority's tests make by hand, beside
// what a relying party or a holder does on its own; each fails t with what it got.

// LoginForm opens an authorization request of rp in h's browser, with prompt=login so
// that a session does not skip the form, and returns the login form.
func LoginForm(t testing.TB, h *Holder, rp *RP) Page {
	t.Helper()
	p, err := h.Get(rp.AuthRequest(map[string]string{"prompt": "login"}).URL)
	if err != nil || p.Status != http.StatusOK || p.Action() != "/login" {
		t.Fatalf("login page: %v, page %d %q %q", err, p.Status, p.Title(), p.Alert())
	}
	return p
}

// SubmitLogin posts identifier and password on a new login form of rp in h's browser and
// returns what answered: a page of the authority, or (with ErrLeft) the way back to rp.
func SubmitLogin(t testing.TB, h *Holder, rp *RP, identifier, password string) (Page, error) {
	t.Helper()
	return h.Submit(LoginForm(t, h, rp), url.Values{"identifier": {identifier}, "password": {password}})
}

// AuthCode runs rp's authorization request, with extra parameters, in h's browser
// (logging in and consenting as needed) and returns the request and the code it gave.
func AuthCode(t testing.TB, h *Holder, rp *RP, extra map[string]string) (Request, string) {
	t.Helper()
	req := rp.AuthRequest(extra)
	cb, p, err := h.Login(req.URL)
	if err != nil {
		t.Fatalf("login: %v (page %d %q: %q)", err, p.Status, p.Title(), p.Alert())
	}
	u, err := url.Parse(cb)
	if err != nil || u.Query().Get("code") == "" || u.Query().Get("state") != req.State {
		t.Fatalf("callback %s: no code for the request", cb)
	}
	return req, u.Query().Get("code")
}

// WantRefusedPage fails t unless p is a page of the authority with status and alert.
func WantRefusedPage(t testing.TB, p Page, err error, status int, alert string) {
	t.Helper()
	if err != nil {
		t.Fatalf("got %v (to %s), want a %d page %q", err, p.URL, status, alert)
	}
	if p.Status != status || p.Alert() != alert {
		t.Fatalf("page %d %q with alert %q, want %d with alert %q", p.Status, p.Title(), p.Alert(), status, alert)
	}
}

// WantErrorPage fails t unless p is an error page of the authority with status and title:
// not a redirect anywhere.
func WantErrorPage(t testing.TB, p Page, err error, status int, title string) {
	t.Helper()
	if err != nil {
		t.Fatalf("got %v (to %s), want a %d error page %q", err, p.URL, status, title)
	}
	if p.Status != status || p.Title() != title {
		t.Fatalf("page %d %q, want %d %q", p.Status, p.Title(), status, title)
	}
}

// WantPastLogin fails t unless a login went through: on to the consent page or back to the
// RP.
func WantPastLogin(t testing.TB, p Page, err error) {
	t.Helper()
	switch {
	case errors.Is(err, ErrLeft) && strings.HasPrefix(p.URL, RedirectURI+"?code="):
	case err == nil && p.Status == http.StatusOK && p.Action() == "/consent":
	default:
		t.Fatalf("login: %v, page %d %q %q (%s), want it to go through", err, p.Status, p.Title(), p.Alert(), p.URL)
	}
}

// WantCallbackError fails t unless the authority at issuer sent the browser back to
// redirect with the OAuth error code, the request's state and the authority's iss.
func WantCallbackError(t testing.TB, p Page, err error, issuer, redirect, state, code string) {
	t.Helper()
	if !errors.Is(err, ErrLeft) {
		t.Fatalf("got %v, page %d %q, want a redirect to the client with error %s", err, p.Status, p.Title(), code)
	}
	u, perr := url.Parse(p.URL)
	if perr != nil {
		t.Fatal(perr)
	}
	q := u.Query()
	if base := strings.TrimSuffix(p.URL, "?"+u.RawQuery); base != redirect {
		t.Fatalf("redirected to %s, want the client's %s", base, redirect)
	}
	if q.Get("error") != code || q.Get("state") != state || q.Get("iss") != issuer || q.Has("code") {
		t.Fatalf("callback %s: want error=%s, state=%s, iss=%s and no code", p.URL, code, state, issuer)
	}
}

// TokenRequest is one request to the token endpoint, made by hand.
type TokenRequest struct {
	Form url.Values
	// Basic, when set, is the client_id and client_secret sent with HTTP Basic.
	Basic []string
}

// Redemption is the token request rp makes for code, authenticating as it registered.
func (rp *RP) Redemption(req Request, code string) TokenRequest {
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rp.OAuth.RedirectURL}, "code_verifier": {req.Verifier}}
	if rp.Registration["token_endpoint_auth_method"] == "client_secret_post" {
		f.Set("client_id", rp.OAuth.ClientID)
		f.Set("client_secret", rp.OAuth.ClientSecret)
		return TokenRequest{Form: f}
	}
	return TokenRequest{Form: f, Basic: []string{rp.OAuth.ClientID, rp.OAuth.ClientSecret}}
}

// PostToken sends r to the token endpoint of the authority at issuer and returns the
// status, the JSON answer and the headers.
func PostToken(t testing.TB, client *http.Client, issuer string, r TokenRequest) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader(r.Form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r.Basic != nil {
		req.SetBasicAuth(url.QueryEscape(r.Basic[0]), url.QueryEscape(r.Basic[1]))
	}
	return SendJSON(t, client, req)
}

// SendJSON sends req with client and returns the status, the JSON answer (nil for an empty
// body) and the headers; an answer that is not JSON fails t.
func SendJSON(t testing.TB, client *http.Client, req *http.Request) (int, map[string]any, http.Header) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%s %s: the answer %d is not JSON: %v", req.Method, req.URL, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, m, resp.Header
}

// UserinfoStatus asks userinfo of the authority at issuer with an access token and returns
// the status and the error code of a refusal, which WWW-Authenticate must carry too.
func UserinfoStatus(t testing.TB, client *http.Client, issuer, accessToken string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, ""
	}
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	code, _ := m["error"].(string)
	if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="`+code+`"`) {
		t.Fatalf("userinfo %d %s: WWW-Authenticate %q does not carry the error", resp.StatusCode, code, resp.Header.Get("WWW-Authenticate"))
	}
	return resp.StatusCode, code
}

// WantUserinfoRefused fails t unless userinfo of the authority at issuer refuses
// accessToken with 401 invalid_token.
func WantUserinfoRefused(t testing.TB, client *http.Client, issuer, accessToken string) {
	t.Helper()
	if status, code := UserinfoStatus(t, client, issuer, accessToken); status != http.StatusUnauthorized || code != "invalid_token" {
		t.Fatalf("userinfo: %d %q, want 401 invalid_token", status, code)
	}
}
