-- Logout (authority/logout.go, authority/backchannel.go). A grant remembers the sid of the
-- session its code was issued in, for the ID token. A session remembers the clients it
-- logged its holder in at that asked for back-channel logouts, and ending the session moves
-- them into a queue of logout tokens to send, one per session and client, tried until sent
-- or given up at expire_time. Neither table references the clients: a logout for a client
-- deleted meanwhile is dropped when its turn comes.

-- +goose Up
ALTER TABLE authority_grants ADD COLUMN session_id text NOT NULL DEFAULT '';

CREATE TABLE authority_session_clients (
    session_id  text        NOT NULL,
    client_id   text        NOT NULL,
    subject     text        NOT NULL,
    create_time timestamptz NOT NULL,
    expire_time timestamptz NOT NULL,
    PRIMARY KEY (session_id, client_id)
);
CREATE INDEX authority_session_clients_expire ON authority_session_clients (expire_time);

CREATE TABLE authority_backchannel_logouts (
    session_id  text        NOT NULL,
    client_id   text        NOT NULL,
    subject     text        NOT NULL,
    attempts    integer     NOT NULL,
    next_time   timestamptz NOT NULL,
    create_time timestamptz NOT NULL,
    expire_time timestamptz NOT NULL,
    PRIMARY KEY (session_id, client_id)
);
CREATE INDEX authority_backchannel_logouts_next ON authority_backchannel_logouts (next_time);
CREATE INDEX authority_backchannel_logouts_expire ON authority_backchannel_logouts (expire_time);

-- +goose Down
DROP TABLE authority_backchannel_logouts;
DROP TABLE authority_session_clients;
ALTER TABLE authority_grants DROP COLUMN session_id;
