-- Jobs: the outbox of order transitions and the queue of the worker pools. A job is
-- inserted in the transaction of the transition that causes it, then claimed, run and
-- finished by a pool on any node (or process sharing the file), under a lease
-- (lease_owner, lease_until) fenced by fence. Times are INTEGER Unix microseconds, UTC.
-- IF NOT EXISTS, so that the file can be renumbered if another migration takes its
-- number first. jobs keeps its rowid: its rows carry the payload.
CREATE TABLE IF NOT EXISTS jobs (
    id          TEXT    NOT NULL PRIMARY KEY,
    kind        TEXT    NOT NULL,
    order_id    TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    attempts    INTEGER NOT NULL,
    fence       INTEGER NOT NULL,
    next_at     INTEGER NOT NULL,
    lease_owner TEXT    NOT NULL,
    lease_until INTEGER,
    last_error  TEXT    NOT NULL,
    payload     BLOB,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Claims look for the due jobs of a kind: pending by next_at, and running ones (few, one
-- a worker) whose lease passed. CountJobs groups by kind and state.
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (kind, state, next_at);
-- An order's jobs (the operators' listing filtered by order).
CREATE INDEX IF NOT EXISTS jobs_order ON jobs (order_id);
-- Listing a kind's jobs, newest first, by keyset.
CREATE INDEX IF NOT EXISTS jobs_kind_created ON jobs (kind, created_at DESC, id DESC);
