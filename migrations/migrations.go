// Package migrations holds the registry's database schema as versioned SQL migrations, one set
// per dialect, embedded in the binary and applied with goose: at store open and by the CLI's
// migrate command.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"hash/crc32"
	"io/fs"
	"path"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Dialect names a database engine with its own set of migrations.
type Dialect string

// The supported dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// MigrationStatus says whether one migration has been applied.
type MigrationStatus struct {
	Version int64
	// Name is the migration's file name, e.g. 00001_init.sql.
	Name    string
	Applied bool
	// AppliedAt is when it was applied; zero while pending.
	AppliedAt time.Time
}

// Up applies every pending migration of dialect to db. Applying when none is pending does
// nothing. On PostgreSQL a session advisory lock, scoped to the current schema, keeps
// instances starting together from migrating at the same time.
func Up(ctx context.Context, db *sql.DB, dialect Dialect) error {
	p, err := provider(ctx, db, dialect)
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrations: up: %w", err)
	}
	return nil
}

// Version returns the version of the newest migration applied to db, 0 for an empty database.
func Version(ctx context.Context, db *sql.DB, dialect Dialect) (int64, error) {
	p, err := provider(ctx, db, dialect)
	if err != nil {
		return 0, err
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrations: version: %w", err)
	}
	return v, nil
}

// Latest returns the version of the newest migration embedded for dialect: the version Up
// brings a database to.
func Latest(dialect Dialect) (int64, error) {
	fsys, err := dialectFS(dialect)
	if err != nil {
		return 0, err
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	var latest int64
	for _, e := range entries {
		v, err := goose.NumericComponent(e.Name())
		if err != nil {
			return 0, fmt.Errorf("migrations: %s: %w", e.Name(), err)
		}
		latest = max(latest, v)
	}
	return latest, nil
}

// Status lists every embedded migration of dialect, oldest first, and whether db has it.
func Status(ctx context.Context, db *sql.DB, dialect Dialect) ([]MigrationStatus, error) {
	p, err := provider(ctx, db, dialect)
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrations: status: %w", err)
	}
	out := make([]MigrationStatus, 0, len(st))
	for _, s := range st {
		out = append(out, MigrationStatus{
			Version:   s.Source.Version,
			Name:      path.Base(s.Source.Path),
			Applied:   s.State == goose.StateApplied,
			AppliedAt: s.AppliedAt,
		})
	}
	return out, nil
}

func dialectFS(dialect Dialect) (fs.FS, error) {
	switch dialect {
	case SQLite, Postgres:
		return fs.Sub(files, string(dialect))
	}
	return nil, fmt.Errorf("migrations: unknown dialect %q", dialect)
}

func provider(ctx context.Context, db *sql.DB, dialect Dialect) (*goose.Provider, error) {
	fsys, err := dialectFS(dialect)
	if err != nil {
		return nil, err
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	gd := goose.DialectSQLite3
	if dialect == Postgres {
		gd = goose.DialectPostgres
		// Instances sharing a database but not a schema (tests, tenants) need not wait for
		// one another, so the lock is per schema.
		var schema sql.NullString
		if err := db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
			return nil, fmt.Errorf("migrations: current schema: %w", err)
		}
		id := int64(crc32.ChecksumIEEE([]byte("id4me-registry migrations " + schema.String)))
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(id), lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, fmt.Errorf("migrations: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(gd, db, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return p, nil
}
