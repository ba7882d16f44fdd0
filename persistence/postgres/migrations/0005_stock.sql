-- Inventory: one row a sku (its counters and snapshot), what each order holds of it, and
-- its event history. IF NOT EXISTS, so that the file can be renumbered if another
-- migration takes its number first.
CREATE TABLE IF NOT EXISTS stock (
    sku        text        NOT NULL PRIMARY KEY,
    on_hand    bigint      NOT NULL,
    reserved   bigint      NOT NULL,
    version    bigint      NOT NULL,
    snapshot   bytea       NOT NULL,
    updated_at timestamptz NOT NULL
) WITH (
    -- A few rows, each rewritten by every batch of its sku and no indexed column ever
    -- changing: room on the page keeps those updates HOT.
    fillfactor = 50,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);

CREATE TABLE IF NOT EXISTS stock_holdings (
    sku        text        NOT NULL,
    order_id   text        NOT NULL,
    qty        bigint      NOT NULL,
    state      text        NOT NULL,
    version    bigint      NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (sku, order_id)
) WITH (
    -- Holdings move through their states, and a state change defeats HOT updates.
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);

-- A grain loads the live holdings of its sku (state in a few live states) and the ones
-- that moved recently (updated_at >= since): one index for each side of that OR, so that
-- neither reads the sku's whole history.
CREATE INDEX IF NOT EXISTS stock_holdings_state ON stock_holdings (sku, state);
CREATE INDEX IF NOT EXISTS stock_holdings_updated ON stock_holdings (sku, updated_at);

CREATE TABLE IF NOT EXISTS stock_events (
    sku             text        NOT NULL,
    version         bigint      NOT NULL,
    type            text        NOT NULL,
    order_id        text        NOT NULL,
    qty             bigint      NOT NULL,
    from_state      text        NOT NULL,
    to_state        text        NOT NULL,
    delta           bigint      NOT NULL,
    idempotency_key text        NOT NULL,
    node            text        NOT NULL,
    at              timestamptz NOT NULL,
    payload         bytea,
    PRIMARY KEY (sku, version)
);
