// Package claims is an ID4me agent's claims endpoint: the URL the authority puts into
// userinfo's _claim_sources (DESIGN.md). Handler verifies the access token the authority gave
// the relying party for the agent (with agent/accesstoken), asks the agent's Source for the
// claims the holder consented to (the token's clm), and answers them as a JWT signed with the
// agent's KeySet (OpenID Connect Core §5.6.2), or as JSON when the request asks for
// application/json. Server puts the handler, the JWKS and a discovery document that names
// both under one issuer, so relying parties find the keys the way they find any issuer's.
//
// It imports nothing of the registry's or the authority's code.
package claims

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/id4me/id4me-registry/agent/accesstoken"
)

// DefaultLifetime is how long an answer is valid (its exp minus its iat).
const DefaultLifetime = 10 * time.Minute

// Source is where an agent keeps its holders' claims.
type Source interface {
	// Claims returns the claims of the holder of identifier among names (the token's clm):
	// the handler answers only those of names, whatever else the map holds, and leaves out a
	// name the map lacks. An identifier the agent does not hold is ErrUnknownIdentifier.
	// The verified token is in ctx (TokenFromContext), for sources that answer by relying
	// party.
	Claims(ctx context.Context, identifier string, names []string) (map[string]any, error)
}

// SourceFunc is a function that is a Source.
type SourceFunc func(ctx context.Context, identifier string, names []string) (map[string]any, error)

// Claims calls f.
func (f SourceFunc) Claims(ctx context.Context, identifier string, names []string) (map[string]any, error) {
	return f(ctx, identifier, names)
}

// ErrUnknownIdentifier is what a Source returns for an identifier the agent does not hold;
// the handler answers it as an invalid token.
var ErrUnknownIdentifier = errors.New("claims: the agent holds no such identifier")

// TokenVerifier verifies the authority's access tokens: *accesstoken.Verifier and
// *accesstoken.Lazy are two. A refusal that is the token's fault wraps accesstoken.ErrInvalid;
// other errors mean the authority's keys could not be had.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (accesstoken.Token, error)
}

// reserved are the claims of an answer the handler sets itself: a Source cannot answer them.
var reserved = []string{"iss", "sub", "aud", "iat", "exp", "nbf", "jti", "azp", "id4me.identifier", "id4me.identity"}

// Config is what Handler needs.
type Config struct {
	// Issuer is the agent's issuer, an https URL: the aud the authority's access tokens carry
	// for this agent and the iss of the answers.
	Issuer string
	// Verifier verifies the authority's access tokens for Issuer: accesstoken.NewVerifier or
	// accesstoken.NewLazy with the same agent issuer.
	Verifier TokenVerifier
	// Source gives the claims.
	Source Source
	// Keys signs the answers.
	Keys *KeySet
	// Lifetime is how long an answer is valid (default DefaultLifetime).
	Lifetime time.Duration
	// Now is the clock of iat and exp (default time.Now).
	Now func() time.Time
	// Logger gets the refusals and failures (default slog.Default()).
	Logger *slog.Logger
}

// Handler is an agent's claims endpoint. It answers GET and POST with the access token in
// the Authorization header (RFC 6750 §2.1) or, for POST, in a form-encoded body (§2.2).
type Handler struct {
	cfg Config
}

// NewHandler returns a claims endpoint.
func NewHandler(cfg Config) (*Handler, error) {
	if u, err := url.Parse(cfg.Issuer); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("claims: the agent's issuer must be an https URL, got %q", cfg.Issuer)
	}
	if cfg.Verifier == nil || cfg.Source == nil || cfg.Keys == nil {
		return nil, errors.New("claims: Verifier, Source and Keys are required")
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Handler{cfg: cfg}, nil
}

type tokenKey struct{}

// TokenFromContext returns the verified access token of the request a Source is asked for.
func TokenFromContext(ctx context.Context) (accesstoken.Token, bool) {
	t, ok := ctx.Value(tokenKey{}).(accesstoken.Token)
	return t, ok
}

