package gormstore

import (
	"context"

	"github.com/id4me/id4me-registry/registry"
)

// ExecInTx runs a raw statement in the database transaction behind t, for tests that make the
// database fail on purpose.
func ExecInTx(ctx context.Context, t registry.Tx, sql string) error {
	_, err := t.(*tx).exec(ctx, sql)
	return err
}

// Prepared reports whether the store keeps query prepared.
func Prepared(s *Store, query string) bool { return s.pool.cached(query) != nil }

// SQLInsertJournal is the SQLite text of the journal insert.
var SQLInsertJournal = sqlInsertJournal.sqlite
