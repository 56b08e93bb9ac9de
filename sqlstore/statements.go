package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
)

// The registry's frequent statements (authentication reads, the registration's reads and
// inserts, journal entries, events) skip gorm: each is a fixed text, prepared once (pool.go),
// with its arguments and columns bound directly. So do the claims of background work, whose
// texts differ by dialect (row locks on PostgreSQL). Listings and rare writes go through gorm.

// conn runs SQL: the pool outside a transaction, the poolTx inside one.
type conn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
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
		"state, client_cert_spki, create_time, update_time, version, link_generation"
	credentialColumns = "id, agent_id, description, secret_hash, create_time, revoke_time"
	challengeColumns  = "id, agent_id, identifier, purpose, token, key_authorization, status, attempts, " +
		"problem, create_time, expire_time, validate_time, sponsor_agent_id"
	identityColumns   = "id, subject_seed, create_time, retire_time"
	identifierColumns = "name, unicode_name, agent_id, identity_id, claims_endpoint, statuses, " +
		"create_time, update_time, delete_time, purge_time, version, " +
		"openid_status, openid_record, openid_issuer, openid_claims_provider, openid_detail, " +
		"openid_check_time, openid_next_check, link_generation, dns_name"
	journalColumns  = `"time", actor, action, object_type, object_id, "before", "after"`
	transferColumns = "id, identifier, gaining_agent_id, losing_agent_id, challenge_id, status, request_time, act_time"
	eventColumns    = "agent_id, id, type, identifier, data, create_time, ack_time"
)

// pendingTransfer is the condition of the partial indexes transfers_pending and
// transfers_pending_act. It is written out, not bound: a planner uses a partial index only for
// a query whose condition implies the index's, which a parameter does not.
const pendingTransfer = "status = 'pending'"

var (
	sqlGetAgent            = newSQL("SELECT " + agentColumns + " FROM agents WHERE id = ?")
	sqlFindAgentByCertSPKI = newSQL("SELECT " + agentColumns + " FROM agents WHERE id = (SELECT agent_id FROM agent_client_certs WHERE spki_sha256 = ?)")
	sqlGetCredential       = newSQL("SELECT " + credentialColumns + " FROM credentials WHERE id = ?")
	sqlGetChallenge        = newSQL("SELECT " + challengeColumns + " FROM challenges WHERE id = ?")
	sqlGetIdentity         = newSQL("SELECT " + identityColumns + " FROM identities WHERE id = ?")
	sqlGetIdentifier       = newSQL("SELECT " + identifierColumns + " FROM identifiers WHERE name = ?")
	// Through the unique index identifiers_dns_name.
	sqlGetIdentifierByDNSName = newSQL("SELECT " + identifierColumns + " FROM identifiers WHERE dns_name = ?")

	// Inserts say ON CONFLICT DO NOTHING (tx.go).
	sqlInsertChallenge = newSQL("INSERT INTO challenges (" + challengeColumns + ") VALUES (" +
		placeholders(13) + ") ON CONFLICT DO NOTHING")
	sqlInsertIdentity = newSQL("INSERT INTO identities (" + identityColumns + ") VALUES (" +
		placeholders(4) + ") ON CONFLICT DO NOTHING")
	sqlInsertIdentifier = newSQL("INSERT INTO identifiers (" + identifierColumns + ") VALUES (" +
		placeholders(20) + ") ON CONFLICT DO NOTHING")
	sqlUpdateChallenge = newSQL(`UPDATE challenges SET status = ?, attempts = ?, problem = ?, validate_time = ?, expire_time = ?
		WHERE id = ? AND status = ? AND attempts = ?`)

	sqlGetTransfer     = newSQL("SELECT " + transferColumns + " FROM transfers WHERE id = ?")
	sqlPendingTransfer = newSQL("SELECT " + transferColumns + " FROM transfers WHERE identifier = ? AND " + pendingTransfer)
	// Either unique key may refuse the row: the ID, or transfers_pending.
	sqlInsertTransfer = newSQL("INSERT INTO transfers (" + transferColumns + ") VALUES (" +
		placeholders(8) + ") ON CONFLICT DO NOTHING")
	sqlUpdateTransfer = newSQL("UPDATE transfers SET status = ?, act_time = ? WHERE id = ? AND status = ?")
	// An agent's transfers in both directions: the first of each index (transfers_gaining,
	// transfers_losing), merged, so that a page costs the same wherever it starts.
	sqlListTransfersBoth = [2]sqlText{
		newSQL(listTransfersBoth("")),
		newSQL(listTransfersBoth(" AND " + pendingTransfer)),
	}
	sqlSetOpenIDState = newSQL(`UPDATE identifiers SET openid_status = ?, openid_record = ?, openid_issuer = ?,
		openid_claims_provider = ?, openid_detail = ?, openid_check_time = ?, openid_next_check = ?
		WHERE name = ? AND identity_id = ?`)

	// sqlNextEventID takes the agent's next event number. On PostgreSQL the statement locks the
	// agent's counter row until the transaction ends, so the transactions writing one agent's
	// events run one after the other: each takes its number only once the one before it has
	// committed (or rolled back, giving its number back), and so numbers become visible in
	// order, without gaps. On SQLite write transactions never overlap anyway.
	sqlNextEventID = newSQL(`INSERT INTO event_counters (agent_id, last_id) VALUES (?, 1)
		ON CONFLICT (agent_id) DO UPDATE SET last_id = event_counters.last_id + 1 RETURNING last_id`)
	sqlInsertEvent = newSQL("INSERT INTO events (" + eventColumns + ") VALUES (" + placeholders(7) + ")")

	// The claims of background work read the due rows through an index ordered by due time
	// (identifiers_purge, identifiers_openid_next_check, transfers_pending_act,
	// challenges_expire) and stop at the limit. On PostgreSQL they lock the rows and skip those
	// another transaction holds; on SQLite the transaction holds the only write lock already.
	// A due transfer is claimed with its identifier: the lifecycle calls lock the identifier
	// and then the transfer, and a sweep that locked the transfer alone and then waited for
	// the identifier could deadlock with them. Skipping either row when it is locked, the
	// sweep never waits, and the identifier it reads next cannot change under it.
	sqlClaimDueTransfers = sqlText{
		sqlite: "SELECT " + transferColumns + " FROM transfers WHERE " + pendingTransfer +
			" AND act_time <= ? ORDER BY act_time LIMIT ?",
		postgres: newSQL("SELECT " + qualify("t.", transferColumns) + " FROM transfers t" +
			" JOIN identifiers i ON i.name = t.identifier WHERE t." + pendingTransfer +
			" AND t.act_time <= ? ORDER BY t.act_time LIMIT ? FOR UPDATE OF t, i SKIP LOCKED").postgres,
	}
	sqlClaimDuePurges = lockingSQL("SELECT " + identifierColumns + " FROM identifiers" +
		" WHERE purge_time IS NOT NULL AND purge_time <= ? ORDER BY purge_time LIMIT ?")
	sqlClaimOpenIDChecks = lockingSQL("SELECT " + identifierColumns + " FROM identifiers" +
		" WHERE openid_next_check <= ? ORDER BY openid_next_check LIMIT ?")
	sqlDeleteExpiredChallenges = sqlText{
		sqlite: "DELETE FROM challenges WHERE id IN " +
			"(SELECT id FROM challenges WHERE expire_time < ? ORDER BY expire_time LIMIT ?)",
		postgres: newSQL("DELETE FROM challenges WHERE id IN " +
			"(SELECT id FROM challenges WHERE expire_time < ? ORDER BY expire_time LIMIT ? FOR UPDATE SKIP LOCKED)").postgres,
	}

	sqlDeleteAckedEvents = sqlText{
		sqlite: "DELETE FROM events WHERE (agent_id, id) IN " +
			"(SELECT agent_id, id FROM events WHERE ack_time IS NOT NULL AND ack_time < ? ORDER BY ack_time LIMIT ?)",
		postgres: newSQL("DELETE FROM events WHERE (agent_id, id) IN " +
			"(SELECT agent_id, id FROM events WHERE ack_time IS NOT NULL AND ack_time < ? ORDER BY ack_time LIMIT ? FOR UPDATE SKIP LOCKED)").postgres,
	}

	// On SQLite the new ID is the statement's last_insert_rowid; on PostgreSQL RETURNING
	// brings it back in the same round trip.
	sqlInsertJournal = sqlText{
		sqlite:   "INSERT INTO journal (" + journalColumns + ") VALUES (" + placeholders(7) + ")",
		postgres: newSQL("INSERT INTO journal (" + journalColumns + ") VALUES (" + placeholders(7) + ") RETURNING id").postgres,
	}
)

