package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm/clause"

	"github.com/id4me/id4me-registry/registry"
)

// tx is a registry.Tx in one database transaction.
//
// Inserts say ON CONFLICT DO NOTHING and count the rows they wrote rather than provoke a
// unique violation: on PostgreSQL a failed statement spoils the whole transaction, and a
// caller may want to go on after "already exists".
type tx struct {
	reader
}

var _ registry.Tx = (*tx)(nil)

var doNothing = clause.OnConflict{DoNothing: true}

// insert writes row unless it conflicts with a unique key, and reports whether it did.
func (t *tx) insert(ctx context.Context, row any) (bool, error) {
	res := t.q(ctx).Clauses(doNothing).Create(row)
	if res.Error != nil {
		return false, dbError(res.Error)
	}
	return res.RowsAffected > 0, nil
}

// exec runs a conditional statement and returns how many rows it changed.
func (t *tx) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	res := t.q(ctx).Exec(sql, args...)
	if res.Error != nil {
		return 0, dbError(res.Error)
	}
	return res.RowsAffected, nil
}

// exists reports whether table has a row whose column key equals value.
func (t *tx) exists(ctx context.Context, table, key, value string) (bool, error) {
	var n int64
	if err := t.q(ctx).Table(table).Where(key+" = ?", value).Limit(1).Count(&n).Error; err != nil {
		return false, dbError(err)
	}
	return n > 0, nil
}

// lostUpdate explains why a conditional statement changed nothing: the row is gone
// (notFound), or it changed (changed).
func (t *tx) lostUpdate(ctx context.Context, table, key, value string, notFound, changed error) error {
	ok, err := t.exists(ctx, table, key, value)
	switch {
	case err != nil:
		return err
	case ok:
		return changed
	}
	return notFound
}

func objectExists(format string, args ...any) error {
	return registry.Errorf(registry.KindAlreadyExists, reasonObjectExists, format, args...)
}

func (t *tx) CreateAgent(ctx context.Context, a registry.Agent) error {
	row, spki, err := agentToRow(a)
	if err != nil {
		return err
	}
	ok, err := t.insert(ctx, &row)
	if err != nil {
		return err
	}
	if !ok {
		return objectExists("agent %q already exists", a.ID)
	}
	return t.pinCerts(ctx, a.ID, spki)
}

// pinCerts records the agent's client certificate keys (sorted, without duplicates) in
// agent_client_certs, which keeps each key to one agent; a key pinned already (by another
// agent: UpdateAgent unpins the agent's own first) is KindAlreadyExists.
func (t *tx) pinCerts(ctx context.Context, agentID string, spki []string) error {
	if len(spki) == 0 {
		return nil
	}
	rows := make([]certRow, len(spki))
	for i, s := range spki {
		rows[i] = certRow{SPKISHA256: s, AgentID: agentID}
	}
	res := t.q(ctx).Clauses(doNothing).Create(&rows)
	if res.Error != nil {
		return dbError(res.Error)
	}
	if res.RowsAffected != int64(len(rows)) {
		return objectExists("a client certificate key of agent %q is pinned by another agent", agentID)
	}
	return nil
}

func (t *tx) UpdateAgent(ctx context.Context, a registry.Agent) error {
	row, spki, err := agentToRow(a)
	if err != nil {
		return err
	}
	n, err := t.exec(ctx, `UPDATE agents SET display_name = ?, claims_endpoint = ?, issuer = ?,
		account_key_jwk = ?, account_key_thumbprint = ?, state = ?, client_cert_spki = ?,
		update_time = ?, version = ?, link_generation = ?
		WHERE id = ? AND version = ?`,
		row.DisplayName, row.ClaimsEndpoint, row.Issuer, row.AccountKeyJWK, row.AccountKeyThumbprint,
		row.State, row.ClientCertSPKI, row.UpdateTime, row.Version, row.LinkGeneration, row.ID, a.Version-1)
	if err != nil {
		return err
	}
	if n == 0 {
		return t.lostUpdate(ctx, "agents", "id", a.ID,
			notFound("AGENT_NOT_FOUND", "agent %q not found", a.ID),
			concurrentUpdate("agent %q was changed concurrently", a.ID))
	}
	if _, err := t.exec(ctx, "DELETE FROM agent_client_certs WHERE agent_id = ?", a.ID); err != nil {
		return err
	}
	return t.pinCerts(ctx, a.ID, spki)
}

