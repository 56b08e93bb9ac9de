-- The full lifecycle: delete with a redemption period, transfers between agents, per-agent
-- event queues, and the stored outcome of the periodic _openid record check.

-- +goose Up
-- While pending delete: when the identifier was deleted and when it is purged.
ALTER TABLE identifiers ADD COLUMN delete_time timestamptz;
ALTER TABLE identifiers ADD COLUMN purge_time timestamptz;
-- The last _openid check (status '' until the first) and when the next one is due.
ALTER TABLE identifiers ADD COLUMN openid_status text NOT NULL DEFAULT '';
ALTER TABLE identifiers ADD COLUMN openid_record text NOT NULL DEFAULT '';
ALTER TABLE identifiers ADD COLUMN openid_issuer text NOT NULL DEFAULT '';
ALTER TABLE identifiers ADD COLUMN openid_claims_provider text NOT NULL DEFAULT '';
ALTER TABLE identifiers ADD COLUMN openid_detail text NOT NULL DEFAULT '';
ALTER TABLE identifiers ADD COLUMN openid_check_time timestamptz;
ALTER TABLE identifiers ADD COLUMN openid_next_check timestamptz;
UPDATE identifiers SET openid_next_check = create_time;
ALTER TABLE identifiers ALTER COLUMN openid_next_check SET NOT NULL;
-- The purge sweep reads only identifiers pending delete.
CREATE INDEX identifiers_purge ON identifiers (purge_time) WHERE purge_time IS NOT NULL;
-- The _openid checker reads the identifiers due first.
CREATE INDEX identifiers_openid_next_check ON identifiers (openid_next_check);

-- A transfer challenge names the agent that sponsored the identifier when it was made: the
-- transfer is refused if the sponsor changed since. '' for a register challenge.
ALTER TABLE challenges ADD COLUMN sponsor_agent_id text NOT NULL DEFAULT '';

-- Transfer ids sort in request order.
CREATE TABLE transfers (
    id               text        NOT NULL PRIMARY KEY,
    identifier       text        NOT NULL,
    gaining_agent_id text        NOT NULL REFERENCES agents (id),
    losing_agent_id  text        NOT NULL REFERENCES agents (id),
    challenge_id     text        NOT NULL,
    status           text        NOT NULL,
    request_time     timestamptz NOT NULL,
    act_time         timestamptz NOT NULL
);
-- At most one pending transfer per identifier.
CREATE UNIQUE INDEX transfers_pending ON transfers (identifier) WHERE status = 'pending';
-- The auto-approval sweep reads only pending transfers, the due first.
CREATE INDEX transfers_pending_act ON transfers (act_time) WHERE status = 'pending';
CREATE INDEX transfers_gaining ON transfers (gaining_agent_id, id);
CREATE INDEX transfers_losing ON transfers (losing_agent_id, id);

-- Each agent's events are numbered 1, 2, 3, ...: event_counters holds the last number, and
-- the row lock taken to increment it orders the transactions that write an agent's events,
-- so they commit (and become visible) in number order.
CREATE TABLE event_counters (
    agent_id text   NOT NULL PRIMARY KEY REFERENCES agents (id),
    last_id  bigint NOT NULL
);

CREATE TABLE events (
    agent_id    text        NOT NULL REFERENCES agents (id),
    id          bigint      NOT NULL,
    type        text        NOT NULL,
    identifier  text        NOT NULL,
    data        text        NOT NULL,
    create_time timestamptz NOT NULL,
    ack_time    timestamptz,
    PRIMARY KEY (agent_id, id)
);
-- An agent's unacknowledged events.
CREATE INDEX events_unacked ON events (agent_id, id) WHERE ack_time IS NULL;
-- Deleting acknowledged events once they are old enough.
CREATE INDEX events_acked ON events (ack_time) WHERE ack_time IS NOT NULL;

-- +goose Down
DROP TABLE events;
DROP TABLE event_counters;
DROP TABLE transfers;
ALTER TABLE challenges DROP COLUMN sponsor_agent_id;
DROP INDEX identifiers_openid_next_check;
DROP INDEX identifiers_purge;
ALTER TABLE identifiers DROP COLUMN openid_next_check;
ALTER TABLE identifiers DROP COLUMN openid_check_time;
ALTER TABLE identifiers DROP COLUMN openid_detail;
ALTER TABLE identifiers DROP COLUMN openid_claims_provider;
ALTER TABLE identifiers DROP COLUMN openid_issuer;
ALTER TABLE identifiers DROP COLUMN openid_record;
ALTER TABLE identifiers DROP COLUMN openid_status;
ALTER TABLE identifiers DROP COLUMN purge_time;
ALTER TABLE identifiers DROP COLUMN delete_time;
