package sqlstore_test

import (
	"regexp"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/id4me/id4me-registry/migrations"
	"github.com/id4me/id4me-registry/sqlstore"
)

var tableScan = regexp.MustCompile(`(?m)^SCAN (transfers|identifiers|challenges|events|request_outcomes)\b|Seq Scan`)

// TestQueryPlans: the claims of background work read the due rows through their indexes, so
// that their cost follows the work due, not the size of the tables. On PostgreSQL sequential
// scans are disabled for the check: on tables this small the planner would rightly prefer
// them, and the question is whether the index can serve the query at all.
func TestQueryPlans(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			pg := s.Dialect() == migrations.Postgres
			db := sqlstore.DB(s)
			for _, st := range sqlstore.IndexedStatements {
				dry := st.Build(db.Session(&gorm.Session{DryRun: true})).Statement
				q := "EXPLAIN QUERY PLAN " + dry.SQL.String()
				if pg {
					q = "EXPLAIN " + dry.SQL.String()
				}
				args := dry.Vars
				text := sqlstore.Explain(t, s, q, args)
				if !strings.Contains(text, " "+st.Index+" ") && !strings.HasSuffix(text, " "+st.Index) {
					t.Errorf("%s does not read index %s:\n%s", st.Name, st.Index, text)
				}
				// A SQLite plan may scan a subquery's few rows ("SCAN gaining"), not a table.
				if tableScan.MatchString(text) {
					t.Errorf("%s scans a table:\n%s", st.Name, text)
				}
				t.Logf("%s:\n%s", st.Name, text)
			}
		})
	}
}
