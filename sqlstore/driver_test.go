package sqlstore_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/internal/testdb"
	"github.com/id4me/id4me-registry/registry"
	"github.com/id4me/id4me-registry/sqlstore"
)

// backends opens a new store per subtest on SQLite and, when configured, PostgreSQL.
var backends = []struct {
	name string
	open func(t *testing.T) *sqlstore.Store
}{
	{"sqlite", func(t *testing.T) *sqlstore.Store { return open(t, filepath.Join(t.TempDir(), "r.db")) }},
	{"postgres", func(t *testing.T) *sqlstore.Store { return open(t, testdb.Postgres(t)) }},
}

// TestErrorMapping: the database's own errors (here from raw statements, which skip the
// store's ON CONFLICT DO NOTHING) become the registry's kinds and reasons.
func TestErrorMapping(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			err := s.Tx(ctx, func(tx registry.Tx) error {
				if err := tx.CreateAgent(ctx, registry.Agent{ID: "a1", State: registry.AgentActive, CreateTime: now, UpdateTime: now, Version: 1}); err != nil {
					return err
				}
				for _, id := range []string{"id1", "id2"} {
					if err := tx.CreateIdentity(ctx, registry.Identity{ID: id, SubjectSeed: "seed-" + id, CreateTime: now}); err != nil {
						return err
					}
				}
				return tx.CreateIdentifier(ctx, registry.Identifier{Name: "alice.example", UnicodeName: "alice.example", AgentID: "a1", IdentityID: "id1", CreateTime: now, UpdateTime: now, Version: 1})
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name, sql string
				kind      registry.Kind
				reason    registry.Reason
			}{
				{"identifier name", `INSERT INTO identifiers (name, unicode_name, agent_id, identity_id, claims_endpoint, statuses, create_time, update_time, version, openid_next_check, dns_name)
					SELECT name, unicode_name, agent_id, 'id2', claims_endpoint, statuses, create_time, update_time, version, openid_next_check, 'other.example' FROM identifiers`,
					registry.KindAlreadyExists, "IDENTIFIER_TAKEN"},
				{"identifier DNS name", `INSERT INTO identifiers (name, unicode_name, agent_id, identity_id, claims_endpoint, statuses, create_time, update_time, version, openid_next_check, dns_name)
					SELECT 'bob@example', unicode_name, agent_id, 'id2', claims_endpoint, statuses, create_time, update_time, version, openid_next_check, dns_name FROM identifiers`,
					registry.KindAlreadyExists, "IDENTIFIER_TAKEN"},
				{"identity seed", `INSERT INTO identities (id, subject_seed, create_time) SELECT 'id3', subject_seed, create_time FROM identities WHERE id = 'id1'`,
					registry.KindAlreadyExists, "OBJECT_EXISTS"},
				{"foreign key", `INSERT INTO agent_client_certs (spki_sha256, agent_id) VALUES ('cc', 'nobody')`,
					registry.KindFailedPrecondition, "REFERENCED_OBJECT_NOT_FOUND"},
			} {
				calls := 0
				err := s.Tx(ctx, func(tx registry.Tx) error {
					calls++
					return sqlstore.ExecInTx(ctx, tx, tc.sql)
				})
				var re *registry.Error
				if !errors.As(err, &re) || re.Kind != tc.kind || re.Reason != tc.reason || calls != 1 {
					t.Errorf("%s: Tx = %v after %d calls; want kind %v, reason %s, after 1 call", tc.name, err, calls, tc.kind, tc.reason)
				}
			}
		})
	}
}

// TestSQLiteBusy: a transaction that cannot get the write lock (another process writes) is
// run again a few times and ends in KindAborted.
func TestSQLiteBusy(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.db")
	holder := open(t, path)
	// Another store on the same file stands for another process; it waits 10 ms for a lock.
	other := open(t, path+"?_pragma=busy_timeout(10)")

	locked, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		done <- holder.Tx(ctx, func(tx registry.Tx) error {
			err := tx.CreateIdentity(ctx, registry.Identity{ID: "id1", SubjectSeed: "s1", CreateTime: time.Now()})
			close(locked)
			<-release
			return err
		})
	}()
	<-locked
	calls := 0
	err := other.Tx(ctx, func(tx registry.Tx) error {
		calls++
		return tx.CreateIdentity(ctx, registry.Identity{ID: "id2", SubjectSeed: "s2", CreateTime: time.Now()})
	})
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The lock is taken when the transaction begins (_txlock=immediate), so fn never runs.
	if registry.KindOf(err) != registry.KindAborted || calls != 0 {
		t.Fatalf("Tx while another process writes = %v after %d calls; want KindAborted after none", err, calls)
	}
	if err := other.Tx(ctx, func(tx registry.Tx) error {
		return tx.CreateIdentity(ctx, registry.Identity{ID: "id2", SubjectSeed: "s2", CreateTime: time.Now()})
	}); err != nil {
		t.Fatalf("Tx once the lock is free: %v", err)
	}
}

