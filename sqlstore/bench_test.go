package sqlstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/internal/testdb"
	"github.com/id4me/id4me-registry/registry"
	"github.com/id4me/id4me-registry/sqlstore"
)

// BenchmarkRegister measures the store's share of registering an identifier: three
// transactions (create a challenge, record a successful check, consume it and register), each
// journaled, from parallel clients.
//
//	go test -run '^$' -bench Register -benchtime 5s ./sqlstore/
func BenchmarkRegister(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		benchmarkRegister(b, open(b, filepath.Join(b.TempDir(), "bench.db")))
	})
	b.Run("postgres", func(b *testing.B) {
		benchmarkRegister(b, open(b, testdb.Postgres(b)))
	})
}

func benchmarkRegister(b *testing.B, s *sqlstore.Store) {
	ctx := context.Background()
	now := time.Now()
	err := s.Tx(ctx, func(tx registry.Tx) error {
		return tx.CreateAgent(ctx, registry.Agent{ID: "a1", State: registry.AgentActive, CreateTime: now, UpdateTime: now, Version: 1})
	})
	if err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	journal := func(tx registry.Tx, action, typ, id string) error {
		_, err := tx.AppendJournal(ctx, registry.JournalEntry{Time: now, Actor: "agent:a1", Action: action, ObjectType: typ, ObjectID: id, After: `{"id":"` + id + `"}`})
		return err
	}
	b.ResetTimer()
	start, cpu := time.Now(), sqlstore.CPUTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			name := fmt.Sprintf("name%d.example", n)
			chID := fmt.Sprint("ch", n)
			ch := registry.Challenge{ID: chID, AgentID: "a1", Identifier: name, Purpose: registry.PurposeRegister,
				Token: chID, KeyAuthorization: chID + ".thumb", Status: registry.ChallengePending, CreateTime: now, ExpireTime: now.Add(time.Hour)}
			steps := []func(tx registry.Tx) error{
				func(tx registry.Tx) error {
					if err := tx.CreateChallenge(ctx, ch); err != nil {
						return err
					}
					return journal(tx, "create", "challenge", chID)
				},
				func(tx registry.Tx) error {
					c, err := tx.GetChallenge(ctx, chID)
					if err != nil {
						return err
					}
					c.Status, c.Attempts, c.ValidateTime = registry.ChallengeValid, 1, now
					if err := tx.UpdateChallenge(ctx, c, registry.ChallengePending, 0); err != nil {
						return err
					}
					return journal(tx, "validate", "challenge", chID)
				},
				func(tx registry.Tx) error {
					c, err := tx.GetChallenge(ctx, chID)
					if err != nil {
						return err
					}
					c.Status = registry.ChallengeConsumed
					if err := tx.UpdateChallenge(ctx, c, registry.ChallengeValid, 1); err != nil {
						return err
					}
					idn := fmt.Sprint("id", n)
					if err := tx.CreateIdentity(ctx, registry.Identity{ID: idn, SubjectSeed: "seed" + idn, CreateTime: now}); err != nil {
						return err
					}
					if err := tx.CreateIdentifier(ctx, registry.Identifier{Name: name, UnicodeName: name, AgentID: "a1", IdentityID: idn, CreateTime: now, UpdateTime: now, Version: 1}); err != nil {
						return err
					}
					return journal(tx, "register", "identifier", name)
				},
			}
			for _, step := range steps {
				if err := s.Tx(ctx, step); err != nil {
					b.Error(err)
					return
				}
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "registrations/s")
	sqlstore.ReportCPU(b, cpu)
}
