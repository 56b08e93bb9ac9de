package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/id4me/id4me-registry/registry"
)

// The outcomes of calls made with a request_id (migration 00006). A retry reads one and a
// registration or transfer with a request_id writes one, so both are fixed statements.

const requestOutcomeColumns = "agent_id, request_id, method, request_hash, resource, identity_id, create_time"

var (
	sqlGetRequestOutcome    = newSQL("SELECT " + requestOutcomeColumns + " FROM request_outcomes WHERE agent_id = ? AND request_id = ?")
	sqlInsertRequestOutcome = newSQL("INSERT INTO request_outcomes (" + requestOutcomeColumns + ") VALUES (" +
		placeholders(7) + ") ON CONFLICT DO NOTHING")
	// Through request_outcomes_create, the oldest first.
	sqlDeleteRequestOutcomes = sqlText{
		sqlite: "DELETE FROM request_outcomes WHERE (agent_id, request_id) IN " +
			"(SELECT agent_id, request_id FROM request_outcomes WHERE create_time < ? ORDER BY create_time LIMIT ?)",
		postgres: newSQL("DELETE FROM request_outcomes WHERE (agent_id, request_id) IN " +
			"(SELECT agent_id, request_id FROM request_outcomes WHERE create_time < ? ORDER BY create_time LIMIT ? FOR UPDATE SKIP LOCKED)").postgres,
	}
)

type requestOutcomeRow struct {
	AgentID, RequestID, Method, RequestHash, Resource, IdentityID string
	CreateTime                                                    dbTime
}

func (r *requestOutcomeRow) dest() []any {
	return []any{&r.AgentID, &r.RequestID, &r.Method, &r.RequestHash, &r.Resource, &r.IdentityID, &r.CreateTime}
}

func (r reader) GetRequestOutcome(ctx context.Context, agentID, requestID string) (registry.RequestOutcome, error) {
	var row requestOutcomeRow
	err := r.c.QueryRowContext(ctx, r.sql(sqlGetRequestOutcome), agentID, requestID).Scan(row.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return registry.RequestOutcome{}, notFound("REQUEST_OUTCOME_NOT_FOUND", "agent %q made no call with request_id %q", agentID, requestID)
	}
	if err != nil {
		return registry.RequestOutcome{}, dbError(err)
	}
	return registry.RequestOutcome{
		AgentID: row.AgentID, RequestID: row.RequestID, Method: registry.RequestMethod(row.Method),
		RequestHash: row.RequestHash, Resource: row.Resource, IdentityID: row.IdentityID,
		CreateTime: time.Time(row.CreateTime),
	}, nil
}

func (t *tx) CreateRequestOutcome(ctx context.Context, o registry.RequestOutcome) error {
	if o.CreateTime.IsZero() {
		return registry.Errorf(registry.KindInvalidArgument, "INVALID_TIME", "create time must be set")
	}
	n, err := t.execSQL(ctx, sqlInsertRequestOutcome, o.AgentID, o.RequestID, string(o.Method), o.RequestHash,
		o.Resource, o.IdentityID, t.time(dbTime(o.CreateTime)))
	if err != nil {
		return err
	}
	if n == 0 {
		return objectExists("agent %q made a call with request_id %q already", o.AgentID, o.RequestID)
	}
	return nil
}

func (t *tx) DeleteRequestOutcomes(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := checkLimit(limit); err != nil {
		return 0, err
	}
	n, err := t.execSQL(ctx, sqlDeleteRequestOutcomes, t.time(dbTime(before)), limit)
	return int(n), err
}
