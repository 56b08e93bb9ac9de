package authority

import "net/http"

// Cookies. The __Host- prefix makes the browser insist on Secure, Path=/ and no Domain.
const (
	// browserCookie names the browser: authorization requests and credential pages are bound
	// to it, and the CSRF tokens of their forms are derived from it.
	browserCookie = "__Host-id4me-browser"
	// sessionCookie holds a holder's login session.
	sessionCookie = "__Host-id4me-session"
)

// browserID returns the browser cookie's value, setting a new one when there is none.
func (a *Authority) browserID(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(browserCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	v := randomToken()
	setCookie(w, browserCookie, v, 0)
	r.AddCookie(&http.Cookie{Name: browserCookie, Value: v})
	return v
}

// setCookie sets a Secure, HttpOnly, SameSite=Lax cookie for the whole authority; maxAge 0
// makes a browser-session cookie, a negative one deletes it.
func setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}
