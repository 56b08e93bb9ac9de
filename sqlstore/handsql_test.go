package sqlstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strconv"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/authority/storetest"
	"github.com/id4me/id4me-registry/internal/testdb"
	"github.com/id4me/id4me-registry/registry"
)

// BenchmarkHandSQL compares, in one run, statements of the hot paths as the store writes
// them out (handsql.go, form=hand) with the same statements built by gorm from the model
// (form=builder): the userinfo read of an access token, the read of a challenge, and the
// inserts and update of a registration. The writes run b.N to a transaction, so that the
// statement's cost is not lost in the commit's.
//
//	go test -run '^$' -bench HandSQL -count 6 ./sqlstore/ | benchstat -col /form -
func BenchmarkHandSQL(b *testing.B) {
	for _, be := range []struct {
		name string
		dsn  func(testing.TB) string
	}{{"sqlite", testdb.SQLite}, {"postgres", testdb.Postgres}} {
		b.Run("db="+be.name, func(b *testing.B) {
			benchmarkHandSQL(b, openAuthority(b, be.dsn(b)))
		})
	}
}

func benchmarkHandSQL(b *testing.B, s *Store) {
	ctx := context.Background()
	a := s.Authority()
	now := time.Now()
	const n = 1000
	hashes := make([][]byte, n)
	err := a.CreateClient(ctx, authority.Client{ID: "c1", SecretHash: []byte("s"), RegistrationTokenHash: []byte("r"), CreateTime: now})
	if err == nil {
		err = a.CreateGrant(ctx, authority.Grant{ID: "g1", CodeHash: []byte("code"), ClientID: "c1", IdentityID: storetest.IdentityIDs[0],
			AuthTime: now, CreateTime: now, ExpireTime: now.Add(time.Hour)})
	}
	if err == nil {
		err = s.Tx(ctx, func(tx registry.Tx) error {
			return tx.CreateAgent(ctx, registry.Agent{ID: "a1", State: registry.AgentActive, CreateTime: now, UpdateTime: now, Version: 1})
		})
	}
	for i := 0; err == nil && i < n; i++ {
		h := sha256.Sum256([]byte(strconv.Itoa(i)))
		hashes[i] = h[:]
		err = a.CreateAccessToken(ctx, authority.AccessToken{TokenHash: hashes[i], GrantID: "g1", ClientID: "c1",
			IdentityID: storetest.IdentityIDs[0], Identifier: "alice.example", Subject: "sub", Scopes: []string{"openid", "email"},
			CreateTime: now, ExpireTime: now.Add(time.Hour)})
		if err == nil {
			err = s.Tx(ctx, func(tx registry.Tx) error {
				return tx.CreateChallenge(ctx, registry.Challenge{ID: fmt.Sprint("ch", i), AgentID: "a1", Identifier: "alice.example",
					Purpose: registry.PurposeRegister, Token: "t", KeyAuthorization: "t.k", Status: registry.ChallengePending,
					CreateTime: now, ExpireTime: now.Add(time.Hour)})
			})
		}
	}
	if err != nil {
		b.Fatal(err)
	}
	var seq int
	// inTxOf runs the hand-written statements in the transaction tx.
	inTxOf := func(tx *gorm.DB) reader { return reader{db: tx, d: s.d, statements: &s.statements} }
	// inTx runs b.N statements in one transaction.
	inTx := func(b *testing.B, stmt func(tx *gorm.DB, i int) error) {
		b.Helper()
		err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			for i := range b.N {
				if err := stmt(tx, i); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	// identifier makes an identity, the same way for both forms, and returns a new
	// identifier of it.
	identifier := func(tx *gorm.DB) (identifierRow, error) {
		seq++
		identity := identityRow{ID: fmt.Sprint("bench-id", seq), SubjectSeed: fmt.Sprint("bench-seed", seq), CreateTime: dbTime(now)}
		name := fmt.Sprintf("n%d.example", seq)
		row, err := identifierToRow(registry.Identifier{Name: name, UnicodeName: name, AgentID: "a1", IdentityID: identity.ID,
			CreateTime: now, UpdateTime: now, Version: 1})
		if err == nil {
			_, err = inTxOf(tx).exec(ctx, sqlInsertIdentity, identity.args()...)
		}
		return row, err
	}
	forms := []struct {
		name string
		run  func(b *testing.B, hand bool)
	}{
		{"GetAccessToken", func(b *testing.B, hand bool) {
			for i := range b.N {
				var row accessTokenRow
				var err error
				if hand {
					_, err = s.scanRow(ctx, row.dest(), sqlGetAccessToken, hashes[i%n])
				} else {
					err = a.q(ctx).Where("token_hash = ?", hashes[i%n]).Take(&row).Error
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		}},
		{"GetChallenge", func(b *testing.B, hand bool) {
			for i := range b.N {
				var row challengeRow
				id := fmt.Sprint("ch", i%n)
				var err error
				if hand {
					_, err = s.scanRow(ctx, row.dest(), sqlGetChallenge, id)
				} else {
					err = s.q(ctx).Where("id = ?", id).Take(&row).Error
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		}},
		{"CreateIdentifier", func(b *testing.B, hand bool) {
			// Each with an identity of its own, inserted the same way for both forms.
			inTx(b, func(tx *gorm.DB, _ int) error {
				row, err := identifier(tx)
				if err != nil {
					return err
				}
				if hand {
					_, err = inTxOf(tx).exec(ctx, sqlInsertIdentifier, row.args()...)
					return err
				}
				_, err = insert(tx, &row)
				return err
			})
		}},
		{"AppendJournal", func(b *testing.B, hand bool) {
			inTx(b, func(tx *gorm.DB, _ int) error {
				row := journalRow{Time: dbTime(now), Actor: "agent:a1", Action: "register", ObjectType: "identifier", ObjectID: "n.example", After: `{"name":"n.example"}`}
				if hand {
					var id int64
					_, err := inTxOf(tx).scanRow(ctx, []any{&id}, sqlInsertJournal, row.args()...)
					return err
				}
				return tx.Create(&row).Error
			})
		}},
		{"UpdateChallenge", func(b *testing.B, hand bool) {
			inTx(b, func(tx *gorm.DB, i int) error {
				id, at := fmt.Sprint("ch", i%n), dbTime(now)
				if hand {
					_, err := inTxOf(tx).exec(ctx, sqlUpdateChallenge, "pending", 0, nil, at, at, id, "pending", 0)
					return err
				}
				_, err := update(tx, &challengeRow{}, map[string]any{"status": "pending", "attempts": 0, "problem": nil,
					"validate_time": at, "expire_time": at}, "id = ? AND status = ? AND attempts = ?", id, "pending", 0)
				return err
			})
		}},
	}
	for _, f := range forms {
		for _, form := range []string{"builder", "hand"} {
			b.Run("stmt="+f.name+"/form="+form, func(b *testing.B) {
				cpu := CPUTime()
				f.run(b, form == "hand")
				ReportCPU(b, cpu)
			})
		}
	}
}
