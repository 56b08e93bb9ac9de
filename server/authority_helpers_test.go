package server_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/id4me/id4me-registry/internal/oidctest"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// The authority's helpers the tests of the whole stack share; the authority's own tests
// are in authority/, on internal/oidctest's steps and checks as these are.

// alertWrongCredentials is the refusal of a wrong password, as a holder reads it.
const alertWrongCredentials = "The identifier or the password is wrong."

// submitLogin posts identifier and password on a new login form of rp in h's browser.
func (e *authEnv) submitLogin(rp *oidctest.RP, h *oidctest.Holder, identifier, password string) (oidctest.Page, error) {
	e.t.Helper()
	return oidctest.SubmitLogin(e.t, h, rp, identifier, password)
}

var (
	wantRefusedPage = oidctest.WantRefusedPage
	wantErrorPage   = oidctest.WantErrorPage
	wantPastLogin   = oidctest.WantPastLogin
)

// wantCallbackError fails unless the authority sent the browser back to redirect with the
// OAuth error code, the request's state and the authority's iss.
func (e *authEnv) wantCallbackError(t *testing.T, p oidctest.Page, err error, redirect, state, code string) {
	t.Helper()
	oidctest.WantCallbackError(t, p, err, e.issuer, redirect, state, code)
}

// authCode runs rp's authorization request in h's browser and returns the request and the
// code it gave.
func (e *authEnv) authCode(rp *oidctest.RP, h *oidctest.Holder, extra map[string]string) (oidctest.Request, string) {
	e.t.Helper()
	return oidctest.AuthCode(e.t, h, rp, extra)
}

// tokenRequest is one request to the token endpoint.
type tokenRequest struct {
	form url.Values
	// basic, when set, is the client_id and client_secret sent with HTTP Basic.
	basic []string
}

// postToken sends a token request and returns the status, the JSON answer and the headers.
func (e *authEnv) postToken(r tokenRequest) (int, map[string]any, http.Header) {
	e.t.Helper()
	return oidctest.PostToken(e.t, e.rpClient, e.issuer, oidctest.TokenRequest{Form: r.form, Basic: r.basic})
}

// redeem is the token request rp makes for code, authenticating as it registered.
func redeem(rp *oidctest.RP, req oidctest.Request, code string) tokenRequest {
	r := rp.Redemption(req, code)
	return tokenRequest{form: r.Form, basic: r.Basic}
}

// userinfoStatus asks userinfo with an access token and returns the status and the error
// code of a refusal.
func (e *authEnv) userinfoStatus(accessToken string) (int, string) {
	e.t.Helper()
	return oidctest.UserinfoStatus(e.t, e.rpClient, e.issuer, accessToken)
}

// wantUserinfoRefused fails unless userinfo refuses accessToken with 401 invalid_token.
func (e *authEnv) wantUserinfoRefused(t *testing.T, accessToken string) {
	t.Helper()
	oidctest.WantUserinfoRefused(t, e.rpClient, e.issuer, accessToken)
}

// createLink asks for a credential link for identifier as agent a.
func (e *authEnv) createLink(a testAgent, identifier string, purpose registryv1.CredentialLink_Purpose) (*registryv1.CredentialLink, error) {
	return e.registry.CreateCredentialLink(a.ctx(), &registryv1.CreateCredentialLinkRequest{Identifier: identifier, Purpose: purpose})
}
