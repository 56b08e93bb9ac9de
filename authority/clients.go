package authority

import (
	"context"
	"sync"
	"time"
)

// clientCache keeps registered clients in memory for Config.ClientCacheTTL: every
// authorization, token and userinfo request reads its client, and clients change seldom.
// An update or deletion drops the entry on the instance that made it; other instances
// sharing the store see the change once their entry has expired. The cache is bounded by
// forgetting everything when it is full.
type clientCache struct {
	mu sync.RWMutex
	m  map[string]cachedClient
}

type cachedClient struct {
	c       Client
	expires time.Time
}

const maxCachedClients = 10000

// client returns a registered client, from memory when it can.
func (a *Authority) client(ctx context.Context, id string) (Client, error) {
	now := a.cfg.Now()
	a.clients.mu.RLock()
	e, ok := a.clients.m[id]
	a.clients.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.c, nil
	}
	c, err := a.store.GetClient(ctx, id)
	if err != nil {
		return Client{}, err
	}
	a.cacheClient(c, now)
	return c, nil
}

// cacheClient remembers c as read at now.
func (a *Authority) cacheClient(c Client, now time.Time) {
	if a.cfg.ClientCacheTTL < 0 {
		return
	}
	a.clients.mu.Lock()
	if a.clients.m == nil || len(a.clients.m) >= maxCachedClients {
		a.clients.m = make(map[string]cachedClient)
	}
	a.clients.m[c.ID] = cachedClient{c: c, expires: now.Add(a.cfg.ClientCacheTTL)}
	a.clients.mu.Unlock()
}

// forgetClient drops a client that was updated or deleted.
func (a *Authority) forgetClient(id string) {
	a.clients.mu.Lock()
	delete(a.clients.m, id)
	a.clients.mu.Unlock()
}
