-- Credential links are bound to the state of the registry they were made in, and new
-- credentials end what the old ones gave.
--
-- An identifier's link_generation advances with each transfer, delete and hold, an agent's
-- with each suspension; a credential link records both when it is made and is void once
-- either has moved on. void_time is when a newer link of the identity, or new credentials,
-- voided a link (NULL while it is not void).
--
-- Setting credentials ends the identity's sessions, forgets its half-done logins, and
-- revokes its grants and access tokens: the indexes on the identity find those rows. They
-- are not partial, so that no planner prefers one to the index a query names.

-- +goose Up
ALTER TABLE identifiers ADD COLUMN link_generation bigint NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN link_generation bigint NOT NULL DEFAULT 0;
ALTER TABLE authority_credential_links ADD COLUMN identifier_generation bigint NOT NULL DEFAULT 0;
ALTER TABLE authority_credential_links ADD COLUMN agent_generation bigint NOT NULL DEFAULT 0;
ALTER TABLE authority_credential_links ADD COLUMN void_time timestamptz;
CREATE INDEX authority_credential_links_identity ON authority_credential_links (identity_id);
CREATE INDEX authority_sessions_identity ON authority_sessions (identity_id);
CREATE INDEX authority_grants_identity ON authority_grants (identity_id);
CREATE INDEX authority_access_tokens_identity ON authority_access_tokens (identity_id);
CREATE INDEX authority_auth_requests_pending ON authority_auth_requests (pending_identity_id);

-- +goose Down
DROP INDEX authority_auth_requests_pending;
DROP INDEX authority_access_tokens_identity;
DROP INDEX authority_grants_identity;
DROP INDEX authority_sessions_identity;
DROP INDEX authority_credential_links_identity;
ALTER TABLE authority_credential_links DROP COLUMN void_time;
ALTER TABLE authority_credential_links DROP COLUMN agent_generation;
ALTER TABLE authority_credential_links DROP COLUMN identifier_generation;
ALTER TABLE agents DROP COLUMN link_generation;
ALTER TABLE identifiers DROP COLUMN link_generation;
