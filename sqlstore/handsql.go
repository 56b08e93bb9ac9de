package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"sync/atomic"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"

	"github.com/id4me/id4me-registry/migrations"
)

// Hand-written SQL, kept where a benchmark showed it pays (bench/README.md, "Hand-written
// SQL: where it stays and why"): the reads and writes of a registration, and the read of
// every userinfo request. These statements still run through gorm (its connection pool, gorm's
// prepared statements and transactions), but skip its query builder and, what costs most,
// its reflection over the model: the columns are listed here in the order of the model's
// fields (dest, args), and database/sql scans them straight into the fields. Each is
// rendered for both dialects once (handStmt), and run on the connection pool of the
// store's gorm handle or transaction (reader.query, reader.exec): gorm's statement cache on
// SQLite, gorm's transaction, without building the statement anew each time.

// Column lists, in the order of the models' fields.
const (
	agentColumns = "id, display_name, claims_endpoint, issuer, account_key_jwk, account_key_thumbprint, " +
		"state, client_cert_spki, create_time, update_time, version, link_generation"
	challengeColumns = "id, agent_id, identifier, purpose, token, key_authorization, status, attempts, " +
		"problem, create_time, expire_time, validate_time, sponsor_agent_id"
	identityColumns   = "id, subject_seed, create_time, retire_time"
	identifierColumns = "name, unicode_name, agent_id, identity_id, claims_endpoint, statuses, " +
		"create_time, update_time, delete_time, purge_time, version, link_generation, " +
		"openid_status, openid_record, openid_issuer, openid_claims_provider, openid_detail, " +
		"openid_check_time, openid_next_check, dns_name"
	journalColumns     = `"time", actor, action, object_type, object_id, "before", "after"`
	accessTokenColumns = "token_hash, grant_id, client_id, identity_id, identifier, subject, scopes, claims, " +
		"create_time, expire_time, revoke_time"
	sessionColumns = "id_hash, identity_id, identifier, auth_time, amr, create_time, expire_time"
	consentColumns = "client_id, identity_id, scopes, claims, update_time"
	grantColumns   = "id, code_hash, client_id, redirect_uri, identity_id, identifier, subject, scopes, claims, " +
		"id_token_claims, nonce, code_challenge, auth_time, amr, session_id, create_time, expire_time, use_time, revoke_time"
)

var (
	sqlGetAgent      = newHandStmt("SELECT " + agentColumns + " FROM agents WHERE id = ?")
	sqlGetChallenge  = newHandStmt("SELECT " + challengeColumns + " FROM challenges WHERE id = ?")
	sqlGetIdentity   = newHandStmt("SELECT " + identityColumns + " FROM identities WHERE id = ?")
	sqlGetIdentifier = newHandStmt("SELECT " + identifierColumns + " FROM identifiers WHERE name = ?")
	// sqlGetIdentifierByDNSName reads through the unique index identifiers_dns_name.
	sqlGetIdentifierByDNSName = newHandStmt("SELECT " + identifierColumns + " FROM identifiers WHERE dns_name = ?")
	sqlGetAccessToken         = newHandStmt("SELECT " + accessTokenColumns + " FROM authority_access_tokens WHERE token_hash = ?")

	// Inserts say ON CONFLICT DO NOTHING (tx.go).
	sqlInsertChallenge  = newHandStmt("INSERT INTO challenges (" + challengeColumns + ") VALUES (" + placeholders(13) + ") ON CONFLICT DO NOTHING")
	sqlInsertIdentity   = newHandStmt("INSERT INTO identities (" + identityColumns + ") VALUES (" + placeholders(4) + ") ON CONFLICT DO NOTHING")
	sqlInsertIdentifier = newHandStmt("INSERT INTO identifiers (" + identifierColumns + ") VALUES (" + placeholders(20) + ") ON CONFLICT DO NOTHING")
	sqlInsertJournal    = newHandStmt("INSERT INTO journal (" + journalColumns + ") VALUES (" + placeholders(7) + ") RETURNING id")
	sqlUpdateChallenge  = newHandStmt("UPDATE challenges SET status = ?, attempts = ?, problem = ?, validate_time = ?, expire_time = ?" +
		" WHERE id = ? AND status = ? AND attempts = ?")

	// The authorization code round trip: the session and the remembered consent the
	// authorization request reads, the grant it writes, and the token request's read and
	// redemption of the grant and insert of the access token.
	sqlGetSession  = newHandStmt("SELECT " + sessionColumns + " FROM authority_sessions WHERE id_hash = ?")
	sqlGetConsent  = newHandStmt("SELECT " + consentColumns + " FROM authority_consents WHERE client_id = ? AND identity_id = ?")
	sqlGetGrant    = newHandStmt("SELECT " + grantColumns + " FROM authority_grants WHERE code_hash = ?")
	sqlInsertGrant = newHandStmt("INSERT INTO authority_grants (" + grantColumns + ") VALUES (" + placeholders(19) + ") ON CONFLICT DO NOTHING")
	sqlRedeemGrant = newHandStmt("UPDATE authority_grants SET use_time = ? WHERE code_hash = ? AND use_time IS NULL RETURNING " + grantColumns)
	// sqlInsertAccessToken stores a token selected from its grant's row (CreateAccessToken),
	// which PostgreSQL locks for share; SQLite has no row locks and one writer. SQLite's
	// parser needs the WHERE before ON CONFLICT.
	sqlInsertAccessToken = newHandStmtEach(
		"INSERT INTO authority_access_tokens ("+accessTokenColumns+") SELECT "+placeholders(10)+", COALESCE(?, revoke_time)"+
			" FROM authority_grants WHERE id = ? ON CONFLICT DO NOTHING",
		"INSERT INTO authority_access_tokens ("+accessTokenColumns+") SELECT "+placeholders(10)+", COALESCE(?, revoke_time)"+
			" FROM authority_grants WHERE id = ? FOR SHARE ON CONFLICT DO NOTHING")
)

