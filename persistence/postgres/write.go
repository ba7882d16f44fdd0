package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/internal/batch"
	"github.com/ordermesh/ordermesh/persistence/internal/normalize"
)

// writeBatchSQL applies a whole batch in one statement (one implicit transaction).
// Orders with expected version 0 are inserted unless they exist; the others are updated
// only where the stored version is the expected one. Events are inserted only for the
// orders that succeeded, whose ids the statement returns. A batch holds at most one
// write per order.
const writeBatchSQL = writeOrdersCTEs + `
SELECT id FROM succeeded`

// writeBatchJobsSQL is writeBatchSQL for a batch with jobs (Write.Jobs and EndJobs), which
// it applies, like the events, only for the orders that succeeded: new jobs are inserted
// unless their id exists (of two with one id, the first is kept), ended ones updated only
// while pending, running or dead. All the CTEs read the snapshot the statement started
// with, so a write's EndJobs never see the jobs the batch inserts. A batch without jobs
// runs writeBatchSQL, which has none of this.
const writeBatchJobsSQL = writeOrdersCTEs + `, new_jobs AS (
	INSERT INTO jobs (id, kind, order_id, state, attempts, fence, next_at, lease_owner, last_error, payload, created_at, updated_at)
	SELECT j.id, j.kind, j.order_id, 'pending', 0, 0, j.next_at, '', '', j.payload, j.created_at, j.updated_at
	FROM unnest($19::text[], $20::text[], $21::text[], $22::timestamptz[], $23::bytea[], $24::timestamptz[], $25::timestamptz[])
		WITH ORDINALITY AS j(id, kind, order_id, next_at, payload, created_at, updated_at, n)
	WHERE j.order_id IN (SELECT id FROM succeeded)
	ORDER BY j.id, j.n
	ON CONFLICT (id) DO NOTHING
), ended_jobs AS (
	UPDATE jobs SET state = e.state, last_error = e.note, updated_at = e.at
	FROM unnest($26::text[], $27::text[], $28::text[], $29::text[], $30::timestamptz[]) AS e(order_id, id, state, note, at)
	WHERE e.order_id IN (SELECT id FROM succeeded) AND jobs.id = e.id AND jobs.state IN ('pending', 'running', 'dead')
)
SELECT id FROM succeeded`

// writeOrdersCTEs are the CTEs of writeBatchSQL: everything but jobs.
const writeOrdersCTEs = `
WITH input AS (
	SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bytea[],
		$7::timestamptz[], $8::timestamptz[], $9::timestamptz[])
		AS t(id, expected, version, customer, status, snapshot, payment_deadline, created_at, updated_at)
), updated AS (
	UPDATE orders o
	SET version = i.version, customer = i.customer, status = i.status, snapshot = i.snapshot,
		payment_deadline = i.payment_deadline, updated_at = i.updated_at
	FROM input i
	WHERE i.expected > 0 AND o.id = i.id AND o.version = i.expected
	RETURNING o.id
), inserted AS (
	INSERT INTO orders (id, customer, status, version, snapshot, payment_deadline, created_at, updated_at)
	SELECT id, customer, status, version, snapshot, payment_deadline, created_at, updated_at
	FROM input WHERE expected = 0
	ORDER BY id
	ON CONFLICT (id) DO NOTHING
	RETURNING id
), succeeded AS (
	SELECT id FROM updated UNION ALL SELECT id FROM inserted
), events AS (
	INSERT INTO order_events (order_id, version, type, from_status, to_status, idempotency_key, node, at, payload)
	SELECT e.* FROM unnest($10::text[], $11::bigint[], $12::text[], $13::text[], $14::text[], $15::text[],
		$16::text[], $17::timestamptz[], $18::bytea[])
		AS e(order_id, version, type, from_status, to_status, idempotency_key, node, at, payload)
	WHERE e.order_id IN (SELECT id FROM succeeded)
)`

// maxAttempts bounds how often a batch is retried after a deadlock or serialization
// failure, which roll back the whole statement and leave nothing applied.
const maxAttempts = 5

// WriteOrder queues w for the next batch and returns once that batch is committed: nil,
// persistence.ErrConflict if the stored version is not w.ExpectedVersion, or another
// error. If ctx ends while the write is being committed, WriteOrder returns ctx.Err()
// and the write may or may not have been applied.
func (s *Store) WriteOrder(ctx context.Context, w persistence.Write) error {
	w, err := normalize.Write(w, s.now())
	if err != nil {
		return err
	}
	return s.queue.Submit(ctx, w)
}

