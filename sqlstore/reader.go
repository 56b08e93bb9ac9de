package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"gorm.io/gorm"

	"github.com/id4me/id4me-registry/registry"
)

// reader reads through db and c: the connection pool for Store, the transaction for tx.
type reader struct {
	db *gorm.DB
	// c runs the store's own statements (statements.go).
	c        conn
	postgres bool
}

var _ registry.Reader = reader{}

func (r reader) q(ctx context.Context) *gorm.DB { return r.db.WithContext(ctx) }

func checkLimit(limit int) error {
	if limit <= 0 {
		return registry.Errorf(registry.KindInvalidArgument, "INVALID_PAGE_SIZE", "page size must be positive, not %d", limit)
	}
	return nil
}

func (r reader) GetAgent(ctx context.Context, id string) (registry.Agent, error) {
	var row agentRow
	if err := r.get(ctx, sqlGetAgent, id, row.dest(), "AGENT_NOT_FOUND", "agent"); err != nil {
		return registry.Agent{}, err
	}
	return row.agent(), nil
}

func (r reader) ListAgents(ctx context.Context, afterID string, limit int) ([]registry.Agent, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	var rows []agentRow
	if err := r.q(ctx).Where("id > ?", afterID).Order("id").Limit(limit).Find(&rows).Error; err != nil {
		return nil, dbError(err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	out := make([]registry.Agent, len(rows))
	for i, row := range rows {
		out[i] = row.agent()
	}
	return out, nil
}

func (r reader) FindAgentByCertSPKI(ctx context.Context, spkiHex string) (registry.Agent, error) {
	var row agentRow
	err := r.c.QueryRowContext(ctx, r.sql(sqlFindAgentByCertSPKI), spkiHex).Scan(row.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return registry.Agent{}, notFound("AGENT_NOT_FOUND", "no agent pinned client certificate key %q", spkiHex)
	}
	if err != nil {
		return registry.Agent{}, dbError(err)
	}
	return row.agent(), nil
}

func (r reader) GetCredential(ctx context.Context, id string) (registry.Credential, error) {
	var row credentialRow
	if err := r.get(ctx, sqlGetCredential, id, row.dest(), "CREDENTIAL_NOT_FOUND", "credential"); err != nil {
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
	var rows []credentialRow
	if err := q.Order("create_time, id").Find(&rows).Error; err != nil {
		return nil, dbError(err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	out := make([]registry.Credential, len(rows))
	for i, row := range rows {
		out[i] = row.credential()
	}
	return out, nil
}

func (r reader) GetChallenge(ctx context.Context, id string) (registry.Challenge, error) {
	var row challengeRow
	if err := r.get(ctx, sqlGetChallenge, id, row.dest(), "CHALLENGE_NOT_FOUND", "challenge"); err != nil {
		return registry.Challenge{}, err
	}
	return row.challenge()
}

func (r reader) GetIdentity(ctx context.Context, id string) (registry.Identity, error) {
	var row identityRow
	if err := r.get(ctx, sqlGetIdentity, id, row.dest(), "IDENTITY_NOT_FOUND", "identity"); err != nil {
		return registry.Identity{}, err
	}
	return row.identity(), nil
}

func (r reader) GetIdentifier(ctx context.Context, name string) (registry.Identifier, error) {
	var row identifierRow
	if err := r.get(ctx, sqlGetIdentifier, name, row.dest(), "IDENTIFIER_NOT_FOUND", "identifier"); err != nil {
		return registry.Identifier{}, err
	}
	return row.identifier(), nil
}

func (r reader) GetIdentifierByDNSName(ctx context.Context, dnsName string) (registry.Identifier, error) {
	var row identifierRow
	if err := r.get(ctx, sqlGetIdentifierByDNSName, dnsName, row.dest(), "IDENTIFIER_NOT_FOUND", "identifier with the DNS name"); err != nil {
		return registry.Identifier{}, err
	}
	return row.identifier(), nil
}

func (r reader) ListIdentifiers(ctx context.Context, agentID, afterName string, limit int) ([]registry.Identifier, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	var rows []identifierRow
	err := r.q(ctx).Where("agent_id = ? AND name > ?", agentID, afterName).Order("name").Limit(limit).Find(&rows).Error
	if err != nil {
		return nil, dbError(err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	out := make([]registry.Identifier, len(rows))
	for i, row := range rows {
		out[i] = row.identifier()
	}
	return out, nil
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
	var rows []journalRow
	if err := q.Order("id").Limit(limit).Find(&rows).Error; err != nil {
		return nil, dbError(err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	out := make([]registry.JournalEntry, len(rows))
	for i, row := range rows {
		out[i] = row.entry()
	}
	return out, nil
}

func (r reader) GetTransfer(ctx context.Context, id string) (registry.Transfer, error) {
	var row transferRow
	if err := r.get(ctx, sqlGetTransfer, id, row.dest(), "TRANSFER_NOT_FOUND", "transfer"); err != nil {
		return registry.Transfer{}, err
	}
	return row.transfer(), nil
}

func (r reader) PendingTransfer(ctx context.Context, identifier string) (registry.Transfer, error) {
	var row transferRow
	if err := r.get(ctx, sqlPendingTransfer, identifier, row.dest(), "TRANSFER_NOT_FOUND", "pending transfer of identifier"); err != nil {
		return registry.Transfer{}, err
	}
	return row.transfer(), nil
}

// ListTransfers lists the transfers of every agent when f.AgentID is empty.
func (r reader) ListTransfers(ctx context.Context, f registry.TransferFilter, afterID string, limit int) ([]registry.Transfer, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	var (
		rows []transferRow
		err  error
	)
	if f.AgentID != "" && f.Direction == registry.TransferBoth {
		pending := 0
		if f.PendingOnly {
			pending = 1
		}
		rows, err = queryRows(ctx, r, sqlListTransfersBoth[pending], (*transferRow).dest,
			f.AgentID, afterID, limit, f.AgentID, afterID, limit, limit)
	} else {
		rows, err = r.listTransfersOneWay(ctx, f, afterID, limit)
	}
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	out := make([]registry.Transfer, len(rows))
	for i, row := range rows {
		out[i] = row.transfer()
	}
	return out, nil
}

// listTransfersOneWay lists the transfers an agent gains or loses by, reading the index of
// that side (transfers_gaining or transfers_losing, ordered by ID), or every agent's.
func (r reader) listTransfersOneWay(ctx context.Context, f registry.TransferFilter, afterID string, limit int) ([]transferRow, error) {
	q := r.q(ctx).Where("id > ?", afterID)
	if f.AgentID != "" {
		switch f.Direction {
		case registry.TransferIn:
			q = q.Where("gaining_agent_id = ?", f.AgentID)
		case registry.TransferOut:
			q = q.Where("losing_agent_id = ?", f.AgentID)
		default:
			return nil, registry.Errorf(registry.KindInvalidArgument, "INVALID_DIRECTION", "unknown transfer direction %d", f.Direction)
		}
	}
	if f.PendingOnly {
		q = q.Where(pendingTransfer)
	}
	var rows []transferRow
	if err := q.Order("id").Limit(limit).Find(&rows).Error; err != nil {
		return nil, dbError(err)
	}
	return rows, nil
}

func (r reader) LastEventID(ctx context.Context, agentID string) (int64, error) {
	var ids []int64
	if err := r.q(ctx).Raw("SELECT last_id FROM event_counters WHERE agent_id = ?", agentID).Scan(&ids).Error; err != nil {
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
