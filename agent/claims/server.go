package claims

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// The paths Server serves, below the agent's issuer.
const (
	// DiscoveryPath is the agent's OpenID Connect discovery document (Discovery §4), where a
	// relying party finds the JWKS of the issuer its answers name.
	DiscoveryPath = "/.well-known/openid-configuration"
	// JWKSPath is the agent's public keys.
	JWKSPath = "/jwks.json"
	// ClaimsPath is the claims endpoint: the endpoint the agent is registered with.
	ClaimsPath = "/claims"
)

// Server is everything of an agent's issuer a relying party reaches: the claims endpoint,
// the JWKS its answers verify with, and a discovery document naming both.
type Server struct {
	// Handler is the claims endpoint.
	Handler *Handler
	// ClaimsEndpoint is the claims endpoint's URL: the one to register the agent with.
	ClaimsEndpoint string
	// JWKSURI is the JWKS's URL.
	JWKSURI string

	mux *http.ServeMux
}

// NewServer returns the server of cfg.Issuer, whose path (if any) prefixes the paths above.
func NewServer(cfg Config) (*Server, error) {
	h, err := NewHandler(cfg)
	if err != nil {
		return nil, err
	}
	iss := strings.TrimSuffix(h.cfg.Issuer, "/")
	u, _ := url.Parse(iss)
	prefix := u.EscapedPath()
	s := &Server{Handler: h, ClaimsEndpoint: iss + ClaimsPath, JWKSURI: iss + JWKSPath, mux: http.NewServeMux()}
	doc, err := json.Marshal(map[string]any{
		"issuer":            h.cfg.Issuer,
		"jwks_uri":          s.JWKSURI,
		"userinfo_endpoint": s.ClaimsEndpoint,
		// What the claims endpoint signs with: the algorithms the key set may hold.
		"userinfo_signing_alg_values_supported": []string{"RS256", "ES256"},
		"claim_types_supported":                 []string{"normal"},
	})
	if err != nil {
		return nil, err
	}
	s.mux.HandleFunc("GET "+prefix+DiscoveryPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Write(doc)
	})
	s.mux.Handle(prefix+JWKSPath, h.cfg.Keys)
	s.mux.Handle(prefix+ClaimsPath, h)
	return s, nil
}

// ServeHTTP serves the discovery document, the JWKS and the claims endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }
