-- Times are timestamptz (microsecond precision); NULL is the zero time ("not yet": revoked,
-- retired, validated).

-- +goose Up
CREATE TABLE agents (
    id                     text        NOT NULL PRIMARY KEY,
    display_name           text        NOT NULL,
    claims_endpoint        text        NOT NULL,
    issuer                 text        NOT NULL,
    account_key_jwk        text        NOT NULL,
    account_key_thumbprint text        NOT NULL,
    state                  text        NOT NULL,
    -- The pinned client certificate keys (hex SHA-256 of the SubjectPublicKeyInfo), sorted,
    -- comma-separated, '' for none: the same keys as agent_client_certs, written in the same
    -- transaction, so that reading an agent is one statement.
    client_cert_spki       text        NOT NULL,
    create_time            timestamptz NOT NULL,
    update_time            timestamptz NOT NULL,
    version                bigint      NOT NULL
);

-- A client certificate key authenticates one agent only, so its hash is the primary key. The
-- table keeps that unique and finds an agent by key; agents.client_cert_spki lists an agent's.
CREATE TABLE agent_client_certs (
    spki_sha256 text NOT NULL PRIMARY KEY,
    agent_id    text NOT NULL REFERENCES agents (id)
);
CREATE INDEX agent_client_certs_agent ON agent_client_certs (agent_id);

-- agent_id is NULL for operator credentials.
CREATE TABLE credentials (
    id          text        NOT NULL PRIMARY KEY,
    agent_id    text        REFERENCES agents (id),
    description text        NOT NULL,
    secret_hash bytea       NOT NULL,
    create_time timestamptz NOT NULL,
    revoke_time timestamptz
);
CREATE INDEX credentials_agent ON credentials (agent_id, create_time);

CREATE TABLE challenges (
    id                text        NOT NULL PRIMARY KEY,
    agent_id          text        NOT NULL REFERENCES agents (id),
    identifier        text        NOT NULL,
    purpose           text        NOT NULL,
    token             text        NOT NULL,
    key_authorization text        NOT NULL,
    status            text        NOT NULL,
    attempts          integer     NOT NULL,
    problem           text,
    create_time       timestamptz NOT NULL,
    expire_time       timestamptz NOT NULL,
    validate_time     timestamptz
);
-- For sweeping expired challenges.
CREATE INDEX challenges_expire ON challenges (expire_time);

CREATE TABLE identities (
    id           text        NOT NULL PRIMARY KEY,
    subject_seed text        NOT NULL UNIQUE,
    create_time  timestamptz NOT NULL,
    retire_time  timestamptz
);

-- statuses is a comma-separated list of EPP status names, sorted; '' for none.
CREATE TABLE identifiers (
    name            text        NOT NULL,
    unicode_name    text        NOT NULL,
    agent_id        text        NOT NULL REFERENCES agents (id),
    identity_id     text        NOT NULL UNIQUE REFERENCES identities (id),
    claims_endpoint text        NOT NULL,
    statuses        text        NOT NULL,
    create_time     timestamptz NOT NULL,
    update_time     timestamptz NOT NULL,
    version         bigint      NOT NULL,
    CONSTRAINT identifiers_pkey PRIMARY KEY (name)
);
-- Keyset pagination of an agent's identifiers.
CREATE INDEX identifiers_agent_name ON identifiers (agent_id, name);

CREATE TABLE journal (
    id          bigserial   NOT NULL PRIMARY KEY,
    "time"      timestamptz NOT NULL,
    actor       text        NOT NULL,
    action      text        NOT NULL,
    object_type text        NOT NULL,
    object_id   text        NOT NULL,
    "before"    text        NOT NULL,
    "after"     text        NOT NULL
);
CREATE INDEX journal_object ON journal (object_type, object_id, id);

-- +goose Down
DROP TABLE journal;
DROP TABLE identifiers;
DROP TABLE identities;
DROP TABLE challenges;
DROP TABLE credentials;
DROP TABLE agent_client_certs;
DROP TABLE agents;
