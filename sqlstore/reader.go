package sqlstore

import (
	"context"
	"errors"

	"gorm.io/gorm"

	"github.com/id4me/id4me-registry/registry"
)

// reader reads through db: the store's handle for Store, the transaction's for tx.
type reader struct {
	db *gorm.DB
	d  dialect
	// statements is the store's count of statements (Store.Statements).
	statements *statementCount
}

var _ registry.Reader = reader{}

// q starts a statement.
func (r reader) q(ctx context.Context) *gorm.DB { return r.db.WithContext(ctx) }

func checkLimit(limit int) error {
	if limit <= 0 {
		return registry.NewError(registry.ReasonInvalidPageSize, "page size must be positive, not %d", limit)
	}
	return nil
}

// take reads the one row q selects into row; no row is a not-found error with reason.
func take(q *gorm.DB, row any, reason registry.Reason, format string, args ...any) error {
	err := q.Take(row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return notFound(reason, format, args...)
	}
	return dbError(err)
}

// get reads the one row of the SELECT q, written out (handsql.go), whose one argument is
// key, into dest; no row is a not-found error with reason, format naming the key.
func (r reader) get(ctx context.Context, dest []any, q handStmt, key string, reason registry.Reason, format string) error {
	ok, err := r.scanRow(ctx, dest, q, key)
	if err != nil {
		return dbError(err)
	}
	if !ok {
		return notFound(reason, format, key)
	}
	return nil
}

// find reads the rows q selects and converts each with conv.
func find[R, T any](q *gorm.DB, conv func(R) T) ([]T, error) {
	var rows []R
	if err := q.Find(&rows).Error; err != nil {
		return nil, dbError(err)
	}
	return convert(rows, conv), nil
}

// convert converts each of rows with conv; no rows is nil.
func convert[R, T any](rows []R, conv func(R) T) []T {
	if len(rows) == 0 {
		return nil
	}
	out := make([]T, len(rows))
	for i, row := range rows {
		out[i] = conv(row)
	}
	return out
}

func (r reader) GetAgent(ctx context.Context, id string) (registry.Agent, error) {
	var row agentRow
	if err := r.get(ctx, row.dest(), sqlGetAgent, id, registry.ReasonAgentNotFound, "agent %q not found"); err != nil {
		return registry.Agent{}, err
	}
	return row.agent(), nil
}

func (r reader) ListAgents(ctx context.Context, afterID string, limit int) ([]registry.Agent, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	return find(r.q(ctx).Where("id > ?", afterID).Order("id").Limit(limit), agentRow.agent)
}

func (r reader) FindAgentByCertSPKI(ctx context.Context, spkiHex string) (registry.Agent, error) {
	pinned := r.q(ctx).Model(&certRow{}).Select("agent_id").Where("spki_sha256 = ?", spkiHex)
	var row agentRow
	err := take(r.q(ctx).Where("id = (?)", pinned), &row, registry.ReasonAgentNotFound, "no agent pinned client certificate key %q", spkiHex)
	if err != nil {
		return registry.Agent{}, err
	}
	return row.agent(), nil
}

func (r reader) GetCredential(ctx context.Context, id string) (registry.Credential, error) {
	var row credentialRow
	if err := take(r.q(ctx).Where("id = ?", id), &row, registry.ReasonCredentialNotFound, "credential %q not found", id); err != nil {
		return registry.Credential{}, err
	}
	return row.credential(), nil
}

func (r reader) ListCredentials(ctx context.Context, agentID string) ([]registry.Credential, error) {
	q := r.q(ctx)
	if agentID == "" {
		q = q.Where("agent_id IS NULL")
	} else {
		q = q.Where("agent_id = ?", agentID)
	}
	return find(q.Order("create_time, id"), credentialRow.credential)
}

func (r reader) GetChallenge(ctx context.Context, id string) (registry.Challenge, error) {
	var row challengeRow
	if err := r.get(ctx, row.dest(), sqlGetChallenge, id, registry.ReasonChallengeNotFound, "challenge %q not found"); err != nil {
		return registry.Challenge{}, err
	}
	return row.challenge()
}

func (r reader) GetIdentity(ctx context.Context, id string) (registry.Identity, error) {
	var row identityRow
	if err := r.get(ctx, row.dest(), sqlGetIdentity, id, registry.ReasonIdentityNotFound, "identity %q not found"); err != nil {
		return registry.Identity{}, err
	}
	return row.identity(), nil
}

func (r reader) GetIdentifier(ctx context.Context, name string) (registry.Identifier, error) {
	var row identifierRow
	if err := r.get(ctx, row.dest(), sqlGetIdentifier, name, registry.ReasonIdentifierNotFound, "identifier %q not found"); err != nil {
		return registry.Identifier{}, err
	}
	return row.identifier(), nil
}

func (r reader) GetIdentifierByDNSName(ctx context.Context, dnsName string) (registry.Identifier, error) {
	var row identifierRow
	err := r.get(ctx, row.dest(), sqlGetIdentifierByDNSName, dnsName, registry.ReasonIdentifierNotFound, "identifier with the DNS name %q not found")
	if err != nil {
		return registry.Identifier{}, err
	}
	return row.identifier(), nil
}

