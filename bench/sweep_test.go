package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/dnsverify"
	"github.com/id4me/id4me-registry/internal/devdns"
	"github.com/id4me/id4me-registry/internal/storedb"
	"github.com/id4me/id4me-registry/registry"
	"github.com/id4me/id4me-registry/sqlstore"
)

// sweepItems is how many items are due for each job in a loaded sweep.
const sweepItems = 1000

// BenchmarkSweeps measures one sweep of each background job on the SQLite database of
// 1,000,000 identifiers of BenchmarkMillionIdentifiers (100 agents), in process:
//
//   - idle: nothing is due. The sweep is one indexed probe per job, whatever the table size:
//     <job>_idle_ms and <job>_idle_stmts (SQL statements the store ran, counted by the store).
//   - loaded: sweepItems items are due (identifiers whose redemption period ended; pending
//     transfers past their deadline; challenges expired beyond the retention; identifiers due
//     for an _openid check, answered by two loopback nameservers), set up with the timer
//     stopped. <job>_ms and <job>_stmts are for the whole sweep; <job>_items is what it
//     handled (a few fewer than sweepItems for transfers: names already sponsored by the
//     gaining agent are skipped when the transfers are made).
//
// Statements per item stay constant and idle sweeps stay cheap: the sweeps read through the
// partial and ordinary indexes of migration 00002, never the whole identifiers table.
//
// Run it with:
//
//	go test -run=NONE -bench=Sweeps -benchtime=3x ./bench/
func BenchmarkSweeps(b *testing.B) {
	cached := millionDB(b)
	dbPath := filepath.Join(b.TempDir(), "registry.db")
	if err := copyFile(cached, dbPath); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	store, err := sqlstore.Open(ctx, dbPath)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	var nss []string
	for range 2 {
		ns, err := devdns.Start("127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ns.Close() })
		ns.AddZone(zone)
		nss = append(nss, ns.Addr)
	}
	v, err := dnsverify.New(dnsverify.Config{Servers: nss})
	if err != nil {
		b.Fatal(err)
	}
	clock := time.Now().UTC()
	svc, err := registry.New(registry.Config{
		Store: store, DNS: v, OpenID: v, AuthorityIssuer: "auth." + zone,
		TransferPendingPeriod: time.Hour, Now: func() time.Time { return clock },
	})
	if err != nil {
		b.Fatal(err)
	}
	var agentIDs []string
	if err := storedb.DB(store).Raw("SELECT id FROM agents ORDER BY id").Scan(&agentIDs).Error; err != nil || len(agentIDs) < 2 {
		b.Fatalf("agents: %v %v", agentIDs, err)
	}

	jobs := []struct {
		name  string
		setup func(round int)
		run   func(context.Context) (int, error)
	}{
		{"purge", func(r int) { duePurges(b, store, clock, names(r, 0)) }, svc.SweepPurges},
		{"transfer", func(r int) { dueTransfers(b, store, clock, agentIDs[0], names(r, 1)) }, svc.SweepTransfers},
		{"challenge", func(r int) { dueChallenges(b, store, clock, agentIDs[0], r) }, svc.SweepChallenges},
		{"openid", func(r int) { dueOpenID(b, store, clock, names(r, 2)) }, svc.SweepOpenID},
	}
	type figures struct {
		idle, loaded            []time.Duration
		idleStmts, stmts, items []float64
	}
	results := make([]figures, len(jobs))
	round := 0
	for b.Loop() {
		for k, j := range jobs {
			f := &results[k]
			b.StopTimer()
			j.setup(round)
			b.StartTimer()
			// Loaded: the due items; then idle: nothing left.
			for _, idle := range []bool{false, true} {
				stmts := store.Statements()
				start := time.Now()
				n, err := j.run(ctx)
				took := time.Since(start)
				if err != nil {
					b.Fatalf("%s sweep: %v", j.name, err)
				}
				ran := float64(store.Statements() - stmts)
				if idle {
					if n != 0 {
						b.Fatalf("%s: idle sweep handled %d items", j.name, n)
					}
					f.idle, f.idleStmts = append(f.idle, took), append(f.idleStmts, ran)
				} else {
					f.loaded, f.stmts, f.items = append(f.loaded, took), append(f.stmts, ran), append(f.items, float64(n))
				}
			}
		}
		round++
	}
	for k, j := range jobs {
		f := results[k]
		b.ReportMetric(ms(median(f.loaded)), j.name+"_ms")
		b.ReportMetric(medianFloat(f.stmts), j.name+"_stmts")
		b.ReportMetric(medianFloat(f.items), j.name+"_items")
		b.ReportMetric(ms(median(f.idle)), j.name+"_idle_ms")
		b.ReportMetric(medianFloat(f.idleStmts), j.name+"_idle_stmts")
	}
}

// names returns the sweepItems seeded names of job job in round round: disjoint for every
// job and round.
func names(round, job int) []string {
	out := make([]string, sweepItems)
	base := (round*4 + job) * sweepItems
	for k := range out {
		out[k] = seededName(base + k)
	}
	return out
}

// inList returns "(?, ?, …)" for n values.
func inList(n int) string { return "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")" }

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for k, s := range ss {
		out[k] = s
	}
	return out
}