func (t *tx) CreateCredential(ctx context.Context, c registry.Credential) error {
	row := credentialToRow(c)
	ok, err := t.insert(ctx, &row)
	if err != nil {
		return err
	}
	if !ok {
		return objectExists("credential %q already exists", c.ID)
	}
	return nil
}

func (t *tx) RevokeCredential(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		return registry.Errorf(registry.KindInvalidArgument, "INVALID_TIME", "revoke time must be set")
	}
	n, err := t.exec(ctx, "UPDATE credentials SET revoke_time = ? WHERE id = ? AND revoke_time IS NULL", dbTime(at), id)
	if err != nil || n > 0 {
		return err
	}
	return t.lostUpdate(ctx, "credentials", "id", id,
		notFound("CREDENTIAL_NOT_FOUND", "credential %q not found", id),
		registry.Errorf(registry.KindFailedPrecondition, "CREDENTIAL_REVOKED", "credential %q is revoked already", id))
}

func (t *tx) CreateChallenge(ctx context.Context, c registry.Challenge) error {
	r, err := challengeToRow(c)
	if err != nil {
		return err
	}
	n, err := t.execSQL(ctx, sqlInsertChallenge, r.ID, r.AgentID, r.Identifier, r.Purpose, r.Token, r.KeyAuthorization,
		r.Status, r.Attempts, r.Problem, t.time(r.CreateTime), t.time(r.ExpireTime), t.time(r.ValidateTime), r.SponsorAgentID)
	if err != nil {
		return err
	}
	if n == 0 {
		return objectExists("challenge %q already exists", c.ID)
	}
	return nil
}

func (t *tx) UpdateChallenge(ctx context.Context, c registry.Challenge, fromStatus registry.ChallengeStatus, fromAttempts int) error {
	r, err := challengeToRow(c)
	if err != nil {
		return err
	}
	n, err := t.execSQL(ctx, sqlUpdateChallenge, r.Status, r.Attempts, r.Problem, t.time(r.ValidateTime), t.time(r.ExpireTime),
		c.ID, string(fromStatus), fromAttempts)
	if err != nil || n > 0 {
		return err
	}
	return t.lostUpdate(ctx, "challenges", "id", c.ID,
		notFound("CHALLENGE_NOT_FOUND", "challenge %q not found", c.ID),
		concurrentUpdate("challenge %q was changed concurrently", c.ID))
}

func (t *tx) CreateIdentity(ctx context.Context, i registry.Identity) error {
	r := identityToRow(i)
	n, err := t.execSQL(ctx, sqlInsertIdentity, r.ID, r.SubjectSeed, t.time(r.CreateTime), t.time(r.RetireTime))
	if err != nil {
		return err
	}
	if n == 0 {
		return objectExists("identity %q or its subject seed exists already", i.ID)
	}
	return nil
}

func (t *tx) RetireIdentity(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		return registry.Errorf(registry.KindInvalidArgument, "INVALID_TIME", "retire time must be set")
	}
	n, err := t.exec(ctx, "UPDATE identities SET retire_time = ? WHERE id = ? AND retire_time IS NULL", dbTime(at), id)
	if err != nil || n > 0 {
		return err
	}
	return t.lostUpdate(ctx, "identities", "id", id,
		notFound("IDENTITY_NOT_FOUND", "identity %q not found", id),
		registry.Errorf(registry.KindFailedPrecondition, "IDENTITY_RETIRED", "identity %q is retired already", id))
}

