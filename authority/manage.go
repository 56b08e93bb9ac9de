package authority

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
)

// The client configuration endpoint (RFC 7592): read, update and delete, each with the
// client's registration access token. The store keeps only the token's hash, so a read
// cannot give the token back as RFC 7592 §3 asks: every read and every update issues a new
// one, and the one presented stops working.

// serveClientRead is the RFC 7592 read: the client's metadata and a new registration
// access token.
func (a *Authority) serveClientRead(w http.ResponseWriter, r *http.Request) {
	c, presented, ok := a.managedClient(w, r)
	if !ok {
		return
	}
	next := c
	regToken := randomToken()
	next.RegistrationTokenHash = hashToken(regToken)
	if !a.replaceClient(w, r, next, presented) {
		return
	}
	resp := a.clientInfo(next)
	resp.RegistrationAccessToken = regToken
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, resp)
}

// clientUpdateFields are the members of an update request (RFC 7592 §2.2) that are not
// client metadata: client_id must be the client's, client_secret (if sent) its current
// secret, and the others must not be sent.
type clientUpdateFields struct {
	ClientID                *string         `json:"client_id"`
	ClientSecret            *string         `json:"client_secret"`
	RegistrationAccessToken json.RawMessage `json:"registration_access_token"`
	RegistrationClientURI   json.RawMessage `json:"registration_client_uri"`
	ClientSecretExpiresAt   json.RawMessage `json:"client_secret_expires_at"`
	ClientIDIssuedAt        json.RawMessage `json:"client_id_issued_at"`
}

// check applies RFC 7592 §2.2 to an update of c.
func (f clientUpdateFields) check(c Client) *oauthError {
	for _, m := range []struct {
		name  string
		value json.RawMessage
	}{
		{"registration_access_token", f.RegistrationAccessToken}, {"registration_client_uri", f.RegistrationClientURI},
		{"client_secret_expires_at", f.ClientSecretExpiresAt}, {"client_id_issued_at", f.ClientIDIssuedAt},
	} {
		if m.value != nil {
			return errorf("invalid_request", "an update must not include "+m.name+" (RFC 7592 §2.2)")
		}
	}
	switch {
	case f.ClientID == nil || *f.ClientID != c.ID:
		return errorf("invalid_request", "an update must include the client's own client_id (RFC 7592 §2.2)")
	case f.ClientSecret != nil && (c.SecretHash == nil || subtle.ConstantTimeCompare(hashToken(*f.ClientSecret), c.SecretHash) != 1):
		return errorf("invalid_request", "client_secret is not the client's current secret; a client cannot choose its secret")
	}
	return nil
}

// serveClientUpdate is the RFC 7592 update: the request's metadata replaces the client's,
// validated as a registration is. The client keeps its ID and secret, but for a change
// between a public and a confidential client, which drops the secret or issues one.
func (a *Authority) serveClientUpdate(w http.ResponseWriter, r *http.Request) {
	// An update validates metadata as a registration does, fetching a new jwks_uri: it
	// counts against the same limit of the source.
	if !a.registrationAllowed(w, r) {
		return
	}
	c, presented, ok := a.managedClient(w, r)
	if !ok {
		return
	}
	var fields clientUpdateFields
	req, ok := readRegistration(w, r, &fields)
	if !ok {
		return
	}
	if oe := fields.check(c); oe != nil {
		writeOAuthError(w, http.StatusBadRequest, oe)
		return
	}
	md, err := a.clientMetadata(r.Context(), req)
	if err != nil {
		a.metadataError(w, r, err)
		return
	}
	next := c
	next.Metadata = md
	regToken := randomToken()
	next.RegistrationTokenHash = hashToken(regToken)
	var secret string
	if next.public() != c.public() {
		secret = a.issueSecret(&next, a.now())
	}
	if !a.replaceClient(w, r, next, presented) {
		return
	}
	a.answerClient(w, r, "client updated", http.StatusOK, next, secret, regToken)
}

// serveClientDelete is the RFC 7592 delete: the client goes with its grants (so its codes no
// longer redeem), consents and access tokens.
func (a *Authority) serveClientDelete(w http.ResponseWriter, r *http.Request) {
	c, presented, ok := a.managedClient(w, r)
	if !ok {
		return
	}
	err := a.store.DeleteClient(r.Context(), c.ID, presented)
	a.forgetClient(c.ID)
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict):
		refuseRegistrationToken(w)
		return
	case err != nil:
		a.internalError(w, r, err)
		return
	}
	a.log.Info("client deleted", "client_id", c.ID, "client_name", c.Metadata.ClientName, "source", sourceOf(r))
	w.WriteHeader(http.StatusNoContent)
}

// managedClient returns the client a configuration request names, and the hash of the
// registration access token it carries, if that is the client's. The client is read from
// the store, not the cache: its token changes with every read. Otherwise it answers 401
// (RFC 6750) and returns false; an unknown client and a wrong token look the same.
func (a *Authority) managedClient(w http.ResponseWriter, r *http.Request) (Client, []byte, bool) {
	tok, ok := bearerToken(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer`)
		writeOAuthError(w, http.StatusUnauthorized, errorf("invalid_token", "a registration access token is required"))
		return Client{}, nil, false
	}
	c, err := a.store.GetClient(r.Context(), r.PathValue("client_id"))
	if err != nil && !errors.Is(err, ErrNotFound) {
		a.internalError(w, r, err)
		return Client{}, nil, false
	}
	presented := hashToken(tok)
	if err != nil || subtle.ConstantTimeCompare(presented, c.RegistrationTokenHash) != 1 {
		refuseRegistrationToken(w)
		return Client{}, nil, false
	}
	return c, presented, true
}

// replaceClient stores next in place of the client whose registration token hash is
// presented; if another read or update came first, or the client was deleted meanwhile,
// it answers 401 and returns false.
func (a *Authority) replaceClient(w http.ResponseWriter, r *http.Request, next Client, presented []byte) bool {
	err := a.store.UpdateClient(r.Context(), next, presented)
	a.forgetClient(next.ID)
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict):
		refuseRegistrationToken(w)
		return false
	case err != nil:
		a.internalError(w, r, err)
		return false
	}
	return true
}

func refuseRegistrationToken(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	writeOAuthError(w, http.StatusUnauthorized, errorf("invalid_token", "the registration access token is not valid for this client"))
}
