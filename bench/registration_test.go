package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/id4me/id4me-registry/internal/storedb"
	"github.com/id4me/id4me-registry/internal/testdb"
	"github.com/id4me/id4me-registry/migrations"
	"github.com/id4me/id4me-registry/sqlstore"
)

// BenchmarkRegistration measures end-to-end registrations per second: 16 agents, each with
// its own token and connection, register b.N distinct identifiers over loopback gRPC, each
// one CreateChallenge, publishing the TXT record on two loopback nameservers,
// VerifyChallenge (the registry asks both nameservers) and RegisterIdentifier. The per-agent
// rate limit is off.
//
// In the same run, on the same database, it measures the raw commit rate the registrations
// are up against: 16 goroutines each inserting one row into a scratch table per transaction,
// through the store's gorm handle. It reports registrations/s, raw_inserts/s and their ratio.
// A registration commits three transactions (challenge created, check recorded, identifier
// registered), each with its journal entry, so a ratio near 1/3 means the database is the
// bottleneck and everything else (gRPC, authentication, DNS, gorm) is cheap. cpu-µs/op is
// the CPU time of the whole process (registry, agents, nameservers) per registration.
//
//	go test -run=NONE -bench=Registration -benchtime=3000x ./bench/
//
// The postgres variant runs when ID4ME_TEST_POSTGRES_DSN is set, in a fresh schema.
func BenchmarkRegistration(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		benchmarkRegistration(b, filepath.Join(b.TempDir(), "registry.db"))
	})
	b.Run("postgres", func(b *testing.B) {
		benchmarkRegistration(b, testdb.Postgres(b))
	})
}

func benchmarkRegistration(b *testing.B, dsn string) {
	b.StopTimer()
	env := newRegistryEnv(b, dsn)
	agents := env.newAgents(b, concurrency)
	b.ResetTimer()
	cpu := cpuTime()
	b.StartTimer()
	err := parallel(concurrency, b.N, func(worker, item int) error {
		return env.register(agents[worker], fmt.Sprintf("r%d.%s", item, zone))
	})
	b.StopTimer()
	cpuPerRegistration := cpuPerOp(cpu, b.N)
	if err != nil {
		b.Fatal(err)
	}
	registrations := float64(b.N) / b.Elapsed().Seconds()
	raw, err := rawInsertRate(context.Background(), env.store, concurrency, max(b.N, minRawInserts))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(registrations, "registrations/s")
	b.ReportMetric(raw, "raw_inserts/s")
	b.ReportMetric(registrations/raw, "ratio")
	b.ReportMetric(cpuPerRegistration, "cpu-µs/op")
}

// minRawInserts keeps the raw measurement meaningful when b.N is small (the first, probing
// run of a benchmark).
const minRawInserts = 1000

// rawInsertRate returns how many single-row insert transactions per second workers
// goroutines commit into a scratch table of the store's database, n in all.
//
// On SQLite the goroutines take turns to write, as the store's own transactions do (SQLite
// has one writer; without turns the figure would be the busy handler's sleep-and-retry, not
// the database's commit rate).
func rawInsertRate(ctx context.Context, store *sqlstore.Store, workers, n int) (float64, error) {
	db := storedb.DB(store).WithContext(ctx)
	ddl := "CREATE TABLE bench_scratch (id BIGINT NOT NULL PRIMARY KEY, payload TEXT NOT NULL)"
	var writeTurn sync.Locker = noLock{}
	if store.Dialect() == migrations.SQLite {
		ddl = "CREATE TABLE bench_scratch (id INTEGER NOT NULL PRIMARY KEY, payload TEXT NOT NULL) STRICT"
		writeTurn = new(sync.Mutex)
	}
	if err := db.Exec(ddl).Error; err != nil {
		return 0, fmt.Errorf("scratch table: %w", err)
	}
	// About the size of a journal entry.
	payload := strings.Repeat("x", 200)
	start := time.Now()
	err := parallel(workers, n, func(_, item int) error {
		writeTurn.Lock()
		defer writeTurn.Unlock()
		return db.Transaction(func(tx *gorm.DB) error {
			return tx.Exec("INSERT INTO bench_scratch (id, payload) VALUES (?, ?)", item, payload).Error
		})
	})
	elapsed := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("raw insert: %w", err)
	}
	return float64(n) / elapsed.Seconds(), nil
}

type noLock struct{}

func (noLock) Lock()   {}
func (noLock) Unlock() {}
