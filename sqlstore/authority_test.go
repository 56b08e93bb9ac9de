package sqlstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/authority/storetest"
	"github.com/id4me/id4me-registry/internal/testdb"
	"github.com/id4me/id4me-registry/registry"
)

// openAuthority opens a store at dsn, with the identities of the conformance suite, and
// closes it when t ends.
func openAuthority(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	err = s.Tx(t.Context(), func(tx registry.Tx) error {
		for _, id := range storetest.IdentityIDs {
			if err := tx.CreateIdentity(t.Context(), registry.Identity{ID: id, SubjectSeed: "seed-" + id, CreateTime: time.Now()}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAuthoritySQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) authority.Store { return openAuthority(t, testdb.SQLite(t)).Authority() })
}

func TestAuthorityPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) authority.Store { return openAuthority(t, testdb.Postgres(t)).Authority() })
}

// authorityBackends opens a store with the suite's identities on each backend.
var authorityBackends = []struct {
	name string
	open func(t *testing.T) *Store
}{
	{"sqlite", func(t *testing.T) *Store { return openAuthority(t, testdb.SQLite(t)) }},
	{"postgres", func(t *testing.T) *Store { return openAuthority(t, testdb.Postgres(t)) }},
}

// TestAuthorityReferences: credentials, credential links, consents and grants belong to an
// identity of the registry, and consents and grants to a client; a write naming a missing one
// is ErrNotFound, and leaves nothing behind.
func TestAuthorityReferences(t *testing.T) {
	for _, b := range authorityBackends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			a := b.open(t).Authority()
			now := time.Now()
			known := storetest.IdentityIDs[0]
			client := authority.Client{ID: "c1", SecretHash: []byte("s"), RegistrationTokenHash: []byte("r"), CreateTime: now}
			if err := a.CreateClient(ctx, client); err != nil {
				t.Fatal(err)
			}
			link := func(token, identityID string) authority.CredentialLink {
				return authority.CredentialLink{TokenHash: []byte(token), IdentityID: identityID, Purpose: "setup", CreateTime: now, ExpireTime: now.Add(time.Hour)}
			}
			grant := func(id, clientID, identityID string) authority.Grant {
				return authority.Grant{ID: id, CodeHash: []byte(id), ClientID: clientID, IdentityID: identityID, AuthTime: now, CreateTime: now, ExpireTime: now.Add(time.Minute)}
			}
			for _, tc := range []struct {
				what string
				err  error
			}{
				{"credential link of a missing identity", a.CreateCredentialLink(ctx, link("l1", "id_nobody"), nil)},
				{"consent of a missing identity", a.PutConsent(ctx, authority.Consent{ClientID: "c1", IdentityID: "id_nobody", UpdateTime: now})},
				{"consent to a missing client", a.PutConsent(ctx, authority.Consent{ClientID: "c9", IdentityID: known, UpdateTime: now})},
				{"grant of a missing identity", a.CreateGrant(ctx, grant("g1", "c1", "id_nobody"))},
				{"grant to a missing client", a.CreateGrant(ctx, grant("g2", "c9", known))},
			} {
				if !errors.Is(tc.err, authority.ErrNotFound) {
					t.Errorf("%s: %v, want ErrNotFound", tc.what, tc.err)
				}
			}
			if _, err := a.GetCredentialLink(ctx, []byte("l1")); !errors.Is(err, authority.ErrNotFound) {
				t.Errorf("GetCredentialLink after a refused CreateCredentialLink: %v", err)
			}
			// Everything is fine with what exists.
			if err := a.CreateCredentialLink(ctx, link("l2", known), nil); err != nil {
				t.Fatal(err)
			}
			if err := a.CreateGrant(ctx, grant("g3", "c1", known)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

var authorityTableScan = regexp.MustCompile(`(?m)^SCAN authority_|Seq Scan`)

// TestAuthorityQueryPlans: the userinfo endpoint's read of an access token is one primary
// key lookup, the other lookups read their indexes, DeleteExpired reads the indexes on
// expire_time, so that its cost follows what has expired, not the size of the tables, and
// new credentials find what the old ones gave through the indexes on the identity. The
// statements checked are those the store runs: recorded while it runs each call.
func TestAuthorityQueryPlans(t *testing.T) {
	ctx := context.Background()
	for _, b := range authorityBackends {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			a := s.Authority()
			pg := s.Dialect() == "postgres"
			now := time.Now()
			hash := []byte("0123456789abcdef0123456789abcdef")
			known := storetest.IdentityIDs[0]
			for _, err := range []error{
				a.CreateClient(ctx, authority.Client{ID: "c1", SecretHash: []byte("s"), RegistrationTokenHash: []byte("r"), CreateTime: now}),
				a.CreateGrant(ctx, authority.Grant{ID: "g1", CodeHash: []byte("code1"), ClientID: "c1", IdentityID: known, AuthTime: now, CreateTime: now, ExpireTime: now.Add(time.Hour)}),
				a.CreateCredentialLink(ctx, authority.CredentialLink{TokenHash: []byte("link1"), IdentityID: known, Purpose: "setup", CreateTime: now, ExpireTime: now.Add(time.Hour)}, nil),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
			// A statement of a call, by a pattern of its SQL (without quotes), and the index
			// it must read: on SQLite, and on PostgreSQL.
			type statement struct {
				name, pattern    string
				sqlite, postgres string
			}
			calls := []struct {
				call       func() error
				statements []statement
			}{
				{func() error { _, err := a.GetAccessToken(ctx, hash); return err }, []statement{
					{"GetAccessToken", `FROM authority_access_tokens WHERE token_hash`, "PRIMARY KEY", "authority_access_tokens_pkey"}}},
				{func() error { _, err := a.RedeemGrant(ctx, hash, now); return err }, []statement{
					{"RedeemGrant", `^UPDATE authority_grants SET use_time`, "sqlite_autoindex_authority_grants_2", "authority_grants_code_hash_key"}}},
				{func() error { return a.RevokeGrant(ctx, "g1", now) }, []statement{
					{"RevokeGrant's tokens", `^UPDATE authority_access_tokens SET revoke_time=\S+ WHERE grant_id`, "authority_access_tokens_grant", "authority_access_tokens_grant"}}},
				{func() error { _, err := a.GetCredentialLink(ctx, hash); return err }, []statement{
					{"GetCredentialLink", `FROM authority_credential_links WHERE token_hash`, "sqlite_autoindex_authority_credential_links_1", "authority_credential_links_pkey"}}},
				{func() error { _, err := a.GetSession(ctx, hash); return err }, []statement{
					{"GetSession", `FROM authority_sessions WHERE id_hash`, "sqlite_autoindex_authority_sessions_1", "authority_sessions_pkey"}}},
				{func() error {
					_, err := a.ClaimLoginAttempt(ctx, []authority.ThrottleKey{{Hash: hash, Backoff: authority.Backoff{Free: 5, Forget: time.Hour}}}, now)
					return err
				}, []statement{
					{"ClaimLoginAttempt", `FROM authority_login_throttles WHERE key_hash`, "sqlite_autoindex_authority_login_throttles_1", "authority_login_throttles_pkey"}}},
				{func() error { _, err := a.IsKnownDevice(ctx, hash, "id", now); return err }, []statement{
					{"IsKnownDevice", `FROM authority_known_devices WHERE device_hash`, "sqlite_autoindex_authority_known_devices_1", "authority_known_devices_pkey"}}},
				{func() error {
					return a.RedeemCredentialLink(ctx, []byte("link1"), now, authority.HolderCredential{PasswordHash: "p", UpdateTime: now}, nil)
				}, []statement{
					{"void an identity's links", `^UPDATE authority_credential_links SET void_time`, "authority_credential_links_identity", "authority_credential_links_identity"},
					{"end an identity's sessions", `^DELETE FROM authority_sessions WHERE identity_id`, "authority_sessions_identity", "authority_sessions_identity"},
					{"forget an identity's pending logins", `^UPDATE authority_auth_requests SET`, "authority_auth_requests_pending", "authority_auth_requests_pending"},
					{"drop an identity's unused codes", `^DELETE FROM authority_grants WHERE identity_id`, "authority_grants_identity", "authority_grants_identity"},
					{"revoke an identity's grants", `^UPDATE authority_grants SET revoke_time`, "authority_grants_identity", "authority_grants_identity"},
					{"revoke an identity's tokens", `^UPDATE authority_access_tokens SET revoke_time`, "authority_access_tokens_identity", "authority_access_tokens_identity"},
				}},
				{func() error { return a.DeleteClient(ctx, "c1", []byte("r")) }, []statement{
					{"DeleteClient's grants", `^DELETE FROM authority_grants WHERE client_id`, "authority_grants_client", "authority_grants_client"},
					{"DeleteClient's tokens", `^DELETE FROM authority_access_tokens WHERE client_id`, "authority_access_tokens_client", "authority_access_tokens_client"},
				}},
				{func() error { _, err := a.GetInitialAccessToken(ctx, hash); return err }, []statement{
					{"GetInitialAccessToken", `FROM authority_initial_access_tokens WHERE token_hash`, "sqlite_autoindex_authority_initial_access_tokens_2", "authority_initial_access_tokens_token_hash_key"}}},
				{func() error { _, err := a.DeleteExpired(ctx, now); return err }, func() []statement {
					var sweeps []statement
					for _, table := range []string{"auth_requests", "sessions", "grants", "access_tokens", "credential_links", "login_throttles", "known_devices"} {
						sweeps = append(sweeps, statement{"DeleteExpired " + table, `^DELETE FROM authority_` + table + ` WHERE`,
							"authority_" + table + "_expire", "authority_" + table + "_expire"})
					}
					return sweeps
				}()},
			}
			unquote := strings.NewReplacer("`", "", `"`, "")
			for _, c := range calls {
				stop := Record(s)
				err := c.call()
				ran := stop()
				if err != nil && !errors.Is(err, authority.ErrNotFound) && !errors.Is(err, authority.ErrConflict) {
					t.Fatal(err)
				}
				for _, st := range c.statements {
					var stmt *Recorded
					for i, r := range ran {
						if regexp.MustCompile(st.pattern).MatchString(unquote.Replace(r.SQL)) {
							stmt = &ran[i]
							break
						}
					}
					if stmt == nil {
						t.Errorf("%s: no statement matches %s among %v", st.name, st.pattern, ran)
						continue
					}
					q, index := "EXPLAIN QUERY PLAN "+stmt.SQL, st.sqlite
					if pg {
						q, index = "EXPLAIN "+stmt.SQL, st.postgres
					}
					text := explain(t, s, q, stmt.Vars)
					if !strings.Contains(text, index) {
						t.Errorf("%s does not read index %s:\n%s\n%s", st.name, index, stmt.SQL, text)
					}
					if authorityTableScan.MatchString(text) {
						t.Errorf("%s scans a table:\n%s\n%s", st.name, stmt.SQL, text)
					}
					t.Logf("%s: %s\n%s", st.name, stmt.SQL, text)
				}
			}
		})
	}
}

// explain returns the plan of the EXPLAIN statement q, one line per node; on PostgreSQL
// with sequential scans disabled.
func explain(t *testing.T, s *Store, q string, args []any) string {
	t.Helper()
	ctx := context.Background()
	tx, err := s.sqlDB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	pg := s.d.rowLocks()
	if pg {
		if _, err := tx.ExecContext(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		// SQLite answers id, parent, notused, detail; PostgreSQL one line of text.
		var detail string
		dest := []any{&detail}
		if !pg {
			var id, parent, notused int
			dest = []any{&id, &parent, &notused, &detail}
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.TrimSpace(detail))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// BenchmarkAuthorityGetAccessToken: the read of every userinfo request, from parallel
// goroutines, among 10,000 tokens.
func BenchmarkAuthorityGetAccessToken(b *testing.B) {
	for _, be := range []struct {
		name string
		dsn  func(testing.TB) string
	}{{"sqlite", testdb.SQLite}, {"postgres", testdb.Postgres}} {
		b.Run(be.name, func(b *testing.B) {
			ctx := context.Background()
			a := openAuthority(b, be.dsn(b)).Authority()
			const tokens = 10000
			hashes := make([][]byte, tokens)
			now := time.Now()
			// A token is stored only with its grant; one grant gives them all.
			err := a.CreateClient(ctx, authority.Client{ID: "c1", SecretHash: []byte("s"), RegistrationTokenHash: []byte("r"), CreateTime: now})
			if err == nil {
				err = a.CreateGrant(ctx, authority.Grant{ID: "g1", CodeHash: []byte("code"), ClientID: "c1", IdentityID: storetest.IdentityIDs[0],
					AuthTime: now, CreateTime: now, ExpireTime: now.Add(time.Hour)})
			}
			if err != nil {
				b.Fatal(err)
			}
			for i := range hashes {
				h := sha256.Sum256([]byte(strconv.Itoa(i)))
				hashes[i] = h[:]
				err := a.CreateAccessToken(ctx, authority.AccessToken{
					TokenHash: hashes[i], GrantID: "g1", ClientID: "c1", IdentityID: storetest.IdentityIDs[0],
					Identifier: "alice.example", Subject: "sub", Scopes: []string{"openid", "email"}, Claims: []string{"email", "name"},
					CreateTime: now, ExpireTime: now.Add(time.Hour),
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			b.ResetTimer()
			defer ReportCPU(b, CPUTime())
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := a.GetAccessToken(ctx, hashes[next.Add(1)%tokens]); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
		})
	}
}
