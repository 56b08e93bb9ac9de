package authority

import (
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter keeps a token bucket per source address. Its memory is bounded: when it holds
// maxSources buckets it forgets those that are full again, or all of them.
type limiter struct {
	limit rate.Limit
	burst int
	mu    sync.Mutex
	m     map[string]*rate.Limiter
}

const maxSources = 65536

func newLimiter(perSecond float64, burst int) *limiter {
	return &limiter{limit: rate.Limit(perSecond), burst: burst, m: make(map[string]*rate.Limiter)}
}

// allow reports whether the source of r may make one more attempt now, and if not, how long
// until it may.
func (l *limiter) allow(r *http.Request, now time.Time) (bool, time.Duration) {
	src := sourceOf(r)
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.m[src]
	if !ok {
		if len(l.m) >= maxSources {
			for k, v := range l.m {
				if v.TokensAt(now) >= float64(l.burst) {
					delete(l.m, k)
				}
			}
			if len(l.m) >= maxSources {
				clear(l.m)
			}
		}
		b = rate.NewLimiter(l.limit, l.burst)
		l.m[src] = b
	}
	res := b.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sourceOf returns the address a request came from: the peer's IP (a proxy in front must
// be one that this listener's operator trusts to pass the peer through, e.g. at TCP level).
func sourceOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
