package oidctest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// BackchannelLogoutEvent is the member of a logout token's events claim (OpenID Connect
// Back-Channel Logout 1.0 §2.4).
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// LogoutReceiver is a relying party's backchannel_logout_uri: an HTTPS server on loopback
// that keeps the logout tokens posted to it and answers with Status (200 unless set), after
// Hold, if set, is closed.
type LogoutReceiver struct {
	Server *httptest.Server
	// URL is the backchannel_logout_uri to register.
	URL string

	mu     sync.Mutex
	status int
	hold   chan struct{}
	tokens []string
	posts  int
}

// StartLogoutReceiver starts a receiver; the caller closes its Server.
func StartLogoutReceiver() *LogoutReceiver {
	r := &LogoutReceiver{status: http.StatusOK}
	r.Server = httptest.NewTLSServer(http.HandlerFunc(r.serve))
	r.URL = r.Server.URL + "/backchannel-logout"
	return r
}

// AnswerWith makes the receiver answer status from now on.
func (r *LogoutReceiver) AnswerWith(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = status
}

// HoldUntil makes the receiver wait for release to be closed before it answers.
func (r *LogoutReceiver) HoldUntil(release chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hold = release
}

// Tokens returns the logout tokens received so far, whatever the receiver answered.
func (r *LogoutReceiver) Tokens() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.tokens...)
}

// Posts counts the requests received, with a logout token or not.
func (r *LogoutReceiver) Posts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.posts
}

func (r *LogoutReceiver) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.posts++
	hold := r.hold
	r.mu.Unlock()
	if req.Method != http.MethodPost || req.URL.Path != "/backchannel-logout" || req.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		http.Error(w, "want a form posted to /backchannel-logout", http.StatusBadRequest)
		return
	}
	tok := req.PostFormValue("logout_token")
	if hold != nil {
		<-hold
	}
	r.mu.Lock()
	if tok != "" {
		r.tokens = append(r.tokens, tok)
	}
	status := r.status
	r.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
}

// VerifyLogoutToken validates a logout token as a relying party must (Back-Channel Logout
// §2.6): signed by the authority's keys, "typ" logout+jwt, iss the issuer, aud the RP's
// client ID, not expired at now, iat and jti present, sub or sid present, events holding the
// back-channel logout event with an empty object, and no nonce. It returns the claims.
func (rp *RP) VerifyLogoutToken(raw string, now func() time.Time) (map[string]any, error) {
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return nil, fmt.Errorf("logout token: %w", err)
	}
	if typ, _ := jws.Signatures[0].Header.ExtraHeaders[jose.HeaderType].(string); typ != "logout+jwt" {
		return nil, fmt.Errorf("logout token typ %q, want logout+jwt", typ)
	}
	v := rp.Provider.Verifier(&oidc.Config{ClientID: rp.OAuth.ClientID, Now: now, SupportedSigningAlgs: []string{"RS256", "ES256"}})
	t, err := v.Verify(rp.ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("logout token: %w", err)
	}
	var claims map[string]any
	if err := t.Claims(&claims); err != nil {
		return nil, err
	}
	events, _ := claims["events"].(map[string]any)
	event, ok := events[BackchannelLogoutEvent].(map[string]any)
	switch {
	case !ok || len(event) != 0:
		return nil, fmt.Errorf("logout token events %v: want %s with an empty object", claims["events"], BackchannelLogoutEvent)
	case claims["nonce"] != nil:
		return nil, fmt.Errorf("logout token has a nonce: %v", claims["nonce"])
	case claims["sub"] == nil && claims["sid"] == nil:
		return nil, fmt.Errorf("logout token has neither sub nor sid")
	case claims["jti"] == nil || claims["jti"] == "":
		return nil, fmt.Errorf("logout token has no jti")
	case claims["iat"] == nil:
		return nil, fmt.Errorf("logout token has no iat")
	}
	if b, err := json.Marshal(claims["aud"]); err != nil || (string(b) != `"`+rp.OAuth.ClientID+`"` && string(b) != `["`+rp.OAuth.ClientID+`"]`) {
		return nil, fmt.Errorf("logout token aud %s, want %s", b, rp.OAuth.ClientID)
	}
	return claims, nil
}
