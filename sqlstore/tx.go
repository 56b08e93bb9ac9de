package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"
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

// Row locks: FOR UPDATE, and FOR UPDATE SKIP LOCKED for the claims of background work.
// gorm's SQLite dialect leaves them out: a SQLite write transaction holds the only write
// lock already.
var (
	forUpdate  = clause.Locking{Strength: clause.LockingStrengthUpdate}
	skipLocked = clause.Locking{Strength: clause.LockingStrengthUpdate, Options: clause.LockingOptionsSkipLocked}
)

// insert writes row unless it conflicts with a unique key, and reports whether it did.
func insert(db *gorm.DB, row any) (bool, error) {
	res := db.Clauses(doNothing).Create(row)
	if res.Error != nil {
		return false, dbError(res.Error)
	}
	return res.RowsAffected > 0, nil
}

// changed returns how many rows the statement res ran changed.
func changed(res *gorm.DB) (int64, error) {
	if res.Error != nil {
		return 0, dbError(res.Error)
	}
	return res.RowsAffected, nil
}

// update sets columns of the rows of model's table that the condition selects, and returns
// how many it changed.
func update(db *gorm.DB, model any, set map[string]any, cond string, args ...any) (int64, error) {
	return changed(db.Model(model).Where(cond, args...).Updates(set))
}

// exists reports whether model's table has a row whose column key equals value.
func exists(db *gorm.DB, model any, key string, value any) (bool, error) {
	var n int64
	if err := db.Model(model).Where(key+" = ?", value).Limit(1).Count(&n).Error; err != nil {
		return false, dbError(err)
	}
	return n > 0, nil
}

// lostUpdate explains why a conditional statement changed nothing: the row is gone
// (notFound), or it changed (changed).
func (t *tx) lostUpdate(ctx context.Context, model any, key, value string, notFound, changed error) error {
	ok, err := exists(t.q(ctx), model, key, value)
	switch {
	case err != nil:
		return err
	case ok:
		return changed
	}
	return notFound
}

func objectExists(format string, args ...any) error {
	return registry.NewError(registry.ReasonObjectExists, format, args...)
}

func (t *tx) CreateAgent(ctx context.Context, a registry.Agent) error {
	row, spki, err := agentToRow(a)
	if err != nil {
		return err
	}
	ok, err := insert(t.q(ctx), &row)
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
	n, err := changed(t.q(ctx).Clauses(doNothing).Create(&rows))
	if err != nil {
		return err
	}
	if n != int64(len(rows)) {
		return objectExists("a client certificate key of agent %q is pinned by another agent", agentID)
	}
	return nil
}

func (t *tx) UpdateAgent(ctx context.Context, a registry.Agent) error {
	row, spki, err := agentToRow(a)
	if err != nil {
		return err
	}
	n, err := update(t.q(ctx), &agentRow{}, map[string]any{
		"display_name":           row.DisplayName,
		"claims_endpoint":        row.ClaimsEndpoint,
		"issuer":                 row.Issuer,
		"account_key_jwk":        row.AccountKeyJWK,
		"account_key_thumbprint": row.AccountKeyThumbprint,
		"state":                  row.State,
		"client_cert_spki":       row.ClientCertSPKI,
		"update_time":            row.UpdateTime,
		"version":                row.Version,
		"link_generation":        row.LinkGeneration,
	}, "id = ? AND version = ?", row.ID, a.Version-1)
	if err != nil {
		return err
	}
	if n == 0 {
		return t.lostUpdate(ctx, &agentRow{}, "id", a.ID,
			notFound(registry.ReasonAgentNotFound, "agent %q not found", a.ID),
			concurrentUpdate("agent %q was changed concurrently", a.ID))
	}
	if _, err := changed(t.q(ctx).Where("agent_id = ?", a.ID).Delete(&certRow{})); err != nil {
		return err
	}
	return t.pinCerts(ctx, a.ID, spki)
}

func (t *tx) CreateCredential(ctx context.Context, c registry.Credential) error {
	row := credentialToRow(c)
	ok, err := insert(t.q(ctx), &row)
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
		return registry.NewError(registry.ReasonInvalidTime, "revoke time must be set")
	}
	n, err := update(t.q(ctx), &credentialRow{}, map[string]any{"revoke_time": dbTime(at)}, "id = ? AND revoke_time IS NULL", id)
	if err != nil || n > 0 {
		return err
	}
	return t.lostUpdate(ctx, &credentialRow{}, "id", id,
		notFound(registry.ReasonCredentialNotFound, "credential %q not found", id),
		registry.NewError(registry.ReasonCredentialAlreadyRevoked, "credential %q is revoked already", id))
}

