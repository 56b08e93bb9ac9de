package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/id4me/id4me-registry/server"
)

// overloadClients is how many clients press on the registry at once in BenchmarkOverload.
const overloadClients = 200

// overloadSetup is the size of one round of BenchmarkOverload.
type overloadSetup struct {
	clients       int           // pressing at once
	idleCalls     int           // registrations of the idle measurement
	loadFor       time.Duration // how long the clients press
	recoveryLimit time.Duration // the probe gives up after this
}

var overloadRound = overloadSetup{clients: overloadClients, idleCalls: 300, loadFor: 5 * time.Second, recoveryLimit: 10 * time.Second}

// BenchmarkOverload measures how the registry holds up when more agents call at once than
// two cores can serve: 200 clients, each an agent with its own token and loopback gRPC
// connection, register identifiers (CreateChallenge, publish, VerifyChallenge,
// RegisterIdentifier, as BenchmarkRegistration does) on SQLite for 5 s, as fast as they can.
// A client whose call is shed (RESOURCE_EXHAUSTED with RetryInfo) waits the delay the server
// gives and makes the same call again, as a well-behaved agent does.
//
// Each iteration is one round: first one client registers 300 identifiers alone (the idle
// latency of a call), then the 200 press for 5 s, then they stop at once (their calls in
// flight cancelled) and one client registers identifiers until a whole registration's calls
// each take no longer than the idle p99 again. Metrics, over every call of every round:
// idle_p50_ms, idle_p99_ms; p50_ms and p99_ms of the calls admitted under load, and
// p99_ratio = p99_ms ÷ idle_p99_ms; shed_% of calls answered OVERLOADED; registrations/s
// under load; recovery_ms from the stop to the end of that registration.
//
//	go test -run=NONE -bench=Overload -benchtime=1x -count=3 ./bench/
//
// The sub-benchmark "shed" runs the server with its default bounds of calls in progress,
// "unbounded" with none, which is how the registry behaved before it shed load.
func BenchmarkOverload(b *testing.B) {
	b.Run("shed", func(b *testing.B) { benchmarkOverload(b, overloadRound, server.DefaultMaxInFlight()) })
	b.Run("unbounded", func(b *testing.B) {
		benchmarkOverload(b, overloadRound, map[server.CallClass]int{
			server.ClassRead: -1, server.ClassWrite: -1, server.ClassDNS: -1, server.ClassWatch: -1,
		})
	})
}

// overloadFigures are the measurements of rounds of BenchmarkOverload.
type overloadFigures struct {
	idle, loaded  []time.Duration // latencies of admitted calls
	shed          int             // calls answered OVERLOADED
	registrations int             // completed under load
	loadTime      time.Duration
	recoveries    []time.Duration
}

func benchmarkOverload(b *testing.B, setup overloadSetup, bounds map[server.CallClass]int) {
	b.StopTimer()
	env := newRegistryEnv(b, filepath.Join(b.TempDir(), "registry.db"), func(c *server.Config) {
		c.Limits.MaxInFlight = bounds
	})
	agents := env.newAgents(b, setup.clients+1)
	var f overloadFigures
	for round := range b.N {
		if err := overloadRoundRun(env, agents, setup, round, &f); err != nil {
			b.Fatal(err)
		}
	}
	idleP50, idleP99 := percentile(f.idle, 50), percentile(f.idle, 99)
	p50, p99 := percentile(f.loaded, 50), percentile(f.loaded, 99)
	b.ReportMetric(ms(idleP50), "idle_p50_ms")
	b.ReportMetric(ms(idleP99), "idle_p99_ms")
	b.ReportMetric(ms(p50), "p50_ms")
	b.ReportMetric(ms(p99), "p99_ms")
	b.ReportMetric(float64(p99)/float64(idleP99), "p99_ratio")
	b.ReportMetric(100*float64(f.shed)/float64(f.shed+len(f.loaded)), "shed_%")
	b.ReportMetric(float64(f.registrations)/f.loadTime.Seconds(), "registrations/s")
	b.ReportMetric(ms(slices.Max(f.recoveries)), "recovery_ms")
}

