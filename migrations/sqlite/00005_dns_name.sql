-- E-mail-form identifiers (local@domain): relying parties look them up under the DNS name
-- "<h>.<domain>" (h: 56 hex digits of SHA-256 over the local part), where their _openid and
-- _acme-challenge records live. A domain identifier's DNS name is its name. Two identifiers
-- that share a DNS name would share those records, so the DNS name is unique: a domain
-- identifier equal to an e-mail-form identifier's DNS name is taken, and the other way round.

-- +goose Up
-- SQLite adds a NOT NULL column only with a default; the store always writes the column.
ALTER TABLE identifiers ADD COLUMN dns_name TEXT NOT NULL DEFAULT '';
UPDATE identifiers SET dns_name = name;
CREATE UNIQUE INDEX identifiers_dns_name ON identifiers (dns_name);

-- +goose Down
DROP INDEX identifiers_dns_name;
ALTER TABLE identifiers DROP COLUMN dns_name;
