package migrations_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/id4me/id4me-registry/internal/testdb"
	"github.com/id4me/id4me-registry/migrations"
)

// The SQLite and PostgreSQL migrations are written by hand, twice. These tests check that
// they describe the same schema: the same files, and once applied the same tables, columns
// (name, nullability, type family) and indexes (name, columns, uniqueness, partial or not).

// TestMigrationFilesMatch: every migration has a file of the same name for each engine.
func TestMigrationFilesMatch(t *testing.T) {
	sqlite, err := migrations.Names(migrations.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := migrations.Names(migrations.Postgres)
	if err != nil {
		t.Fatal(err)
	}
	if len(sqlite) == 0 {
		t.Fatal("no SQLite migrations")
	}
	if !slices.Equal(sqlite, pg) {
		t.Errorf("migration files differ:\n  only sqlite/: %v\n  only postgres/: %v", minus(sqlite, pg), minus(pg, sqlite))
	}
}

// TestSchemaParity migrates a SQLite database and a PostgreSQL schema and compares what
// they hold. Without PostgreSQL (testdb.PostgresEnv unset) it skips.
func TestSchemaParity(t *testing.T) {
	lite := sqliteSchema(t, migratedSQLite(t))
	db, err := sql.Open("pgx", testdb.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	if err := migrations.Up(ctx, db, migrations.Postgres); err != nil {
		t.Fatal(err)
	}
	pg := postgresSchema(t, db)
	if len(lite) < 50 {
		t.Fatalf("the SQLite schema has %d facts; the introspection is broken", len(lite))
	}
	if onlyLite, onlyPG := minus(lite, pg), minus(pg, lite); len(onlyLite)+len(onlyPG) > 0 {
		t.Errorf("the migrated schemas differ:\n  only SQLite:\n    %s\n  only PostgreSQL:\n    %s",
			strings.Join(onlyLite, "\n    "), strings.Join(onlyPG, "\n    "))
	}
}

// TestSchemaParityNoticesADifference: a column, an index, a nullability or a type added or
// changed on one side only is a difference the comparison reports (on two SQLite databases,
// so that it runs without PostgreSQL too).
func TestSchemaParityNoticesADifference(t *testing.T) {
	base := sqliteSchema(t, migratedSQLite(t))
	for _, tc := range []struct {
		change string
		want   []string
	}{
		{"ALTER TABLE agents ADD COLUMN nickname TEXT NOT NULL DEFAULT ''", []string{"column agents.nickname text not null"}},
		{"CREATE INDEX agents_state ON agents (state)", []string{"index agents.agents_state (state)"}},
		{"CREATE UNIQUE INDEX agents_issuer ON agents (issuer) WHERE issuer <> ''", []string{"index agents.agents_issuer unique (issuer) partial"}},
		{"CREATE TABLE extra (id TEXT NOT NULL PRIMARY KEY, n INTEGER, b BLOB) STRICT", []string{
			"table extra", "column extra.id text not null", "column extra.n integer null", "column extra.b blob null",
			"index extra.extra_pkey unique (id)"}},
	} {
		t.Run(tc.change, func(t *testing.T) {
			db := migratedSQLite(t)
			if _, err := db.Exec(tc.change); err != nil {
				t.Fatal(err)
			}
			changed := sqliteSchema(t, db)
			if got := minus(changed, base); !sameSet(got, tc.want) || len(minus(base, changed)) > 0 {
				t.Errorf("after %s: the comparison reports %v only on the changed side and %v only on the other; want %v and none",
					tc.change, got, minus(base, changed), tc.want)
			}
		})
	}
}

func migratedSQLite(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "parity.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := migrations.Up(context.Background(), db, migrations.SQLite); err != nil {
		t.Fatal(err)
	}
	return db
}

// A schema is a sorted list of facts, one line each:
//
//	table <table>
//	column <table>.<column> <family> null|not null
//	index <table>.<index> [unique] (<columns>) [partial]
//
// Columns are in a type family (text, integer, blob): SQLite keeps times as INTEGER
// nanoseconds, so PostgreSQL's timestamptz counts as integer, as do its integer and bigint.
// Indexes a constraint makes are named as PostgreSQL names them: <table>_pkey for the
// primary key, <table>_<columns>_key for a UNIQUE column. The tables of goose (the migration
// tool) and of SQLite itself are left out.

func sqliteSchema(t *testing.T, db *sql.DB) []string {
	t.Helper()
	var facts []string
	tables := queryStrings(t, db, `SELECT name FROM sqlite_schema WHERE type = 'table'
		AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name <> 'goose_db_version' ORDER BY name`)
	for _, table := range tables {
		facts = append(facts, "table "+table)
		rows := query(t, db, fmt.Sprintf("SELECT name, type, \"notnull\", pk FROM pragma_table_info('%s')", table))
		var pk []string
		pkOrder := map[string]int{}
		for _, r := range rows {
			name, typ, notNull, pkPos := r[0], r[1], r[2] == "1", r[3]
			facts = append(facts, column(table, name, sqliteFamily(typ), notNull))
			if pkPos != "0" {
				var n int
				fmt.Sscan(pkPos, &n)
				pk = append(pk, name)
				pkOrder[name] = n
			}
		}
		slices.SortFunc(pk, func(a, b string) int { return pkOrder[a] - pkOrder[b] })
		hasPK := false
		for _, ix := range query(t, db, fmt.Sprintf("SELECT name, \"unique\", origin, partial FROM pragma_index_list('%s')", table)) {
			name, unique, origin, partial := ix[0], ix[1] == "1", ix[2], ix[3] == "1"
			cols := queryStrings(t, db, fmt.Sprintf("SELECT name FROM pragma_index_info('%s') ORDER BY seqno", name))
			switch origin {
			case "pk":
				name, hasPK = table+"_pkey", true
			case "u":
				name = table + "_" + strings.Join(cols, "_") + "_key"
			}
			facts = append(facts, index(table, name, cols, unique, partial))
		}
		if !hasPK && len(pk) > 0 {
			// An INTEGER PRIMARY KEY is the rowid: SQLite lists no index for it.
			facts = append(facts, index(table, table+"_pkey", pk, true, false))
		}
	}
	slices.Sort(facts)
	return facts
}

func postgresSchema(t *testing.T, db *sql.DB) []string {
	t.Helper()
	var facts []string
	tables := queryStrings(t, db, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> 'goose_db_version'
		ORDER BY table_name`)
	for _, table := range tables {
		facts = append(facts, "table "+table)
		for _, r := range query(t, db, `SELECT column_name, data_type, is_nullable FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = $1`, table) {
			facts = append(facts, column(table, r[0], postgresFamily(r[1]), r[2] == "NO"))
		}
		for _, r := range query(t, db, `SELECT i.relname, ix.indisunique, ix.indpred IS NOT NULL,
				array_to_string(ARRAY(SELECT a.attname FROM unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
					JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum ORDER BY k.ord), ',')
			FROM pg_index ix
			JOIN pg_class i ON i.oid = ix.indexrelid
			JOIN pg_class c ON c.oid = ix.indrelid
			JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = current_schema() AND c.relname = $1`, table) {
			facts = append(facts, index(table, r[0], strings.Split(r[3], ","), r[1] == "true", r[2] == "true"))
		}
	}
	slices.Sort(facts)
	return facts
}

func column(table, name, family string, notNull bool) string {
	null := "null"
	if notNull {
		null = "not null"
	}
	return fmt.Sprintf("column %s.%s %s %s", table, name, family, null)
}

func index(table, name string, cols []string, unique, partial bool) string {
	s := "index " + table + "." + name
	if unique {
		s += " unique"
	}
	s += " (" + strings.Join(cols, ", ") + ")"
	if partial {
		s += " partial"
	}
	return s
}

// sqliteFamily returns the family of a column type of a STRICT table.
func sqliteFamily(typ string) string {
	switch t := strings.ToUpper(typ); t {
	case "INTEGER", "INT":
		return "integer"
	case "TEXT":
		return "text"
	case "BLOB":
		return "blob"
	default:
		return "sqlite " + t
	}
}

// postgresFamily returns the family of a data_type of information_schema.columns.
func postgresFamily(typ string) string {
	switch typ {
	case "smallint", "integer", "bigint", "timestamp with time zone":
		return "integer"
	case "text":
		return "text"
	case "bytea":
		return "blob"
	default:
		return "postgres " + typ
	}
}

// query returns the rows of q, each column as text.
func query(t *testing.T, db *sql.DB, q string, args ...any) [][]string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		dest := make([]any, len(cols))
		for i := range vals {
			dest[i] = &vals[i]
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = v.String
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// queryStrings returns the first column of q's rows.
func queryStrings(t *testing.T, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	var out []string
	for _, r := range query(t, db, q, args...) {
		out = append(out, r[0])
	}
	return out
}

// minus returns the elements of a not in b.
func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

func sameSet(a, b []string) bool {
	return len(minus(a, b)) == 0 && len(minus(b, a)) == 0
}