// LockOperatorCredentials reads the operator credentials not revoked. On PostgreSQL it
// locks them: a second transaction waits for the first, and then reads each row again, so
// a credential the first revoked is no longer among those it gets. On SQLite the
// transaction holds the only write lock already.
func (t *tx) LockOperatorCredentials(ctx context.Context) ([]registry.Credential, error) {
	q := t.q(ctx).Where("agent_id IS NULL AND revoke_time IS NULL").Order("create_time, id").Clauses(forUpdate)
	return find(q, credentialRow.credential)
}

func (t *tx) CreateChallenge(ctx context.Context, c registry.Challenge) error {
	row, err := challengeToRow(c)
	if err != nil {
		return err
	}
	n, err := t.exec(ctx, sqlInsertChallenge, row.args()...)
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
	n, err := t.exec(ctx, sqlUpdateChallenge, r.Status, r.Attempts, r.Problem, r.ValidateTime, r.ExpireTime,
		c.ID, string(fromStatus), fromAttempts)
	if err != nil || n > 0 {
		return err
	}
	return t.lostUpdate(ctx, &challengeRow{}, "id", c.ID,
		notFound(registry.ReasonChallengeNotFound, "challenge %q not found", c.ID),
		concurrentUpdate("challenge %q was changed concurrently", c.ID))
}

func (t *tx) CreateIdentity(ctx context.Context, i registry.Identity) error {
	row := identityToRow(i)
	n, err := t.exec(ctx, sqlInsertIdentity, row.args()...)
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
		return registry.NewError(registry.ReasonInvalidTime, "retire time must be set")
	}
	n, err := update(t.q(ctx), &identityRow{}, map[string]any{"retire_time": dbTime(at)}, "id = ? AND retire_time IS NULL", id)
	if err != nil || n > 0 {
		return err
	}
	return t.lostUpdate(ctx, &identityRow{}, "id", id,
		notFound(registry.ReasonIdentityNotFound, "identity %q not found", id),
		registry.NewError(registry.ReasonIdentityRetired, "identity %q is retired already", id))
}