// flusher writes batches until the queue is closed and drained.
func (s *Store) flusher() {
	defer s.wg.Done()
	for {
		reqs, ok := s.queue.Take(maxBatch, true)
		if !ok {
			return
		}
		s.flush(reqs)
		s.queue.Done()
	}
}

// batchArgs are the columns of a batch, one array per statement parameter.
type batchArgs struct {
	ids, customers, statuses      []string
	expected, versions            []int64
	snapshots                     [][]byte
	deadlines, created, updated   []pgtype.Timestamptz
	evOrder, evType, evFrom, evTo []string
	evKey, evNode                 []string
	evVersion                     []int64
	evAt                          []pgtype.Timestamptz
	evPayload                     [][]byte
	// jobs holds the columns of the batch's jobs; nil if it has none.
	jobs *jobArgs
}

// jobArgs are the job columns of a batch: its new jobs, then its ended ones.
type jobArgs struct {
	ids, kinds, orders                 []string
	nextAt, created, updated           []pgtype.Timestamptz
	payloads                           [][]byte
	endOrder, endID, endState, endNote []string
	endAt                              []pgtype.Timestamptz
}

// add appends the jobs of w.
func (j *jobArgs) add(w persistence.Write) {
	for _, job := range w.Jobs {
		j.ids = append(j.ids, job.ID)
		j.kinds = append(j.kinds, job.Kind)
		j.orders = append(j.orders, job.OrderID)
		j.nextAt = append(j.nextAt, timestamptz(job.NextAt))
		j.payloads = append(j.payloads, job.Payload)
		j.created = append(j.created, timestamptz(job.CreatedAt))
		j.updated = append(j.updated, timestamptz(job.UpdatedAt))
	}
	for _, e := range w.EndJobs {
		j.endOrder = append(j.endOrder, w.Order.ID)
		j.endID = append(j.endID, e.ID)
		j.endState = append(j.endState, e.State)
		j.endNote = append(j.endNote, e.Note)
		j.endAt = append(j.endAt, timestamptz(w.Order.UpdatedAt))
	}
}

