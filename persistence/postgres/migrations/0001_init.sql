CREATE TABLE orders (
    id               text        NOT NULL PRIMARY KEY,
    customer         text        NOT NULL,
    status           text        NOT NULL,
    version          bigint      NOT NULL,
    snapshot         bytea       NOT NULL,
    payment_deadline timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
) WITH (
    -- Every transition updates its order row, and the status change defeats HOT
    -- updates, so dead row versions pile up fast: vacuum early, not at 20% dead.
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);

CREATE INDEX orders_customer_created ON orders (customer, created_at DESC, id DESC);
CREATE INDEX orders_status_created ON orders (status, created_at DESC, id DESC);
CREATE INDEX orders_created ON orders (created_at DESC, id DESC);
CREATE INDEX orders_payment_deadline ON orders (payment_deadline) WHERE payment_deadline IS NOT NULL;

CREATE TABLE order_events (
    order_id        text        NOT NULL,
    version         bigint      NOT NULL,
    type            text        NOT NULL,
    from_status     text        NOT NULL,
    to_status       text        NOT NULL,
    idempotency_key text        NOT NULL,
    node            text        NOT NULL,
    at              timestamptz NOT NULL,
    payload         bytea,
    PRIMARY KEY (order_id, version)
);

CREATE TABLE users (
    username      text        NOT NULL PRIMARY KEY,
    password_hash text        NOT NULL,
    role          text        NOT NULL,
    created_at    timestamptz NOT NULL
);
