package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/id4me/id4me-registry/sqlstore"
)

// openStore opens the database at dsn, applying pending migrations when migrate is set. A
// SQLite file must exist already unless migrate is set: the commands that only read or change
// a database never create one.
func openStore(ctx context.Context, dsn string, migrate bool, opts ...sqlstore.Option) (*sqlstore.Store, error) {
	if err := checkDSN(dsn, migrate); err != nil {
		return nil, err
	}
	if !migrate {
		opts = append(opts, sqlstore.WithoutMigrations())
	}
	s, err := sqlstore.Open(ctx, dsn, opts...)
	if err != nil {
		return nil, openError(dsn, err)
	}
	return s, nil
}

// migrateStore brings the database's schema up to date and returns its version before and after.
func migrateStore(ctx context.Context, dsn string) (before, after int64, err error) {
	if err := checkDSN(dsn, true); err != nil {
		return 0, 0, err
	}
	s, err := sqlstore.Open(ctx, dsn, sqlstore.WithoutMigrations())
	if err != nil {
		return 0, 0, openError(dsn, err)
	}
	defer s.Close()
	if before, err = s.SchemaVersion(ctx); err != nil {
		return 0, 0, err
	}
	if err := s.Migrate(ctx); err != nil {
		return 0, 0, err
	}
	after, err = s.SchemaVersion(ctx)
	return before, after, err
}

func openError(dsn string, err error) error {
	err = fmt.Errorf("open database %s: %w", redactDSN(dsn), err)
	if strings.Contains(err.Error(), "unable to open database file") {
		err = fmt.Errorf("%w (check that the file's directory exists and this user may write to it)", err)
	}
	return err
}

// checkDSN refuses a --db that names no database this program can open, saying why: a URL of
// another scheme than postgres://, a directory, a directory that does not exist or cannot be
// written to, or (unless create) a SQLite file that does not exist.
func checkDSN(dsn string, create bool) error {
	if scheme, _, ok := strings.Cut(dsn, "://"); ok && !strings.HasPrefix(dsn, "file:") {
		if scheme == "postgres" || scheme == "postgresql" {
			return nil
		}
		return fmt.Errorf("--db %s: unknown database scheme %q: give a SQLite file's path or a postgres:// URL", redactDSN(dsn), scheme+"://")
	}
	path, query, _ := strings.Cut(strings.TrimPrefix(dsn, "file:"), "?")
	if path == "" || path == ":memory:" || strings.Contains(query, "mode=memory") || strings.Contains(query, "vfs=memdb") {
		return nil
	}
	st, err := os.Stat(path)
	switch {
	case err == nil && st.IsDir():
		return fmt.Errorf("--db %s is a directory: give the database file's path, such as %s", path, filepath.Join(path, "id4me-registry.db"))
	case err == nil:
		if create {
			return checkWritableDir(path)
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("--db: %w", err)
	case !create:
		return fmt.Errorf("--db %s: no such database file; serve and migrate create one, this command does not", path)
	}
	return checkWritableDir(path)
}

// checkWritableDir checks that SQLite can make the database file and its journal files
// beside path.
func checkWritableDir(path string) error {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("--db %s: the directory %s does not exist; create it first (mkdir -p %s)", path, dir, dir)
	case err != nil:
		return fmt.Errorf("--db %s: %w", path, err)
	case !st.IsDir():
		return fmt.Errorf("--db %s: %s is not a directory", path, dir)
	}
	probe, err := os.CreateTemp(dir, ".id4me-registry-write-check-*")
	if err != nil {
		return fmt.Errorf("--db %s: cannot write to the directory %s (SQLite keeps its journal files beside the database): %w", path, dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	return nil
}
