package authority

import (
	"errors"
	"net/http"
)

// serveRevoke is the revocation endpoint (RFC 7009) for relying parties: a client
// authenticates as at the token endpoint and names a token it was issued. The authority
// issues access tokens only (no refresh tokens), so token_type_hint, whatever it says, does
// not change where the token is looked for (§2.1 lets the authority search beyond the hint).
// A revoked access token is refused at userinfo at once, and with it the agent token made
// for it stops being given out. An unknown token, one revoked already, or another client's
// is answered 200 like a revoked one (§2.2), so that the answer tells nothing of other
// clients' tokens; another client's token is not revoked.
func (a *Authority) serveRevoke(w http.ResponseWriter, r *http.Request) {
	now := a.now()
	c, ok := a.clientRequest(w, r, now, "revocation")
	if !ok {
		return
	}
	token := r.PostForm.Get("token")
	if token == "" || len(r.PostForm["token"]) > 1 {
		writeOAuthError(w, http.StatusBadRequest, errorf("invalid_request", "the request must name exactly one token"))
		return
	}
	err := a.store.RevokeAccessToken(r.Context(), hashToken(token), c.ID, now)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		a.internalError(w, r, err)
		return
	default:
		a.log.InfoContext(r.Context(), "access token revoked by its client", "client_id", c.ID)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}
