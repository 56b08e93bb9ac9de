package oidctest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Agent is a test agent's claims endpoint: a TLS server that accepts the authority's access
// tokens, verified through the authority's discovery and JWKS, and answers with the claims
// the token lists (clm), from Claims.
type Agent struct {
	Server *httptest.Server
	// Issuer is the agent's issuer: the audience its access tokens must have.
	Issuer string
	// Endpoint is the claims endpoint.
	Endpoint string
	// Claims are the holders' claims by identifier.
	Claims map[string]map[string]any

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	ctx      context.Context
	tokens   []map[string]any
	now      func() time.Time
	// verifierFor makes the verifier at first use: the authority is reached only then.
	verifierFor func() (*oidc.IDTokenVerifier, error)
}

// StartAgent starts a test agent that verifies tokens from the authority at issuer; client
// is how it reaches the authority. Close the agent's Server when done.
func StartAgent(client *http.Client, issuer string, now func() time.Time) *Agent {
	a := &Agent{Claims: make(map[string]map[string]any), now: now}
	a.Server = httptest.NewTLSServer(http.HandlerFunc(a.serve))
	a.Issuer = a.Server.URL
	a.Endpoint = a.Server.URL + "/userinfo"
	a.ctx = oidc.ClientContext(context.Background(), client)
	a.verifierFor = func() (*oidc.IDTokenVerifier, error) {
		p, err := oidc.NewProvider(a.ctx, issuer)
		if err != nil {
			return nil, err
		}
		return p.Verifier(&oidc.Config{ClientID: a.Issuer, Now: a.now, SupportedSigningAlgs: []string{"RS256", "ES256"}}), nil
	}
	return a
}

// Tokens returns the claims of every access token the agent accepted.
func (a *Agent) Tokens() []map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.tokens)
}

func (a *Agent) verifierOnce() (*oidc.IDTokenVerifier, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.verifier == nil {
		v, err := a.verifierFor()
		if err != nil {
			return nil, err
		}
		a.verifier = v
	}
	return a.verifier, nil
}

func (a *Agent) serve(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		http.Error(w, "bearer token required", http.StatusUnauthorized)
		return
	}
	v, err := a.verifierOnce()
	if err != nil {
		http.Error(w, "discovery: "+err.Error(), http.StatusBadGateway)
		return
	}
	t, err := v.Verify(a.ctx, tok)
	if err != nil {
		http.Error(w, "token: "+err.Error(), http.StatusUnauthorized)
		return
	}
	var c struct {
		Sub        string   `json:"sub"`
		Identifier string   `json:"id4me.identifier"`
		Clm        []string `json:"clm"`
		ClientID   string   `json:"client_id"`
		Iat        int64    `json:"iat"`
		Exp        int64    `json:"exp"`
		Jti        string   `json:"jti"`
		Iss        string   `json:"iss"`
	}
	var all map[string]any
	if err := t.Claims(&c); err != nil || t.Claims(&all) != nil {
		http.Error(w, "claims", http.StatusBadRequest)
		return
	}
	if c.Exp-c.Iat != 600 || c.Jti == "" || c.ClientID == "" || c.Identifier == "" {
		http.Error(w, fmt.Sprintf("token layout: exp-iat=%d jti=%q client_id=%q", c.Exp-c.Iat, c.Jti, c.ClientID), http.StatusUnauthorized)
		return
	}
	a.mu.Lock()
	a.tokens = append(a.tokens, all)
	holder := a.Claims[c.Identifier]
	a.mu.Unlock()
	out := map[string]any{"iss": a.Issuer, "sub": c.Sub, "aud": c.ClientID, "id4me.identifier": c.Identifier, "id4me.identity": c.Iss + "#" + c.Sub}
	for _, name := range c.Clm {
		if v, ok := holder[name]; ok {
			out[name] = v
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}
