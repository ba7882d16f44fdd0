-- The baseline's own tables, next to ordermesh's orders/order_events in the same
-- database, so both designs can be measured on one server without touching each other's
-- rows. Every statement is idempotent: several baseline processes may start at once (they
-- serialize on an advisory lock) and a restart changes nothing.

CREATE TABLE IF NOT EXISTS baseline_orders (
    id               text        NOT NULL PRIMARY KEY,
    customer         text        NOT NULL,
    status           text        NOT NULL,
    version          bigint      NOT NULL,
    lines            jsonb       NOT NULL,
    currency         text        NOT NULL,
    total            bigint      NOT NULL,
    -- Set exactly while the order is PAYING, so the partial index below holds only the
    -- orders the sweeper may have to expire.
    payment_deadline timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
) WITH (
    -- The same vacuum settings as ordermesh's orders table: every transition updates the
    -- row and the status index defeats HOT updates, so dead tuples pile up just as fast.
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);

-- The listing indexes of ordermesh's orders table, for the same keyset queries.
CREATE INDEX IF NOT EXISTS baseline_orders_customer_created ON baseline_orders (customer, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS baseline_orders_status_created ON baseline_orders (status, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS baseline_orders_created ON baseline_orders (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS baseline_orders_payment_deadline ON baseline_orders (payment_deadline)
    WHERE payment_deadline IS NOT NULL;

-- Exactly the columns of ordermesh's order_events, so the edge, the bench checker and a
-- person with psql read both histories the same way. The UNIQUE constraint is the
-- baseline's idempotency memory: a key can be applied to an order once, ever, and the row
-- it left is the answer to every repeat.
CREATE TABLE IF NOT EXISTS baseline_order_events (
    order_id        text        NOT NULL,
    version         bigint      NOT NULL,
    type            text        NOT NULL,
    from_status     text        NOT NULL,
    to_status       text        NOT NULL,
    idempotency_key text        NOT NULL,
    node            text        NOT NULL,
    at              timestamptz NOT NULL,
    payload         bytea,
    PRIMARY KEY (order_id, version),
    CONSTRAINT baseline_order_events_key UNIQUE (order_id, idempotency_key)
);

-- Inventory, the classic way: one row per sku, changed by conditional UPDATEs in the same
-- transaction as the order they serve. reserved counts the units of live orders (CREATED,
-- PAYING, PAID); on_hand drops only when an order ships or an operator adjusts it. The
-- CHECK constraints are the last line of defence: no statement may oversell, even a wrong one.
CREATE TABLE IF NOT EXISTS baseline_stock (
    sku        text        NOT NULL PRIMARY KEY,
    on_hand    bigint      NOT NULL DEFAULT 0,
    reserved   bigint      NOT NULL DEFAULT 0,
    version    bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz,
    CONSTRAINT baseline_stock_counts CHECK (reserved >= 0 AND on_hand >= reserved)
) WITH (
    -- A hot sku's row is updated by every buyer: vacuum it as eagerly as the orders.
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);

-- The operators' adjustments, keyed by their Idempotency-Key per sku: the fingerprint
-- tells a retry from a different request, and the stock as the adjustment left it is the
-- answer to every retry.
CREATE TABLE IF NOT EXISTS baseline_stock_adjustments (
    sku         text        NOT NULL,
    key         text        NOT NULL,
    fingerprint bigint      NOT NULL,
    delta       bigint      NOT NULL,
    reason      text        NOT NULL,
    by_subject  text        NOT NULL,
    on_hand     bigint      NOT NULL,
    reserved    bigint      NOT NULL,
    version     bigint      NOT NULL,
    at          timestamptz NOT NULL,
    PRIMARY KEY (sku, key)
);

-- The orders the sweeper may have to expire for want of payment (CREATED for longer than
-- the order timeout), by creation time.
CREATE INDEX IF NOT EXISTS baseline_orders_created_open ON baseline_orders (created_at)
    WHERE status = 'CREATED';

-- The work an order's transition causes outside the order, the classic way: a tasks table
-- written by the transition's own statement (a PAYING order has its payment task, a PAID
-- one its fulfilment task, and a transition that makes a task moot ends it there too),
-- polled by worker goroutines with FOR UPDATE SKIP LOCKED. A running task is leased:
-- lease_until is also copied to next_at, so one index finds both the due pending tasks
-- and the running ones whose worker is presumed gone. fence counts the claims; a worker
-- finishes a task only while it still holds the claim it made.
CREATE TABLE IF NOT EXISTS baseline_tasks (
    id          text        NOT NULL PRIMARY KEY,
    kind        text        NOT NULL, -- payment | fulfilment
    order_id    text        NOT NULL,
    state       text        NOT NULL, -- pending | running | done | dead | cancelled
    attempts    integer     NOT NULL DEFAULT 0,
    next_at     timestamptz NOT NULL,
    lease_owner text        NOT NULL DEFAULT '',
    lease_until timestamptz,
    fence       bigint      NOT NULL DEFAULT 0,
    last_error  text        NOT NULL DEFAULT '',
    payload     jsonb       NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS baseline_tasks_due ON baseline_tasks (kind, state, next_at);
CREATE INDEX IF NOT EXISTS baseline_tasks_order ON baseline_tasks (order_id);
CREATE INDEX IF NOT EXISTS baseline_tasks_listing ON baseline_tasks (kind, created_at DESC, id DESC);
