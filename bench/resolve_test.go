package bench

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	mrand "math/rand/v2"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
)

// resolvePool is how many identifiers BenchmarkResolve draws names from.
const resolvePool = 10_000

// BenchmarkResolve measures resolving identifiers (identifier → agent and claims endpoint)
// picked at random from 10,000 registered ones, on SQLite:
//
//   - inprocess: registry.Service.Resolve called directly from GOMAXPROCS goroutines, with
//     the default resolve cache (2 s), as a server answers;
//   - inprocess-uncached: the same with the cache off, so every resolve reads the database;
//   - grpc: ResolverService.ResolveIdentifier from 16 clients, each with its own loopback
//     connection, authenticated with an operator token.
//
// Run it with
//
//	go test -run=NONE -bench=Resolve ./bench/
func BenchmarkResolve(b *testing.B) {
	env := newRegistryEnv(b, filepath.Join(b.TempDir(), "registry.db"))
	names := seedThroughStore(b, env.svc, env.store, concurrency, resolvePool)

	b.Run("inprocess", func(b *testing.B) {
		benchmarkResolveInProcess(b, env.svc, names)
	})
	b.Run("inprocess-uncached", func(b *testing.B) {
		svc, err := registry.New(registry.Config{Store: env.store, ResolveCacheTTL: -1})
		if err != nil {
			b.Fatal(err)
		}
		benchmarkResolveInProcess(b, svc, names)
	})
	b.Run("grpc", func(b *testing.B) {
		b.StopTimer()
		ctx := withBearer(env.operatorToken(b))
		clients := make([]registryv1.ResolverServiceClient, concurrency)
		for k := range clients {
			clients[k] = registryv1.NewResolverServiceClient(dial(b, env.addr))
		}
		rngs := make([]*mrand.Rand, concurrency)
		for k := range rngs {
			rngs[k] = mrand.New(mrand.NewPCG(uint64(k), 0))
		}
		b.ResetTimer()
		b.StartTimer()
		err := parallel(concurrency, b.N, func(worker, _ int) error {
			name := names[rngs[worker].IntN(len(names))]
			_, err := clients[worker].ResolveIdentifier(ctx, &registryv1.ResolveIdentifierRequest{Identifier: name})
			return err
		})
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "resolves/s")
	})
}

func benchmarkResolveInProcess(b *testing.B, svc *registry.Service, names []string) {
	ctx := context.Background()
	var seeds atomic.Uint64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := mrand.New(mrand.NewPCG(seeds.Add(1), 0))
		for pb.Next() {
			if _, err := svc.Resolve(ctx, names[rng.IntN(len(names))]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "resolves/s")
}

// seedThroughStore registers n identifiers to agents new agents, round robin, straight
// through the store (no challenges, no journal), 500 to a transaction, and returns their
// names.
func seedThroughStore(tb testing.TB, svc *registry.Service, store registry.Store, agents, n int) []string {
	tb.Helper()
	ctx := context.Background()
	agentIDs := createAgents(tb, svc, agents)
	names := make([]string, n)
	for k := range names {
		names[k] = fmt.Sprintf("n%07d.%s", k, zone)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	const perTx = 500
	for start := 0; start < n; start += perTx {
		err := store.Tx(ctx, func(tx registry.Tx) error {
			for k := start; k < min(start+perTx, n); k++ {
				identity := registry.Identity{ID: randomIdentityID(), SubjectSeed: randomSecret(), CreateTime: now}
				if err := tx.CreateIdentity(ctx, identity); err != nil {
					return err
				}
				err := tx.CreateIdentifier(ctx, registry.Identifier{
					Name: names[k], UnicodeName: names[k], AgentID: agentIDs[k%agents], IdentityID: identity.ID,
					CreateTime: now, UpdateTime: now, Version: 1,
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
	return names
}

// idEncoding is the registry's alphabet for the IDs it assigns.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// randomIdentityID returns an identity ID shaped like the registry's: "id_" and 128 random bits.
func randomIdentityID() string {
	var b [16]byte
	rand.Read(b[:])
	return registry.IdentityIDPrefix + idEncoding.EncodeToString(b[:])
}

// randomSecret returns a subject seed shaped like the registry's: 256 random bits, base64url.
func randomSecret() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