func timestamptz(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

func newBatchArgs(reqs []*batch.Request) *batchArgs {
	n := len(reqs)
	a := &batchArgs{
		ids: make([]string, 0, n), customers: make([]string, 0, n), statuses: make([]string, 0, n),
		expected: make([]int64, 0, n), versions: make([]int64, 0, n), snapshots: make([][]byte, 0, n),
		deadlines: make([]pgtype.Timestamptz, 0, n), created: make([]pgtype.Timestamptz, 0, n),
		updated: make([]pgtype.Timestamptz, 0, n),
	}
	for _, r := range reqs {
		w := r.Write
		o := w.Order
		snapshot := o.Snapshot
		if snapshot == nil {
			snapshot = []byte{}
		}
		a.ids = append(a.ids, o.ID)
		a.expected = append(a.expected, w.ExpectedVersion)
		a.versions = append(a.versions, o.Version)
		a.customers = append(a.customers, o.Customer)
		a.statuses = append(a.statuses, o.Status)
		a.snapshots = append(a.snapshots, snapshot)
		a.deadlines = append(a.deadlines, timestamptz(o.PaymentDeadline))
		a.created = append(a.created, timestamptz(o.CreatedAt))
		a.updated = append(a.updated, timestamptz(o.UpdatedAt))
		for _, e := range w.Events {
			a.evOrder = append(a.evOrder, e.OrderID)
			a.evVersion = append(a.evVersion, e.Version)
			a.evType = append(a.evType, e.Type)
			a.evFrom = append(a.evFrom, e.From)
			a.evTo = append(a.evTo, e.To)
			a.evKey = append(a.evKey, e.IdempotencyKey)
			a.evNode = append(a.evNode, e.Node)
			a.evAt = append(a.evAt, timestamptz(e.At))
			a.evPayload = append(a.evPayload, e.Payload)
		}
		if len(w.Jobs) > 0 || len(w.EndJobs) > 0 {
			if a.jobs == nil {
				a.jobs = &jobArgs{}
			}
			a.jobs.add(w)
		}
	}
	return a
}

// statement returns the batch statement for a and its parameters.
func (a *batchArgs) statement() (string, []any) {
	params := []any{a.ids, a.expected, a.versions, a.customers, a.statuses, a.snapshots, a.deadlines, a.created, a.updated,
		a.evOrder, a.evVersion, a.evType, a.evFrom, a.evTo, a.evKey, a.evNode, a.evAt, a.evPayload}
	j := a.jobs
	if j == nil {
		return writeBatchSQL, params
	}
	return writeBatchJobsSQL, append(params, j.ids, j.kinds, j.orders, j.nextAt, j.payloads, j.created, j.updated,
		j.endOrder, j.endID, j.endState, j.endNote, j.endAt)
}

// flush writes one batch and completes each of its requests. Orders' and skus' writes
// queued together are sent in one round trip and committed in one transaction: the
// orders' batch statement, then one statement per sku (a pipeline with one Sync, which
// PostgreSQL runs as one implicit transaction). If the server refuses any of it, nothing
// is applied, and the orders are written apart from the skus, each part isolating its
// own bad write.
func (s *Store) flush(reqs []*batch.Request) {
	var orders, stocks []*batch.Request
	for _, r := range reqs {
		if r.Stock != nil {
			stocks = append(stocks, r)
		} else {
			orders = append(orders, r)
		}
	}
	// Sorted ids make concurrent batches lock rows in the same order, making deadlocks
	// between them rare; the retry below handles the rest.
	slices.SortFunc(orders, func(a, b *batch.Request) int { return strings.Compare(a.Write.Order.ID, b.Write.Order.ID) })
	slices.SortFunc(stocks, func(a, b *batch.Request) int { return strings.Compare(a.Stock.Stock.SKU, b.Stock.Stock.SKU) })
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	start := time.Now()
	var results []error
	var err error
	if len(stocks) == 0 {
		results, err = s.writeIsolated(ctx, orders)
	} else {
		results, err = s.writeTogether(ctx, orders, stocks)
	}
	s.observed.Observe(len(reqs), start, err)
	for i, r := range append(orders, stocks...) {
		r.Complete(results[i])
	}
}

// writeTogether writes orders and stocks in one transaction and returns the outcome of
// each, orders first. When the server refuses the transaction, the orders are written
// by writeIsolated and each sku by itself.
func (s *Store) writeTogether(ctx context.Context, orders, stocks []*batch.Request) (results []error, err error) {
	results = make([]error, len(orders)+len(stocks))
	var a *batchArgs
	if len(orders) > 0 {
		a = newBatchArgs(orders)
	}
	var succeeded map[string]bool
	var written []int64
	for attempt := 1; ; attempt++ {
		succeeded, written, err = s.writeTogetherOnce(ctx, a, stocks)
		if err == nil || attempt >= maxAttempts || !retryable(err) {
			break
		}
	}
	switch {
	case err == nil:
		for i, r := range orders {
			if !succeeded[r.Write.Order.ID] {
				results[i] = fmt.Errorf("writing order %s at version %d: %w", r.Write.Order.ID, r.Write.ExpectedVersion, persistence.ErrConflict)
			}
		}
		for i, r := range stocks {
			results[len(orders)+i] = stockOutcome(r.Stock, written[i])
		}
		return results, nil
	case !refusedByServer(err):
		err = fmt.Errorf("writing batch of %d orders and %d skus: %w", len(orders), len(stocks), err)
		for i := range results {
			results[i] = err
		}
		return results, err
	}
	if len(orders) > 0 {
		r, _ := s.writeIsolated(ctx, orders)
		copy(results, r)
	}
	for i, r := range stocks {
		results[len(orders)+i] = s.writeStockAlone(ctx, r.Stock)
	}
	return results, nil
}

// writeTogetherOnce sends the orders' batch statement (if a is not nil) and every sku's
// statement as one pipeline, and returns the ids of the orders written and the rows each
// sku's statement wrote.
func (s *Store) writeTogetherOnce(ctx context.Context, a *batchArgs, stocks []*batch.Request) (map[string]bool, []int64, error) {
	var b pgx.Batch
	succeeded := map[string]bool{}
	if a != nil {
		query, params := a.statement()
		b.Queue(query, params...).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					return err
				}
				succeeded[id] = true
			}
			return rows.Err()
		})
	}
	written := make([]int64, len(stocks))
	for i, r := range stocks {
		b.Queue(writeStockSQL, stockParams(*r.Stock)...).QueryRow(func(row pgx.Row) error { return row.Scan(&written[i]) })
	}
	if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
		return nil, nil, err
	}
	return succeeded, written, nil
}