// overloadRoundRun runs one round of BenchmarkOverload and adds its measurements to f.
func overloadRoundRun(env *registryEnv, agents []benchAgent, setup overloadSetup, round int, f *overloadFigures) error {
	probe := agents[len(agents)-1]
	var idle callLog
	for k := range setup.idleCalls {
		if err := env.registerVia(probe, fmt.Sprintf("idle%d-%d.%s", round, k, zone), idle.caller(context.Background(), probe)); err != nil {
			return err
		}
	}
	idleP99 := percentile(idle.admitted, 99)

	ctx, stop := context.WithCancel(context.Background())
	var (
		loaded callLog
		wg     sync.WaitGroup
		mu     sync.Mutex
		done   int
		failed error
	)
	start := time.Now()
	for c := range setup.clients {
		a := agents[c]
		wg.Go(func() {
			for k := 0; ctx.Err() == nil; k++ {
				err := env.registerVia(a, fmt.Sprintf("load%d-%d-%d.%s", round, c, k, zone), loaded.caller(ctx, a))
				mu.Lock()
				switch {
				case err == nil:
					done++
				case ctx.Err() == nil && failed == nil:
					failed = err
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(setup.loadFor)
	stop()
	stopped := time.Now()
	f.loadTime += stopped.Sub(start)

	// The probe: registrations until one whose calls are each within the idle p99.
	recovered := time.Duration(-1)
	for k := 0; recovered < 0; k++ {
		if time.Since(stopped) > setup.recoveryLimit {
			return fmt.Errorf("latency not back within the idle p99 (%v) %v after the load stopped", idleP99, setup.recoveryLimit)
		}
		var probeLog callLog
		if err := env.registerVia(probe, fmt.Sprintf("probe%d-%d.%s", round, k, zone), probeLog.caller(context.Background(), probe)); err != nil {
			return err
		}
		if probeLog.shed == 0 && slices.Max(probeLog.admitted) <= idleP99 {
			recovered = time.Since(stopped)
		}
	}
	wg.Wait()
	if failed != nil {
		return failed
	}
	f.idle = append(f.idle, idle.admitted...)
	f.loaded = append(f.loaded, loaded.admitted...)
	f.shed += loaded.shed
	f.registrations += done
	f.recoveries = append(f.recoveries, recovered)
	return nil
}

// callLog records the calls of clients: the latency of each admitted one and the number
// shed.
type callLog struct {
	mu       sync.Mutex
	admitted []time.Duration
	shed     int
}

// caller returns a call wrapper for registerVia that makes each call as agent a in ctx; a
// call shed by the server is made again after the delay its RetryInfo gives. The latency
// of a call that was not shed is recorded, unless ctx ended meanwhile.
func (l *callLog) caller(ctx context.Context, a benchAgent) func(rpc func(context.Context) error) error {
	md, _ := metadata.FromOutgoingContext(a.ctx)
	ctx = metadata.NewOutgoingContext(ctx, md)
	return func(rpc func(context.Context) error) error {
		for {
			start := time.Now()
			err := rpc(ctx)
			took := time.Since(start)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			delay, shed := retryDelay(err)
			l.mu.Lock()
			if shed {
				l.shed++
			} else {
				l.admitted = append(l.admitted, took)
			}
			l.mu.Unlock()
			if !shed {
				return err
			}
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// retryDelay returns the RetryInfo delay of a shed call, and whether err is one.
func retryDelay(err error) (time.Duration, bool) {
	if err == nil {
		return 0, false
	}
	st, ok := status.FromError(err)
	if !ok {
		return 0, false
	}
	var (
		delay time.Duration
		shed  bool
	)
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			shed = d.Reason == "OVERLOADED"
		case *errdetails.RetryInfo:
			delay = d.GetRetryDelay().AsDuration()
		}
	}
	return delay, shed
}

// percentile returns the p-th percentile of ds (nearest rank).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	k := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(k, 0), len(s)-1)]
}
