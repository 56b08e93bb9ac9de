// Package sqlstore keeps the registry's state in SQL: in an embedded SQLite file
// (modernc.org/sqlite: pure Go, no cgo) by default, or in PostgreSQL (pgx) for production.
//
// The frequent statements (reading an agent, credential, challenge or identifier; the inserts
// of a registration; journal entries and events) and the claims of background work are fixed
// SQL texts run through database/sql (statements.go); listings and rare writes go through gorm. On SQLite every statement is
// prepared once and kept (pool.go); on PostgreSQL pgx keeps them per connection.
//
// Times are stored in UTC truncated to the microsecond, the precision PostgreSQL keeps, on
// both dialects: a time read back equals the time written truncated to the microsecond, in
// UTC. Callers that compare or hash times they hold with times read back (etags) should
// truncate them before writing. The zero time is stored as NULL and read back as the zero
// time.
package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/id4me/id4me-registry/migrations"
	"github.com/id4me/id4me-registry/registry"
)

// sqliteDriver is the database/sql name of modernc.org/sqlite.
const sqliteDriver = "sqlite"

// Store is a registry.Store on SQLite or PostgreSQL.
type Store struct {
	reader
	dialect migrations.Dialect
	sqlDB   *sql.DB
	pool    *pool
	// writeSlot, on SQLite, lets one write transaction of this process run at a time. SQLite
	// allows one writer anyway; waiting here is cheaper and fairer than waiting in SQLite's
	// busy handler, which sleeps and polls.
	writeSlot chan struct{}
}

var _ registry.Store = (*Store)(nil)

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

	var (
		s         = &Store{}
		dialector gorm.Dialector
		err       error
	)
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		s.dialect = migrations.Postgres
		pgcfg, perr := pgx.ParseConfig(dsn)
		if perr != nil {
			return nil, fmt.Errorf("sqlstore: PostgreSQL DSN: %w", perr)
		}
		if pgcfg.ConnectTimeout == 0 {
			pgcfg.ConnectTimeout = defaultConnectTimeout
		}
		s.sqlDB = sql.OpenDB(watchedConnector{stdlib.GetConnector(*pgcfg), &reachability{log: cfg.logger}})
		n := cmpOr(cfg.maxOpenConns, 4*runtime.GOMAXPROCS(0))
		s.sqlDB.SetMaxOpenConns(n)
		s.sqlDB.SetMaxIdleConns(n)
		s.sqlDB.SetConnMaxIdleTime(5 * time.Minute)
		s.sqlDB.SetConnMaxLifetime(time.Hour)
		s.pool = newPool(s.sqlDB, false)
		dialector = postgres.New(postgres.Config{Conn: s.pool})
	} else {
		s.dialect = migrations.SQLite
		sdsn, serr := sqliteDSN(dsn)
		if serr != nil {
			return nil, serr
		}
		if s.sqlDB, err = sql.Open(sqliteDriver, sdsn); err != nil {
			return nil, fmt.Errorf("sqlstore: %w", err)
		}
		n := cmpOr(cfg.maxOpenConns, max(4, runtime.GOMAXPROCS(0)))
		s.sqlDB.SetMaxOpenConns(n)
		// Idle connections are kept for ever: an in-memory database vanishes with its last
		// connection.
		s.sqlDB.SetMaxIdleConns(n)
		s.writeSlot = make(chan struct{}, 1)
		s.pool = newPool(s.sqlDB, true)
		dialector = sqliteDialect{conn: s.pool}
	}

	if err := s.sqlDB.PingContext(ctx); err != nil {
		s.sqlDB.Close()
		return nil, fmt.Errorf("sqlstore: connecting to the database: %w", err)
	}
	if cfg.migrate {
		if err := migrations.Up(ctx, s.sqlDB, s.dialect); err != nil {
			s.sqlDB.Close()
			return nil, fmt.Errorf("sqlstore: %w", err)
		}
	}
	db, err := gorm.Open(dialector, &gorm.Config{
		// Every write either is one statement or runs inside Store.Tx.
		SkipDefaultTransaction: true,
		// The pool prepares statements (pool.go).
		PrepareStmt:          false,
		Logger:               logger.Discard,
		DisableAutomaticPing: true,
	})
	if err != nil {
		s.sqlDB.Close()
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	s.reader = reader{db: db, c: s.pool, postgres: s.dialect == migrations.Postgres}
	return s, nil
}

