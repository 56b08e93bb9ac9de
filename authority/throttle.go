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
// (an exponential backoff) but never refuse the right password for good, and nothing a
// stranger does keeps the holder from getting in:
//
//   - A browser in which the holder has logged in before, or set credentials through a
//     link from their agent (a known device, remembered by a long-lived cookie), counts its
//     attempts at the identifier against a budget of its own, which nobody else's failures
//     touch. New credentials forget every known device of the identity.
//   - Any other browser counts a password attempt against two budgets: its source's for the
//     identifier (sourceOf: an IPv4 address or an IPv6 /64), and the identifier's, shared by
//     all sources. The shared budget holds back only a source that has used up the free
//     attempts of its own budget (it still counts the attempts of the others): a source that
//     has not been guessing at the identifier is never slowed by anybody else's guessing,
//     however many sources guess, and guessing from many sources gets SourceBackoff.Free
//     attempts per source before it queues for the shared budget's.
//   - The second step, a TOTP code after the right password, counts against the source's
//     (or device's) own budget and a budget of the identifier's codes, which only someone
//     who knows the password can use up; not against the identifier's shared budget again.
//   - A success clears the browser's or source's own budget and gives back the attempt it
//     took from each other budget, so that the holder's own logins slow nobody down. The
//     right password gives back its attempt of the identifier's budget at once, before the
//     code is asked for.
//   - An identifier that does not exist is throttled exactly like one that does, so the
//     answers never tell whether it exists.
//
// So a holder on a new device gets SourceBackoff.Free attempts at once from any source that
// has not been guessing at the identifier, whatever else goes on; and from anywhere, a
// credential link from their agent makes the browser a known device. Budgets are kept in
// the store, so every instance sharing it sees the same counts; an attempt is claimed before
// the password is checked, so concurrent guesses cannot slip past a backoff together.

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

// Default backoffs. A source (or known device) may try an identifier five times at once,
// then waits 1 s, 2 s, 4 s, … up to 15 minutes between attempts; sources that have used up
// their five attempts share the identifier's twenty, then wait up to 5 minutes between
// attempts, all of them together. The identifier's codes (the second step) have a budget
// like the identifier's.
var (
	DefaultSourceBackoff     = Backoff{Free: 5, Base: time.Second, Max: 15 * time.Minute, Forget: 24 * time.Hour}
	DefaultIdentifierBackoff = Backoff{Free: 20, Base: time.Second, Max: 5 * time.Minute, Forget: 24 * time.Hour}
)

// ThrottleKey names one budget of login attempts and how it slows down.
type ThrottleKey struct {
	// Hash is SHA-256 over what the budget belongs to (throttleKey).
	Hash    []byte
	Backoff Backoff
	// Own says the budget is the attempting browser's or source's own: a success clears it.
	// Another budget gets back the attempt a success took from it.
	Own bool
	// Shared says the budget is the identifier's across all sources: its wait holds back
	// only an attempt whose Own budget (among the same keys) has used up its free attempts.
	Shared bool
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

// loginStep is the step of a login an attempt is at.
type loginStep int

const (
	stepPassword loginStep = iota
	// stepCode is the TOTP code, after the right password.
	stepCode
)

// throttleKeys returns the budgets an attempt at step for identifier (as throttleIdentifier
// gives it) from r counts against: the known device's own when the browser has logged in as
// identityID before (identityID is empty for an identifier that does not exist), else the
// source's and, for a password, the identifier's shared budget, for a code the budget of the
// identifier's codes.
func (a *Authority) throttleKeys(ctx context.Context, r *http.Request, identifier, identityID string, step loginStep) ([]ThrottleKey, error) {
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
	own := ThrottleKey{Hash: throttleKey("source", sourceOf(r), identifier), Backoff: a.cfg.SourceBackoff, Own: true}
	if step == stepCode {
		return []ThrottleKey{own, {Hash: throttleKey("codes", identifier), Backoff: a.cfg.IdentifierBackoff}}, nil
	}
	return []ThrottleKey{own, {Hash: throttleKey("identifier", identifier), Backoff: a.cfg.IdentifierBackoff, Shared: !a.cfg.IdentifierBackoffHoldsAll}}, nil
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

// passwordRight gives back the attempt the right password took from the budgets that are
// not the browser's or source's own, while a code is still to come: the holder's logins do
// not use up the identifier's shared budget.
func (a *Authority) passwordRight(ctx context.Context, keys []ThrottleKey) error {
	var others []ThrottleKey
	for _, k := range keys {
		if !k.Own {
			others = append(others, k)
		}
	}
	return a.store.ReleaseLoginAttempts(ctx, others, a.now())
}

// loginSucceeded settles the budgets of keys (ReleaseLoginAttempts) and remembers the
// browser as a known device of identityID.
func (a *Authority) loginSucceeded(ctx context.Context, w http.ResponseWriter, r *http.Request, keys []ThrottleKey, identityID string) error {
	if err := a.store.ReleaseLoginAttempts(ctx, keys, a.now()); err != nil {
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
