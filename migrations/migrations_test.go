package migrations_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestDNSNameBackfill: migration 00005 gives every identifier registered before it its name
// as DNS name, and keeps DNS names unique.
func TestDNSNameBackfill(t *testing.T) {
	for _, tc := range []struct {
		dialect migrations.Dialect
		open    func(t *testing.T) *sql.DB
		now     any
	}{
		{migrations.SQLite, func(t *testing.T) *sql.DB {
			db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "m.db")+"?_pragma=foreign_keys(1)")
			if err != nil {
				t.Fatal(err)
			}
			return db
		}, time.Now().UnixNano()},
		{migrations.Postgres, func(t *testing.T) *sql.DB {
			db, err := sql.Open("pgx", testdb.Postgres(t))
			if err != nil {
				t.Fatal(err)
			}
			return db
		}, time.Now()},
	} {
		t.Run(string(tc.dialect), func(t *testing.T) {
			ctx := context.Background()
			db := tc.open(t)
			t.Cleanup(func() { db.Close() })
			if err := migrations.UpTo(ctx, db, tc.dialect, 3); err != nil {
				t.Fatal(err)
			}
			q := func(s string) string {
				if tc.dialect == migrations.Postgres {
					for n := 1; strings.Contains(s, "?"); n++ {
						s = strings.Replace(s, "?", fmt.Sprintf("$%d", n), 1)
					}
				}
				return s
			}
			for _, stmt := range []struct {
				sql  string
				args []any
			}{
				{`INSERT INTO agents (id, display_name, claims_endpoint, issuer, account_key_jwk, account_key_thumbprint, state,
					client_cert_spki, create_time, update_time, version) VALUES ('a1', 'A', '', '', '', '', 'active', '', ?, ?, 1)`, []any{tc.now, tc.now}},
				{`INSERT INTO identities (id, subject_seed, create_time) VALUES ('id1', 's1', ?), ('id2', 's2', ?)`, []any{tc.now, tc.now}},
				{`INSERT INTO identifiers (name, unicode_name, agent_id, identity_id, claims_endpoint, statuses, create_time, update_time, version,
					openid_next_check) VALUES ('alice.example', 'alice.example', 'a1', 'id1', '', '', ?, ?, 1, ?)`, []any{tc.now, tc.now, tc.now}},
			} {
				if _, err := db.ExecContext(ctx, q(stmt.sql), stmt.args...); err != nil {
					t.Fatalf("%s: %v", stmt.sql, err)
				}
			}
			if err := migrations.Up(ctx, db, tc.dialect); err != nil {
				t.Fatal(err)
			}
			var dnsName string
			if err := db.QueryRowContext(ctx, "SELECT dns_name FROM identifiers WHERE name = 'alice.example'").Scan(&dnsName); err != nil || dnsName != "alice.example" {
				t.Fatalf("dns_name = %q, %v; want the name", dnsName, err)
			}
			_, err := db.ExecContext(ctx, q(`INSERT INTO identifiers (name, unicode_name, agent_id, identity_id, claims_endpoint, statuses,
				create_time, update_time, version, openid_next_check, dns_name) VALUES ('bob@example', 'bob@example', 'a1', 'id2', '', '', ?, ?, 1, ?, 'alice.example')`),
				tc.now, tc.now, tc.now)
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), "unique") {
				t.Fatalf("a second identifier with the DNS name alice.example: %v, want a unique violation", err)
			}
		})
	}
}