// handStmt is a statement written out with ? placeholders, in the text of each dialect, as
// its gorm dialector binds the placeholders (BindVarTo): ? on SQLite, $1, $2, … on
// PostgreSQL. The statements hold no ? other than their placeholders.
type handStmt struct {
	sqlite, postgres string
}

func newHandStmt(q string) handStmt {
	return handStmt{sqlite: bindVars(sqlite.Dialector{}, q), postgres: bindVars(postgres.Dialector{}, q)}
}

// newHandStmtEach is a statement whose text differs between the dialects beyond the
// placeholders.
func newHandStmtEach(sqliteQ, postgresQ string) handStmt {
	return handStmt{sqlite: bindVars(sqlite.Dialector{}, sqliteQ), postgres: bindVars(postgres.Dialector{}, postgresQ)}
}

// bindVars replaces the ? placeholders of q by d's.
func bindVars(d gorm.Dialector, q string) string {
	var b strings.Builder
	st := &gorm.Statement{}
	for i := range len(q) {
		if q[i] != '?' {
			b.WriteByte(q[i])
			continue
		}
		st.Vars = append(st.Vars, nil)
		d.BindVarTo(&b, st, nil)
	}
	return b.String()
}

// text returns the statement in d's text.
func (s handStmt) text(d dialect) string {
	if d.name == migrations.Postgres {
		return s.postgres
	}
	return s.sqlite
}

// placeholders returns n comma-separated ?.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// args returns the arguments of a statement as the driver takes them: a dbTime encoded for
// the dialect, as its GormValue does for gorm's statements; the others as they are.
func (r reader) args(args []any) []any {
	for i, a := range args {
		if t, ok := a.(dbTime); ok {
			args[i] = r.d.timeValue(time.Time(t))
		}
	}
	return args
}

// statementCount counts the statements a store runs (Store.Statements): gorm's callbacks
// those gorm runs (Store.countStatements), reader.query and reader.exec those they run.
type statementCount struct {
	n atomic.Int64
	// record, when set, is told each statement reader.query and reader.exec run, with the
	// dialect's placeholders: for tests that look at the statements a call runs, as gorm's
	// callbacks are told those gorm runs.
	record func(sql string, vars []any)
}

// ran counts the statement sql.
func (c *statementCount) ran(sql string, vars []any) {
	c.n.Add(1)
	if c.record != nil {
		c.record(sql, vars)
	}
}

// query runs the SELECT s on r's connection pool: gorm's (its prepared statements on
// SQLite), or its transaction's.
func (r reader) query(ctx context.Context, s handStmt, args ...any) (*sql.Rows, error) {
	q, args := s.text(r.d), r.args(args)
	r.statements.ran(q, args)
	return r.db.Statement.ConnPool.QueryContext(ctx, q, args...)
}

// exec runs the statement s, not a SELECT, on r's connection pool, and returns how many rows
// it changed.
func (r reader) exec(ctx context.Context, s handStmt, args ...any) (int64, error) {
	q, args := s.text(r.d), r.args(args)
	r.statements.ran(q, args)
	res, err := r.db.Statement.ConnPool.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, dbError(err)
	}
	// As gorm's Exec: neither driver fails to count.
	n, _ := res.RowsAffected()
	return n, nil
}

