-- Inventory: one row a sku (its counters and snapshot), what each order holds of it, and
-- its event history. Times are INTEGER Unix microseconds, UTC. IF NOT EXISTS, so that the
-- file can be renumbered if another migration takes its number first.
-- stock keeps its rowid: its rows carry the snapshot, and large rows do not belong in a
-- WITHOUT ROWID b-tree.
CREATE TABLE IF NOT EXISTS stock (
    sku        TEXT    NOT NULL PRIMARY KEY,
    on_hand    INTEGER NOT NULL,
    reserved   INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    snapshot   BLOB    NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS stock_holdings (
    sku        TEXT    NOT NULL,
    order_id   TEXT    NOT NULL,
    qty        INTEGER NOT NULL,
    state      TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (sku, order_id)
) WITHOUT ROWID;

-- A grain loads the live holdings of its sku (state in a few live states) and the ones
-- that moved recently (updated_at >= since): one index for each side of that OR, so that
-- neither reads the sku's whole history.
CREATE INDEX IF NOT EXISTS stock_holdings_state ON stock_holdings (sku, state);
CREATE INDEX IF NOT EXISTS stock_holdings_updated ON stock_holdings (sku, updated_at);

CREATE TABLE IF NOT EXISTS stock_events (
    sku             TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    type            TEXT    NOT NULL,
    order_id        TEXT    NOT NULL,
    qty             INTEGER NOT NULL,
    from_state      TEXT    NOT NULL,
    to_state        TEXT    NOT NULL,
    delta           INTEGER NOT NULL,
    idempotency_key TEXT    NOT NULL,
    node            TEXT    NOT NULL,
    at              INTEGER NOT NULL,
    payload         BLOB,
    PRIMARY KEY (sku, version)
) WITHOUT ROWID;
