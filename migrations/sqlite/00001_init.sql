-- Times are INTEGER nanoseconds since the Unix epoch, UTC, truncated to the microsecond by
-- the store (the precision PostgreSQL keeps), so they order and compare as numbers. NULL is
-- the zero time ("not yet": revoked, retired, validated).

-- +goose Up
CREATE TABLE agents (
    id                     TEXT    NOT NULL PRIMARY KEY,
    display_name           TEXT    NOT NULL,
    claims_endpoint        TEXT    NOT NULL,
    issuer                 TEXT    NOT NULL,
    account_key_jwk        TEXT    NOT NULL,
    account_key_thumbprint TEXT    NOT NULL,
    state                  TEXT    NOT NULL,
    -- The pinned client certificate keys (hex SHA-256 of the SubjectPublicKeyInfo), sorted,
    -- comma-separated, '' for none: the same keys as agent_client_certs, written in the same
    -- transaction, so that reading an agent is one statement.
    client_cert_spki       TEXT    NOT NULL,
    create_time            INTEGER NOT NULL,
    update_time            INTEGER NOT NULL,
    version                INTEGER NOT NULL
) STRICT;

-- A client certificate key authenticates one agent only, so its hash is the primary key. The
-- table keeps that unique and finds an agent by key; agents.client_cert_spki lists an agent's.
CREATE TABLE agent_client_certs (
    spki_sha256 TEXT NOT NULL PRIMARY KEY,
    agent_id    TEXT NOT NULL REFERENCES agents (id)
) STRICT;
CREATE INDEX agent_client_certs_agent ON agent_client_certs (agent_id);

-- agent_id is NULL for operator credentials.
CREATE TABLE credentials (
    id          TEXT    NOT NULL PRIMARY KEY,
    agent_id    TEXT    REFERENCES agents (id),
    description TEXT    NOT NULL,
    secret_hash BLOB    NOT NULL,
    create_time INTEGER NOT NULL,
    revoke_time INTEGER
) STRICT;
CREATE INDEX credentials_agent ON credentials (agent_id, create_time);

CREATE TABLE challenges (
    id                TEXT    NOT NULL PRIMARY KEY,
    agent_id          TEXT    NOT NULL REFERENCES agents (id),
    identifier        TEXT    NOT NULL,
    purpose           TEXT    NOT NULL,
    token             TEXT    NOT NULL,
    key_authorization TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    attempts          INTEGER NOT NULL,
    problem           TEXT,
    create_time       INTEGER NOT NULL,
    expire_time       INTEGER NOT NULL,
    validate_time     INTEGER
) STRICT;
-- For sweeping expired challenges.
CREATE INDEX challenges_expire ON challenges (expire_time);

CREATE TABLE identities (
    id           TEXT    NOT NULL PRIMARY KEY,
    subject_seed TEXT    NOT NULL UNIQUE,
    create_time  INTEGER NOT NULL,
    retire_time  INTEGER
) STRICT;

-- statuses is a comma-separated list of EPP status names, sorted; '' for none.
CREATE TABLE identifiers (
    name            TEXT    NOT NULL PRIMARY KEY,
    unicode_name    TEXT    NOT NULL,
    agent_id        TEXT    NOT NULL REFERENCES agents (id),
    identity_id     TEXT    NOT NULL UNIQUE REFERENCES identities (id),
    claims_endpoint TEXT    NOT NULL,
    statuses        TEXT    NOT NULL,
    create_time     INTEGER NOT NULL,
    update_time     INTEGER NOT NULL,
    version         INTEGER NOT NULL
) STRICT;
-- Keyset pagination of an agent's identifiers.
CREATE INDEX identifiers_agent_name ON identifiers (agent_id, name);

-- AUTOINCREMENT: journal IDs are never reused, even after the newest entry is removed.
CREATE TABLE journal (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "time"      INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    object_type TEXT    NOT NULL,
    object_id   TEXT    NOT NULL,
    "before"    TEXT    NOT NULL,
    "after"     TEXT    NOT NULL
) STRICT;
CREATE INDEX journal_object ON journal (object_type, object_id, id);

-- +goose Down
DROP TABLE journal;
DROP TABLE identifiers;
DROP TABLE identities;
DROP TABLE challenges;
DROP TABLE credentials;
DROP TABLE agent_client_certs;
DROP TABLE agents;
