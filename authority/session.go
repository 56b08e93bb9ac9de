package authority

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"time"

	"github.com/id4me/id4me-registry/registry"
)

// SID is the session's "sid" (OpenID Connect Front-Channel and Back-Channel Logout): a
// hash of IDHash, 128 bits in base64url, so that relying parties can name the session in
// logout tokens without learning anything that opens it.
func (s Session) SID() string {
	h := sha256.New()
	h.Write([]byte("id4me sid\x00"))
	h.Write(s.IDHash)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
}

// endSession ends the holder's session s at the authority: the session's row and cookie go,
// and a back-channel logout is queued for each client the session logged in at that asked
// for one (sent by the queue, never while the browser waits). The session cookie is
// cleared whether s is valid or not.
func (a *Authority) endSession(w http.ResponseWriter, r *http.Request, s Session) error {
	setCookie(w, sessionCookie, "", -1)
	now := a.now()
	queued, dropped, err := a.store.EndSession(r.Context(), s.IDHash, s.SID(), now, backchannelGiveUp, a.cfg.BackchannelLogoutQueue)
	if err != nil {
		return err
	}
	if dropped > 0 {
		a.log.WarnContext(r.Context(), "authority: the back-channel logout queue is full; logouts dropped", "dropped", dropped, "limit", a.cfg.BackchannelLogoutQueue)
	}
	if queued > 0 {
		a.backchannel.wake()
	}
	return nil
}

// currentSession returns the login session of the request's cookie, if it is valid at now.
func (a *Authority) currentSession(r *http.Request, now time.Time) (Session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return Session{}, false
	}
	s, err := a.store.GetSession(r.Context(), hashToken(c.Value))
	if err != nil || !now.Before(s.ExpireTime) {
		return Session{}, false
	}
	return s, true
}

// startSession records a login and sets the session cookie.
func (a *Authority) startSession(w http.ResponseWriter, r *http.Request, identityID, identifier string, amr []string) (Session, error) {
	now := a.now()
	v := randomToken()
	s := Session{IDHash: hashToken(v), IdentityID: identityID, Identifier: identifier, AuthTime: now, AMR: amr, CreateTime: now, ExpireTime: now.Add(a.cfg.SessionTTL),
		UserAgent: shortUserAgent(r.UserAgent()), Address: remoteAddress(r)}
	if old, err := r.Cookie(sessionCookie); err == nil {
		// A new login replaces the old session (and fixes no session an attacker planted).
		a.store.DeleteSession(r.Context(), hashToken(old.Value))
	}
	if err := a.store.CreateSession(r.Context(), s); err != nil {
		return Session{}, err
	}
	setCookie(w, sessionCookie, v, 0)
	return s, nil
}

// sessionServes reports whether a login session may answer req at now without a new login.
// The session a login during the request started serves it; any other only when the request has no prompt=login, the login is within max_age, and the
// login_hint, if any, names the session's identifier. Either way the identifier must still
// resolve to the session's identity. Every step of a login asks it again (authorize, consent
// page and form), so a request that demands a login cannot be taken around the login page.
func (a *Authority) sessionServes(ctx context.Context, s Session, req AuthRequest, now time.Time) bool {
	loggedInNow := len(req.LoginSessionHash) > 0 && hmac.Equal(req.LoginSessionHash, s.IDHash)
	if p := req.Params; !loggedInNow {
		if p.has("login") {
			return false
		}
		if p.MaxAge != nil && now.Sub(s.AuthTime) > time.Duration(*p.MaxAge)*time.Second {
			return false
		}
		if !p.acrSatisfied(s.AMR) {
			return false
		}
		if p.LoginHint != "" {
			if n, err := registry.ParseIdentifier(p.LoginHint); err != nil || n.ASCII != s.Identifier {
				return false
			}
		}
	}
	res, err := a.resolver.Resolve(ctx, s.Identifier)
	return err == nil && res.IdentityID == s.IdentityID
}

// servingSession returns the browser's session if it may answer req at now
// (sessionServes); otherwise it sends the browser to the login page for req and returns
// false.
func (a *Authority) servingSession(w http.ResponseWriter, r *http.Request, req AuthRequest, now time.Time) (Session, bool) {
	s, ok := a.currentSession(r, now)
	if ok && a.sessionServes(r.Context(), s, req, now) {
		return s, true
	}
	http.Redirect(w, r, pathLogin+"?req="+url.QueryEscape(req.ID), http.StatusSeeOther)
	return Session{}, false
}