// TestTxPanic: a panicking function rolls its transaction back and the panic reaches the
// caller; the store goes on working.
func TestTxPanic(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			func() {
				defer func() {
					if r := recover(); r != "boom" {
						t.Fatalf("recovered %v, want the panic", r)
					}
				}()
				s.Tx(ctx, func(tx registry.Tx) error {
					if err := tx.CreateIdentity(ctx, registry.Identity{ID: "id1", SubjectSeed: "s1", CreateTime: time.Now()}); err != nil {
						return err
					}
					panic("boom")
				})
			}()
			if _, err := s.GetIdentity(ctx, "id1"); registry.KindOf(err) != registry.KindNotFound {
				t.Fatalf("identity of the panicked transaction: %v, want not found", err)
			}
			if err := s.Tx(ctx, func(tx registry.Tx) error {
				return tx.CreateIdentity(ctx, registry.Identity{ID: "id1", SubjectSeed: "s1", CreateTime: time.Now()})
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestOneConnection: with a single connection, transactions whose statements are not
// prepared yet, and reads between them, do not wait for ever (the statements are prepared
// once the transaction has given its connection back).
func TestOneConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "r.db"), sqlstore.WithMaxOpenConns(1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	for i := range 3 {
		err := s.Tx(ctx, func(tx registry.Tx) error {
			if _, err := tx.GetAgent(ctx, "a1"); err != nil && registry.KindOf(err) != registry.KindNotFound {
				return err
			}
			if i == 0 {
				if err := tx.CreateAgent(ctx, registry.Agent{ID: "a1", State: registry.AgentActive, CreateTime: now, UpdateTime: now, Version: 1}); err != nil {
					return err
				}
			}
			_, err := tx.AppendJournal(ctx, registry.JournalEntry{Time: now, Actor: "test", Action: "x", ObjectType: "agent", ObjectID: "a1"})
			return err
		})
		if err != nil {
			t.Fatalf("Tx #%d: %v", i+1, err)
		}
		if _, err := s.GetAgent(ctx, "a1"); err != nil {
			t.Fatal(err)
		}
		if j, err := s.ListJournal(ctx, registry.JournalFilter{}, 0, 10); err != nil || len(j) != i+1 {
			t.Fatalf("journal = %d entries, %v; want %d", len(j), err, i+1)
		}
	}
}

// TestStatementsPrepared: on SQLite gorm keeps the store's statements prepared outside
// transactions, those first run inside a transaction too once it has ended, so that a
// statement run again is not prepared again; on PostgreSQL it keeps none (pgx keeps them
// per connection).
func TestStatementsPrepared(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			appendEntry := func() error {
				return s.Tx(ctx, func(tx registry.Tx) error {
					_, err := tx.AppendJournal(ctx, registry.JournalEntry{Time: time.Now(), Actor: "test", Action: "x", ObjectType: "t", ObjectID: "o"})
					return err
				})
			}
			if err := appendEntry(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ListJournal(ctx, registry.JournalFilter{}, 0, 10); err != nil {
				t.Fatal(err)
			}
			all, onTx := sqlstore.PreparedStatements(s)
			if b.name == "postgres" {
				if all != -1 {
					t.Fatalf("PostgreSQL store keeps %d statements prepared, want none through gorm", all)
				}
				return
			}
			if all < 2 || onTx != 0 {
				t.Fatalf("after an insert in a transaction and a read: %d statements prepared, %d of them on the transaction; want both, none on it", all, onTx)
			}
			for range 3 {
				if err := appendEntry(); err != nil {
					t.Fatal(err)
				}
				if _, err := s.ListJournal(ctx, registry.JournalFilter{}, 0, 10); err != nil {
					t.Fatal(err)
				}
			}
			if again, onTx := sqlstore.PreparedStatements(s); again != all || onTx != 0 {
				t.Fatalf("after running the same statements again: %d prepared, %d on a transaction; want %d, none", again, onTx, all)
			}
		})
	}
}