func (t *tx) CreateIdentifier(ctx context.Context, i registry.Identifier) error {
	r, err := identifierToRow(i)
	if err != nil {
		return err
	}
	n, err := t.execSQL(ctx, sqlInsertIdentifier, r.args(t.reader)...)
	if err != nil || n > 0 {
		return err
	}
	// The name, the DNS name or the identity is taken; only the names are the caller's
	// business, and of another identifier with the DNS name only that it exists.
	taken, err := t.exists(ctx, "identifiers", "name", i.Name)
	if err != nil {
		return err
	}
	if taken {
		return registry.Errorf(registry.KindAlreadyExists, reasonIdentifierTaken, "identifier %q is taken", i.Name)
	}
	if taken, err = t.exists(ctx, "identifiers", "dns_name", r.DNSName); err != nil {
		return err
	}
	if taken {
		return registry.Errorf(registry.KindAlreadyExists, reasonIdentifierTaken,
			"identifier %q is taken: another identifier has its DNS name %s", i.Name, r.DNSName)
	}
	return objectExists("identity %q has an identifier already", i.IdentityID)
}

func (t *tx) UpdateIdentifier(ctx context.Context, i registry.Identifier) error {
	row, err := identifierToRow(i)
	if err != nil {
		return err
	}
	// The openid_* columns are not the identifier's (registry.Identifier.OpenID): they are
	// left as they are.
	n, err := t.exec(ctx, `UPDATE identifiers SET unicode_name = ?, agent_id = ?, identity_id = ?,
		claims_endpoint = ?, statuses = ?, update_time = ?, delete_time = ?, purge_time = ?, version = ?,
		link_generation = ?
		WHERE name = ? AND version = ?`,
		row.UnicodeName, row.AgentID, row.IdentityID, row.ClaimsEndpoint, row.Statuses,
		row.UpdateTime, row.DeleteTime, row.PurgeTime, row.Version, row.LinkGeneration, row.Name, i.Version-1)
	if err != nil || n > 0 {
		return err
	}
	return t.lostUpdate(ctx, "identifiers", "name", i.Name,
		notFound("IDENTIFIER_NOT_FOUND", "identifier %q not found", i.Name),
		concurrentUpdate("identifier %q was changed concurrently", i.Name))
}

func (t *tx) DeleteIdentifier(ctx context.Context, name string, version int64) error {
	n, err := t.exec(ctx, "DELETE FROM identifiers WHERE name = ? AND version = ?", name, version)
	if err != nil || n > 0 {
		return err
	}
	return t.lostUpdate(ctx, "identifiers", "name", name,
		notFound("IDENTIFIER_NOT_FOUND", "identifier %q not found", name),
		concurrentUpdate("identifier %q was changed concurrently", name))
}

