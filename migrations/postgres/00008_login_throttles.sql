-- Login throttling (authority/throttle.go). Failed logins no longer lock an identity: they
-- slow further attempts down, per budget. A budget is kept by the SHA-256 of what it belongs
-- to (a source address or a known device with an identifier, or an identifier across all
-- sources), and a browser the holder has logged in with is remembered as a known device.
-- The columns that counted failures and locked identities go.

-- +goose Up
-- attempts counts attempts since the last success; the next one may be made at next_time.
CREATE TABLE authority_login_throttles (
    key_hash    bytea       NOT NULL PRIMARY KEY,
    attempts    integer     NOT NULL,
    next_time   timestamptz NOT NULL,
    expire_time timestamptz NOT NULL
);
CREATE INDEX authority_login_throttles_expire ON authority_login_throttles (expire_time);

-- device_hash is the SHA-256 of the device cookie.
CREATE TABLE authority_known_devices (
    device_hash bytea       NOT NULL,
    identity_id text        NOT NULL REFERENCES identities (id),
    create_time timestamptz NOT NULL,
    expire_time timestamptz NOT NULL,
    PRIMARY KEY (device_hash, identity_id)
);
CREATE INDEX authority_known_devices_expire ON authority_known_devices (expire_time);

ALTER TABLE authority_holder_credentials DROP COLUMN failed_logins;
ALTER TABLE authority_holder_credentials DROP COLUMN locked_until;

-- +goose Down
ALTER TABLE authority_holder_credentials ADD COLUMN failed_logins integer NOT NULL DEFAULT 0;
ALTER TABLE authority_holder_credentials ADD COLUMN locked_until timestamptz;
DROP TABLE authority_known_devices;
DROP TABLE authority_login_throttles;
