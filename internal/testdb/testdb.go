// Package testdb gives tests a database of their own: a SQLite file in the test's temporary
// directory, or a fresh PostgreSQL schema (dropped when the test ends) in the database named by
// ID4ME_TEST_POSTGRES_DSN.
package testdb

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	// The pgx database/sql driver, for creating and dropping schemas.
	_ "github.com/jackc/pgx/v5/stdlib"
)

// PostgresEnv names the environment variable holding the PostgreSQL test database's DSN.
const PostgresEnv = "ID4ME_TEST_POSTGRES_DSN"

// Backend is a database a test can run on.
type Backend struct {
	// Name is "sqlite" or "postgres".
	Name string
	// DSN returns a DSN for a database no other test uses; it skips t when the backend is
	// not configured.
	DSN func(t testing.TB) string
}

// Backends returns SQLite, and PostgreSQL (whose DSN skips the test when PostgresEnv is unset).
func Backends() []Backend {
	return []Backend{{"sqlite", SQLite}, {"postgres", Postgres}}
}

// SQLite returns the path of a new SQLite file in t's temporary directory.
func SQLite(t testing.TB) string {
	return filepath.Join(t.TempDir(), "registry.db")
}

// Postgres creates a schema of its own in the database named by PostgresEnv, drops it when t
// ends, and returns a DSN whose search_path is that schema. It skips t when PostgresEnv is unset.
func Postgres(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(PostgresEnv)
	if dsn == "" {
		t.Skip(PostgresEnv + " not set")
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	b := make([]byte, 8)
	rand.Read(b)
	schema := "test_" + hex.EncodeToString(b)
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	// Registered before the caller's store is closed, so it runs after it.
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Error(err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