func (t *tx) AppendJournal(ctx context.Context, e registry.JournalEntry) (int64, error) {
	args := []any{t.time(dbTime(e.Time)), e.Actor, e.Action, e.ObjectType, e.ObjectID, e.Before, e.After}
	if t.postgres {
		var id int64
		if err := t.c.QueryRowContext(ctx, sqlInsertJournal.postgres, args...).Scan(&id); err != nil {
			return 0, dbError(err)
		}
		return id, nil
	}
	res, err := t.c.ExecContext(ctx, sqlInsertJournal.sqlite, args...)
	if err != nil {
		return 0, dbError(err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, dbError(err)
	}
	return id, nil
}

func (t *tx) SetOpenIDState(ctx context.Context, name, identityID string, st registry.OpenIDState) (bool, error) {
	if st.NextCheck.IsZero() {
		// openid_next_check is NOT NULL: every identifier is due for a check some time.
		return false, registry.Errorf(registry.KindInvalidArgument, "INVALID_TIME", "next check time must be set")
	}
	n, err := t.execSQL(ctx, sqlSetOpenIDState, string(st.Status), st.Record, st.Issuer, st.ClaimsProvider, st.Detail,
		t.time(dbTime(st.CheckTime)), t.time(dbTime(st.NextCheck)), name, identityID)
	return n > 0, err
}

func (t *tx) CreateTransfer(ctx context.Context, tr registry.Transfer) error {
	r := transferToRow(tr)
	n, err := t.execSQL(ctx, sqlInsertTransfer, r.args(t.reader)...)
	if err != nil || n > 0 {
		return err
	}
	// The ID or, for a pending transfer, the identifier's pending transfer is taken.
	taken, err := t.exists(ctx, "transfers", "id", tr.ID)
	if err != nil {
		return err
	}
	if taken {
		return objectExists("transfer %q already exists", tr.ID)
	}
	return registry.Errorf(registry.KindAlreadyExists, reasonTransferPending, "a transfer of %q is pending already", tr.Identifier)
}

func (t *tx) UpdateTransfer(ctx context.Context, tr registry.Transfer, from registry.TransferStatus) error {
	n, err := t.execSQL(ctx, sqlUpdateTransfer, string(tr.Status), t.time(dbTime(tr.ActTime)), tr.ID, string(from))
	if err != nil || n > 0 {
		return err
	}
	return t.lostUpdate(ctx, "transfers", "id", tr.ID,
		notFound("TRANSFER_NOT_FOUND", "transfer %q not found", tr.ID),
		concurrentUpdate("transfer %q was changed concurrently", tr.ID))
}

func (t *tx) AppendEvent(ctx context.Context, e registry.Event) (int64, error) {
	data, err := json.Marshal(e.Data)
	if err != nil {
		return 0, internal(fmt.Errorf("encoding event data: %w", err))
	}
	var id int64
	if err := t.c.QueryRowContext(ctx, t.sql(sqlNextEventID), e.AgentID).Scan(&id); err != nil {
		return 0, dbError(err)
	}
	_, err = t.execSQL(ctx, sqlInsertEvent, e.AgentID, id, string(e.Type), e.Identifier, string(data),
		t.time(dbTime(e.Time)), t.time(dbTime(e.AckTime)))
	if err != nil {
		return 0, err
	}
	return id, nil
}

func (t *tx) AckEvents(ctx context.Context, agentID string, ids []int64, at time.Time) (int, error) {
	if at.IsZero() {
		return 0, registry.Errorf(registry.KindInvalidArgument, "INVALID_TIME", "acknowledge time must be set")
	}
	if len(ids) == 0 {
		return 0, nil
	}
	n, err := t.exec(ctx, "UPDATE events SET ack_time = ? WHERE agent_id = ? AND id IN ? AND ack_time IS NULL",
		dbTime(at), agentID, ids)
	return int(n), err
}

func (t *tx) ClaimDueTransfers(ctx context.Context, now time.Time, limit int) ([]registry.Transfer, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	rows, err := queryRows(ctx, t.reader, sqlClaimDueTransfers, (*transferRow).dest, t.time(dbTime(now)), limit)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	out := make([]registry.Transfer, len(rows))
	for i, row := range rows {
		out[i] = row.transfer()
	}
	return out, nil
}

func (t *tx) ClaimDuePurges(ctx context.Context, now time.Time, limit int) ([]registry.Identifier, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	rows, err := queryRows(ctx, t.reader, sqlClaimDuePurges, (*identifierRow).dest, t.time(dbTime(now)), limit)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	out := make([]registry.Identifier, len(rows))
	for i, row := range rows {
		out[i] = row.identifier()
	}
	return out, nil
}

func (t *tx) ClaimOpenIDChecks(ctx context.Context, now, leaseUntil time.Time, limit int) ([]registry.Identifier, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	if leaseUntil.IsZero() {
		return nil, registry.Errorf(registry.KindInvalidArgument, "INVALID_TIME", "lease end must be set")
	}
	rows, err := queryRows(ctx, t.reader, sqlClaimOpenIDChecks, (*identifierRow).dest, t.time(dbTime(now)), limit)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	lease := dbTime(leaseUntil)
	names := make([]string, len(rows))
	for i, row := range rows {
		names[i] = row.Name
	}
	if _, err := t.exec(ctx, "UPDATE identifiers SET openid_next_check = ? WHERE name IN ?", lease, names); err != nil {
		return nil, err
	}
	out := make([]registry.Identifier, len(rows))
	for i, row := range rows {
		out[i] = row.identifier()
		out[i].OpenID.NextCheck = norm(leaseUntil)
	}
	return out, nil
}

func (t *tx) DeleteAckedEvents(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := checkLimit(limit); err != nil {
		return 0, err
	}
	n, err := t.execSQL(ctx, sqlDeleteAckedEvents, t.time(dbTime(before)), limit)
	return int(n), err
}

func (t *tx) DeleteExpiredChallenges(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := checkLimit(limit); err != nil {
		return 0, err
	}
	n, err := t.execSQL(ctx, sqlDeleteExpiredChallenges, t.time(dbTime(before)), limit)
	return int(n), err
}
