package registry

import (
	"crypto/subtle"
	"sync"
	"time"
)

// authCache remembers recent successful authentications so that a busy agent's calls do not
// each read its credential and agent rows. Entries live for Config.AuthCacheTTL; revoking a
// credential or changing an agent through this Service drops them at once, and other
// instances sharing the database see the change within the TTL.
type authCache struct {
	ttl time.Duration

	mu      sync.RWMutex
	entries map[string]authEntry
}

type authEntry struct {
	// secretHash is the stored hash a presented bearer secret must match; nil for a client
	// certificate, whose key the TLS handshake already proved.
	secretHash []byte
	actor      Actor
	expires    time.Time
}

const maxAuthEntries = 65536

func newAuthCache(ttl time.Duration) *authCache {
	return &authCache{ttl: ttl, entries: make(map[string]authEntry)}
}

// get returns the actor cached under key if the entry is fresh and, for a bearer
// credential, the secret matches.
func (c *authCache) get(key, secret string, now time.Time) (Actor, bool) {
	if c.ttl <= 0 {
		return Actor{}, false
	}
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return Actor{}, false
	}
	if e.secretHash != nil && subtle.ConstantTimeCompare(hashSecret(secret), e.secretHash) != 1 {
		return Actor{}, false
	}
	return e.actor, true
}

func (c *authCache) put(key string, secretHash []byte, actor Actor, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	if len(c.entries) >= maxAuthEntries {
		clear(c.entries)
	}
	c.entries[key] = authEntry{secretHash: secretHash, actor: actor, expires: now.Add(c.ttl)}
	c.mu.Unlock()
}

// purge drops every entry: after a revocation or an agent change.
func (c *authCache) purge() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}
