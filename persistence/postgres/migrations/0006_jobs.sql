-- Jobs: the outbox of order transitions and the queue of the worker pools. A job is
-- inserted in the transaction of the transition that causes it, then claimed, run and
-- finished by a pool on any node, under a lease (lease_owner, lease_until) fenced by
-- fence. IF NOT EXISTS, so that the file can be renumbered if another migration takes
-- its number first.
CREATE TABLE IF NOT EXISTS jobs (
    id          text        NOT NULL PRIMARY KEY,
    kind        text        NOT NULL,
    order_id    text        NOT NULL,
    state       text        NOT NULL,
    attempts    integer     NOT NULL,
    fence       bigint      NOT NULL,
    next_at     timestamptz NOT NULL,
    lease_owner text        NOT NULL,
    lease_until timestamptz,
    last_error  text        NOT NULL,
    payload     bytea,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
) WITH (
    -- Every job is updated a few times (claimed, finished) and each changes its state,
    -- an indexed column, which defeats HOT updates: vacuum early.
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);

-- Claims look for the due jobs of a kind: pending by next_at, and running ones (few, one
-- a worker) whose lease passed. CountJobs groups by kind and state.
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (kind, state, next_at);
-- An order's jobs (the operators' listing filtered by order).
CREATE INDEX IF NOT EXISTS jobs_order ON jobs (order_id);
-- Listing a kind's jobs, newest first, by keyset.
CREATE INDEX IF NOT EXISTS jobs_kind_created ON jobs (kind, created_at DESC, id DESC);
