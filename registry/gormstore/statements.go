package gormstore

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
)

// The registry's frequent statements (authentication reads, the registration's reads and
// inserts, journal entries) skip gorm: each is a fixed text, prepared once (pool.go), with its
// arguments and columns bound directly. Listings and rare writes go through gorm.

// conn runs SQL: the pool outside a transaction, the poolTx inside one.
type conn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// sqlText is a statement in each dialect's placeholder syntax.
type sqlText struct{ sqlite, postgres string }

// newSQL writes q, whose parameters are ?, for both dialects (PostgreSQL numbers them: $1, $2,
// …). q must not hold a ? of its own, in a string literal or a comment.
func newSQL(q string) sqlText {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return sqlText{sqlite: q, postgres: b.String()}
}

// placeholders returns n comma-separated ?.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// Column lists, in the order of the rows' fields (dest, args).
const (
	agentColumns = "id, display_name, claims_endpoint, issuer, account_key_jwk, account_key_thumbprint, " +
		"state, client_cert_spki, create_time, update_time, version"
	credentialColumns = "id, agent_id, description, secret_hash, create_time, revoke_time"
	challengeColumns  = "id, agent_id, identifier, purpose, token, key_authorization, status, attempts, " +
		"problem, create_time, expire_time, validate_time"
	identityColumns   = "id, subject_seed, create_time, retire_time"
	identifierColumns = "name, unicode_name, agent_id, identity_id, claims_endpoint, statuses, " +
		"create_time, update_time, version"
	journalColumns = `"time", actor, action, object_type, object_id, "before", "after"`
)

var (
	sqlGetAgent            = newSQL("SELECT " + agentColumns + " FROM agents WHERE id = ?")
	sqlFindAgentByCertSPKI = newSQL("SELECT " + agentColumns + " FROM agents WHERE id = (SELECT agent_id FROM agent_client_certs WHERE spki_sha256 = ?)")
	sqlGetCredential       = newSQL("SELECT " + credentialColumns + " FROM credentials WHERE id = ?")
	sqlGetChallenge        = newSQL("SELECT " + challengeColumns + " FROM challenges WHERE id = ?")
	sqlGetIdentity         = newSQL("SELECT " + identityColumns + " FROM identities WHERE id = ?")
	sqlGetIdentifier       = newSQL("SELECT " + identifierColumns + " FROM identifiers WHERE name = ?")

	// Inserts say ON CONFLICT DO NOTHING (tx.go).
	sqlInsertChallenge = newSQL("INSERT INTO challenges (" + challengeColumns + ") VALUES (" +
		placeholders(12) + ") ON CONFLICT DO NOTHING")
	sqlInsertIdentity = newSQL("INSERT INTO identities (" + identityColumns + ") VALUES (" +
		placeholders(4) + ") ON CONFLICT DO NOTHING")
	sqlInsertIdentifier = newSQL("INSERT INTO identifiers (" + identifierColumns + ") VALUES (" +
		placeholders(9) + ") ON CONFLICT DO NOTHING")
	sqlUpdateChallenge = newSQL(`UPDATE challenges SET status = ?, attempts = ?, problem = ?, validate_time = ?, expire_time = ?
		WHERE id = ? AND status = ? AND attempts = ?`)

	// On SQLite the new ID is the statement's last_insert_rowid; on PostgreSQL RETURNING
	// brings it back in the same round trip.
	sqlInsertJournal = sqlText{
		sqlite:   "INSERT INTO journal (" + journalColumns + ") VALUES (" + placeholders(7) + ")",
		postgres: newSQL("INSERT INTO journal (" + journalColumns + ") VALUES (" + placeholders(7) + ") RETURNING id").postgres,
	}
)

// dest returns pointers to the fields of r, in the order of agentColumns.
func (r *agentRow) dest() []any {
	return []any{&r.ID, &r.DisplayName, &r.ClaimsEndpoint, &r.Issuer, &r.AccountKeyJWK, &r.AccountKeyThumbprint,
		&r.State, &r.ClientCertSPKI, &r.CreateTime, &r.UpdateTime, &r.Version}
}

func (r *credentialRow) dest() []any {
	return []any{&r.ID, &r.AgentID, &r.Description, &r.SecretHash, &r.CreateTime, &r.RevokeTime}
}

func (r *challengeRow) dest() []any {
	return []any{&r.ID, &r.AgentID, &r.Identifier, &r.Purpose, &r.Token, &r.KeyAuthorization, &r.Status, &r.Attempts,
		&r.Problem, &r.CreateTime, &r.ExpireTime, &r.ValidateTime}
}

func (r *identityRow) dest() []any {
	return []any{&r.ID, &r.SubjectSeed, &r.CreateTime, &r.RetireTime}
}

func (r *identifierRow) dest() []any {
	return []any{&r.Name, &r.UnicodeName, &r.AgentID, &r.IdentityID, &r.ClaimsEndpoint, &r.Statuses,
		&r.CreateTime, &r.UpdateTime, &r.Version}
}

// sql returns q in the reader's dialect.
func (r reader) sql(q sqlText) string {
	if r.postgres {
		return q.postgres
	}
	return q.sqlite
}

// time encodes t in the reader's dialect.
func (r reader) time(t dbTime) any { return t.value(r.postgres) }

// get reads the one row of q into dest; no row is a not-found error with reason.
func (r reader) get(ctx context.Context, q sqlText, arg string, dest []any, reason, what string) error {
	err := r.c.QueryRowContext(ctx, r.sql(q), arg).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return notFound(reason, "%s %q not found", what, arg)
	}
	return dbError(err)
}

// execSQL runs q and returns how many rows it changed.
func (r reader) execSQL(ctx context.Context, q sqlText, args ...any) (int64, error) {
	res, err := r.c.ExecContext(ctx, r.sql(q), args...)
	if err != nil {
		return 0, dbError(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, dbError(err)
	}
	return n, nil
}
