-- Key material the nodes share through the store: cluster CA, gossip keys, token signing keys.
CREATE TABLE secrets (
    kind       TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    value      BLOB    NOT NULL,
    created_at INTEGER NOT NULL, -- Unix microseconds, UTC
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
