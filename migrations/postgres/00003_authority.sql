-- The embedded Identity Authority (package authority): its signing keys, the relying parties
-- registered with it, the holders' credentials and the single-use links that set them, and
-- what a login leaves behind (authorization requests, sessions, consents, grants of
-- authorization codes, access tokens).
--
-- Times are timestamptz (microsecond precision); NULL is the zero time ("not yet": used,
-- revoked, retired, locked). Hashes are SHA-256, as bytea. Lists of names are JSON arrays in
-- text ('[]' for none), as are structured values (client metadata, authorization
-- parameters). The objects that expire have an index on expire_time, from which
-- DeleteExpired sweeps them (but for the few signing keys).

-- +goose Up
-- A handful of rows: per algorithm the key that signs, the next one, and retired ones kept
-- until what they signed has expired (expire_time; NULL while the key has not been retired).
CREATE TABLE authority_signing_keys (
    id          text        NOT NULL PRIMARY KEY,
    alg         text        NOT NULL,
    private_jwk bytea       NOT NULL,
    create_time timestamptz NOT NULL,
    sign_time   timestamptz NOT NULL,
    retire_time timestamptz,
    expire_time timestamptz
);

-- metadata is the JSON of authority.ClientMetadata, which leaves the sector out: it has a
-- column of its own.
CREATE TABLE authority_clients (
    id                      text        NOT NULL PRIMARY KEY,
    secret_hash             bytea       NOT NULL,
    registration_token_hash bytea       NOT NULL,
    metadata                text        NOT NULL,
    sector                  text        NOT NULL,
    create_time             timestamptz NOT NULL
);

-- totp_secret is '' when the holder has no second factor; locked_until NULL when not locked.
CREATE TABLE authority_holder_credentials (
    identity_id    text        NOT NULL PRIMARY KEY REFERENCES identities (id),
    password_hash  text        NOT NULL,
    totp_secret    text        NOT NULL,
    totp_last_step bigint      NOT NULL,
    failed_logins  integer     NOT NULL,
    locked_until   timestamptz,
    update_time    timestamptz NOT NULL
);

-- The pending_* columns hold the holder's choice while a TOTP secret waits for its first code.
CREATE TABLE authority_credential_links (
    token_hash            bytea       NOT NULL PRIMARY KEY,
    identity_id           text        NOT NULL REFERENCES identities (id),
    identifier            text        NOT NULL,
    purpose               text        NOT NULL,
    agent_id              text        NOT NULL,
    pending_password_hash text        NOT NULL,
    pending_totp_secret   text        NOT NULL,
    create_time           timestamptz NOT NULL,
    expire_time           timestamptz NOT NULL,
    use_time              timestamptz
);
CREATE INDEX authority_credential_links_expire ON authority_credential_links (expire_time);

-- params is the JSON of authority.AuthParams; pending_identity_id is '' until a password has
-- been checked.
CREATE TABLE authority_auth_requests (
    id                  text        NOT NULL PRIMARY KEY,
    browser_hash        bytea       NOT NULL,
    params              text        NOT NULL,
    pending_identity_id text        NOT NULL,
    pending_identifier  text        NOT NULL,
    pending_amr         text        NOT NULL,
    create_time         timestamptz NOT NULL,
    expire_time         timestamptz NOT NULL
);
CREATE INDEX authority_auth_requests_expire ON authority_auth_requests (expire_time);

CREATE TABLE authority_sessions (
    id_hash     bytea       NOT NULL PRIMARY KEY,
    identity_id text        NOT NULL,
    identifier  text        NOT NULL,
    auth_time   timestamptz NOT NULL,
    amr         text        NOT NULL,
    create_time timestamptz NOT NULL,
    expire_time timestamptz NOT NULL
);
CREATE INDEX authority_sessions_expire ON authority_sessions (expire_time);

CREATE TABLE authority_consents (
    client_id   text        NOT NULL REFERENCES authority_clients (id),
    identity_id text        NOT NULL REFERENCES identities (id),
    scopes      text        NOT NULL,
    claims      text        NOT NULL,
    update_time timestamptz NOT NULL,
    PRIMARY KEY (client_id, identity_id)
);

-- A grant is found by the hash of its code (RedeemGrant) and by its ID (RevokeGrant).
CREATE TABLE authority_grants (
    id              text        NOT NULL PRIMARY KEY,
    code_hash       bytea       NOT NULL UNIQUE,
    client_id       text        NOT NULL REFERENCES authority_clients (id),
    redirect_uri    text        NOT NULL,
    identity_id     text        NOT NULL REFERENCES identities (id),
    identifier      text        NOT NULL,
    subject         text        NOT NULL,
    scopes          text        NOT NULL,
    claims          text        NOT NULL,
    id_token_claims text        NOT NULL,
    nonce           text        NOT NULL,
    code_challenge  text        NOT NULL,
    auth_time       timestamptz NOT NULL,
    amr             text        NOT NULL,
    create_time     timestamptz NOT NULL,
    expire_time     timestamptz NOT NULL,
    use_time        timestamptz,
    revoke_time     timestamptz
);
CREATE INDEX authority_grants_expire ON authority_grants (expire_time);

-- Every userinfo request reads a token by its hash, the primary key. grant_id references no
-- row: a token outlives the grant of its code, which expires within minutes.
CREATE TABLE authority_access_tokens (
    token_hash  bytea       NOT NULL PRIMARY KEY,
    grant_id    text        NOT NULL,
    client_id   text        NOT NULL,
    identity_id text        NOT NULL,
    identifier  text        NOT NULL,
    subject     text        NOT NULL,
    scopes      text        NOT NULL,
    claims      text        NOT NULL,
    create_time timestamptz NOT NULL,
    expire_time timestamptz NOT NULL,
    revoke_time timestamptz
);
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
