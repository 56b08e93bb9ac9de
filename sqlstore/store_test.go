package sqlstore_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/id4me/id4me-registry/internal/testdb"
	"github.com/id4me/id4me-registry/migrations"
	"github.com/id4me/id4me-registry/registry"
	"github.com/id4me/id4me-registry/registry/storetest"
	"github.com/id4me/id4me-registry/sqlstore"
)

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) registry.Store {
		return open(t, testdb.SQLite(t))
	})
}

func TestSQLiteMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) registry.Store { return open(t, ":memory:") })
}

func TestPostgres(t *testing.T) {
	if os.Getenv(testdb.PostgresEnv) == "" {
		t.Skip(testdb.PostgresEnv + " not set")
	}
	storetest.Run(t, func(t *testing.T) registry.Store { return open(t, testdb.Postgres(t)) }, storetest.ConcurrentWriters())
}

func open(t testing.TB, dsn string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestOpenMigrates(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "r.db") }},
		{"sqlite file URI", func(t *testing.T) string { return "file:" + filepath.Join(t.TempDir(), "r.db") + "?mode=rwc" }},
		{"postgres", func(t *testing.T) string { return testdb.Postgres(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := tc.dsn(t)
			bare := open(t, dsn+"") // migrated at open
			d := bare.Dialect()
			latest, err := migrations.Latest(d)
			if err != nil {
				t.Fatal(err)
			}
			if v, err := bare.SchemaVersion(ctx); err != nil || v != latest {
				t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, latest)
			}
			// Opening again, and migrating again, change nothing.
			again := open(t, dsn)
			if err := again.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if v, err := again.SchemaVersion(ctx); err != nil || v != latest {
				t.Fatalf("SchemaVersion after a second migration = %d, %v; want %d", v, err, latest)
			}
		})
	}
}

func TestOpenWithoutMigrations(t *testing.T) {
	ctx := context.Background()
	s, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "r.db"), sqlstore.WithoutMigrations())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.SchemaVersion(ctx); err != nil || v != 0 {
		t.Fatalf("SchemaVersion = %d, %v; want 0", v, err)
	}
	if _, err := s.GetAgent(ctx, "a1"); registry.KindOf(err) != registry.KindInternal {
		t.Fatalf("GetAgent on an empty schema = %v, want an internal error", err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAgent(ctx, "a1"); registry.KindOf(err) != registry.KindNotFound {
		t.Fatalf("GetAgent after Migrate = %v, want not found", err)
	}
}

// TestTxRetry: a transaction that loses to a concurrent one (PostgreSQL serialization failure
// or deadlock) runs again; one that keeps losing ends in KindAborted.
func TestTxRetry(t *testing.T) {
	ctx := context.Background()
	s := open(t, testdb.Postgres(t))
	const failSerialization = `DO $$ BEGIN RAISE EXCEPTION 'lost' USING ERRCODE = '40001'; END $$`

	calls := 0
	err := s.Tx(ctx, func(tx registry.Tx) error {
		calls++
		if calls == 1 {
			return sqlstore.ExecInTx(ctx, tx, failSerialization)
		}
		return tx.CreateIdentity(ctx, registry.Identity{ID: "id1", SubjectSeed: "s1", CreateTime: time.Now()})
	})
	if err != nil || calls != 2 {
		t.Fatalf("Tx = %v after %d calls; want success on the second", err, calls)
	}
	if _, err := s.GetIdentity(ctx, "id1"); err != nil {
		t.Fatal(err)
	}

	calls = 0
	err = s.Tx(ctx, func(tx registry.Tx) error {
		calls++
		return sqlstore.ExecInTx(ctx, tx, failSerialization)
	})
	if registry.KindOf(err) != registry.KindAborted || calls < 2 {
		t.Fatalf("Tx = %v after %d calls; want KindAborted after retries", err, calls)
	}
}

// TestSQLiteSettings: the connection settings Open promises hold on every connection.
func TestSQLiteSettings(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "r.db"))
	db := sqlstore.DB(s).WithContext(ctx)
	for pragma, want := range map[string]string{
		"journal_mode": "wal",
		"foreign_keys": "1",
		"synchronous":  "1", // NORMAL
		"busy_timeout": "10000",
	} {
		var got string
		if err := db.Raw("PRAGMA " + pragma).Scan(&got).Error; err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
	// Foreign keys are enforced.
	err := s.Tx(ctx, func(tx registry.Tx) error {
		return tx.CreateChallenge(ctx, registry.Challenge{ID: "c1", AgentID: "nobody", CreateTime: time.Now(), ExpireTime: time.Now()})
	})
	if registry.KindOf(err) != registry.KindFailedPrecondition {
		t.Fatalf("challenge of a missing agent: %v, want KindFailedPrecondition", err)
	}
}

// TestSQLiteDSNSettings: pragmas the DSN sets, as _pragma values or the driver's shorthand
// keys, take precedence over the store's.
func TestSQLiteDSNSettings(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		query string
		want  map[string]string
	}{
		{"?_pragma=busy_timeout(50)&_pragma=synchronous(FULL)", map[string]string{"busy_timeout": "50", "synchronous": "2", "journal_mode": "wal", "foreign_keys": "1"}},
		{"?_pragma=busy_timeout%20%3D%2060&_pragma=journal_mode(DELETE)", map[string]string{"busy_timeout": "60", "synchronous": "1", "journal_mode": "delete"}},
		{"?_busy_timeout=70&_fk=0", map[string]string{"busy_timeout": "70", "foreign_keys": "0", "journal_mode": "wal"}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			s := open(t, filepath.Join(t.TempDir(), "r.db")+tc.query)
			// Every connection: hold four at once.
			var conns []*sql.Conn
			sqlDB, err := sqlstore.DB(s).DB()
			if err != nil {
				t.Fatal(err)
			}
			for range 4 {
				c, err := sqlDB.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
			}
			for i, c := range conns {
				for pragma, want := range tc.want {
					var got string
					if err := c.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
						t.Fatal(err)
					}
					if got != want {
						t.Errorf("connection %d: PRAGMA %s = %s, want %s", i, pragma, got, want)
					}
				}
			}
			for _, c := range conns {
				c.Close()
			}
		})
	}
}
