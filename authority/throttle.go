package authority

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/id4me/id4me-registry/registry"
)

// Login throttling. Nobody can lock a holder out: failed logins slow further attempts down
// (an exponential backoff) but never refuse the right password for good, and what slows an
// attacker down does not slow the holder down elsewhere:
//
//   - Every attempt (password or TOTP code) from a browser that has never logged in as the
//     identifier counts against two budgets: the source address's for that identifier, and
//     the identifier's across all sources. The first stops one source guessing; the second,
//     with a larger allowance and a shorter cap, slows guessing spread over many sources.
//   - A browser in which the holder has logged in before (a known device, remembered by a
//     long-lived cookie) has a budget of its own for the identifier and is not slowed by
//     anybody else's failures.
//   - An identifier that does not exist is throttled exactly like one that does, so the
//     answers never tell whether it exists.
//
// Budgets are kept in the store, so every instance sharing it sees the same counts; an
// attempt is claimed before the password is checked, so concurrent guesses cannot slip
// past a backoff together, and a success clears the budgets it was counted against.

// Backoff is how a budget of login attempts slows down: the first Free attempts since the
// last success go through at once, each later one must wait, after the one before it,
// Base, then twice as long each time, at most Max. A budget without an attempt for Forget
// starts afresh.
type Backoff struct {
	Free      int
	Base, Max time.Duration
	Forget    time.Duration
}

// Delay returns how long to wait after the n-th attempt (counting from 1) before the next.
func (b Backoff) Delay(n int) time.Duration {
	if n < b.Free || b.Base <= 0 {
		return 0
	}
	d := b.Base
	for i := b.Free; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// Default backoffs. One source may try an identifier five times at once, then waits 1 s,
// 2 s, 4 s, … up to 15 minutes between attempts; guesses from everywhere together get twenty
// free attempts, then waits up to 5 minutes, so that a holder on a new device is slowed by a
// distributed attack at most that long (and from a known device not at all).
var (
	DefaultSourceBackoff     = Backoff{Free: 5, Base: time.Second, Max: 15 * time.Minute, Forget: 24 * time.Hour}
	DefaultIdentifierBackoff = Backoff{Free: 20, Base: time.Second, Max: 5 * time.Minute, Forget: 24 * time.Hour}
)

// ThrottleKey names one budget of login attempts and how it slows down.
type ThrottleKey struct {
	// Hash is SHA-256 over what the budget belongs to (throttleKey).
	Hash    []byte
	Backoff Backoff
	// Own says the budget is the attempting browser's or source's own, which its success
	// clears; the identifier's budget across sources only forgets with time, so that a
	// holder's logins do not hand a distributed attack fresh free attempts.
	Own bool
}

// KnownDevice records that a holder logged in as an identity in a browser.
type KnownDevice struct {
	// DeviceHash is SHA-256 of the device cookie's value.
	DeviceHash []byte
	IdentityID string
	CreateTime time.Time
	ExpireTime time.Time
}

// deviceCookie remembers, for a long time, that the holder logged in in this browser.
const deviceCookie = "__Host-id4me-device"

// knownDeviceTTL is how long a browser stays a known device after its last login.
const knownDeviceTTL = 180 * 24 * time.Hour

// throttleKey hashes the parts a budget belongs to; parts are separated unambiguously.
func throttleKey(kind string, parts ...string) []byte {
	h := sha256.New()
	h.Write([]byte(kind))
	for _, p := range parts {
		fmt.Fprintf(h, "\x00%d:%s", len(p), p)
	}
	return h.Sum(nil)
}

// throttleIdentifier is the form of a typed identifier that budgets are kept for: the
// canonical identifier when it parses, else the text as typed, folded to lower case. An
// identifier that does not exist gets budgets like one that does.
func throttleIdentifier(typed string) string {
	if n, err := registry.ParseIdentifier(typed); err == nil {
		return n.ASCII
	}
	return strings.ToLower(strings.TrimSpace(typed))
}

// throttleKeys returns the budgets a login attempt for identifier (as throttleIdentifier
// gives it) from r counts against: the known device's own when the browser has logged in as
// identityID before (identityID is empty for an identifier that does not resolve), else the
// source address's and the identifier's.
func (a *Authority) throttleKeys(ctx context.Context, r *http.Request, identifier, identityID string) ([]ThrottleKey, error) {
	if identityID != "" {
		if c, err := r.Cookie(deviceCookie); err == nil && len(c.Value) == 43 {
			known, err := a.store.IsKnownDevice(ctx, hashToken(c.Value), identityID, a.now())
			if err != nil {
				return nil, err
			}
			if known {
				return []ThrottleKey{{Hash: throttleKey("device", c.Value, identifier), Backoff: a.cfg.SourceBackoff, Own: true}}, nil
			}
		}
	}
	return []ThrottleKey{
		{Hash: throttleKey("source", sourceOf(r), identifier), Backoff: a.cfg.SourceBackoff, Own: true},
		{Hash: throttleKey("identifier", identifier), Backoff: a.cfg.IdentifierBackoff},
	}, nil
}

// claimAttempt counts a login attempt against keys before it is checked. It returns zero
// when the attempt may go on, or how long to wait when a budget says not yet.
func (a *Authority) claimAttempt(ctx context.Context, keys []ThrottleKey) (time.Duration, error) {
	now := a.now()
	retryAt, err := a.store.ClaimLoginAttempt(ctx, keys, now)
	if err != nil || retryAt.IsZero() {
		return 0, err
	}
	return max(retryAt.Sub(now), time.Second), nil
}

// loginSucceeded clears the browser's or source's own budgets of keys and remembers the
// browser as a known device of identityID.
func (a *Authority) loginSucceeded(ctx context.Context, w http.ResponseWriter, r *http.Request, keys []ThrottleKey, identityID string) error {
	var own [][]byte
	for _, k := range keys {
		if k.Own {
			own = append(own, k.Hash)
		}
	}
	if err := a.store.ClearLoginAttempts(ctx, own); err != nil {
		return err
	}
	return a.rememberDevice(ctx, w, r, identityID)
}

// rememberDevice marks the browser as a known device of identityID, setting the device
// cookie if it has none.
func (a *Authority) rememberDevice(ctx context.Context, w http.ResponseWriter, r *http.Request, identityID string) error {
	v := ""
	if c, err := r.Cookie(deviceCookie); err == nil && len(c.Value) == 43 {
		v = c.Value
	} else {
		v = randomToken()
	}
	now := a.now()
	if err := a.store.PutKnownDevice(ctx, KnownDevice{DeviceHash: hashToken(v), IdentityID: identityID, CreateTime: now, ExpireTime: now.Add(knownDeviceTTL)}); err != nil {
		return err
	}
	setCookie(w, deviceCookie, v, int(knownDeviceTTL/time.Second))
	return nil
}

// waitSeconds is a wait in whole seconds, rounded up: what a page and Retry-After say.
func waitSeconds(wait time.Duration) int {
	return int((wait + time.Second - 1) / time.Second)
}
