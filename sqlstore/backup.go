package sqlstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/id4me/id4me-registry/migrations"
)

// ErrBackupUnsupported is BackupTo's answer on PostgreSQL, whose own tools (pg_dump,
// continuous archiving) make backups.
var ErrBackupUnsupported = errors.New("sqlstore: backups of a PostgreSQL database are made with pg_dump or continuous archiving (README, PostgreSQL)")

// BackupTo writes a consistent copy of a SQLite database to the new file path, with
// VACUUM INTO: it reads one snapshot of the database while other connections, of this
// process or another, go on writing (WAL), and writes a compact database file that
// can be served as it is. path must not exist.
func (s *Store) BackupTo(ctx context.Context, path string) error {
	if s.d.name != migrations.SQLite {
		return ErrBackupUnsupported
	}
	if _, err := s.sqlDB.ExecContext(ctx, "VACUUM INTO ?", path); err != nil {
		return fmt.Errorf("sqlstore: backup to %s: %w", path, dbError(err))
	}
	return nil
}
