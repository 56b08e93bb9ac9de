package registry

import (
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
	// gen counts purges. An authentication notes it before reading the store and caches its
	// answer only if no purge happened meanwhile, so a revocation committed during the read
	// cannot be undone by a stale put.
	gen uint64
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
	if e.secretHash != nil && !secretMatches(secret, e.secretHash) {
		return Actor{}, false
	}
	return e.actor, true
}

// generation returns the purge count, to pass to put.
func (c *authCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// put caches an answer read from the store after generation() returned gen, unless a purge
// happened since.
func (c *authCache) put(key string, secretHash []byte, actor Actor, gen uint64, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.entries) >= maxAuthEntries {
		clear(c.entries)
	}
	c.entries[key] = authEntry{secretHash: secretHash, actor: actor, expires: now.Add(c.ttl)}
}

// purge drops every entry: after a revocation or an agent change.
func (c *authCache) purge() {
	c.mu.Lock()
	clear(c.entries)
	c.gen++
	c.mu.Unlock()
}
