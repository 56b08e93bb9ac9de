package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
)

// eventsPerAgent is how many events each agent receives in one round of BenchmarkWatchEvents.
const eventsPerAgent = 500

// BenchmarkWatchEvents measures event delivery through WatchEvents to 16 agents at once, each
// with its own connection and stream, on SQLite:
//
//   - backlog: each agent has eventsPerAgent unacknowledged events written beforehand
//     (straight through the store, 100 to a transaction); the agents open their streams
//     together and read them all. events/s is the total delivered over the time from opening
//     the streams to the last event received.
//   - live: the agents' streams are open and idle (each has received one event); an operator changes server statuses of
//     the agents' identifiers (AdminService.SetServerStatus over gRPC from 16 clients: each
//     change is one transaction with its journal entry and its event), eventsPerAgent per
//     agent. events/s is the total delivered over the time from the first change to the last
//     event received; p50_ms and p99_ms are the delays from an event's commit time
//     (Event.create_time) to its receipt.
//
// Run it with:
//
//	go test -run=NONE -bench=WatchEvents -benchtime=3x ./bench/
func BenchmarkWatchEvents(b *testing.B) {
	b.Run("backlog", func(b *testing.B) {
		var rates []float64
		for b.Loop() {
			b.StopTimer()
			e := newRegistryEnv(b, filepath.Join(b.TempDir(), "registry.db"))
			agents := e.newAgents(b, concurrency)
			for _, a := range agents {
				appendEvents(b, e.store, a.id, eventsPerAgent)
			}
			b.StartTimer()
			start := time.Now()
			if _, err := watchAll(agents, 0, eventsPerAgent); err != nil {
				b.Fatal(err)
			}
			rates = append(rates, float64(concurrency*eventsPerAgent)/time.Since(start).Seconds())
		}
		b.ReportMetric(medianFloat(rates), "events/s")
	})
	b.Run("live", func(b *testing.B) {
		var rates []float64
		var delays []time.Duration
		for b.Loop() {
			b.StopTimer()
			e := newRegistryEnv(b, filepath.Join(b.TempDir(), "registry.db"))
			agents := e.newAgents(b, concurrency)
			names := make([][]string, concurrency)
			for k, a := range agents {
				names[k] = seedIdentifiers(b, e.store, a.id, fmt.Sprintf("w%02d", k), 10)
			}
			admin := withBearer(e.operatorToken(b))
			clients := make([]registryv1.AdminServiceClient, concurrency)
			for k := range clients {
				clients[k] = registryv1.NewAdminServiceClient(dial(b, e.addr))
			}
			// One event per agent first: receiving it shows the agent's stream is open.
			for k := range agents {
				if _, err := clients[k].SetServerStatus(admin, &registryv1.SetServerStatusRequest{
					Identifier: names[k][0], Statuses: []registryv1.IdentifierStatus{registryv1.IdentifierStatus_IDENTIFIER_STATUS_SERVER_DELETE_PROHIBITED},
				}); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			type result struct {
				delays []time.Duration
				err    error
			}
			done := make(chan result, 1)
			ready := make(chan struct{})
			go func() {
				d, err := watchAllReady(agents, 0, eventsPerAgent, ready)
				done <- result{d, err}
			}()
			<-ready
			start := time.Now()
			// Client k changes the identifiers of agent k, eventsPerAgent times. Identifier j
			// gets changes c = j, j+10, j+20, …, which toggle serverUpdateProhibited: every
			// call is a change and makes one event.
			errs := make([]error, concurrency)
			var wg sync.WaitGroup
			for k := range concurrency {
				wg.Go(func() {
					for c := range eventsPerAgent {
						want := []registryv1.IdentifierStatus{}
						if (c/len(names[k]))%2 == 0 {
							want = []registryv1.IdentifierStatus{registryv1.IdentifierStatus_IDENTIFIER_STATUS_SERVER_UPDATE_PROHIBITED}
						}
						_, err := clients[k].SetServerStatus(admin, &registryv1.SetServerStatusRequest{
							Identifier: names[k][c%len(names[k])], Statuses: want, Reason: "bench",
						})
						if err != nil {
							errs[k] = err
							return
						}
					}
				})
			}
			wg.Wait()
			err := errors.Join(errs...)
			if err != nil {
				b.Fatal(err)
			}
			r := <-done
			if r.err != nil {
				b.Fatal(r.err)
			}
			rates = append(rates, float64(concurrency*eventsPerAgent)/time.Since(start).Seconds())
			delays = append(delays, r.delays...)
		}
		slices.Sort(delays)
		b.ReportMetric(medianFloat(rates), "events/s")
		b.ReportMetric(ms(delays[len(delays)/2]), "p50_ms")
		b.ReportMetric(ms(delays[len(delays)*99/100]), "p99_ms")
	})
}

// appendEvents writes n events for agentID straight through the store, 100 to a transaction.
func appendEvents(tb testing.TB, store registry.Store, agentID string, n int) {
	tb.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	for start := 0; start < n; start += 100 {
		err := store.Tx(ctx, func(tx registry.Tx) error {
			for range min(100, n-start) {
				_, err := tx.AppendEvent(ctx, registry.Event{
					AgentID: agentID, Type: registry.EventServerStatusChanged, Identifier: "x." + zone, Time: now,
					Data: registry.EventData{Statuses: []registry.Status{registry.StatusServerHold}, Reason: "bench"},
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// seedIdentifiers registers n identifiers named <prefix>-<k>.<zone> to agentID straight
// through the store and returns their names.
func seedIdentifiers(tb testing.TB, store registry.Store, agentID, prefix string, n int) []string {
	tb.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	names := make([]string, n)
	err := store.Tx(ctx, func(tx registry.Tx) error {
		for k := range names {
			names[k] = fmt.Sprintf("%s-%d.%s", prefix, k, zone)
			identity := registry.Identity{ID: randomIdentityID(), SubjectSeed: randomSecret(), CreateTime: now}
			if err := tx.CreateIdentity(ctx, identity); err != nil {
				return err
			}
			err := tx.CreateIdentifier(ctx, registry.Identifier{
				Name: names[k], UnicodeName: names[k], AgentID: agentID, IdentityID: identity.ID,
				CreateTime: now, UpdateTime: now, Version: 1,
				OpenID: registry.OpenIDState{NextCheck: now.Add(24 * time.Hour)},
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return names
}

// watchAll opens a WatchEvents stream for every agent at once, after afterID, and reads want
// events from each, checking that they are numbered afterID+1, afterID+2, … without gaps or
// repeats. It returns the delays from each event's commit time to its receipt.
func watchAll(agents []benchAgent, afterID int64, want int) ([]time.Duration, error) {
	return watchAllReady(agents, afterID, want, nil)
}

// watchAllReady is watchAll for streams that are open already: with ready set, each
// agent's stream first receives one event (event afterID+1, which the caller has written),
// then ready is closed and want more are read.
func watchAllReady(agents []benchAgent, afterID int64, want int, ready chan<- struct{}) ([]time.Duration, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	streams := make([]registryv1.RegistryService_WatchEventsClient, len(agents))
	for k, a := range agents {
		s, err := a.api.WatchEvents(contextWith(ctx, a.ctx), &registryv1.WatchEventsRequest{AfterId: afterID})
		if err != nil {
			return nil, err
		}
		streams[k] = s
	}
	if ready != nil {
		for k, s := range streams {
			ev, err := s.Recv()
			if err != nil {
				return nil, fmt.Errorf("agent %s: first event: %w", agents[k].id, err)
			}
			if ev.Id != afterID+1 {
				return nil, fmt.Errorf("agent %s: first event %d, want %d", agents[k].id, ev.Id, afterID+1)
			}
		}
		afterID++
		close(ready)
	}
	var (
		mu     sync.Mutex
		delays []time.Duration
		wg     sync.WaitGroup
		errs   = make([]error, len(agents))
	)
	for k, s := range streams {
		wg.Go(func() {
			local := make([]time.Duration, 0, want)
			next := afterID + 1
			for range want {
				ev, err := s.Recv()
				if err != nil {
					errs[k] = fmt.Errorf("agent %s: %w", agents[k].id, err)
					return
				}
				if ev.Id != next {
					errs[k] = fmt.Errorf("agent %s: got event %d, want %d", agents[k].id, ev.Id, next)
					return
				}
				next++
				local = append(local, time.Since(ev.CreateTime.AsTime()))
			}
			mu.Lock()
			delays = append(delays, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return delays, errors.Join(errs...)
}

// contextWith returns ctx carrying the outgoing metadata (the bearer token) of from.
func contextWith(ctx, from context.Context) context.Context {
	md, _ := metadata.FromOutgoingContext(from)
	return metadata.NewOutgoingContext(ctx, md)
}

func medianFloat(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
