package authority

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/id4me/id4me-registry/registry"
)

// Header values the hot paths set, made once: a header's value slice set from them must
// not be appended to in place (Header.Add makes a new one: they are full).
var (
	contentTypeJSON = []string{"application/json"}
	noStore         = []string{"no-store"}
	noCache         = []string{"no-cache"}
)

func writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	w.Header()["Content-Type"] = contentTypeJSON
	w.WriteHeader(status)
	w.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	writeJSONBytes(w, status, b)
}

// oauthError is an OAuth 2.0 error response (RFC 6749 §5.2, RFC 7591 §3.2.2, RFC 6750 §3).
type oauthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

func errorf(code, description string) *oauthError {
	return &oauthError{Code: code, Description: description}
}

// writeOAuthError answers with an OAuth error in JSON, no-store.
func writeOAuthError(w http.ResponseWriter, status int, e *oauthError) {
	w.Header()["Cache-Control"] = noStore
	writeJSON(w, status, e)
}

// bearerToken returns the Bearer token of the Authorization header (RFC 6750 §2.1).
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// internalError answers a failure of the authority to a client: 503
// temporarily_unavailable, with Retry-After, when the database is out of reach
// (databaseUnavailable); otherwise it logs err and answers 500 without detail.
func (a *Authority) internalError(w http.ResponseWriter, r *http.Request, err error) {
	if databaseUnavailable(err) {
		w.Header().Set("Retry-After", strconv.Itoa(unavailableRetryAfter))
		writeOAuthError(w, http.StatusServiceUnavailable, errorf("temporarily_unavailable", "the authority cannot reach its database; try again shortly"))
		return
	}
	a.log.ErrorContext(r.Context(), "authority: internal error", "path", r.URL.Path, "err", err)
	writeOAuthError(w, http.StatusInternalServerError, errorf("server_error", "the authority failed; try again later"))
}

// unavailableRetryAfter is what Retry-After says, in seconds, while the database is out of
// reach.
const unavailableRetryAfter = 5

// databaseUnavailable reports whether err is the database being out of reach or not
// answering in time (registry.KindUnavailable, reason DATABASE_UNAVAILABLE): not the
// authority's failure, and logged already, once per outage, by the store.
func databaseUnavailable(err error) bool {
	return registry.KindOf(err) == registry.KindUnavailable
}