// Statements returns how many SQL statements the store has run (reads, writes, and those of
// transactions; not BEGIN and COMMIT), for benchmarks and operators counting the cost of work.
func (s *Store) Statements() int64 { return s.pool.statements.Load() }

// Dialect returns the store's database dialect.
func (s *Store) Dialect() migrations.Dialect { return s.dialect }

// DB returns the store's gorm handle, for benchmarks and operator tooling.
func (s *Store) DB() *gorm.DB { return s.db }

// Ping checks that the database answers, for readiness probes.
func (s *Store) Ping(ctx context.Context) error {
	return dbError(s.sqlDB.PingContext(ctx))
}

// Migrate applies pending migrations, as Open does unless told WithoutMigrations.
func (s *Store) Migrate(ctx context.Context) error {
	return migrations.Up(ctx, s.sqlDB, s.dialect)
}

// SchemaVersion returns the version of the newest migration applied to the database.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	return migrations.Version(ctx, s.sqlDB, s.dialect)
}

// Close releases the store's connections.
func (s *Store) Close() error {
	s.pool.Close()
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

// runTx runs fn in one database transaction: committed if fn returns nil, rolled back
// otherwise, and if fn panics.
func (s *Store) runTx(ctx context.Context, fn func(t *tx) error) error {
	ptx, err := s.pool.begin(ctx)
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			ptx.Rollback()
		}
	}()
	// The gorm handle of the transaction, for the statements that go through gorm, as
	// gorm.DB.Begin makes it.
	gtx := s.db.Session(&gorm.Session{Context: ctx, NewDB: true})
	gtx.Statement.ConnPool = ptx
	if err := fn(&tx{reader{db: gtx, c: ptx, postgres: s.postgres}}); err != nil {
		return err
	}
	done = true
	return ptx.Commit()
}

// sqliteDSN adds the store's connection settings to a SQLite path or file: URI.
func sqliteDSN(dsn string) (string, error) {
	path, rawQuery, _ := strings.Cut(dsn, "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", fmt.Errorf("sqlstore: SQLite DSN: %w", err)
	}
	memory := false
	if path == ":memory:" || path == "file::memory:" {
		// Every connection of the pool must see the same database: SQLite's memdb VFS shares
		// one among the connections that name it.
		var b [8]byte
		rand.Read(b[:])
		path = "file:/id4me-registry-" + hex.EncodeToString(b[:])
		q.Set("vfs", "memdb")
		memory = true
	}
	// The driver runs the _pragma values in an order of its own (busy_timeout first, then
	// sorted), not in the DSN's, so a setting the DSN makes, as a _pragma or as one of the
	// driver's shorthand keys, replaces the store's rather than following it.
	set := make(map[string]bool)
	for _, p := range q["_pragma"] {
		set[pragmaName(p)] = true
	}
	for key, name := range sqliteShorthands {
		if q.Has(key) {
			set[name] = true
		}
	}
	defaults := [][2]string{
		{"busy_timeout", "busy_timeout(10000)"},
		{"foreign_keys", "foreign_keys(1)"},
		{"synchronous", "synchronous(NORMAL)"},
	}
	if !memory {
		defaults = append(defaults, [2]string{"journal_mode", "journal_mode(WAL)"})
	}
	for _, d := range defaults {
		if !set[d[0]] {
			q.Add("_pragma", d[1])
		}
	}
	if q.Get("_txlock") == "" {
		// Write transactions take the write lock when they begin, so two of them wait for
		// each other (busy_timeout) instead of failing with SQLITE_BUSY on their first write.
		q.Set("_txlock", "immediate")
	}
	return path + "?" + q.Encode(), nil
}

// sqliteShorthands maps modernc.org/sqlite's DSN keys that set a pragma to the pragma.
var sqliteShorthands = map[string]string{
	"_busy_timeout": "busy_timeout", "_timeout": "busy_timeout",
	"_foreign_keys": "foreign_keys", "_fk": "foreign_keys",
	"_journal_mode": "journal_mode", "_journal": "journal_mode",
	"_synchronous": "synchronous", "_sync": "synchronous",
}

// pragmaName returns the name of the pragma a _pragma value sets: "busy_timeout" for
// "busy_timeout(5000)" or "busy_timeout = 5000".
func pragmaName(p string) string {
	if i := strings.IndexAny(p, "(="); i >= 0 {
		p = p[:i]
	}
	return strings.ToLower(strings.TrimSpace(p))
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}
