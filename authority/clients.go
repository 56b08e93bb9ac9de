package authority

import (
	"context"
	"sync"
)

// clientCache keeps registered clients in memory. A client never changes once registered
// (there is no update or delete), so a cached copy is never stale; the cache is bounded by
// forgetting everything when it is full.
type clientCache struct {
	mu sync.RWMutex
	m  map[string]Client
}

const maxCachedClients = 10000

// client returns a registered client, from memory when it can.
func (a *Authority) client(ctx context.Context, id string) (Client, error) {
	a.clients.mu.RLock()
	c, ok := a.clients.m[id]
	a.clients.mu.RUnlock()
	if ok {
		return c, nil
	}
	c, err := a.store.GetClient(ctx, id)
	if err != nil {
		return Client{}, err
	}
	a.clients.mu.Lock()
	if a.clients.m == nil || len(a.clients.m) >= maxCachedClients {
		a.clients.m = make(map[string]Client)
	}
	a.clients.m[id] = c
	a.clients.mu.Unlock()
	return c, nil
}
