-- Passkeys (WebAuthn credentials) of the holders, the WebAuthn ceremonies under way
-- (authority.Store: AddPasskey … TakeCeremony), and what the account page shows of sessions.
--
-- A passkey added on a credential link waits for the link (link_hash, the link's token hash)
-- and works once the link is redeemed, which also deletes the identity's other passkeys:
-- new credentials replace all the old ones. credential is the JSON of the WebAuthn credential
-- record (public key, sign count, flags, transports).

-- +goose Up
CREATE TABLE authority_passkeys (
    credential_id bytea       NOT NULL PRIMARY KEY,
    identity_id   text        NOT NULL REFERENCES identities (id),
    identifier    text        NOT NULL,
    name          text        NOT NULL,
    credential    text        NOT NULL,
    link_hash     bytea,
    create_time   timestamptz NOT NULL,
    use_time      timestamptz
);
CREATE INDEX authority_passkeys_identity ON authority_passkeys (identity_id);
CREATE INDEX authority_passkeys_link ON authority_passkeys (link_hash);

-- A ceremony is single-use: taking it deletes it. identity_id is '' for a discoverable login.
CREATE TABLE authority_webauthn_ceremonies (
    id_hash      bytea       NOT NULL PRIMARY KEY,
    browser_hash bytea       NOT NULL,
    identity_id  text        NOT NULL,
    purpose      text        NOT NULL,
    session      text        NOT NULL,
    expire_time  timestamptz NOT NULL
);
CREATE INDEX authority_webauthn_ceremonies_expire ON authority_webauthn_ceremonies (expire_time);

-- Recovery codes (SHA-256 of each), one-time second factors made on the account page; new
-- credentials through a link delete them.
CREATE TABLE authority_recovery_codes (
    code_hash   bytea       NOT NULL PRIMARY KEY,
    identity_id text        NOT NULL REFERENCES identities (id),
    create_time timestamptz NOT NULL,
    use_time    timestamptz
);
CREATE INDEX authority_recovery_codes_identity ON authority_recovery_codes (identity_id);

-- The account page lists a holder's sessions with the browser and address they started
-- from.
ALTER TABLE authority_sessions ADD COLUMN user_agent text NOT NULL DEFAULT '';
ALTER TABLE authority_sessions ADD COLUMN address text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE authority_sessions DROP COLUMN address;
ALTER TABLE authority_sessions DROP COLUMN user_agent;
DROP TABLE authority_recovery_codes;
DROP TABLE authority_webauthn_ceremonies;
DROP TABLE authority_passkeys;
