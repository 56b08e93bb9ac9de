// Package storedb hands this module's tests and benchmarks the gorm handle behind a
// sqlstore.Store, which the store keeps out of its exported API: they count rows, seed
// tables in bulk and corrupt rows on purpose, which no caller of the store may do.
//
// sqlstore registers the accessor when it is linked in; storedb imports nothing of it, so
// that sqlstore's own tests can use both.
package storedb

import "gorm.io/gorm"

var handle func(store any) *gorm.DB

// Register sets the accessor DB calls; sqlstore calls it from init.
func Register(f func(store any) *gorm.DB) { handle = f }

// DB returns the gorm handle of store, a *sqlstore.Store. Statements run through it are
// counted in the store's Statements.
func DB(store any) *gorm.DB {
	if handle == nil {
		panic("storedb: sqlstore is not linked in")
	}
	return handle(store)
}

// T is the part of testing.TB the helpers below use; naming it here keeps the testing
// package out of the binaries that link sqlstore (and so this package).
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// CountRows counts the rows of table in store that match where (all rows when where is
// empty), failing t on a database error.
func CountRows(t T, store any, table, where string, args ...any) int64 {
	t.Helper()
	var n int64
	q := DB(store).Table(table)
	if where != "" {
		q = q.Where(where, args...)
	}
	if err := q.Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// IssuedTables are the authority's tables a refused request must not add rows to.
var IssuedTables = []string{"authority_sessions", "authority_grants", "authority_access_tokens", "authority_clients", "authority_consents"}

// Issued counts the rows of IssuedTables in store.
func Issued(t T, store any) map[string]int64 {
	t.Helper()
	out := make(map[string]int64, len(IssuedTables))
	for _, table := range IssuedTables {
		out[table] = CountRows(t, store, table, "")
	}
	return out
}

// WantNothingIssued fails t unless store holds as many rows of IssuedTables as before
// (what Issued returned earlier).
func WantNothingIssued(t T, store any, before map[string]int64) {
	t.Helper()
	for table, n := range Issued(t, store) {
		if n != before[table] {
			t.Fatalf("%s: %d rows, %d before the refusal", table, n, before[table])
		}
	}
}
