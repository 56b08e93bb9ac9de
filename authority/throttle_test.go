package authority

import (
	"net/http"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Free: 3, Base: time.Second, Max: 10 * time.Second, Forget: time.Hour}
	for n, want := range map[int]time.Duration{
		1: 0, 2: 0, // free
		3: time.Second, 4: 2 * time.Second, 5: 4 * time.Second, 6: 8 * time.Second,
		7: 10 * time.Second, 8: 10 * time.Second, 1000: 10 * time.Second, // capped, without overflow
	} {
		if got := b.Delay(n); got != want {
			t.Errorf("Delay(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestThrottleKeysAreDistinct(t *testing.T) {
	// The parts are delimited with their lengths: no two ways of splitting one text collide.
	seen := map[string]string{}
	for _, k := range [][]string{
		{"source", "1.2.3.4", "alice.example"},
		{"source", "1.2.3.4a", "lice.example"},
		{"identifier", "alice.example"},
		{"device", "1.2.3.4", "alice.example"},
	} {
		h := string(throttleKey(k[0], k[1:]...))
		if prev, ok := seen[h]; ok {
			t.Fatalf("%v and %s hash alike", k, prev)
		}
		seen[h] = k[0]
	}
}

// TestLimiterEvictsLeastRecentlyUsed: when the limiter is full, a new source takes the
// bucket of the one heard from least recently, so that a flood of new sources cannot refill
// the bucket of a source being throttled.
func TestLimiterEvictsLeastRecentlyUsed(t *testing.T) {
	l := newLimiter(1.0/3600, 1)
	l.max = 3
	now := time.Unix(1e9, 0)
	from := func(addr string) *http.Request { return &http.Request{RemoteAddr: addr + ":1234"} }
	allow := func(addr string) bool {
		ok, _ := l.allow(from(addr), now)
		return ok
	}
	if !allow("10.0.0.1") || allow("10.0.0.1") {
		t.Fatal("a source's one attempt an hour: want the first allowed and the second refused")
	}
	allow("10.0.0.2")
	allow("10.0.0.3")
	// 10.0.0.1 tries again (refused), so 10.0.0.2 is now the least recently heard from.
	if allow("10.0.0.1") {
		t.Fatal("10.0.0.1 allowed again within the hour")
	}
	for _, src := range []string{"10.0.0.4", "10.0.0.5"} {
		allow(src)
		if allow("10.0.0.1") {
			t.Fatalf("after %s arrived, 10.0.0.1 got a fresh bucket", src)
		}
	}
	if len(l.m) != 3 || l.lru.Len() != 3 {
		t.Fatalf("the limiter holds %d sources (%d in order), want its maximum 3", len(l.m), l.lru.Len())
	}
	// The evicted ones start afresh.
	if !allow("10.0.0.2") {
		t.Fatal("an evicted source was not given a fresh bucket")
	}
}

// TestSourcesAreIPv4AddressesAndIPv6Networks: budgets and limits count an IPv6 source by its
// /64, which whoever has one address of it has all of, and an IPv4 source (mapped into IPv6
// or not) by its address.
func TestSourcesAreIPv4AddressesAndIPv6Networks(t *testing.T) {
	for remote, want := range map[string]string{
		"192.0.2.7:1234":                      "192.0.2.7",
		"[::ffff:192.0.2.7]:1234":             "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:443":          "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff:ffff:ffff:1]:443": "2001:db8:1:2::/64",
		"[fe80::1%eth0]:443":                  "fe80::/64",
		"[2001:db8:1:3::1]:443":               "2001:db8:1:3::/64",
	} {
		if got := sourceOf(&http.Request{RemoteAddr: remote}); got != want {
			t.Errorf("sourceOf(%s) = %s, want %s", remote, got, want)
		}
	}
	// One /64 is one source for the limiter: an attacker cannot rotate through it.
	l := newLimiter(1.0/3600, 1)
	now := time.Unix(1e9, 0)
	if ok, _ := l.allow(&http.Request{RemoteAddr: "[2001:db8:1:2::1]:1"}, now); !ok {
		t.Fatal("the first attempt of a /64 was refused")
	}
	if ok, _ := l.allow(&http.Request{RemoteAddr: "[2001:db8:1:2::2]:1"}, now); ok {
		t.Fatal("another address of the same /64 got a bucket of its own")
	}
	if ok, _ := l.allow(&http.Request{RemoteAddr: "[2001:db8:1:3::1]:1"}, now); !ok {
		t.Fatal("the next /64 shares the first one's bucket")
	}
}
