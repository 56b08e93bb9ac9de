// Package sqlstore keeps the registry's state in SQL: in an embedded SQLite file
// (modernc.org/sqlite: pure Go, no cgo) by default, or in PostgreSQL (pgx) for production.
//
// Every statement goes through gorm: models with gorm tags (rows.go, authority_rows.go),
// gorm's query builder, clause.Locking and clause.OnConflict for row locks and upserts,
// gorm's transactions, and gorm's SQLite and PostgreSQL dialects. A few statements are
// written out: those gorm cannot build (a UNION, an INSERT … SELECT, a LOCK TABLE), run
// through gorm's Raw and Exec, and those of the hot paths, where skipping gorm's builder and
// its reflection over the model was measured to pay, run on gorm's connection pool
// (handsql.go). On SQLite gorm keeps
// every statement prepared (PrepareStmt; prepare.go makes that hold for statements first
// met inside a transaction); on PostgreSQL pgx keeps them per connection. The dialect value
// (dialect.go) holds what differs between the engines.
//
// Times are stored in UTC truncated to the microsecond, the precision PostgreSQL keeps, on
// both dialects: a time read back equals the time written truncated to the microsecond, in
// UTC. Callers that compare or hash times they hold with times read back (etags) should
// truncate them before writing. The zero time is stored as NULL and read back as the zero
// time.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/id4me/id4me-registry/internal/storedb"
	"github.com/id4me/id4me-registry/migrations"
	"github.com/id4me/id4me-registry/registry"
)

// Store is a registry.Store on SQLite or PostgreSQL.
type Store struct {
	reader
	sqlDB *sql.DB
	// writeSlot, on SQLite, lets one write transaction of this process run at a time. SQLite
	// allows one writer anyway; waiting here is cheaper and fairer than waiting in SQLite's
	// busy handler, which sleeps and polls.
	writeSlot chan struct{}
	// statements counts the statements the store has run.
	statements statementCount
}

var _ registry.Store = (*Store)(nil)

func init() {
	storedb.Register(func(store any) *gorm.DB { return store.(*Store).db })
}

// Option configures Open.
type Option func(*config)

type config struct {
	migrate      bool
	maxOpenConns int
	logger       *slog.Logger
}

// WithoutMigrations makes Open leave the schema alone, for the CLI's migrate command, which
// applies migrations itself (Migrate) and reports their state (SchemaVersion).
func WithoutMigrations() Option { return func(c *config) { c.migrate = false } }

// WithMaxOpenConns limits the connections Open keeps to the database; by default
// max(4, GOMAXPROCS) on SQLite and 4 × GOMAXPROCS on PostgreSQL.
func WithMaxOpenConns(n int) Option { return func(c *config) { c.maxOpenConns = n } }

// WithLogger is where a PostgreSQL store logs that its database became unreachable, and
// reachable again: once each per outage. Default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// maxPreparedStmts bounds the statements gorm keeps prepared. Statements vary with list
// sizes (LIMIT n, IN (…)); the least recently used ones are closed.
const maxPreparedStmts = 512

// Open opens the store at dsn and brings its schema up to date.
//
// A dsn beginning with postgres:// or postgresql:// is a PostgreSQL URL (pgx syntax, e.g.
// with sslmode and search_path parameters); without a connect_timeout in the DSN a connection
// attempt gives up after 2 s. Anything else is SQLite: a file path or a file:
// URI, to which Open adds WAL journaling, synchronous=NORMAL, a busy timeout, foreign keys
// and immediate write transactions (pragmas given in the DSN take precedence). ":memory:"
// opens a database private to this Store that lives as long as it.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	cfg := config{migrate: true, logger: slog.Default()}
	for _, o := range opts {
		o(&cfg)
	}
	if dsn == "" {
		return nil, errors.New("sqlstore: empty DSN")
	}

	d := dialectFor(dsn)
	sqlDB, dialector, err := d.open(dsn, cfg)
	if err != nil {
		return nil, err
	}
	s := &Store{sqlDB: sqlDB}
	if d.oneWriter {
		s.writeSlot = make(chan struct{}, 1)
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("sqlstore: connecting to the database: %w", err)
	}
	if cfg.migrate {
		if err := migrations.Up(ctx, sqlDB, d.name); err != nil {
			sqlDB.Close()
			return nil, fmt.Errorf("sqlstore: %w", err)
		}
	}
	db, err := gorm.Open(dialector, &gorm.Config{
		// Every write either is one statement or runs inside Store.Tx.
		SkipDefaultTransaction: true,
		PrepareStmt:            d.prepare,
		PrepareStmtMaxSize:     maxPreparedStmts,
		Logger:                 logger.Discard,
		DisableAutomaticPing:   true,
	})
	if err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	if cache, ok := db.ConnPool.(*gorm.PreparedStmtDB); ok {
		if pool, ok := cache.ConnPool.(*sqlitePool); ok {
			pool.promote = func(queries []string) { promote(cache, sqlDB, queries) }
		}
	}
	if err := s.countStatements(db); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	s.reader = reader{db: db, d: d, statements: &s.statements}
	return s, nil
}

