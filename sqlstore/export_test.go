package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/id4me/id4me-registry/registry"
)

// ExecInTx runs a raw statement in the database transaction behind t, for tests that make the
// database fail on purpose.
func ExecInTx(ctx context.Context, t registry.Tx, sql string) error {
	_, err := changed(t.(*tx).q(ctx).Exec(sql))
	return err
}

// DB returns the store's gorm handle.
func DB(s *Store) *gorm.DB { return s.db }

// PreparedStatements returns how many statements gorm keeps prepared for s, and how many of
// them are prepared on a transaction (and prepared again by every transaction that runs
// them); -1 when it keeps none (PostgreSQL, where pgx does).
func PreparedStatements(s *Store) (all, onTx int) {
	p, ok := s.db.ConnPool.(*gorm.PreparedStmtDB)
	if !ok {
		return -1, -1
	}
	for _, k := range p.Stmts.Keys() {
		all++
		if st, ok := p.Stmts.Get(k); ok && st.Transaction {
			onTx++
		}
	}
	return all, onTx
}

// IndexedStatement is a statement of the store that must read an index, not scan its table.
type IndexedStatement struct {
	Name string
	// Build runs the statement on db; on a dry-run handle gorm builds it and runs nothing,
	// leaving the SQL and its arguments in the handle's Statement.
	Build func(db *gorm.DB) *gorm.DB
	// Index is the index it must read.
	Index string
}

// IndexedStatements are the claims of background work, the other reads of migration 00002's
// partial indexes, the read by DNS name (migration 00005), the sweep of request outcomes
// (00006) and the deletion of an identity's known devices (00010).
var IndexedStatements = func() []IndexedStatement {
	now := time.Now()
	const limit = 10
	return []IndexedStatement{
		{"ClaimDueTransfers", func(db *gorm.DB) *gorm.DB {
			return dueTransfers(db, dialectOf(db), now, limit).Find(&[]transferRow{})
		}, "transfers_pending_act"},
		{"ClaimDuePurges", func(db *gorm.DB) *gorm.DB { return duePurges(db, now, limit).Find(&[]identifierRow{}) }, "identifiers_purge"},
		{"ClaimOpenIDChecks", func(db *gorm.DB) *gorm.DB { return dueOpenIDChecks(db, now, limit).Find(&[]identifierRow{}) }, "identifiers_openid_next_check"},
		{"DeleteExpiredChallenges", func(db *gorm.DB) *gorm.DB { return deleteExpiredChallenges(db, now, limit) }, "challenges_expire"},
		{"DeleteAckedEvents", func(db *gorm.DB) *gorm.DB { return deleteAckedEvents(db, now, limit) }, "events_acked"},
		{"DeleteRequestOutcomes", func(db *gorm.DB) *gorm.DB { return deleteRequestOutcomes(db, now, limit) }, "request_outcomes_create"},
		{"PendingTransfer", func(db *gorm.DB) *gorm.DB { return pendingTransfer(db, "alice.example").Find(&[]transferRow{}) }, "transfers_pending"},
		{"ListTransfers in both directions", func(db *gorm.DB) *gorm.DB {
			return transfersBothWays(db, "a1", "", true, limit)
		}, "transfers_losing"},
		{"GetIdentifierByDNSName", func(db *gorm.DB) *gorm.DB {
			// The statement is written out (handsql.go); gorm binds its ? placeholders.
			return db.Raw(sqlGetIdentifierByDNSName.sqlite, "alice.example").Scan(&[]identifierRow{})
		}, "identifiers_dns_name"},
		{"ForgetKnownDevices", func(db *gorm.DB) *gorm.DB { return forgetDevices(db, "id_alice", dbTime{}) }, "authority_known_devices_identity"},
	}
}()

// Recorded is a statement the store ran: its SQL, with the dialect's placeholders, and its
// arguments.
type Recorded struct {
	SQL  string
	Vars []any
}

var recorders atomic.Int64

// Record makes s record the statements it runs until the function it returns is called,
// which returns them. Not for stores in concurrent use.
func Record(s *Store) func() []Recorded {
	var (
		on  = true
		got []Recorded
	)
	record := func(db *gorm.DB) {
		if on && !db.DryRun {
			got = append(got, Recorded{db.Statement.SQL.String(), slices.Clone(db.Statement.Vars)})
		}
	}
	name := fmt.Sprintf("test:record%d", recorders.Add(1))
	cb := s.db.Callback()
	for _, err := range []error{
		cb.Create().After("gorm:create").Register(name, record),
		cb.Query().After("gorm:query").Register(name, record),
		cb.Update().After("gorm:update").Register(name, record),
		cb.Delete().After("gorm:delete").Register(name, record),
		cb.Row().After("gorm:row").Register(name, record),
		cb.Raw().After("gorm:raw").Register(name, record),
	} {
		if err != nil {
			panic(err)
		}
	}
	// The statements written out (handsql.go) run outside gorm's callbacks.
	s.statements.record = func(sql string, vars []any) {
		if on {
			got = append(got, Recorded{sql, slices.Clone(vars)})
		}
	}
	return func() []Recorded {
		on = false
		s.statements.record = nil
		return got
	}
}

// CPUTime returns the CPU time the process has used so far, user and system: a benchmark's
// cost that other processes on the machine do not inflate, as they do its wall time.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ReportCPU reports the CPU time used since start per operation of b, as cpu-µs/op.
func ReportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(CPUTime()-start)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}

// Explain is explain, for the external tests' query plans.
var Explain = explain
