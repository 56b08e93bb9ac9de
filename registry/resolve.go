package registry

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// Resolution is what an identifier maps to: its agent and the claims endpoint relying
// parties are sent to.
type Resolution struct {
	Identifier string
	// DNSName is the identifier's DNS name, where its _openid record is.
	DNSName        string
	AgentID        string
	ClaimsEndpoint string
	AgentIssuer    string
	Statuses       []Status
	// IdentityID is the identity the identifier stands for (see Resolver.SubjectSeed).
	IdentityID string
}

// Resolver answers what the authority asks of the registry's mapping: what an identifier
// resolves to, which identity its holder is, the identity's subject seed and the binding of
// its credential links. It reads the store and keeps recent resolutions in memory. The
// authority is built with a Resolver and the Service with the same one (Config.Resolver), so
// changes made through the Service drop cached answers at once; neither holds the other.
type Resolver struct {
	store Reader
	now   func() time.Time
	cache *resolveCache
}

// NewResolver returns a Resolver reading store. cacheTTL is how long Resolve may answer from
// memory (other instances' changes are seen within it): 0 means the default 2s, negative
// disables the cache. now is the clock; nil means time.Now.
func NewResolver(store Reader, cacheTTL time.Duration, now func() time.Time) *Resolver {
	if cacheTTL == 0 {
		cacheTTL = defaultResolveCacheTTL
	}
	if now == nil {
		now = time.Now
	}
	return &Resolver{store: store, now: now, cache: newResolveCache(cacheTTL)}
}

// defaultResolveCacheTTL is Config.ResolveCacheTTL's default.
const defaultResolveCacheTTL = 2 * time.Second

// Resolve maps an identifier to its sponsoring agent. An identifier on hold or pending
// delete resolves to nothing (KindNotFound, reason NOT_RESOLVED_ON_HOLD or
// NOT_RESOLVED_PENDING_DELETE). Answers are cached for
// Config.ResolveCacheTTL; changes made through this Service drop the cached answer at once,
// changes made by other instances sharing the database are seen within the TTL.
func (s *Service) Resolve(ctx context.Context, identifier string) (Resolution, error) {
	return s.resolver.Resolve(ctx, identifier)
}

// Resolve maps an identifier to its sponsoring agent, as Service.Resolve says.
func (s *Resolver) Resolve(ctx context.Context, identifier string) (Resolution, error) {
	now := s.now()
	if r, ok := s.cache.get(identifier, now); ok {
		return r, nil
	}
	name, err := ParseIdentifier(identifier)
	if err != nil {
		return Resolution{}, err
	}
	if r, ok := s.cache.get(name.ASCII, now); ok {
		return r, nil
	}
	gen := s.cache.generation()
	i, err := s.store.GetIdentifier(ctx, name.ASCII)
	if err != nil {
		return Resolution{}, err
	}
	if i.Has(StatusServerHold) {
		return Resolution{}, NewError(ReasonNotResolvedOnHold, "identifier %s is on hold and resolves to nothing", i.Name)
	}
	if i.Has(StatusPendingDelete) {
		return Resolution{}, NewError(ReasonNotResolvedPendingDelete, "identifier %s is deleted (pending purge) and resolves to nothing", i.Name)
	}
	a, err := s.store.GetAgent(ctx, i.AgentID)
	if err != nil {
		return Resolution{}, err
	}
	in := info(i, a)
	r := Resolution{Identifier: i.Name, DNSName: i.DNSName, AgentID: a.ID, ClaimsEndpoint: in.EffectiveClaimsEndpoint, AgentIssuer: a.Issuer, Statuses: i.Statuses, IdentityID: i.IdentityID}
	s.cache.put(i.Name, r, gen, now)
	return r, nil
}

// HolderIdentity returns the canonical name of an identifier and the identity it stands
// for, whatever its statuses, read from the store: the authority checks the password of an
// identifier on hold or pending delete with it, so that a wrong one reads as for any other
// identifier. KindNotFound when there is no such identifier, KindInvalidArgument when it is
// malformed.
func (s *Resolver) HolderIdentity(ctx context.Context, identifier string) (string, string, error) {
	name, err := ParseIdentifier(identifier)
	if err != nil {
		return "", "", err
	}
	i, err := s.store.GetIdentifier(ctx, name.ASCII)
	if err != nil {
		return "", "", err
	}
	return i.Name, i.IdentityID, nil
}

// resolveCache keeps recent resolutions, sharded so concurrent readers rarely meet on a lock.
type resolveCache struct {
	ttl    time.Duration
	seed   maphash.Seed
	shards [64]resolveShard
	// gen counts forgets and purges. A resolution notes it before reading the store and is
	// cached only if nothing was dropped meanwhile, so a change committed during the read
	// cannot be undone by a stale put.
	gen atomic.Uint64
}

type resolveShard struct {
	mu sync.RWMutex
	m  map[string]cachedResolution
}

type cachedResolution struct {
	r       Resolution
	expires time.Time
}

const maxCachedPerShard = 4096

func newResolveCache(ttl time.Duration) *resolveCache {
	c := &resolveCache{ttl: ttl, seed: maphash.MakeSeed()}
	for k := range c.shards {
		c.shards[k].m = make(map[string]cachedResolution)
	}
	return c
}

func (c *resolveCache) shard(name string) *resolveShard {
	return &c.shards[maphash.String(c.seed, name)%uint64(len(c.shards))]
}

func (c *resolveCache) get(name string, now time.Time) (Resolution, bool) {
	if c.ttl <= 0 {
		return Resolution{}, false
	}
	sh := c.shard(name)
	sh.mu.RLock()
	e, ok := sh.m[name]
	sh.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return Resolution{}, false
	}
	return e.r, true
}

// generation returns the drop count, to pass to put.
func (c *resolveCache) generation() uint64 { return c.gen.Load() }

// put caches a resolution read from the store after generation() returned gen, unless
// something was dropped since.
func (c *resolveCache) put(name string, r Resolution, gen uint64, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	sh := c.shard(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if len(sh.m) >= maxCachedPerShard {
		// Bounded memory: drop the expired entries, or everything if none has expired.
		for k, e := range sh.m {
			if !now.Before(e.expires) {
				delete(sh.m, k)
			}
		}
		if len(sh.m) >= maxCachedPerShard {
			clear(sh.m)
		}
	}
	sh.m[name] = cachedResolution{r: r, expires: now.Add(c.ttl)}
}

// forget drops a name's cached resolution.
func (c *resolveCache) forget(name string) {
	sh := c.shard(name)
	sh.mu.Lock()
	c.gen.Add(1)
	delete(sh.m, name)
	sh.mu.Unlock()
}

// purge drops every cached resolution (after an agent changes).
func (c *resolveCache) purge() {
	c.gen.Add(1)
	for k := range c.shards {
		sh := &c.shards[k]
		sh.mu.Lock()
		clear(sh.m)
		sh.mu.Unlock()
	}
}
