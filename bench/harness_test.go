package bench

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/internal/storedb"
	"github.com/id4me/id4me-registry/registry"
	"github.com/id4me/id4me-registry/server"
	"github.com/id4me/id4me-registry/sqlstore"
)

// The tests below run the benchmarks' machinery at a small scale, so that `go test ./...`
// catches a harness that no longer fits the registry (a changed schema, flow or API) before
// someone waits minutes for a benchmark to fail.

func TestRegistrationHarness(t *testing.T) {
	env := newRegistryEnv(t, filepath.Join(t.TempDir(), "registry.db"))
	agents := env.newAgents(t, 2)
	const n = 6
	err := parallel(len(agents), n, func(worker, item int) error {
		return env.register(agents[worker], seededName(item))
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	total := 0
	for _, a := range agents {
		ids, err := env.store.ListIdentifiers(ctx, a.id, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		total += len(ids)
	}
	if total != n {
		t.Errorf("registered %d identifiers, want %d", total, n)
	}
	if rate, err := rawInsertRate(ctx, env.store, 4, 20); err != nil || rate <= 0 {
		t.Errorf("rawInsertRate = %v, %v", rate, err)
	}
	var rows int64
	if err := storedb.DB(env.store).Table("bench_scratch").Count(&rows).Error; err != nil || rows != 20 {
		t.Errorf("scratch table has %d rows (%v), want 20", rows, err)
	}
}

func TestOverloadHarness(t *testing.T) {
	env := newRegistryEnv(t, filepath.Join(t.TempDir(), "registry.db"), func(c *server.Config) {
		c.Limits.MaxInFlight = map[server.CallClass]int{server.ClassWrite: 1, server.ClassDNS: 1}
	})
	setup := overloadSetup{clients: 8, idleCalls: 5, loadFor: 200 * time.Millisecond, recoveryLimit: 10 * time.Second}
	agents := env.newAgents(t, setup.clients+1)
	var f overloadFigures
	if err := overloadRoundRun(env, agents, setup, 0, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.idle) != 3*setup.idleCalls || f.registrations == 0 || len(f.loaded) < 3*f.registrations || len(f.recoveries) != 1 {
		t.Fatalf("%d idle calls, %d registrations in %d admitted calls under load, recoveries %v",
			len(f.idle), f.registrations, len(f.loaded), f.recoveries)
	}
}

func TestSeedBulk(t *testing.T) {
	const agents, n = 3, 1234 // not a multiple of the statement size
	path := filepath.Join(t.TempDir(), "seeded.db")
	seedBulk(t, path, agents, n)

	ctx := context.Background()
	store, err := sqlstore.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	svc, err := registry.New(registry.Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []int{0, 1, n / 2, n - 1} {
		r, err := svc.Resolve(ctx, seededName(k))
		if err != nil {
			t.Fatalf("Resolve(%s): %v", seededName(k), err)
		}
		i, err := store.GetIdentifier(ctx, r.Identifier)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.GetIdentity(ctx, i.IdentityID); err != nil {
			t.Errorf("identity of %s: %v", i.Name, err)
		}
	}
	busiest := busiestAgent(t, path)
	seen, token := 0, ""
	for {
		page, next, err := svc.ListIdentifiers(ctx, registry.Actor{Kind: registry.ActorAgent, ID: busiest}, 100, token)
		if err != nil {
			t.Fatal(err)
		}
		seen += len(page)
		if next == "" {
			break
		}
		token = next
	}
	if want := (n + agents - 1) / agents; seen != want {
		t.Errorf("agent %s lists %d identifiers, want %d", busiest, seen, want)
	}
}
