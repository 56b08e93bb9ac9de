package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/id4me/id4me-registry/internal/procstat"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// op is one client's iteration; it reports false when the client has nothing left to do (its
// pool of fresh access tokens is used up).
type op func(worker int) (bool, error)

// load is what a figure runs: warm first, unmeasured, then run.
type load struct {
	warm, run op
	// cleanup closes the clients' connections.
	cleanup func()
}

// figure is one measured operation.
type figure struct {
	name, title string
	// jwtPeer: the peer's agent-JWT variant differs from the plain one here and runs too.
	jwtPeer bool
	prepare func(t *target, proto string, o options) (load, error)
}

// clientsFor makes one client per worker, each with its own connection.
func clientsFor(t *target, proto string, n int, jar func(w int) http.CookieJar) ([]*http.Client, func()) {
	cs := make([]*http.Client, n)
	for w := range cs {
		var j http.CookieJar
		if jar != nil {
			j = jar(w)
		}
		cs[w] = newHTTPClient(proto, t.roots, j)
	}
	return cs, func() {
		for _, c := range cs {
			c.CloseIdleConnections()
		}
	}
}

// same is a load whose warm-up is its run.
func same(f op, cleanup func()) load { return load{warm: f, run: f, cleanup: cleanup} }

// userinfoLoad calls userinfo: steady, again and again with one access token per client;
// otherwise with a fresh token each call, minted (not timed) before the run.
func userinfoLoad(signed, steady bool) func(t *target, proto string, o options) (load, error) {
	return func(t *target, proto string, o options) (load, error) {
		rp := t.plain
		if signed {
			rp = t.signed
		}
		cs, cleanup := clientsFor(t, proto, o.clients, func(w int) http.CookieJar { return t.users[w%len(t.users)].jar })
		perClient := 1
		if !steady {
			perClient = o.fresh + o.fresh/10
		}
		tokens := make([][]string, o.clients)
		err := parallel(o.clients, func(w int) error {
			for range perClient {
				tok, err := t.mint(cs[w], rp)
				if err != nil {
					return err
				}
				tokens[w] = append(tokens[w], tok)
			}
			return nil
		})
		if err != nil {
			cleanup()
			return load{}, fmt.Errorf("minting access tokens: %w", err)
		}
		if steady {
			return same(func(w int) (bool, error) { return true, t.userinfo(cs[w], tokens[w][0], signed) }, cleanup), nil
		}
		// The first tenth warms up, the rest is measured; each token is used once.
		warm := make([][]string, o.clients)
		for w := range tokens {
			warm[w], tokens[w] = tokens[w][:o.fresh/10], tokens[w][o.fresh/10:]
		}
		pop := func(pool [][]string) op {
			return func(w int) (bool, error) {
				if len(pool[w]) == 0 {
					return false, nil
				}
				tok := pool[w][0]
				pool[w] = pool[w][1:]
				return true, t.userinfo(cs[w], tok, signed)
			}
		}
		return load{warm: pop(warm), run: pop(tokens), cleanup: cleanup}, nil
	}
}

var allFigures = []figure{
	{name: "discovery", title: "discovery (GET /.well-known/openid-configuration)", prepare: func(t *target, proto string, o options) (load, error) {
		cs, cleanup := clientsFor(t, proto, o.clients, nil)
		u := t.issuer + "/.well-known/openid-configuration"
		return same(func(w int) (bool, error) {
			resp, err := cs[w].Get(u)
			if err != nil {
				return false, err
			}
			drain(resp)
			if resp.StatusCode != http.StatusOK {
				return false, fmt.Errorf("discovery: status %d", resp.StatusCode)
			}
			if want := map[string]int{"h1": 1, "h2": 2}[proto]; resp.ProtoMajor != want {
				return false, fmt.Errorf("discovery answered over %s, not HTTP/%d", resp.Proto, want)
			}
			return true, nil
		}, cleanup), nil
	}},
	{name: "registration", title: "dynamic client registration (POST, 201)", prepare: func(t *target, proto string, o options) (load, error) {
		cs, cleanup := clientsFor(t, proto, o.clients, nil)
		return same(func(w int) (bool, error) {
			_, err := register(cs[w], t.disc.Registration, t.regBody)
			return err == nil, err
		}, cleanup), nil
	}},
	{name: "code", title: "authorize → code → token, logged-in user, remembered consent (per round trip)", prepare: func(t *target, proto string, o options) (load, error) {
		cs, cleanup := clientsFor(t, proto, o.clients, func(w int) http.CookieJar { return t.users[w%len(t.users)].jar })
		return same(func(w int) (bool, error) {
			_, err := t.mint(cs[w], t.plain)
			return err == nil, err
		}, cleanup), nil
	}},
	{name: "userinfo-json", title: "userinfo, JSON, steady state (one access token per client, called again and again)", jwtPeer: true, prepare: userinfoLoad(false, true)},
	{name: "userinfo-jwt", title: "userinfo, signed JWT, steady state", jwtPeer: true, prepare: userinfoLoad(true, true)},
	{name: "userinfo-json-first", title: "userinfo, JSON, first call per access token (tokens minted before, not timed)", jwtPeer: true, prepare: userinfoLoad(false, false)},
	{name: "userinfo-jwt-first", title: "userinfo, signed JWT, first call per access token", jwtPeer: true, prepare: userinfoLoad(true, false)},
	{name: "login", title: "full first login in a new browser (new TLS connection, no cookies): authorize → login form → password → code → token; consent remembered", prepare: func(t *target, proto string, o options) (load, error) {
		return same(func(w int) (bool, error) {
			u := t.users[w%len(t.users)]
			c := newHTTPClient(proto, t.roots, newJar())
			defer c.CloseIdleConnections()
			r := t.authRequest(t.plain)
			code, err := login(c, u, r)
			if err != nil {
				return false, err
			}
			_, err = t.redeem(c, t.plain, r, code)
			return err == nil, err
		}, func() {}), nil
	}},
}

