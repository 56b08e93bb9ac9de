package migrations

import (
	"context"
	"database/sql"
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
