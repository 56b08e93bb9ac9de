package authority

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// Paths of the authority's endpoints, below the issuer.
const (
	pathDiscovery  = "/.well-known/openid-configuration"
	pathJWKS       = "/jwks.json"
	pathRegister   = "/register"
	pathAuthorize  = "/authorize"
	pathLogin      = "/login"
	pathTOTP       = "/login/totp"
	pathConsent    = "/consent"
	pathToken      = "/token"
	pathUserinfo   = "/userinfo"
	pathCredential = "/credential/"
	pathStyle      = "/assets/style.css"
	pathLogout     = "/logout"
	pathRevoke     = "/revoke"
	pathFavicon    = "/favicon.svg"
)

// Handler returns the authority's HTTP handler. It serves paths below the issuer's path;
// mount it at the issuer's path.
func (a *Authority) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathDiscovery, a.serveDiscovery)
	mux.HandleFunc("GET "+pathJWKS, a.serveJWKS)
	mux.HandleFunc("POST "+pathRegister, a.observed("registration", a.serveRegister))
	mux.HandleFunc("GET "+pathRegister+"/{client_id}", a.observed("registration", a.serveClientRead))
	mux.HandleFunc("PUT "+pathRegister+"/{client_id}", a.observed("registration", a.serveClientUpdate))
	mux.HandleFunc("DELETE "+pathRegister+"/{client_id}", a.observed("registration", a.serveClientDelete))
	mux.HandleFunc("GET "+pathAuthorize, a.serveAuthorize)
	mux.HandleFunc("POST "+pathAuthorize, a.serveAuthorize)
	mux.HandleFunc("GET "+pathLogin, a.serveLoginPage)
	mux.HandleFunc("POST "+pathLogin, a.observed("login", a.serveLogin))
	mux.HandleFunc("POST "+pathTOTP, a.observed("totp", a.serveTOTP))
	mux.HandleFunc("POST "+pathLoginPasskey, a.observed("passkey", a.serveLoginPasskey))
	mux.HandleFunc("GET "+pathPasskeyScript, servePasskeyScript)
	mux.HandleFunc("GET "+pathAccount, a.serveAccount)
	mux.HandleFunc("POST "+pathAccount, a.observed("account", a.serveAccountPost))
	mux.HandleFunc("GET "+pathAccountLogin, a.serveAccountLogin)
	mux.HandleFunc("POST "+pathLoginRecovery, a.observed("totp", a.serveRecoveryLogin))
	mux.HandleFunc("GET "+pathConsent, a.serveConsentPage)
	mux.HandleFunc("POST "+pathConsent, a.observed("consent", a.serveConsent))
	mux.HandleFunc("POST "+pathToken, a.observed("token", a.serveToken))
	mux.HandleFunc("GET "+pathUserinfo, a.observed("userinfo", a.serveUserinfo))
	mux.HandleFunc("POST "+pathUserinfo, a.observed("userinfo", a.serveUserinfo))
	mux.HandleFunc("GET "+pathCredential+"{token}", a.serveCredentialPage)
	mux.HandleFunc("POST "+pathCredential+"{token}", a.observed("credentials", a.serveCredential))
	mux.HandleFunc("GET "+pathStyle, a.pages.serveStyle)
	mux.HandleFunc("GET "+pathLogout, a.observed("logout", a.serveLogout))
	mux.HandleFunc("POST "+pathLogout, a.observed("logout", a.serveLogoutPost))
	mux.HandleFunc("POST "+pathLogout+"/confirm", a.observed("logout", a.serveLogoutConfirm))
	mux.HandleFunc("POST "+pathRevoke, a.observed("revocation", a.serveRevoke))
	mux.HandleFunc("GET "+pathFavicon, a.pages.serveFavicon)
	mux.HandleFunc("GET /{$}", a.serveHome)
	return securityHeaders(a.limitBodies(mux))
}

// maxBody bounds what a client or browser may post to any endpoint: far more than any form,
// registration or token request needs.
const maxBody = 64 << 10

// limitBodies caps request bodies at maxBody and reads posted forms at once, so that a body
// too large or malformed gets a clear answer (413 or 400: an OAuth error for the token and
// registration endpoints, an error page for the browser's) before any handler runs.
func (a *Authority) limitBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
			if err := r.ParseForm(); err != nil {
				status := http.StatusBadRequest
				if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
					status = http.StatusRequestEntityTooLarge
				}
				if r.URL.Path == pathToken || r.URL.Path == pathRevoke || strings.HasPrefix(r.URL.Path, pathRegister) {
					writeOAuthError(w, status, errorf("invalid_request", fmt.Sprintf("the form body is malformed or larger than %d KiB", maxBody>>10)))
				} else {
					a.errorPage(w, r, status, "The form could not be read.", fmt.Sprintf("It is malformed or larger than %d KiB. Go back and try again.", maxBody>>10))
				}
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// observed tells Config.Observe the status of every answer of h.
func (a *Authority) observed(event string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h(sw, r)
		a.cfg.Observe(event, strconv.Itoa(sw.status))
	}
}

// statusWriter remembers the status of an answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

// The values of the headers every answer carries, made once (see contentTypeJSON).
var (
	hsts       = []string{"max-age=31536000"}
	nosniff    = []string{"nosniff"}
	noReferrer = []string{"no-referrer"}
)

// securityHeaders sets the headers every answer of the authority carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Strict-Transport-Security"] = hsts
		h["X-Content-Type-Options"] = nosniff
		h["Referrer-Policy"] = noReferrer
		next.ServeHTTP(w, r)
	})
}
