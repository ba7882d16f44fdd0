-- Grains look up idempotency keys their order no longer remembers itself (it keeps the
-- newest 64) in its events: one index probe per lookup. IF NOT EXISTS, so that the file
-- can be renumbered if another migration takes its number first.
CREATE INDEX IF NOT EXISTS order_events_key ON order_events (order_id, idempotency_key);