// writeIsolated writes reqs with one batch statement and returns the outcome of each.
// The statement is all or nothing, so when the server refuses it (a row it cannot
// store, say), the batch is split in halves and each is written the same way, down to
// the single write at fault, which alone fails with its own error: one bad write costs
// the others a few more statements, never their success. A batch that fails without the
// server refusing it (connection lost, timeout) fails every write still in it, with
// err set when that happened to the whole of reqs.
func (s *Store) writeIsolated(ctx context.Context, reqs []*batch.Request) (results []error, err error) {
	results = make([]error, len(reqs))
	succeeded, err := s.writeBatch(ctx, newBatchArgs(reqs))
	switch {
	case err == nil:
		for i, r := range reqs {
			if !succeeded[r.Write.Order.ID] {
				results[i] = fmt.Errorf("writing order %s at version %d: %w",
					r.Write.Order.ID, r.Write.ExpectedVersion, persistence.ErrConflict)
			}
		}
		return results, nil
	case !refusedByServer(err):
		for i := range results {
			results[i] = err
		}
		return results, err
	case len(reqs) == 1:
		results[0] = fmt.Errorf("writing order %s: %w", reqs[0].Write.Order.ID, classify(err))
		return results, nil
	}
	mid := len(reqs) / 2
	left, _ := s.writeIsolated(ctx, reqs[:mid])
	right, _ := s.writeIsolated(ctx, reqs[mid:])
	return append(left, right...), nil
}

// refusedByServer reports whether err is the server's answer to the statement, which it
// rolled back, rather than a failure to get an answer: the connection is still good and
// smaller statements may succeed. Connection exceptions (class 08) and operator
// intervention (class 57: shutdown, cancel) are not: they say nothing about the rows.
func refusedByServer(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && !strings.HasPrefix(pgErr.Code, "08") && !strings.HasPrefix(pgErr.Code, "57")
}

// classify marks an error the server gave for a write's content (SQLSTATE class 22, data
// exception: invalid byte sequence for UTF8 or NUL in text, untranslatable character,
// value out of range) as persistence.ErrInvalid, which no retry can cure.
func classify(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22") {
		return fmt.Errorf("%w: %w", persistence.ErrInvalid, err)
	}
	return err
}

// writeBatch runs the batch statement, retrying deadlocks and serialization failures,
// and returns the ids of the writes that applied.
func (s *Store) writeBatch(ctx context.Context, a *batchArgs) (map[string]bool, error) {
	for attempt := 1; ; attempt++ {
		succeeded, err := s.writeBatchOnce(ctx, a)
		if err == nil {
			return succeeded, nil
		}
		if attempt < maxAttempts && retryable(err) {
			continue
		}
		return nil, fmt.Errorf("writing batch of %d orders: %w", len(a.ids), err)
	}
}

func (s *Store) writeBatchOnce(ctx context.Context, a *batchArgs) (map[string]bool, error) {
	query, params := a.statement()
	rows, err := s.pool.Query(ctx, query, params...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	succeeded := make(map[string]bool, len(a.ids))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		succeeded[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return succeeded, nil
}

// retryable reports whether err rolled back the batch for a reason a retry may avoid.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "40P01", // deadlock_detected
		"40001": // serialization_failure
		return true
	}
	return false
}

// PutUser creates or replaces a user. CreatedAt is set when the user is created (now
// if zero) and kept when it is replaced.
func (s *Store) PutUser(ctx context.Context, u persistence.User) error {
	u, err := normalize.User(u, s.now())
	if err != nil {
		return err
	}
	release, err := s.enter()
	if err != nil {
		return err
	}
	defer release()
	if _, err := s.pool.Exec(ctx, `INSERT INTO users (username, password_hash, role, created_at, disabled)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role, disabled = EXCLUDED.disabled`,
		u.Username, u.PasswordHash, u.Role, u.CreatedAt, u.Disabled); err != nil {
		return fmt.Errorf("putting user %s: %w", u.Username, err)
	}
	return nil
}
