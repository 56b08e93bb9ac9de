-- An authorization request remembers the session a login during it started
-- (authority.AuthRequest.LoginSessionHash): only that session answers a request that demands
-- a login (prompt=login, max_age), at every step from the login page to the code. Empty while
-- no login has happened during the request.

-- +goose Up
ALTER TABLE authority_auth_requests ADD COLUMN login_session_hash bytea NOT NULL DEFAULT '\x';

-- +goose Down
ALTER TABLE authority_auth_requests DROP COLUMN login_session_hash;
