package authority

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// States of an initial access token, as InitialAccessToken.State tells them.
const (
	TokenActive  = "active"
	TokenRevoked = "revoked"
	TokenExpired = "expired"
	TokenUsedUp  = "used up"
)

// State tells whether t can register a client at now: TokenActive, or why not
// (TokenRevoked, TokenExpired, TokenUsedUp).
func (t InitialAccessToken) State(now time.Time) string {
	switch {
	case !t.RevokeTime.IsZero():
		return TokenRevoked
	case !t.ExpireTime.IsZero() && !now.Before(t.ExpireTime):
		return TokenExpired
	case t.MaxUses > 0 && t.Uses >= t.MaxUses:
		return TokenUsedUp
	}
	return TokenActive
}

// IssueInitialAccessToken makes an initial access token for client registrations (RFC 7591
// §3, RegistrationToken) and stores it hashed: the token itself is returned once. maxUses
// 0 lets it register any number of clients; a zero expire lets it work until revoked.
func IssueInitialAccessToken(ctx context.Context, s Store, description string, maxUses int, expire, now time.Time) (InitialAccessToken, string, error) {
	if maxUses < 0 {
		return InitialAccessToken{}, "", fmt.Errorf("authority: an initial access token's maximum uses (%d) must not be negative", maxUses)
	}
	now = now.UTC().Truncate(time.Microsecond)
	if !expire.IsZero() && !expire.After(now) {
		return InitialAccessToken{}, "", fmt.Errorf("authority: an initial access token's expiry (%v) must be in the future", expire)
	}
	secret := randomToken()
	t := InitialAccessToken{
		ID: randomID(), TokenHash: hashToken(secret), Description: description, MaxUses: maxUses,
		CreateTime: now, ExpireTime: expire,
	}
	if err := s.CreateInitialAccessToken(ctx, t); err != nil {
		return InitialAccessToken{}, "", fmt.Errorf("authority: storing an initial access token: %w", err)
	}
	return t, secret, nil
}

// initialAccessToken checks the initial access token a registration carries as a Bearer
// token (RFC 7591 §3, RFC 6750 §2.1) and returns its hash; otherwise it answers 401 and
// returns false. The use is counted when the client is stored.
func (a *Authority) initialAccessToken(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	tok, ok := bearerToken(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer`)
		writeOAuthError(w, http.StatusUnauthorized, errorf("invalid_token", "registration at this authority needs an initial access token (RFC 7591 §3) from its operator"))
		return nil, false
	}
	h := hashToken(tok)
	t, err := a.store.GetInitialAccessToken(r.Context(), h)
	switch {
	case errors.Is(err, ErrNotFound):
		refuseInitialAccessToken(w, "the initial access token is not valid")
		return nil, false
	case err != nil:
		a.internalError(w, r, err)
		return nil, false
	}
	if state := t.State(a.now()); state != TokenActive {
		refuseInitialAccessToken(w, "the initial access token is "+state)
		return nil, false
	}
	return h, true
}

func refuseInitialAccessToken(w http.ResponseWriter, description string) {
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	writeOAuthError(w, http.StatusUnauthorized, errorf("invalid_token", description))
}
