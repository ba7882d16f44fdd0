-- Key material the nodes share through the store: cluster CA, gossip keys, token signing keys.
CREATE TABLE secrets (
    kind       text        NOT NULL,
    id         text        NOT NULL,
    value      bytea       NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (kind, id)
);
