package migrations

import (
	"context"
	"database/sql"
	"io/fs"
)

// UpTo applies the migrations of dialect up to version, for tests of what a migration does
// to rows written before it.
func UpTo(ctx context.Context, db *sql.DB, dialect Dialect, version int64) error {
	p, err := provider(ctx, db, dialect)
	if err != nil {
		return err
	}
	_, err = p.UpTo(ctx, version)
	return err
}

// Names returns the file names of the migrations of dialect, as embedded.
func Names(dialect Dialect) ([]string, error) {
	fsys, err := dialectFS(dialect)
	if err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}