// execSQL runs one statement on the store's database (SQLite: times are Unix nanoseconds).
func execSQL(tb testing.TB, store *sqlstore.Store, sql string, args ...any) {
	tb.Helper()
	if err := storedb.DB(store).Exec(sql, args...).Error; err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

// duePurges makes the identifiers pending delete with their redemption period over.
func duePurges(tb testing.TB, store *sqlstore.Store, now time.Time, ns []string) {
	execSQL(tb, store, "UPDATE identifiers SET statuses = 'pendingDelete', delete_time = ?, purge_time = ?, version = version + 1 WHERE name IN "+inList(len(ns)),
		append([]any{now.Add(-31 * 24 * time.Hour).UnixNano(), now.Add(-time.Hour).UnixNano()}, anys(ns)...)...)
}

// dueTransfers makes pending transfers of the identifiers to gaining, past their deadline.
func dueTransfers(tb testing.TB, store *sqlstore.Store, now time.Time, gaining string, ns []string) {
	args := append([]any{gaining, now.Add(-2 * time.Hour).UnixNano(), now.Add(-time.Hour).UnixNano(), gaining}, anys(ns)...)
	execSQL(tb, store, `INSERT INTO transfers (id, identifier, gaining_agent_id, losing_agent_id, challenge_id, status, request_time, act_time)
		SELECT 'tr_bench_' || name, name, ?, agent_id, 'ch_bench', 'pending', ?, ? FROM identifiers
		WHERE agent_id != ? AND name IN `+inList(len(ns)), args...)
	execSQL(tb, store, "UPDATE identifiers SET statuses = 'pendingTransfer', version = version + 1 WHERE agent_id != ? AND name IN "+inList(len(ns)),
		append([]any{gaining}, anys(ns)...)...)
}

// dueChallenges adds sweepItems challenges that expired two days ago.
func dueChallenges(tb testing.TB, store *sqlstore.Store, now time.Time, agentID string, round int) {
	expired := now.Add(-48 * time.Hour)
	const perStatement = 200
	for start := 0; start < sweepItems; start += perStatement {
		var args []any
		for k := start; k < start+perStatement; k++ {
			args = append(args, fmt.Sprintf("ch_bench_%d_%d", round, k), agentID, seededName(k), "register", "token", "ka",
				"pending", 0, expired.Add(-time.Hour).UnixNano(), expired.UnixNano())
		}
		execSQL(tb, store, insertSQL("challenges", "id, agent_id, identifier, purpose, token, key_authorization, status, attempts, create_time, expire_time", 10, perStatement), args...)
	}
}

// dueOpenID makes the identifiers due for an _openid check.
func dueOpenID(tb testing.TB, store *sqlstore.Store, now time.Time, ns []string) {
	execSQL(tb, store, "UPDATE identifiers SET openid_next_check = ? WHERE name IN "+inList(len(ns)),
		append([]any{now.Add(-time.Minute).UnixNano()}, anys(ns)...)...)
}