// listTransfersBoth returns the query of an agent's transfers in both directions with the
// condition cond; its parameters are agent, after, limit, agent, after, limit, limit.
func listTransfersBoth(cond string) string {
	arm := func(side string) string {
		return "SELECT * FROM (SELECT " + transferColumns + " FROM transfers WHERE " + side +
			"_agent_id = ? AND id > ?" + cond + " ORDER BY id LIMIT ?) AS " + side
	}
	return arm("gaining") + " UNION " + arm("losing") + " ORDER BY id LIMIT ?"
}

// qualify prefixes every column of the comma-separated list columns with prefix.
func qualify(prefix, columns string) string {
	cols := strings.Split(columns, ", ")
	for i, c := range cols {
		cols[i] = prefix + c
	}
	return strings.Join(cols, ", ")
}

// lockingSQL writes the SELECT q for both dialects, on PostgreSQL with FOR UPDATE SKIP LOCKED.
func lockingSQL(q string) sqlText {
	return sqlText{sqlite: q, postgres: newSQL(q + " FOR UPDATE SKIP LOCKED").postgres}
}

// dest returns pointers to the fields of r, in the order of agentColumns.
func (r *agentRow) dest() []any {
	return []any{&r.ID, &r.DisplayName, &r.ClaimsEndpoint, &r.Issuer, &r.AccountKeyJWK, &r.AccountKeyThumbprint,
		&r.State, &r.ClientCertSPKI, &r.CreateTime, &r.UpdateTime, &r.Version, &r.LinkGeneration}
}

func (r *credentialRow) dest() []any {
	return []any{&r.ID, &r.AgentID, &r.Description, &r.SecretHash, &r.CreateTime, &r.RevokeTime}
}

func (r *challengeRow) dest() []any {
	return []any{&r.ID, &r.AgentID, &r.Identifier, &r.Purpose, &r.Token, &r.KeyAuthorization, &r.Status, &r.Attempts,
		&r.Problem, &r.CreateTime, &r.ExpireTime, &r.ValidateTime, &r.SponsorAgentID}
}

func (r *identityRow) dest() []any {
	return []any{&r.ID, &r.SubjectSeed, &r.CreateTime, &r.RetireTime}
}

func (r *identifierRow) dest() []any {
	return []any{&r.Name, &r.UnicodeName, &r.AgentID, &r.IdentityID, &r.ClaimsEndpoint, &r.Statuses,
		&r.CreateTime, &r.UpdateTime, &r.DeleteTime, &r.PurgeTime, &r.Version,
		&r.OpenIDStatus, &r.OpenIDRecord, &r.OpenIDIssuer, &r.OpenIDClaimsProvider, &r.OpenIDDetail,
		&r.OpenIDCheckTime, &r.OpenIDNextCheck, &r.LinkGeneration, &r.DNSName}
}

// args returns the values of r in the dialect, in the order of identifierColumns.
func (r *identifierRow) args(rd reader) []any {
	return []any{r.Name, r.UnicodeName, r.AgentID, r.IdentityID, r.ClaimsEndpoint, r.Statuses,
		rd.time(r.CreateTime), rd.time(r.UpdateTime), rd.time(r.DeleteTime), rd.time(r.PurgeTime), r.Version,
		r.OpenIDStatus, r.OpenIDRecord, r.OpenIDIssuer, r.OpenIDClaimsProvider, r.OpenIDDetail,
		rd.time(r.OpenIDCheckTime), rd.time(r.OpenIDNextCheck), r.LinkGeneration, r.DNSName}
}

func (r *transferRow) dest() []any {
	return []any{&r.ID, &r.Identifier, &r.GainingAgentID, &r.LosingAgentID, &r.ChallengeID, &r.Status,
		&r.RequestTime, &r.ActTime}
}

// args returns the values of r in the dialect, in the order of transferColumns.
func (r *transferRow) args(rd reader) []any {
	return []any{r.ID, r.Identifier, r.GainingAgentID, r.LosingAgentID, r.ChallengeID, r.Status,
		rd.time(r.RequestTime), rd.time(r.ActTime)}
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

// queryRows returns the rows q selects, each scanned into the fields dest gives.
func queryRows[R any](ctx context.Context, r reader, q sqlText, dest func(*R) []any, args ...any) ([]R, error) {
	rows, err := r.c.QueryContext(ctx, r.sql(q), args...)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var out []R
	for rows.Next() {
		var row R
		if err := rows.Scan(dest(&row)...); err != nil {
			return nil, dbError(err)
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError(err)
	}
	return out, nil
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
