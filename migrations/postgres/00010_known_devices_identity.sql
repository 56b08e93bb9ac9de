-- New credentials forget the identity's known devices (authority.Store.RedeemCredentialLink):
-- they are found by identity, which the primary key (device_hash, identity_id) cannot serve.

-- +goose Up
CREATE INDEX authority_known_devices_identity ON authority_known_devices (identity_id);

-- +goose Down
DROP INDEX authority_known_devices_identity;
