-- Times are INTEGER unix microseconds, UTC.
CREATE TABLE orders (
    id               TEXT    NOT NULL PRIMARY KEY,
    customer         TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    version          INTEGER NOT NULL,
    snapshot         BLOB    NOT NULL,
    payment_deadline INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

CREATE INDEX orders_customer_created ON orders (customer, created_at DESC, id DESC);
CREATE INDEX orders_status_created ON orders (status, created_at DESC, id DESC);
CREATE INDEX orders_created ON orders (created_at DESC, id DESC);
CREATE INDEX orders_payment_deadline ON orders (payment_deadline) WHERE payment_deadline IS NOT NULL;

CREATE TABLE order_events (
    order_id        TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    type            TEXT    NOT NULL,
    from_status     TEXT    NOT NULL,
    to_status       TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    node            TEXT    NOT NULL,
    at              INTEGER NOT NULL,
    payload         BLOB,
    PRIMARY KEY (order_id, version)
) WITHOUT ROWID;

CREATE TABLE users (
    username      TEXT    NOT NULL PRIMARY KEY,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);