func (r reader) ListIdentifiers(ctx context.Context, agentID, afterName string, limit int) ([]registry.Identifier, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	return find(r.q(ctx).Where("agent_id = ? AND name > ?", agentID, afterName).Order("name").Limit(limit), identifierRow.identifier)
}

func (r reader) ListJournal(ctx context.Context, f registry.JournalFilter, afterID int64, limit int) ([]registry.JournalEntry, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	q := r.q(ctx).Where("id > ?", afterID)
	if f.ObjectType != "" {
		q = q.Where("object_type = ?", f.ObjectType)
	}
	if f.ObjectID != "" {
		q = q.Where("object_id = ?", f.ObjectID)
	}
	return find(q.Order("id").Limit(limit), journalRow.entry)
}

// LatestJournal reads the index journal_object backwards when f names an object.
func (r reader) LatestJournal(ctx context.Context, f registry.JournalFilter, limit int) ([]registry.JournalEntry, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	q := r.q(ctx)
	if f.ObjectType != "" {
		q = q.Where("object_type = ?", f.ObjectType)
	}
	if f.ObjectID != "" {
		q = q.Where("object_id = ?", f.ObjectID)
	}
	return find(q.Order("id DESC").Limit(limit), journalRow.entry)
}

func (r reader) GetTransfer(ctx context.Context, id string) (registry.Transfer, error) {
	var row transferRow
	if err := take(r.q(ctx).Where("id = ?", id), &row, registry.ReasonTransferNotFound, "transfer %q not found", id); err != nil {
		return registry.Transfer{}, err
	}
	return row.transfer(), nil
}

func (r reader) PendingTransfer(ctx context.Context, identifier string) (registry.Transfer, error) {
	var row transferRow
	err := take(pendingTransfer(r.q(ctx), identifier), &row, registry.ReasonTransferNotFound, "pending transfer of identifier %q not found", identifier)
	if err != nil {
		return registry.Transfer{}, err
	}
	return row.transfer(), nil
}

// isPending is the condition of the partial indexes transfers_pending and
// transfers_pending_act. It is written out, not bound: a planner uses a partial index only for
// a query whose condition implies the index's, which a parameter does not.
const isPending = "status = 'pending'"

// pendingTransfer selects the pending transfer of an identifier, through transfers_pending.
func pendingTransfer(db *gorm.DB, identifier string) *gorm.DB {
	return db.Model(&transferRow{}).Where("identifier = ? AND "+isPending, identifier)
}

// ListTransfers lists the transfers of every agent when f.AgentID is empty.
func (r reader) ListTransfers(ctx context.Context, f registry.TransferFilter, afterID string, limit int) ([]registry.Transfer, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	var rows []transferRow
	if f.AgentID != "" && f.Direction == registry.TransferBoth {
		err := transfersBothWays(r.q(ctx), f.AgentID, afterID, f.PendingOnly, limit).Scan(&rows).Error
		if err != nil {
			return nil, dbError(err)
		}
		return convert(rows, transferRow.transfer), nil
	}
	q := r.q(ctx).Where("id > ?", afterID)
	if f.AgentID != "" {
		// The index of that side, transfers_gaining or transfers_losing, ordered by ID.
		switch f.Direction {
		case registry.TransferIn:
			q = q.Where("gaining_agent_id = ?", f.AgentID)
		case registry.TransferOut:
			q = q.Where("losing_agent_id = ?", f.AgentID)
		default:
			return nil, registry.NewError(registry.ReasonInvalidDirection, "unknown transfer direction %d", f.Direction)
		}
	}
	if f.PendingOnly {
		q = q.Where(isPending)
	}
	return find(q.Order("id").Limit(limit), transferRow.transfer)
}

// transfersBothWays selects an agent's transfers in both directions: the first of each
// index (transfers_gaining, transfers_losing), merged, so that a page costs the same
// wherever it starts. gorm builds the two arms; it has no UNION, so the frame is written out.
func transfersBothWays(db *gorm.DB, agentID, afterID string, pendingOnly bool, limit int) *gorm.DB {
	arm := func(side string) *gorm.DB {
		q := db.Model(&transferRow{}).Where(side+"_agent_id = ? AND id > ?", agentID, afterID)
		if pendingOnly {
			q = q.Where(isPending)
		}
		return q.Order("id").Limit(limit)
	}
	return db.Raw("SELECT * FROM (?) AS gaining UNION SELECT * FROM (?) AS losing ORDER BY id LIMIT ?",
		arm("gaining"), arm("losing"), limit)
}

func (r reader) LastEventID(ctx context.Context, agentID string) (int64, error) {
	var ids []int64
	if err := r.q(ctx).Model(&eventCounterRow{}).Where("agent_id = ?", agentID).Pluck("last_id", &ids).Error; err != nil {
		return 0, dbError(err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	return ids[0], nil
}

func (r reader) ListEvents(ctx context.Context, agentID string, afterID int64, unackedOnly bool, limit int) ([]registry.Event, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	q := r.q(ctx).Where("agent_id = ? AND id > ?", agentID, afterID)
	if unackedOnly {
		// Written out, so that the planner may read the partial index events_unacked.
		q = q.Where("ack_time IS NULL")
	}
	var rows []eventRow
	if err := q.Order("id").Limit(limit).Find(&rows).Error; err != nil {
		return nil, dbError(err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	out := make([]registry.Event, len(rows))
	for i, row := range rows {
		e, err := row.event()
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}
