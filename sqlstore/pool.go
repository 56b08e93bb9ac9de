package sqlstore

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"

	"gorm.io/gorm"
)

// maxCachedStmts bounds the statements a pool keeps prepared. Statements vary with list sizes
// (LIMIT n, IN (…)); once the cache is full, new ones run unprepared.
const maxCachedStmts = 512

// pool is the connection pool under the store's gorm handle and its own statements. On
// SQLite it prepares each statement once and runs it again, on any connection and inside
// transactions: modernc.org/sqlite keeps the compiled statement with the prepared statement,
// and database/sql keeps one per connection. (gorm's PrepareStmt does not do this for
// statements first met inside a transaction: it prepares them on the transaction, and every
// later transaction prepares them again.) On PostgreSQL pgx caches prepared statements per
// connection itself, so the pool passes statements through.
type pool struct {
	db    *sql.DB
	cache bool

	mu    sync.RWMutex
	stmts map[string]*sql.Stmt

	// statements counts the statements run through the pool and its transactions.
	statements atomic.Int64
}

var (
	_ gorm.ConnPool         = (*pool)(nil)
	_ gorm.ConnPoolBeginner = (*pool)(nil)
	_ gorm.GetDBConnector   = (*pool)(nil)
	_ gorm.Tx               = (*poolTx)(nil)
	_ gorm.GetDBConnector   = (*poolTx)(nil)
)

func newPool(db *sql.DB, cache bool) *pool {
	return &pool{db: db, cache: cache, stmts: make(map[string]*sql.Stmt)}
}

// cached returns the prepared statement of query, or nil.
func (p *pool) cached(query string) *sql.Stmt {
	if !p.cache {
		return nil
	}
	p.mu.RLock()
	s := p.stmts[query]
	p.mu.RUnlock()
	return s
}

// prepare returns the prepared statement of query, preparing it if there is room in the cache;
// nil when the query is to run unprepared. Preparing takes a connection of its own, so it must
// not be done while the caller holds one (inside a transaction): with every connection held
// by a transaction waiting here, none would come free. Nor is the lock held meanwhile, for
// transactions look statements up under it.
func (p *pool) prepare(ctx context.Context, query string) (*sql.Stmt, error) {
	if !p.cache {
		return nil, nil
	}
	p.mu.RLock()
	s, full := p.stmts[query], len(p.stmts) >= maxCachedStmts
	p.mu.RUnlock()
	if s != nil || full {
		return s, nil
	}
	s, err := p.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch cached := p.stmts[query]; {
	case cached != nil: // prepared meanwhile by another caller
		s.Close()
		return cached, nil
	case len(p.stmts) >= maxCachedStmts:
		s.Close()
		return nil, nil
	}
	p.stmts[query] = s
	return s, nil
}

// prepareAll prepares queries met inside a transaction, once it has ended. Failures are left
// to the next run of the query to report.
func (p *pool) prepareAll(queries []string) {
	for _, q := range queries {
		_, _ = p.prepare(context.Background(), q)
	}
}

func (p *pool) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return p.db.PrepareContext(ctx, query)
}

func (p *pool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	p.statements.Add(1)
	s, err := p.prepare(ctx, query)
	if err != nil {
		return nil, err
	}
	if s != nil {
		return s.ExecContext(ctx, args...)
	}
	return p.db.ExecContext(ctx, query, args...)
}

func (p *pool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	p.statements.Add(1)
	s, err := p.prepare(ctx, query)
	if err != nil {
		return nil, err
	}
	if s != nil {
		return s.QueryContext(ctx, args...)
	}
	return p.db.QueryContext(ctx, query, args...)
}

func (p *pool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	p.statements.Add(1)
	s, err := p.prepare(ctx, query)
	if err != nil {
		// A Row carrying err: the query fails again and reports it.
		return p.db.QueryRowContext(ctx, query, args...)
	}
	if s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return p.db.QueryRowContext(ctx, query, args...)
}

// BeginTx begins a transaction whose statements use the pool's prepared ones (gorm.DB.Begin).
func (p *pool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	tx, err := p.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &poolTx{Tx: tx, p: p}, nil
}

// begin begins a transaction (Store.Tx).
func (p *pool) begin(ctx context.Context) (*poolTx, error) {
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &poolTx{Tx: tx, p: p}, nil
}

// GetDBConn returns the *sql.DB (gorm.DB.DB).
func (p *pool) GetDBConn() (*sql.DB, error) { return p.db, nil }

// Close closes the prepared statements.
func (p *pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for q, s := range p.stmts {
		s.Close()
		delete(p.stmts, q)
	}
}

// poolTx is a transaction of a pool. A statement the pool has prepared runs as that statement
// on the transaction's connection (database/sql prepares it there once); another one runs
// unprepared, and the pool prepares it after the transaction.
type poolTx struct {
	*sql.Tx
	p      *pool
	missed []string
}

func (t *poolTx) stmt(ctx context.Context, query string) *sql.Stmt {
	if !t.p.cache {
		return nil
	}
	if s := t.p.cached(query); s != nil {
		return t.Tx.StmtContext(ctx, s)
	}
	if len(t.missed) < 16 {
		t.missed = append(t.missed, query)
	}
	return nil
}

func (t *poolTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	t.p.statements.Add(1)
	if s := t.stmt(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}

func (t *poolTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	t.p.statements.Add(1)
	if s := t.stmt(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

func (t *poolTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	t.p.statements.Add(1)
	if s := t.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}

func (t *poolTx) Commit() error {
	err := t.Tx.Commit()
	t.end()
	return err
}

func (t *poolTx) Rollback() error {
	err := t.Tx.Rollback()
	t.end()
	return err
}

// end prepares, now that the transaction's connection is back in the pool, the statements it
// ran unprepared.
func (t *poolTx) end() {
	if len(t.missed) > 0 {
		missed := t.missed
		t.missed = nil
		t.p.prepareAll(missed)
	}
}

// GetDBConn returns the *sql.DB (gorm.DB.DB).
func (t *poolTx) GetDBConn() (*sql.DB, error) { return t.p.db, nil }
