package oidctest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/id4me/id4me-registry/agent/accesstoken"
	"github.com/id4me/id4me-registry/agent/claims"
)

// Agent is a test agent's issuer: agent/claims's Server on a TLS server, which verifies the
// authority's access tokens through the authority's discovery and JWKS and answers the
// claims the token lists (clm), from Claims, as a JWT signed with Keys (or JSON, when asked).
type Agent struct {
	Server *httptest.Server
	// Issuer is the agent's issuer: the audience its access tokens must have.
	Issuer string
	// Endpoint is the claims endpoint.
	Endpoint string
	// Claims are the holders' claims by identifier. An identifier without claims is
	// answered with none.
	Claims map[string]map[string]any
	// Keys sign the agent's answers.
	Keys *claims.KeySet

	mu     sync.Mutex
	srv    *claims.Server
	tokens []map[string]any
}

// StartAgent starts a test agent that verifies tokens from the authority at issuer; client
// is how it reaches the authority, at the first token. Close the agent's Server when done.
func StartAgent(client *http.Client, issuer string, now func() time.Time) *Agent {
	a := &Agent{Claims: make(map[string]map[string]any)}
	a.Server = httptest.NewTLSServer(http.HandlerFunc(a.serve))
	a.Issuer = a.Server.URL
	keys, err := claims.NewKeySet(claims.KeySetOptions{Algorithm: jose.ES256, Now: now})
	if err != nil {
		panic(err)
	}
	a.Keys = keys
	a.srv, err = claims.NewServer(claims.Config{
		Issuer:   a.Issuer,
		Verifier: accesstoken.NewLazy(client, issuer, a.Issuer, accesstoken.WithClock(now)),
		Source:   claims.SourceFunc(a.claims),
		Keys:     keys,
		Now:      now,
	})
	if err != nil {
		panic(err)
	}
	a.Endpoint = a.srv.ClaimsEndpoint
	return a
}

// Tokens returns the claims of every access token the agent accepted.
func (a *Agent) Tokens() []map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.tokens)
}

func (a *Agent) claims(_ context.Context, identifier string, names []string) (map[string]any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]any{}
	for _, n := range names {
		if v, ok := a.Claims[identifier][n]; ok {
			out[n] = v
		}
	}
	return out, nil
}

// serve is the agent's issuer, which also holds the authority to DENIC's token layout
// (a life of 600 s, a jti) and records the tokens the claims endpoint accepted.
func (a *Agent) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != strings.TrimPrefix(a.Endpoint, a.Issuer) {
		a.srv.ServeHTTP(w, r)
		return
	}
	payload := unverifiedPayload(r.Header.Get("Authorization"))
	if payload != nil {
		exp, _ := payload["exp"].(float64)
		iat, _ := payload["iat"].(float64)
		if exp-iat != 600 || payload["jti"] == nil {
			http.Error(w, fmt.Sprintf("token layout: exp-iat=%v jti=%v", exp-iat, payload["jti"]), http.StatusUnauthorized)
			return
		}
	}
	rec := &statusRecorder{ResponseWriter: w}
	a.srv.ServeHTTP(rec, r)
	if rec.status == http.StatusOK && payload != nil {
		a.mu.Lock()
		a.tokens = append(a.tokens, payload)
		a.mu.Unlock()
	}
}

// unverifiedPayload returns the claims of a bearer JWT, unverified (nil when there is none).
func unverifiedPayload(auth string) map[string]any {
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	parts := strings.Split(tok, ".")
	if !ok || len(parts) != 3 {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	if err != nil || json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// statusRecorder remembers the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}
