package sqlstore

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/id4me/id4me-registry/migrations"
)

// dialect is what differs between the store's two database engines. Placeholders, row
// locks (clause.Locking, which gorm's SQLite dialect leaves out), upserts and RETURNING are
// gorm's business; what is left is how a connection is made, how a time is kept, whether
// the engine locks rows or the whole database, and whether the store keeps statements
// prepared. A database error names its engine by its type (pgconn.PgError, sqlite.Error),
// so errors.go tells them apart without a dialect.
type dialect struct {
	name migrations.Dialect
	// oneWriter: the engine runs one write transaction at a time, and locks the whole
	// database for it (SQLite). The store queues its writers in a slot of its own
	// (Store.write), and leaves out the statements that only take row locks (LOCK TABLE,
	// lockIdentity), which the write lock makes needless. A PostgreSQL transaction locks
	// the rows it reads FOR UPDATE and the like, and waits for them.
	oneWriter bool
	// prepare: gorm keeps the store's statements prepared (gorm.Config.PrepareStmt).
	// modernc.org/sqlite compiles a statement each time it is run unless it is prepared;
	// pgx keeps prepared statements per connection itself, so on PostgreSQL gorm passes
	// statements through.
	prepare bool
	// open makes the connection pool of a DSN and gorm's dialector on it.
	open func(dsn string, cfg config) (*sql.DB, gorm.Dialector, error)
}

var (
	sqliteDialect   = dialect{name: migrations.SQLite, oneWriter: true, prepare: true, open: openSQLite}
	postgresDialect = dialect{name: migrations.Postgres, open: openPostgres}
)

// dialectFor returns the dialect of dsn: PostgreSQL for a postgres:// or postgresql:// URL,
// SQLite for anything else.
func dialectFor(dsn string) dialect {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return postgresDialect
	}
	return sqliteDialect
}

// dialectOf returns the dialect of a gorm handle the store opened.
func dialectOf(db *gorm.DB) dialect {
	if db.Dialector.Name() == string(migrations.Postgres) {
		return postgresDialect
	}
	return sqliteDialect
}

// rowLocks reports whether the engine locks rows, so that the statements taking row locks
// alone must run.
func (d dialect) rowLocks() bool { return !d.oneWriter }

// timeValue encodes t as the dialect keeps it: Unix nanoseconds on SQLite (an INTEGER that
// orders and compares as a number), a timestamptz on PostgreSQL; NULL for the zero time.
// t is normalised first (norm).
func (d dialect) timeValue(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	t = norm(t)
	if d.name == migrations.Postgres {
		return t
	}
	return t.UnixNano()
}

// openPostgres opens a PostgreSQL database through pgx, reporting to cfg.logger when it
// becomes unreachable and reachable again.
func openPostgres(dsn string, cfg config) (*sql.DB, gorm.Dialector, error) {
	pgcfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlstore: PostgreSQL DSN: %w", err)
	}
	if pgcfg.ConnectTimeout == 0 {
		pgcfg.ConnectTimeout = defaultConnectTimeout
	}
	db := sql.OpenDB(watchedConnector{stdlib.GetConnector(*pgcfg), &reachability{log: cfg.logger}})
	n := cmpOr(cfg.maxOpenConns, 4*runtime.GOMAXPROCS(0))
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(time.Hour)
	return db, postgres.New(postgres.Config{Conn: db}), nil
}

// openSQLite opens a SQLite database through modernc.org/sqlite, with the store's settings
// (sqliteDSN).
func openSQLite(dsn string, cfg config) (*sql.DB, gorm.Dialector, error) {
	sdsn, err := sqliteDSN(dsn)
	if err != nil {
		return nil, nil, err
	}
	db, err := sql.Open(sqliteDriver, sdsn)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlstore: %w", err)
	}
	n := cmpOr(cfg.maxOpenConns, max(4, runtime.GOMAXPROCS(0)))
	db.SetMaxOpenConns(n)
	// Idle connections are kept for ever: an in-memory database vanishes with its last
	// connection.
	db.SetMaxIdleConns(n)
	// gorm's own SQLite dialect, on modernc.org/sqlite (pure Go) rather than the cgo driver
	// it names by default, github.com/mattn/go-sqlite3, which it imports all the same.
	// Built without cgo (CGO_ENABLED=0) that driver is a stub that fails only when opened,
	// which the store never does; built with cgo it compiles SQLite's C source, once per
	// build cache, and links it in unused (about 3 MB).
	return db, sqlite.New(sqlite.Config{DriverName: sqliteDriver, Conn: &sqlitePool{DB: db}}), nil
}

// sqliteDriver is the database/sql name of modernc.org/sqlite.
const sqliteDriver = "sqlite"

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
