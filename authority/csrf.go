package authority

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
)

// csrfToken is the token a form for purpose carries: an HMAC keyed with the browser
// cookie, which a cross-site page can neither read nor send along (SameSite=Lax).
func csrfToken(browser, purpose string) string {
	m := hmac.New(sha256.New, []byte(browser))
	m.Write([]byte(purpose))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkCSRF reports whether a posted form carries the CSRF token for purpose and comes
// with the browser cookie it was made for.
func checkCSRF(r *http.Request, purpose string) (browser string, ok bool) {
	c, err := r.Cookie(browserCookie)
	if err != nil || c.Value == "" {
		return "", false
	}
	want := csrfToken(c.Value, purpose)
	return c.Value, hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(want))
}
