package sqlstore

import (
	"context"
	"database/sql"

	"gorm.io/gorm"
)

// sqlitePool is the connection pool under gorm's SQLite dialect: the *sql.DB, whose
// transactions tell which statements gorm prepared inside them, so that the store has gorm
// prepare them again outside (promote).
//
// gorm's statement cache (PrepareStmt) prepares a statement first met inside a transaction
// on that transaction, and keeps it marked as such; database/sql closes it when the
// transaction ends, and every later transaction prepares it again (Tx.StmtContext of a
// transaction's statement), which on modernc.org/sqlite means compiling it again. A
// statement the cache prepared outside a transaction is prepared once per connection and
// reused by every transaction on it. Most of the store's writes run only inside
// transactions.
type sqlitePool struct {
	*sql.DB
	// promote has gorm prepare queries outside a transaction; set once gorm is open.
	promote func(queries []string)
}

var (
	_ gorm.ConnPool         = (*sqlitePool)(nil)
	_ gorm.ConnPoolBeginner = (*sqlitePool)(nil)
	_ gorm.GetDBConnector   = (*sqlitePool)(nil)
	_ gorm.Tx               = (*sqliteTx)(nil)
)

// BeginTx begins a transaction that records the statements prepared on it.
func (p *sqlitePool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	tx, err := p.DB.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &sqliteTx{Tx: tx, p: p}, nil
}

// GetDBConn returns the *sql.DB (gorm.DB.DB).
func (p *sqlitePool) GetDBConn() (*sql.DB, error) { return p.DB, nil }

// sqliteTx is a transaction of a sqlitePool.
type sqliteTx struct {
	*sql.Tx
	p        *sqlitePool
	prepared []string
}

// PrepareContext prepares query on the transaction, and notes it.
func (t *sqliteTx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	t.prepared = append(t.prepared, query)
	return t.Tx.PrepareContext(ctx, query)
}

func (t *sqliteTx) Commit() error {
	err := t.Tx.Commit()
	t.end()
	return err
}

func (t *sqliteTx) Rollback() error {
	err := t.Tx.Rollback()
	t.end()
	return err
}

// end has gorm prepare again, now that the transaction's connection is back in the pool,
// the statements it prepared on the transaction. Preparing takes a connection of its own, so
// it must not be done while the transaction holds one: with every connection held by a
// transaction waiting, none would come free.
func (t *sqliteTx) end() {
	if len(t.prepared) > 0 && t.p.promote != nil {
		t.p.promote(t.prepared)
		t.prepared = nil
	}
}

// promote replaces the statements of queries that gorm's cache keeps as prepared on a
// transaction by statements prepared on db. A failure is left to the next run of the query
// to report.
func promote(cache *gorm.PreparedStmtDB, db *sql.DB, queries []string) {
	for _, q := range queries {
		cache.Mux.Lock()
		if st, ok := cache.Stmts.Get(q); ok && !st.Transaction {
			cache.Mux.Unlock()
			continue
		}
		// New caches the statement, unlocks the mutex and prepares it.
		_, _ = cache.Stmts.New(context.Background(), q, false, db, cache.Mux)
	}
}