// parallel runs f for workers 0…n-1 at once and returns the first error.
func parallel(n int, f func(w int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for w := range n {
		wg.Go(func() { errs[w] = f(w) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// drive runs f on n workers until d has passed or every worker is done, and returns the
// number of iterations that succeeded; the first error stops it.
func drive(ctx context.Context, n int, d time.Duration, f op) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var count atomic.Int64
	err := parallel(n, func(w int) error {
		for ctx.Err() == nil {
			more, err := f(w)
			if err != nil {
				cancel()
				return err
			}
			if !more {
				return nil
			}
			count.Add(1)
		}
		return nil
	})
	return count.Load(), err
}

// sample is one measured run.
type sample struct {
	Figure   string  `json:"figure"`
	Proto    string  `json:"proto"`
	Target   string  `json:"target"`
	Pair     int     `json:"pair"`
	Requests int64   `json:"requests"`
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
	CPUus    float64 `json:"cpu_us_per_request"`
	RSSMB    float64 `json:"rss_mb"`
	HWMMB    float64 `json:"peak_rss_mb"`
}

// measure runs fig on t once: prepare, warm up, then the measured run with the process's
// CPU time and memory read before and after.
func measure(ctx context.Context, t *target, fig figure, proto string, o options, pair int) (sample, error) {
	l, err := fig.prepare(t, proto, o)
	if err != nil {
		return sample{}, fmt.Errorf("%s %s on %s: %w", fig.name, proto, t.name, err)
	}
	defer l.cleanup()
	if _, err := drive(ctx, o.clients, o.warmup, l.warm); err != nil {
		return sample{}, fmt.Errorf("%s %s on %s, warm-up: %w", fig.name, proto, t.name, err)
	}
	cpu0, err := procCPU(t.proc.pid())
	if err != nil {
		return sample{}, err
	}
	start := time.Now()
	n, err := drive(ctx, o.clients, o.duration, l.run)
	elapsed := time.Since(start)
	if err != nil {
		return sample{}, fmt.Errorf("%s %s on %s: %w", fig.name, proto, t.name, err)
	}
	if ctx.Err() != nil {
		return sample{}, ctx.Err()
	}
	cpu1, err := procCPU(t.proc.pid())
	if err != nil {
		return sample{}, err
	}
	rss, hwm, err := procstat.Memory(t.proc.pid())
	if err != nil {
		return sample{}, err
	}
	if n == 0 {
		return sample{}, fmt.Errorf("%s %s on %s: no request finished", fig.name, proto, t.name)
	}
	return sample{
		Figure: fig.name, Proto: proto, Target: t.name, Pair: pair, Requests: n, Seconds: elapsed.Seconds(),
		RPS:   float64(n) / elapsed.Seconds(),
		CPUus: float64(time.Duration(cpu1-cpu0)*clockTick) / float64(time.Microsecond) / float64(n),
		RSSMB: rss, HWMMB: hwm,
	}, nil
}

// procCPU returns the user and system CPU time of process pid, all its threads, in clock
// ticks (/proc/<pid>/stat, fields 14 and 15).
func procCPU(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected %q", pid, b)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return utime + stime, nil
}
