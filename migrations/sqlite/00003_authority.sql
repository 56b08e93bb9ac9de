-- The embedded Identity Authority (package authority): its signing keys, the relying parties
-- registered with it, the holders' credentials and the single-use links that set them, and
-- what a login leaves behind (authorization requests, sessions, consents, grants of
-- authorization codes, access tokens).
--
-- Times are as in 00001: INTEGER Unix nanoseconds, UTC, truncated to the microsecond; NULL
-- is the zero time ("not yet": used, revoked, retired, locked). Hashes are SHA-256, as BLOB.
-- Lists of names are JSON arrays in TEXT ('[]' for none), as are structured values (client
-- metadata, authorization parameters). The objects that expire have an index on
-- expire_time, from which DeleteExpired sweeps them (but for the few signing keys).

-- +goose Up
-- A handful of rows: per algorithm the key that signs, the next one, and retired ones kept
-- until what they signed has expired (expire_time; NULL while the key has not been retired).
CREATE TABLE authority_signing_keys (
    id          TEXT    NOT NULL PRIMARY KEY,
    alg         TEXT    NOT NULL,
    private_jwk BLOB    NOT NULL,
    create_time INTEGER NOT NULL,
    sign_time   INTEGER NOT NULL,
    retire_time INTEGER,
    expire_time INTEGER
) STRICT;

-- metadata is the JSON of authority.ClientMetadata, which leaves the sector out: it has a
-- column of its own.
CREATE TABLE authority_clients (
    id                      TEXT    NOT NULL PRIMARY KEY,
    secret_hash             BLOB    NOT NULL,
    registration_token_hash BLOB    NOT NULL,
    metadata                TEXT    NOT NULL,
    sector                  TEXT    NOT NULL,
    create_time             INTEGER NOT NULL
) STRICT;

-- totp_secret is '' when the holder has no second factor; locked_until NULL when not locked.
CREATE TABLE authority_holder_credentials (
    identity_id    TEXT    NOT NULL PRIMARY KEY REFERENCES identities (id),
    password_hash  TEXT    NOT NULL,
    totp_secret    TEXT    NOT NULL,
    totp_last_step INTEGER NOT NULL,
    failed_logins  INTEGER NOT NULL,
    locked_until   INTEGER,
    update_time    INTEGER NOT NULL
) STRICT;

-- The pending_* columns hold the holder's choice while a TOTP secret waits for its first code.
CREATE TABLE authority_credential_links (
    token_hash            BLOB    NOT NULL PRIMARY KEY,
    identity_id           TEXT    NOT NULL REFERENCES identities (id),
    identifier            TEXT    NOT NULL,
    purpose               TEXT    NOT NULL,
    agent_id              TEXT    NOT NULL,
    pending_password_hash TEXT    NOT NULL,
    pending_totp_secret   TEXT    NOT NULL,
    create_time           INTEGER NOT NULL,
    expire_time           INTEGER NOT NULL,
    use_time              INTEGER
) STRICT;
CREATE INDEX authority_credential_links_expire ON authority_credential_links (expire_time);

-- params is the JSON of authority.AuthParams; pending_identity_id is '' until a password has
-- been checked.
CREATE TABLE authority_auth_requests (
    id                  TEXT    NOT NULL PRIMARY KEY,
    browser_hash        BLOB    NOT NULL,
    params              TEXT    NOT NULL,
    pending_identity_id TEXT    NOT NULL,
    pending_identifier  TEXT    NOT NULL,
    pending_amr         TEXT    NOT NULL,
    create_time         INTEGER NOT NULL,
    expire_time         INTEGER NOT NULL
) STRICT;
CREATE INDEX authority_auth_requests_expire ON authority_auth_requests (expire_time);

CREATE TABLE authority_sessions (
    id_hash     BLOB    NOT NULL PRIMARY KEY,
    identity_id TEXT    NOT NULL,
    identifier  TEXT    NOT NULL,
    auth_time   INTEGER NOT NULL,
    amr         TEXT    NOT NULL,
    create_time INTEGER NOT NULL,
    expire_time INTEGER NOT NULL
) STRICT;
CREATE INDEX authority_sessions_expire ON authority_sessions (expire_time);

CREATE TABLE authority_consents (
    client_id   TEXT    NOT NULL REFERENCES authority_clients (id),
    identity_id TEXT    NOT NULL REFERENCES identities (id),
    scopes      TEXT    NOT NULL,
    claims      TEXT    NOT NULL,
    update_time INTEGER NOT NULL,
    PRIMARY KEY (client_id, identity_id)
) STRICT;

-- A grant is found by the hash of its code (RedeemGrant) and by its ID (RevokeGrant).
CREATE TABLE authority_grants (
    id              TEXT    NOT NULL PRIMARY KEY,
    code_hash       BLOB    NOT NULL UNIQUE,
    client_id       TEXT    NOT NULL REFERENCES authority_clients (id),
    redirect_uri    TEXT    NOT NULL,
    identity_id     TEXT    NOT NULL REFERENCES identities (id),
    identifier      TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    scopes          TEXT    NOT NULL,
    claims          TEXT    NOT NULL,
    id_token_claims TEXT    NOT NULL,
    nonce           TEXT    NOT NULL,
    code_challenge  TEXT    NOT NULL,
    auth_time       INTEGER NOT NULL,
    amr             TEXT    NOT NULL,
    create_time     INTEGER NOT NULL,
    expire_time     INTEGER NOT NULL,
    use_time        INTEGER,
    revoke_time     INTEGER
) STRICT;
CREATE INDEX authority_grants_expire ON authority_grants (expire_time);

-- Every userinfo request reads a token by its hash: WITHOUT ROWID keeps the row in the
-- primary key's b-tree, so that is one lookup, not two. grant_id references no row: a token
-- outlives the grant of its code, which expires within minutes.
CREATE TABLE authority_access_tokens (
    token_hash  BLOB    NOT NULL PRIMARY KEY,
    grant_id    TEXT    NOT NULL,
    client_id   TEXT    NOT NULL,
    identity_id TEXT    NOT NULL,
    identifier  TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    scopes      TEXT    NOT NULL,
    claims      TEXT    NOT NULL,
    create_time INTEGER NOT NULL,
    expire_time INTEGER NOT NULL,
    revoke_time INTEGER
) STRICT, WITHOUT ROWID;
CREATE INDEX authority_access_tokens_grant ON authority_access_tokens (grant_id);
CREATE INDEX authority_access_tokens_expire ON authority_access_tokens (expire_time);

-- +goose Down
DROP TABLE authority_access_tokens;
DROP TABLE authority_grants;
DROP TABLE authority_consents;
DROP TABLE authority_sessions;
DROP TABLE authority_auth_requests;
DROP TABLE authority_credential_links;
DROP TABLE authority_holder_credentials;
DROP TABLE authority_clients;
DROP TABLE authority_signing_keys;
