package main

import (
	"context"
	"fmt"

	"github.com/id4me/id4me-registry/sqlstore"
)

// openStore opens the database at dsn, applying pending migrations when migrate is set.
func openStore(ctx context.Context, dsn string, migrate bool, opts ...sqlstore.Option) (*sqlstore.Store, error) {
	if !migrate {
		opts = append(opts, sqlstore.WithoutMigrations())
	}
	s, err := sqlstore.Open(ctx, dsn, opts...)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", redactDSN(dsn), err)
	}
	return s, nil
}

// migrateStore brings the database's schema up to date and returns its version before and after.
func migrateStore(ctx context.Context, dsn string) (before, after int64, err error) {
	s, err := openStore(ctx, dsn, false)
	if err != nil {
		return 0, 0, err
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
