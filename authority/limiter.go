package authority

import (
	"container/list"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter keeps a token bucket per source address. Its memory is bounded: when it holds
// max buckets, the source heard from least recently loses its bucket (and starts with a
// full one if it comes back), so that many sources cannot clear the bucket of one that is
// being throttled.
type limiter struct {
	limit rate.Limit
	burst int
	max   int
	mu    sync.Mutex
	m     map[string]*list.Element
	// lru orders the sources, most recently heard from first; each element is a *source.
	lru list.List
}

type source struct {
	addr   string
	bucket *rate.Limiter
}

// maxSources bounds the sources a limiter keeps.
const maxSources = 65536

func newLimiter(perSecond float64, burst int) *limiter {
	return &limiter{limit: rate.Limit(perSecond), burst: burst, max: maxSources, m: make(map[string]*list.Element)}
}

// allow reports whether the source of r may make one more attempt now, and if not, how long
// until it may.
func (l *limiter) allow(r *http.Request, now time.Time) (bool, time.Duration) {
	src := sourceOf(r)
	l.mu.Lock()
	defer l.mu.Unlock()
	var b *rate.Limiter
	if e, ok := l.m[src]; ok {
		l.lru.MoveToFront(e)
		b = e.Value.(*source).bucket
	} else {
		if len(l.m) >= l.max {
			oldest := l.lru.Back()
			l.lru.Remove(oldest)
			delete(l.m, oldest.Value.(*source).addr)
		}
		b = rate.NewLimiter(l.limit, l.burst)
		l.m[src] = l.lru.PushFront(&source{addr: src, bucket: b})
	}
	res := b.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sourceOf returns the source a request came from, as budgets and limits count sources:
// the peer's IPv4 address, or the /64 of its IPv6 address (a network is given a /64 at
// least, and anyone with one has its 2^64 addresses; an IPv4-mapped address is IPv4). A
// proxy in front must be one that this listener's operator trusts to pass the peer
// through, e.g. at TCP level.
func sourceOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.WithZone("").Unmap()
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}