// The RFC 6750 §3.1 error codes.
const (
	errInvalidRequest    = "invalid_request"
	errInvalidToken      = "invalid_token"
	errInsufficientScope = "insufficient_scope"
)

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Vary", "Accept")
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		h.refuse(w, r, http.StatusMethodNotAllowed, errInvalidRequest, "the claims endpoint answers GET and POST")
		return
	}
	raw, code, desc := bearerToken(r)
	if code != "" || raw == "" {
		status := http.StatusBadRequest
		if raw == "" && code == "" {
			// §3.1: a request without authentication gets no error code.
			status = http.StatusUnauthorized
		}
		h.refuse(w, r, status, code, desc)
		return
	}
	tok, err := h.cfg.Verifier.Verify(r.Context(), raw)
	if errors.Is(err, accesstoken.ErrInvalid) {
		h.refuse(w, r, http.StatusUnauthorized, errInvalidToken, strings.TrimPrefix(err.Error(), accesstoken.ErrInvalid.Error()+": "))
		return
	}
	if err != nil {
		h.cfg.Logger.ErrorContext(r.Context(), "claims: verifying an access token", "err", err)
		w.Header().Set("Retry-After", "30")
		http.Error(w, "the authority's keys cannot be had now", http.StatusServiceUnavailable)
		return
	}
	// OpenID Connect Core §5.3: claims of the holder are for openid requests.
	if !slices.Contains(tok.Scope, "openid") {
		h.refuse(w, r, http.StatusForbidden, errInsufficientScope, "the token's scope lacks openid")
		return
	}
	names := slices.DeleteFunc(slices.Clone(tok.Claims), func(n string) bool { return slices.Contains(reserved, n) })
	held, err := h.cfg.Source.Claims(context.WithValue(r.Context(), tokenKey{}, tok), tok.Identifier, names)
	if errors.Is(err, ErrUnknownIdentifier) {
		h.refuse(w, r, http.StatusUnauthorized, errInvalidToken, "the agent holds no identifier "+tok.Identifier)
		return
	}
	if err != nil {
		h.cfg.Logger.ErrorContext(r.Context(), "claims: the source failed", "identifier", tok.Identifier, "err", err)
		http.Error(w, "the claims cannot be read now", http.StatusInternalServerError)
		return
	}
	now := h.cfg.Now()
	answer := map[string]any{
		"iss": h.cfg.Issuer, "sub": tok.Subject, "aud": tok.ClientID,
		"iat": now.Unix(), "exp": now.Add(h.cfg.Lifetime).Unix(),
		"id4me.identifier": tok.Identifier, "id4me.identity": Identity(tok.Issuer, tok.Subject),
	}
	for _, n := range names {
		if v, ok := held[n]; ok {
			answer[n] = v
		}
	}
	body, err := json.Marshal(answer)
	if err != nil {
		h.cfg.Logger.ErrorContext(r.Context(), "claims: encoding the answer", "identifier", tok.Identifier, "err", err)
		http.Error(w, "the claims cannot be encoded", http.StatusInternalServerError)
		return
	}
	if wantsJSON(r.Header.Values("Accept")) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
		return
	}
	jwt, err := h.cfg.Keys.Sign(body)
	if err != nil {
		h.cfg.Logger.ErrorContext(r.Context(), "claims: signing the answer", "err", err)
		http.Error(w, "the answer cannot be signed now", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/jwt")
	w.Write([]byte(jwt))
}

// Identity is the id4me.identity claim of the holder the authority iss knows as sub: the
// identity, which outlives the identifier's moves between agents (DESIGN.md).
func Identity(iss, sub string) string { return iss + "#" + sub }

// bearerToken returns the request's access token, or an RFC 6750 error code and description
// when it gives none or more than one.
func bearerToken(r *http.Request) (token, code, desc string) {
	var found []string
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, tok, _ := strings.Cut(auth, " ")
		if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return "", errInvalidRequest, "the Authorization header is not a Bearer token"
		}
		found = append(found, strings.TrimSpace(tok))
	}
	if r.URL.Query().Has("access_token") {
		// §2.3 is not offered: a token in a URL ends up in logs.
		return "", errInvalidRequest, "send the token in the Authorization header, not the URL"
	}
	if r.Method == http.MethodPost {
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/x-www-form-urlencoded" {
			r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
			if err := r.ParseForm(); err != nil {
				return "", errInvalidRequest, "the form cannot be read"
			}
			if toks := r.PostForm["access_token"]; len(toks) > 0 {
				found = append(found, toks...)
			}
		}
	}
	switch len(found) {
	case 0:
		return "", "", ""
	case 1:
		return found[0], "", ""
	}
	return "", errInvalidRequest, "the request carries more than one access token"
}

// wantsJSON reports whether the Accept headers ask for application/json over
// application/jwt: JSON only when asked for and preferred.
func wantsJSON(accept []string) bool {
	jsonQ, jwtQ := -1.0, -1.0
	for _, h := range accept {
		for part := range strings.SplitSeq(h, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			q := 1.0
			if s, ok := params["q"]; ok {
				if f, err := strconv.ParseFloat(s, 64); err == nil {
					q = f
				}
			}
			switch mt {
			case "application/json":
				jsonQ = max(jsonQ, q)
			case "application/jwt":
				jwtQ = max(jwtQ, q)
			}
		}
	}
	return jsonQ > 0 && jsonQ > jwtQ
}

// refuse answers an RFC 6750 error: WWW-Authenticate with the realm and, when code is set,
// the error and its description (also as a JSON body, as OAuth errors are).
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, status int, code, desc string) {
	challenge := `Bearer realm=` + quote(h.cfg.Issuer)
	if code != "" {
		challenge += `, error=` + quote(code)
		if desc != "" {
			challenge += `, error_description=` + quote(desc)
		}
		if code == errInsufficientScope {
			challenge += `, scope="openid"`
		}
	}
	if status != http.StatusMethodNotAllowed {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	h.cfg.Logger.InfoContext(r.Context(), "claims: refused", "status", status, "error", code, "description", desc)
	if code == "" {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// quote makes s an RFC 7235 quoted-string; error_description allows no '"' or '\' (RFC 6750
// §3), so those become "'" and "/".
func quote(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r == '\\':
			return '/'
		case r < 0x20 || r > 0x7e:
			return '?'
		}
		return r
	}, s)
	return `"` + s + `"`
}
