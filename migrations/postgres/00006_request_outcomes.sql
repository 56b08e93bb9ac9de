-- The outcome of a call made with a request_id (AIP-155), written with the change it made, so
-- that a retry of the call by the same agent gets the same outcome again instead of a second
-- change (or a refusal because the first used the challenge).

-- +goose Up
CREATE TABLE request_outcomes (
    agent_id     text        NOT NULL REFERENCES agents (id),
    request_id   text        NOT NULL,
    -- The call ('register', 'transfer') and the SHA-256 of its arguments: a retry must
    -- repeat them.
    method       text        NOT NULL,
    request_hash text        NOT NULL,
    -- What the call made: the identifier's name, or the transfer's id; for a registration
    -- also the identity it made.
    resource     text        NOT NULL,
    identity_id  text        NOT NULL DEFAULT '',
    create_time  timestamptz NOT NULL,
    PRIMARY KEY (agent_id, request_id)
);
-- The sweep deletes the outcomes older than the retention, the oldest first.
CREATE INDEX request_outcomes_create ON request_outcomes (create_time);

-- +goose Down
DROP TABLE request_outcomes;
