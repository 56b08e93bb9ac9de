-- Client management (RFC 7592 update and delete), client secrets that expire, public
-- clients, and registration with an initial access token (RFC 7591 §3).
--
-- Times as in 00001 (INTEGER Unix nanoseconds, NULL for the zero time); hashes SHA-256.

-- +goose Up
-- NULL: the secret never expires. A public client has no secret: secret_hash is empty.
ALTER TABLE authority_clients ADD COLUMN secret_expire_time INTEGER;

-- Deleting a client deletes its grants and access tokens.
CREATE INDEX authority_grants_client ON authority_grants (client_id);
CREATE INDEX authority_access_tokens_client ON authority_access_tokens (client_id);

-- An operator's tokens for registrations; max_uses 0: any number; expire_time NULL: never.
CREATE TABLE authority_initial_access_tokens (
    id          TEXT    NOT NULL PRIMARY KEY,
    token_hash  BLOB    NOT NULL UNIQUE,
    description TEXT    NOT NULL,
    max_uses    INTEGER NOT NULL,
    uses        INTEGER NOT NULL,
    create_time INTEGER NOT NULL,
    expire_time INTEGER,
    revoke_time INTEGER
) STRICT;

-- +goose Down
DROP TABLE authority_initial_access_tokens;
DROP INDEX authority_access_tokens_client;
DROP INDEX authority_grants_client;
ALTER TABLE authority_clients DROP COLUMN secret_expire_time;
