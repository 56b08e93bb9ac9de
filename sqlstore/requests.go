package sqlstore

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/id4me/id4me-registry/registry"
)

// The outcomes of calls made with a request_id (migration 00006). A retry reads one and a
// registration or transfer with a request_id writes one.

type requestOutcomeRow struct {
	AgentID     string `gorm:"primaryKey"`
	RequestID   string `gorm:"primaryKey"`
	Method      string
	RequestHash string
	Resource    string
	IdentityID  string
	CreateTime  dbTime
}

func (requestOutcomeRow) TableName() string { return "request_outcomes" }

func (r reader) GetRequestOutcome(ctx context.Context, agentID, requestID string) (registry.RequestOutcome, error) {
	var row requestOutcomeRow
	err := take(r.q(ctx).Where("agent_id = ? AND request_id = ?", agentID, requestID), &row,
		registry.ReasonRequestOutcomeNotFound, "agent %q made no call with request_id %q", agentID, requestID)
	if err != nil {
		return registry.RequestOutcome{}, err
	}
	return registry.RequestOutcome{
		AgentID: row.AgentID, RequestID: row.RequestID, Method: registry.RequestMethod(row.Method),
		RequestHash: row.RequestHash, Resource: row.Resource, IdentityID: row.IdentityID,
		CreateTime: time.Time(row.CreateTime),
	}, nil
}

func (t *tx) CreateRequestOutcome(ctx context.Context, o registry.RequestOutcome) error {
	if o.CreateTime.IsZero() {
		return registry.NewError(registry.ReasonInvalidTime, "create time must be set")
	}
	ok, err := insert(t.q(ctx), &requestOutcomeRow{
		AgentID: o.AgentID, RequestID: o.RequestID, Method: string(o.Method), RequestHash: o.RequestHash,
		Resource: o.Resource, IdentityID: o.IdentityID, CreateTime: dbTime(o.CreateTime),
	})
	if err != nil {
		return err
	}
	if !ok {
		return objectExists("agent %q made a call with request_id %q already", o.AgentID, o.RequestID)
	}
	return nil
}

// deleteRequestOutcomes deletes up to limit outcomes made before a time, the oldest first,
// through request_outcomes_create.
func deleteRequestOutcomes(db *gorm.DB, before time.Time, limit int) *gorm.DB {
	old := db.Model(&requestOutcomeRow{}).Select("agent_id, request_id").
		Where("create_time < ?", dbTime(before)).Order("create_time").Limit(limit).Clauses(skipLocked)
	return db.Where("(agent_id, request_id) IN (?)", old).Delete(&requestOutcomeRow{})
}

func (t *tx) DeleteRequestOutcomes(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := checkLimit(limit); err != nil {
		return 0, err
	}
	n, err := changed(deleteRequestOutcomes(t.q(ctx), before, limit))
	return int(n), err
}