// scanRow runs the SELECT s and scans its one row into dest; false when there is none.
func (r reader) scanRow(ctx context.Context, dest []any, s handStmt, args ...any) (bool, error) {
	rows, err := r.query(ctx, s, args...)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	if !rows.Next() {
		return false, rows.Err()
	}
	if err := rows.Scan(dest...); err != nil {
		return false, err
	}
	return true, rows.Close()
}

func (r *agentRow) dest() []any {
	return []any{&r.ID, &r.DisplayName, &r.ClaimsEndpoint, &r.Issuer, &r.AccountKeyJWK, &r.AccountKeyThumbprint,
		&r.State, &r.ClientCertSPKI, &r.CreateTime, &r.UpdateTime, &r.Version, &r.LinkGeneration}
}

func (r *challengeRow) dest() []any {
	return []any{&r.ID, &r.AgentID, &r.Identifier, &r.Purpose, &r.Token, &r.KeyAuthorization, &r.Status, &r.Attempts,
		&r.Problem, &r.CreateTime, &r.ExpireTime, &r.ValidateTime, &r.SponsorAgentID}
}

func (r *challengeRow) args() []any {
	return []any{r.ID, r.AgentID, r.Identifier, r.Purpose, r.Token, r.KeyAuthorization, r.Status, r.Attempts,
		r.Problem, r.CreateTime, r.ExpireTime, r.ValidateTime, r.SponsorAgentID}
}

func (r *identityRow) dest() []any {
	return []any{&r.ID, &r.SubjectSeed, &r.CreateTime, &r.RetireTime}
}

func (r *identityRow) args() []any {
	return []any{r.ID, r.SubjectSeed, r.CreateTime, r.RetireTime}
}

func (r *identifierRow) dest() []any {
	return []any{&r.Name, &r.UnicodeName, &r.AgentID, &r.IdentityID, &r.ClaimsEndpoint, &r.Statuses,
		&r.CreateTime, &r.UpdateTime, &r.DeleteTime, &r.PurgeTime, &r.Version, &r.LinkGeneration,
		&r.OpenIDStatus, &r.OpenIDRecord, &r.OpenIDIssuer, &r.OpenIDClaimsProvider, &r.OpenIDDetail,
		&r.OpenIDCheckTime, &r.OpenIDNextCheck, &r.DNSName}
}

func (r *identifierRow) args() []any {
	return []any{r.Name, r.UnicodeName, r.AgentID, r.IdentityID, r.ClaimsEndpoint, r.Statuses,
		r.CreateTime, r.UpdateTime, r.DeleteTime, r.PurgeTime, r.Version, r.LinkGeneration,
		r.OpenIDStatus, r.OpenIDRecord, r.OpenIDIssuer, r.OpenIDClaimsProvider, r.OpenIDDetail,
		r.OpenIDCheckTime, r.OpenIDNextCheck, r.DNSName}
}

func (r *journalRow) args() []any {
	return []any{r.Time, r.Actor, r.Action, r.ObjectType, r.ObjectID, r.Before, r.After}
}

func (r *accessTokenRow) dest() []any {
	return []any{&r.TokenHash, &r.GrantID, &r.ClientID, &r.IdentityID, &r.Identifier, &r.Subject,
		&r.Scopes, &r.Claims, &r.CreateTime, &r.ExpireTime, &r.RevokeTime}
}

func (r *sessionRow) dest() []any {
	return []any{&r.IDHash, &r.IdentityID, &r.Identifier, &r.AuthTime, &r.AMR, &r.CreateTime, &r.ExpireTime}
}

func (r *consentRow) dest() []any {
	return []any{&r.ClientID, &r.IdentityID, &r.Scopes, &r.Claims, &r.UpdateTime}
}

func (r *grantRow) dest() []any {
	return []any{&r.ID, &r.CodeHash, &r.ClientID, &r.RedirectURI, &r.IdentityID, &r.Identifier, &r.Subject,
		&r.Scopes, &r.Claims, &r.IDTokenClaims, &r.Nonce, &r.CodeChallenge, &r.AuthTime, &r.AMR,
		&r.SessionID, &r.CreateTime, &r.ExpireTime, &r.UseTime, &r.RevokeTime}
}

func (r *grantRow) args() []any {
	return []any{r.ID, r.CodeHash, r.ClientID, r.RedirectURI, r.IdentityID, r.Identifier, r.Subject,
		r.Scopes, r.Claims, r.IDTokenClaims, r.Nonce, r.CodeChallenge, r.AuthTime, r.AMR,
		r.SessionID, r.CreateTime, r.ExpireTime, r.UseTime, r.RevokeTime}
}

func (r *accessTokenRow) args() []any {
	return []any{r.TokenHash, r.GrantID, r.ClientID, r.IdentityID, r.Identifier, r.Subject,
		r.Scopes, r.Claims, r.CreateTime, r.ExpireTime, r.RevokeTime}
}
