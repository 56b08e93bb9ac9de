package sqlstore

import (
	"strings"

	"gorm.io/gorm"
)

// Hand-written SQL, kept where a benchmark showed it pays (bench/README.md, "Hand-written
// SQL: where it stays and why"): the reads and writes of a registration, and the read of
// every userinfo request. These statements still run through gorm (Raw, Exec, gorm's
// prepared statements and transactions), but skip its query builder and, what costs most,
// its reflection over the model: the columns are listed here in the order of the model's
// fields (dest, args), and database/sql scans them straight into the fields.

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
)

var (
	sqlGetAgent       = "SELECT " + agentColumns + " FROM agents WHERE id = ?"
	sqlGetChallenge   = "SELECT " + challengeColumns + " FROM challenges WHERE id = ?"
	sqlGetIdentifier  = "SELECT " + identifierColumns + " FROM identifiers WHERE name = ?"
	sqlGetAccessToken = "SELECT " + accessTokenColumns + " FROM authority_access_tokens WHERE token_hash = ?"

	// Inserts say ON CONFLICT DO NOTHING (tx.go).
	sqlInsertChallenge  = "INSERT INTO challenges (" + challengeColumns + ") VALUES (" + placeholders(13) + ") ON CONFLICT DO NOTHING"
	sqlInsertIdentity   = "INSERT INTO identities (" + identityColumns + ") VALUES (" + placeholders(4) + ") ON CONFLICT DO NOTHING"
	sqlInsertIdentifier = "INSERT INTO identifiers (" + identifierColumns + ") VALUES (" + placeholders(20) + ") ON CONFLICT DO NOTHING"
	sqlInsertJournal    = "INSERT INTO journal (" + journalColumns + ") VALUES (" + placeholders(7) + ") RETURNING id"
	sqlUpdateChallenge  = "UPDATE challenges SET status = ?, attempts = ?, problem = ?, validate_time = ?, expire_time = ?" +
		" WHERE id = ? AND status = ? AND attempts = ?"
)

// placeholders returns n comma-separated ?.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// scanRow runs the SELECT q and scans its one row into dest; false when there is none.
func scanRow(db *gorm.DB, dest []any, q string, args ...any) (bool, error) {
	rows, err := db.Raw(q, args...).Rows()
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
