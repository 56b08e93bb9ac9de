package migrations_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/id4me/id4me-registry/internal/testdb"
	"github.com/id4me/id4me-registry/migrations"
)

func TestSQLite(t *testing.T) {
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "m.db")+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	testUp(t, db, migrations.SQLite)
}

func TestPostgres(t *testing.T) {
	db, err := sql.Open("pgx", testdb.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	testUp(t, db, migrations.Postgres)
}

func testUp(t *testing.T, db *sql.DB, d migrations.Dialect) {
	t.Helper()
	ctx := context.Background()
	latest, err := migrations.Latest(d)
	if err != nil || latest < 1 {
		t.Fatalf("Latest = %d, %v; want ≥ 1", latest, err)
	}
	if v, err := migrations.Version(ctx, db, d); err != nil || v != 0 {
		t.Fatalf("Version of an empty database = %d, %v; want 0", v, err)
	}
	st, err := migrations.Status(ctx, db, d)
	if err != nil || len(st) == 0 || st[0].Applied {
		t.Fatalf("Status before Up = %+v, %v; want pending migrations", st, err)
	}

	for i := range 2 { // the second Up has nothing to do
		if err := migrations.Up(ctx, db, d); err != nil {
			t.Fatalf("Up #%d: %v", i+1, err)
		}
		if v, err := migrations.Version(ctx, db, d); err != nil || v != latest {
			t.Fatalf("Version after Up #%d = %d, %v; want %d", i+1, v, err, latest)
		}
	}
	st, err = migrations.Status(ctx, db, d)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if !s.Applied || s.AppliedAt.IsZero() || s.Name == "" {
			t.Errorf("after Up: %+v, want applied", s)
		}
	}
	if got := st[len(st)-1].Version; got != latest {
		t.Errorf("newest status version = %d, want %d", got, latest)
	}
	// The schema is there: every table answers.
	for _, table := range []string{"agents", "agent_client_certs", "credentials", "challenges", "identities", "identifiers", "journal", "transfers", "event_counters", "events", "request_outcomes",
		"authority_signing_keys", "authority_clients", "authority_holder_credentials", "authority_credential_links",
		"authority_auth_requests", "authority_sessions", "authority_consents", "authority_grants", "authority_access_tokens",
		"authority_initial_access_tokens"} {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Errorf("table %s: %v", table, err)
		}
	}
}
