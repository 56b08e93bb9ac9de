package gormstore

import (
	"context"
	"errors"

	"gorm.io/gorm"

	"github.com/id4me/id4me-registry/registry"
)

// reader reads through db: the connection pool for Store, the transaction for tx.
type reader struct {
	db *gorm.DB
}

var _ registry.Reader = reader{}

func (r reader) q(ctx context.Context) *gorm.DB { return r.db.WithContext(ctx) }

// take reads one row into dst; a missing row is a not-found error with reason.
func (r reader) take(ctx context.Context, dst any, reason, what, key string, query string, args ...any) error {
	err := r.q(ctx).Where(query, args...).Take(dst).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return notFound(reason, "%s %q not found", what, key)
	}
	return dbError(err)
}

func checkLimit(limit int) error {
	if limit <= 0 {
		return registry.Errorf(registry.KindInvalidArgument, "INVALID_PAGE_SIZE", "page size must be positive, not %d", limit)
	}
	return nil
}

func (r reader) GetAgent(ctx context.Context, id string) (registry.Agent, error) {
	var row agentRow
	if err := r.take(ctx, &row, "AGENT_NOT_FOUND", "agent", id, "id = ?", id); err != nil {
		return registry.Agent{}, err
	}
	return r.withCerts(ctx, row)
}

func (r reader) withCerts(ctx context.Context, row agentRow) (registry.Agent, error) {
	var spki []string
	err := r.q(ctx).Model(&certRow{}).Where("agent_id = ?", row.ID).Order("spki_sha256").Pluck("spki_sha256", &spki).Error
	if err != nil {
		return registry.Agent{}, dbError(err)
	}
	if len(spki) == 0 {
		spki = nil
	}
	return row.agent(spki), nil
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
	ids := make([]string, len(rows))
	for i, row := range rows {
		ids[i] = row.ID
	}
	var certs []certRow
	if err := r.q(ctx).Where("agent_id IN ?", ids).Order("spki_sha256").Find(&certs).Error; err != nil {
		return nil, dbError(err)
	}
	byAgent := make(map[string][]string)
	for _, c := range certs {
		byAgent[c.AgentID] = append(byAgent[c.AgentID], c.SPKISHA256)
	}
	out := make([]registry.Agent, len(rows))
	for i, row := range rows {
		out[i] = row.agent(byAgent[row.ID])
	}
	return out, nil
}

func (r reader) FindAgentByCertSPKI(ctx context.Context, spkiHex string) (registry.Agent, error) {
	var row agentRow
	err := r.q(ctx).Where("id = (SELECT agent_id FROM agent_client_certs WHERE spki_sha256 = ?)", spkiHex).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return registry.Agent{}, notFound("AGENT_NOT_FOUND", "no agent pinned client certificate key %q", spkiHex)
	}
	if err != nil {
		return registry.Agent{}, dbError(err)
	}
	return r.withCerts(ctx, row)
}

func (r reader) GetCredential(ctx context.Context, id string) (registry.Credential, error) {
	var row credentialRow
	if err := r.take(ctx, &row, "CREDENTIAL_NOT_FOUND", "credential", id, "id = ?", id); err != nil {
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
	if err := r.take(ctx, &row, "CHALLENGE_NOT_FOUND", "challenge", id, "id = ?", id); err != nil {
		return registry.Challenge{}, err
	}
	return row.challenge()
}

func (r reader) GetIdentity(ctx context.Context, id string) (registry.Identity, error) {
	var row identityRow
	if err := r.take(ctx, &row, "IDENTITY_NOT_FOUND", "identity", id, "id = ?", id); err != nil {
		return registry.Identity{}, err
	}
	return row.identity(), nil
}

func (r reader) GetIdentifier(ctx context.Context, name string) (registry.Identifier, error) {
	var row identifierRow
	if err := r.take(ctx, &row, "IDENTIFIER_NOT_FOUND", "identifier", name, "name = ?", name); err != nil {
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
