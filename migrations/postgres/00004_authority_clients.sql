-- Client management (RFC 7592 update and delete), client secrets that expire, public
-- clients, and registration with an initial access token (RFC 7591 §3).
--
-- Times as in 00001 (timestamptz, NULL for the zero time); hashes SHA-256.

-- +goose Up
-- NULL: the secret never expires. A public client has no secret: secret_hash is empty.
ALTER TABLE authority_clients ADD COLUMN secret_expire_time timestamptz;

-- Deleting a client deletes its grants and access tokens.
CREATE INDEX authority_grants_client ON authority_grants (client_id);
CREATE INDEX authority_access_tokens_client ON authority_access_tokens (client_id);

-- An operator's tokens for registrations; max_uses 0: any number; expire_time NULL: never.
CREATE TABLE authority_initial_access_tokens (
    id          text        NOT NULL PRIMARY KEY,
    token_hash  bytea       NOT NULL UNIQUE,
    description text        NOT NULL,
    max_uses    integer     NOT NULL,
    uses        integer     NOT NULL,
    create_time timestamptz NOT NULL,
    expire_time timestamptz,
    revoke_time timestamptz
);

-- +goose Down
DROP TABLE authority_initial_access_tokens;
DROP INDEX authority_access_tokens_client;
DROP INDEX authority_grants_client;
ALTER TABLE authority_clients DROP COLUMN secret_expire_time;
