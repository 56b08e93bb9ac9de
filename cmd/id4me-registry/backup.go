package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// backupNotes end backup's help.
const backupNotes = `The copy is consistent while the registry keeps serving from the database (SQLite's
VACUUM INTO: one snapshot, other writers go on). It is a database file to serve from as it
is: stop the registry, put the copy in the database's place (or point --db at it), start the
registry. PostgreSQL is backed up with its own tools (pg_dump, continuous archiving): see the
README's PostgreSQL section.
`

// backup runs "backup": an online copy of a SQLite store.
func backup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags(ctx, stdout)
	fs.Notes = backupNotes
	db := fs.String("db", "id4me-registry.db", "database to back up: a SQLite file path")
	to := fs.String("to", "", "file to write the copy to; it must not exist")
	if _, err := fs.Parse(args); err != nil {
		return err
	}
	if *to == "" {
		return fs.SeeHelp(errors.New("--to FILE is required"))
	}
	if isPostgresDSN(*db) {
		return errors.New("backup: --db is a PostgreSQL database; back it up with pg_dump or continuous archiving (README, PostgreSQL)")
	}
	if path := sqlitePath(*db); path != "" {
		// Opening a file that is not there would create an empty database, and back that up.
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("backup: no database at %s: %w", path, err)
		}
	}
	if _, err := os.Lstat(*to); err == nil {
		return fmt.Errorf("backup: %s exists already; give a new file", *to)
	}
	if st, err := os.Stat(filepath.Dir(*to)); err != nil || !st.IsDir() {
		return fmt.Errorf("backup: the directory of %s does not exist; create it first", *to)
	}
	// The copy is written beside the target, made durable, then renamed: a backup cut short
	// leaves no file at the target that looks whole.
	partial := *to + ".partial"
	os.Remove(partial)
	store, err := openStore(ctx, *db, false)
	if err != nil {
		return err
	}
	defer store.Close()
	version, err := store.SchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("backup: reading the schema version of %s: %w", redactDSN(*db), err)
	}
	if err := store.BackupTo(ctx, partial); err != nil {
		os.Remove(partial)
		return fmt.Errorf("backup: %w", err)
	}
	size, err := syncFile(partial)
	if err == nil {
		err = os.Rename(partial, *to)
	}
	if err == nil {
		err = syncDir(filepath.Dir(*to))
	}
	if err != nil {
		os.Remove(partial)
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(stdout, "backed up %s (schema version %d) to %s, %d bytes\n", redactDSN(*db), version, *to, size)
	return nil
}

// isPostgresDSN reports whether dsn names a PostgreSQL database, as sqlstore.Open reads it.
func isPostgresDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// sqlitePath is the file a plain SQLite path DSN names ("" for a file: URI or :memory:).
func sqlitePath(dsn string) string {
	if strings.HasPrefix(dsn, "file:") || strings.HasPrefix(dsn, ":memory:") {
		return ""
	}
	path, _, _ := strings.Cut(dsn, "?")
	return path
}

// syncFile flushes path to stable storage and returns its size.
func syncFile(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), f.Close()
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
