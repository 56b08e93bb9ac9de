// Package dbtest counts rows behind a sqlstore.Store for tests: that a refusal stored
// nothing, that a sweep deleted what it should. Only tests import it.
package dbtest

import (
	"testing"

	"github.com/id4me/id4me-registry/internal/storedb"
)

// CountRows counts the rows of table in store that match where (all rows when where is
// empty), failing t on a database error.
func CountRows(t testing.TB, store any, table, where string, args ...any) int64 {
	t.Helper()
	var n int64
	q := storedb.DB(store).Table(table)
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
func Issued(t testing.TB, store any) map[string]int64 {
	t.Helper()
	out := make(map[string]int64, len(IssuedTables))
	for _, table := range IssuedTables {
		out[table] = CountRows(t, store, table, "")
	}
	return out
}

// WantNothingIssued fails t unless store holds as many rows of IssuedTables as before
// (what Issued returned earlier).
func WantNothingIssued(t testing.TB, store any, before map[string]int64) {
	t.Helper()
	for table, n := range Issued(t, store) {
		if n != before[table] {
			t.Fatalf("%s: %d rows, %d before the refusal", table, n, before[table])
		}
	}
}