func (t *tx) CreateIdentifier(ctx context.Context, i registry.Identifier) error {
	row, err := identifierToRow(i)
	if err != nil {
		return err
	}
	n, err := t.exec(ctx, sqlInsertIdentifier, row.args()...)
	if err != nil || n > 0 {
		return err
	}
	// The name, the DNS name or the identity is taken; only the names are the caller's
	// business, and of another identifier with the DNS name only that it exists.
	taken, err := exists(t.q(ctx), &identifierRow{}, "name", i.Name)
	if err != nil {
		return err
	}
	if taken {
		return registry.NewError(registry.ReasonIdentifierTaken, "identifier %q is taken", i.Name)
	}
	if taken, err = exists(t.q(ctx), &identifierRow{}, "dns_name", row.DNSName); err != nil {
		return err
	}
	if taken {
		return registry.NewError(registry.ReasonIdentifierTaken,
			"identifier %q is taken: another identifier has its DNS name %s", i.Name, row.DNSName)
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
	n, err := update(t.q(ctx), &identifierRow{}, map[string]any{
		"unicode_name":    row.UnicodeName,
		"agent_id":        row.AgentID,
		"identity_id":     row.IdentityID,
		"claims_endpoint": row.ClaimsEndpoint,
		"statuses":        row.Statuses,
		"update_time":     row.UpdateTime,
		"delete_time":     row.DeleteTime,
		"purge_time":      row.PurgeTime,
		"version":         row.Version,
		"link_generation": row.LinkGeneration,
	}, "name = ? AND version = ?", row.Name, i.Version-1)
	if err != nil || n > 0 {
		return err
	}
	return t.lostUpdate(ctx, &identifierRow{}, "name", i.Name,
		notFound(registry.ReasonIdentifierNotFound, "identifier %q not found", i.Name),
		concurrentUpdate("identifier %q was changed concurrently", i.Name))
}

func (t *tx) DeleteIdentifier(ctx context.Context, name string, version int64) error {
	n, err := changed(t.q(ctx).Where("name = ? AND version = ?", name, version).Delete(&identifierRow{}))
	if err != nil || n > 0 {
		return err
	}
	return t.lostUpdate(ctx, &identifierRow{}, "name", name,
		notFound(registry.ReasonIdentifierNotFound, "identifier %q not found", name),
		concurrentUpdate("identifier %q was changed concurrently", name))
}

func (t *tx) AppendJournal(ctx context.Context, e registry.JournalEntry) (int64, error) {
	row := journalRow{
		Time:       dbTime(e.Time),
		Actor:      e.Actor,
		Action:     e.Action,
		ObjectType: e.ObjectType,
		ObjectID:   e.ObjectID,
		Before:     e.Before,
		After:      e.After,
	}
	var id int64
	if _, err := t.scanRow(ctx, []any{&id}, sqlInsertJournal, row.args()...); err != nil {
		return 0, dbError(err)
	}
	return id, nil
}

func (t *tx) SetOpenIDState(ctx context.Context, name, identityID string, st registry.OpenIDState) (bool, error) {
	if st.NextCheck.IsZero() {
		// openid_next_check is NOT NULL: every identifier is due for a check some time.
		return false, registry.NewError(registry.ReasonInvalidTime, "next check time must be set")
	}
	n, err := update(t.q(ctx), &identifierRow{}, map[string]any{
		"openid_status":          string(st.Status),
		"openid_record":          st.Record,
		"openid_issuer":          st.Issuer,
		"openid_claims_provider": st.ClaimsProvider,
		"openid_detail":          st.Detail,
		"openid_check_time":      dbTime(st.CheckTime),
		"openid_next_check":      dbTime(st.NextCheck),
	}, "name = ? AND identity_id = ?", name, identityID)
	return n > 0, err
}

func (t *tx) CreateTransfer(ctx context.Context, tr registry.Transfer) error {
	row := transferToRow(tr)
	// Either unique key may refuse the row: the ID, or transfers_pending.
	ok, err := insert(t.q(ctx), &row)
	if err != nil || ok {
		return err
	}
	taken, err := exists(t.q(ctx), &transferRow{}, "id", tr.ID)
	if err != nil {
		return err
	}
	if taken {
		return objectExists("transfer %q already exists", tr.ID)
	}
	return registry.NewError(registry.ReasonTransferPending, "a transfer of %q is pending already", tr.Identifier)
}

func (t *tx) UpdateTransfer(ctx context.Context, tr registry.Transfer, from registry.TransferStatus) error {
	n, err := update(t.q(ctx), &transferRow{}, map[string]any{"status": string(tr.Status), "act_time": dbTime(tr.ActTime)},
		"id = ? AND status = ?", tr.ID, string(from))
	if err != nil || n > 0 {
		return err
	}
	return t.lostUpdate(ctx, &transferRow{}, "id", tr.ID,
		notFound(registry.ReasonTransferNotFound, "transfer %q not found", tr.ID),
		concurrentUpdate("transfer %q was changed concurrently", tr.ID))
}

// nextEventID takes the agent's next event number. On PostgreSQL the upsert locks the
// agent's counter row until the transaction ends, so the transactions writing one agent's
// events run one after the other: each takes its number only once the one before it has
// committed (or rolled back, giving its number back), and so numbers become visible in
// order, without gaps. On SQLite write transactions never overlap anyway.
var nextEventID = []clause.Expression{
	clause.OnConflict{
		Columns:   []clause.Column{{Name: "agent_id"}},
		DoUpdates: clause.Set{{Column: clause.Column{Name: "last_id"}, Value: gorm.Expr("event_counters.last_id + 1")}},
	},
	clause.Returning{Columns: []clause.Column{{Name: "last_id"}}},
}

func (t *tx) AppendEvent(ctx context.Context, e registry.Event) (int64, error) {
	data, err := json.Marshal(e.Data)
	if err != nil {
		return 0, internal(fmt.Errorf("encoding event data: %w", err))
	}
	counter := eventCounterRow{AgentID: e.AgentID, LastID: 1}
	if err := t.q(ctx).Clauses(nextEventID...).Create(&counter).Error; err != nil {
		return 0, dbError(err)
	}
	row := eventRow{
		AgentID:    e.AgentID,
		ID:         counter.LastID,
		Type:       string(e.Type),
		Identifier: e.Identifier,
		Data:       string(data),
		CreateTime: dbTime(e.Time),
		AckTime:    dbTime(e.AckTime),
	}
	if err := t.q(ctx).Create(&row).Error; err != nil {
		return 0, dbError(err)
	}
	return row.ID, nil
}

func (t *tx) AckEvents(ctx context.Context, agentID string, ids []int64, at time.Time) (int, error) {
	if at.IsZero() {
		return 0, registry.NewError(registry.ReasonInvalidTime, "acknowledge time must be set")
	}
	if len(ids) == 0 {
		return 0, nil
	}
	n, err := update(t.q(ctx), &eventRow{}, map[string]any{"ack_time": dbTime(at)},
		"agent_id = ? AND id IN ? AND ack_time IS NULL", agentID, ids)
	return int(n), err
}

// The claims of background work read the due rows through an index ordered by due time
// (transfers_pending_act, identifiers_purge, identifiers_openid_next_check,
// challenges_expire, events_acked) and stop at the limit. On PostgreSQL they lock the rows
// and skip those another transaction holds; on SQLite the transaction holds the only write
// lock already.

// dueTransfers selects the pending transfers due at now. On PostgreSQL a due transfer is
// claimed with its identifier: the lifecycle calls lock the identifier and then the
// transfer, and a sweep that locked the transfer alone and then waited for the identifier
// could deadlock with them. Skipping either row when it is locked, the sweep never waits,
// and the identifier it reads next cannot change under it.
func dueTransfers(db *gorm.DB, d dialect, now time.Time, limit int) *gorm.DB {
	q := db.Model(&transferRow{}).Where(isPending+" AND act_time <= ?", dbTime(now)).Order("act_time").Limit(limit)
	if d.rowLocks() {
		q = q.Joins("JOIN identifiers ON identifiers.name = transfers.identifier").Clauses(clause.Locking{
			Strength: clause.LockingStrengthUpdate,
			// gorm's Locking names one table; the two are written out.
			Table:   clause.Table{Name: "transfers, identifiers", Raw: true},
			Options: clause.LockingOptionsSkipLocked,
		})
	}
	return q
}

// duePurges selects the identifiers pending delete whose purge time has come.
func duePurges(db *gorm.DB, now time.Time, limit int) *gorm.DB {
	return db.Model(&identifierRow{}).Where("purge_time IS NOT NULL AND purge_time <= ?", dbTime(now)).
		Order("purge_time").Limit(limit).Clauses(skipLocked)
}

// dueOpenIDChecks selects the identifiers whose next _openid check is due.
func dueOpenIDChecks(db *gorm.DB, now time.Time, limit int) *gorm.DB {
	return db.Model(&identifierRow{}).Where("openid_next_check <= ?", dbTime(now)).
		Order("openid_next_check").Limit(limit).Clauses(skipLocked)
}

// deleteExpiredChallenges deletes up to limit challenges that expired before a time.
func deleteExpiredChallenges(db *gorm.DB, before time.Time, limit int) *gorm.DB {
	expired := db.Model(&challengeRow{}).Select("id").
		Where("expire_time < ?", dbTime(before)).Order("expire_time").Limit(limit).Clauses(skipLocked)
	return db.Where("id IN (?)", expired).Delete(&challengeRow{})
}

// deleteAckedEvents deletes up to limit events acknowledged before a time.
func deleteAckedEvents(db *gorm.DB, before time.Time, limit int) *gorm.DB {
	acked := db.Model(&eventRow{}).Select("agent_id, id").
		Where("ack_time IS NOT NULL AND ack_time < ?", dbTime(before)).Order("ack_time").Limit(limit).Clauses(skipLocked)
	return db.Where("(agent_id, id) IN (?)", acked).Delete(&eventRow{})
}

func (t *tx) ClaimDueTransfers(ctx context.Context, now time.Time, limit int) ([]registry.Transfer, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	return find(dueTransfers(t.q(ctx), t.d, now, limit), transferRow.transfer)
}

func (t *tx) ClaimDuePurges(ctx context.Context, now time.Time, limit int) ([]registry.Identifier, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	return find(duePurges(t.q(ctx), now, limit), identifierRow.identifier)
}

func (t *tx) ClaimOpenIDChecks(ctx context.Context, now, leaseUntil time.Time, limit int) ([]registry.Identifier, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	if leaseUntil.IsZero() {
		return nil, registry.NewError(registry.ReasonInvalidTime, "lease end must be set")
	}
	var rows []identifierRow
	if err := dueOpenIDChecks(t.q(ctx), now, limit).Find(&rows).Error; err != nil {
		return nil, dbError(err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	names := make([]string, len(rows))
	for i, row := range rows {
		names[i] = row.Name
	}
	if _, err := update(t.q(ctx), &identifierRow{}, map[string]any{"openid_next_check": dbTime(leaseUntil)}, "name IN ?", names); err != nil {
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
	n, err := changed(deleteAckedEvents(t.q(ctx), before, limit))
	return int(n), err
}

func (t *tx) DeleteExpiredChallenges(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := checkLimit(limit); err != nil {
		return 0, err
	}
	n, err := changed(deleteExpiredChallenges(t.q(ctx), before, limit))
	return int(n), err
}