// countStatements makes db count in s.statements every statement it runs. A subquery gorm
// builds into another statement (a dry run) is not run, and not counted.
func (s *Store) countStatements(db *gorm.DB) error {
	count := func(db *gorm.DB) {
		if !db.DryRun {
			s.statements.n.Add(1)
		}
	}
	cb := db.Callback()
	for _, err := range []error{
		cb.Create().After("gorm:create").Register("sqlstore:count", count),
		cb.Query().After("gorm:query").Register("sqlstore:count", count),
		cb.Update().After("gorm:update").Register("sqlstore:count", count),
		cb.Delete().After("gorm:delete").Register("sqlstore:count", count),
		cb.Row().After("gorm:row").Register("sqlstore:count", count),
		cb.Raw().After("gorm:raw").Register("sqlstore:count", count),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// Statements returns how many SQL statements the store has run (reads, writes, and those of
// transactions; not BEGIN and COMMIT), for benchmarks and operators counting the cost of work.
func (s *Store) Statements() int64 { return s.statements.n.Load() }

// Dialect returns the store's database dialect.
func (s *Store) Dialect() migrations.Dialect { return s.d.name }

// Ping checks that the database answers, for readiness probes.
func (s *Store) Ping(ctx context.Context) error {
	return dbError(s.sqlDB.PingContext(ctx))
}

// Migrate applies pending migrations, as Open does unless told WithoutMigrations.
func (s *Store) Migrate(ctx context.Context) error {
	return migrations.Up(ctx, s.sqlDB, s.d.name)
}

// SchemaVersion returns the version of the newest migration applied to the database.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	return migrations.Version(ctx, s.sqlDB, s.d.name)
}

// Close releases the store's connections and prepared statements.
func (s *Store) Close() error {
	if p, ok := s.db.ConnPool.(*gorm.PreparedStmtDB); ok {
		p.Close()
	}
	return s.sqlDB.Close()
}

// maxAttempts bounds how often a write (Tx) is run when the database asks for a retry.
const maxAttempts = 5

// Tx runs fn in one transaction. A transaction that fails on a serialization failure or a
// deadlock (PostgreSQL) or a busy database (SQLite) is run again, a few times. Tx calls must
// not nest: on SQLite the inner one would wait for the outer one for ever.
func (s *Store) Tx(ctx context.Context, fn func(tx registry.Tx) error) error {
	err := s.write(ctx, func() error {
		return s.runTx(ctx, func(t *tx) error { return fn(t) })
	})
	// fn's own errors are returned as they are; only the database's are translated.
	return dbError(err)
}

// write runs attempt, one write to the database (a transaction, or a statement on its own),
// holding SQLite's write slot, and runs it again, a few times, while it fails on a
// serialization failure or a deadlock (PostgreSQL) or a busy database (SQLite). It returns
// attempt's last error, or the context's, untranslated. Writes must not nest: on SQLite the
// inner one would wait for the outer one for ever.
func (s *Store) write(ctx context.Context, attempt func() error) error {
	if s.writeSlot != nil {
		select {
		case s.writeSlot <- struct{}{}:
			defer func() { <-s.writeSlot }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var err error
	for n := range maxAttempts {
		if n > 0 {
			wait := time.Duration(n*n) * 5 * time.Millisecond
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		err = attempt()
		if err == nil || !retryable(err) {
			break
		}
	}
	return err
}

// runTx runs fn in one database transaction (gorm's Transaction): committed if fn returns
// nil, rolled back otherwise, and if fn panics.
func (s *Store) runTx(ctx context.Context, fn func(t *tx) error) error {
	return s.db.WithContext(ctx).Transaction(func(gtx *gorm.DB) error {
		return fn(&tx{reader{db: gtx, d: s.d, statements: &s.statements}})
	})
}
