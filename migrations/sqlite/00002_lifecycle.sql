-- The full lifecycle: delete with a redemption period, transfers between agents, per-agent
-- event queues, and the stored outcome of the periodic _openid record check.

-- +goose Up
-- While pending delete: when the identifier was deleted and when it is purged.
ALTER TABLE identifiers ADD COLUMN delete_time INTEGER;
ALTER TABLE identifiers ADD COLUMN purge_time INTEGER;
-- The last _openid check (status '' until the first) and when the next one is due (0 until
-- the first registration sets it; existing rows are due at once).
ALTER TABLE identifiers ADD COLUMN openid_status TEXT NOT NULL DEFAULT '';
ALTER TABLE identifiers ADD COLUMN openid_record TEXT NOT NULL DEFAULT '';
ALTER TABLE identifiers ADD COLUMN openid_issuer TEXT NOT NULL DEFAULT '';
ALTER TABLE identifiers ADD COLUMN openid_claims_provider TEXT NOT NULL DEFAULT '';
ALTER TABLE identifiers ADD COLUMN openid_detail TEXT NOT NULL DEFAULT '';
ALTER TABLE identifiers ADD COLUMN openid_check_time INTEGER;
ALTER TABLE identifiers ADD COLUMN openid_next_check INTEGER NOT NULL DEFAULT 0;
UPDATE identifiers SET openid_next_check = create_time;
-- The purge sweep reads only identifiers pending delete.
CREATE INDEX identifiers_purge ON identifiers (purge_time) WHERE purge_time IS NOT NULL;
-- The _openid checker reads the identifiers due first.
CREATE INDEX identifiers_openid_next_check ON identifiers (openid_next_check);

-- A transfer challenge names the agent that sponsored the identifier when it was made: the
-- transfer is refused if the sponsor changed since. '' for a register challenge.
ALTER TABLE challenges ADD COLUMN sponsor_agent_id TEXT NOT NULL DEFAULT '';

-- Transfer ids sort in request order.
CREATE TABLE transfers (
    id               TEXT    NOT NULL PRIMARY KEY,
    identifier       TEXT    NOT NULL,
    gaining_agent_id TEXT    NOT NULL REFERENCES agents (id),
    losing_agent_id  TEXT    NOT NULL REFERENCES agents (id),
    challenge_id     TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    request_time     INTEGER NOT NULL,
    act_time         INTEGER NOT NULL
) STRICT;
-- At most one pending transfer per identifier.
CREATE UNIQUE INDEX transfers_pending ON transfers (identifier) WHERE status = 'pending';
-- The auto-approval sweep reads only pending transfers, the due first.
CREATE INDEX transfers_pending_act ON transfers (act_time) WHERE status = 'pending';
CREATE INDEX transfers_gaining ON transfers (gaining_agent_id, id);
CREATE INDEX transfers_losing ON transfers (losing_agent_id, id);

-- Each agent's events are numbered 1, 2, 3, ...: event_counters holds the last number.
CREATE TABLE event_counters (
    agent_id TEXT    NOT NULL PRIMARY KEY REFERENCES agents (id),
    last_id  INTEGER NOT NULL
) STRICT;

CREATE TABLE events (
    agent_id    TEXT    NOT NULL REFERENCES agents (id),
    id          INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    identifier  TEXT    NOT NULL,
    data        TEXT    NOT NULL,
    create_time INTEGER NOT NULL,
    ack_time    INTEGER,
    PRIMARY KEY (agent_id, id)
) STRICT;
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
