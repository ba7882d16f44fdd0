package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/internal/batch"
	"github.com/ordermesh/ordermesh/persistence/internal/normalize"
)

const (
	insertOrderSQL = `INSERT INTO orders (id, customer, status, version, snapshot, payment_deadline, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
	updateOrderSQL = `UPDATE orders SET customer = ?, status = ?, version = ?, snapshot = ?, payment_deadline = ?, updated_at = ?
		WHERE id = ? AND version = ?`
	insertEventSQL = `INSERT INTO order_events (order_id, version, type, from_status, to_status, idempotency_key, node, at, payload)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	insertJobSQL = `INSERT INTO jobs (id, kind, order_id, state, attempts, fence, next_at, lease_owner, last_error, payload,
		created_at, updated_at) VALUES (?, ?, ?, 'pending', 0, 0, ?, '', '', ?, ?, ?) ON CONFLICT (id) DO NOTHING`
	endJobSQL = `UPDATE jobs SET state = ?, last_error = ?, updated_at = ?
		WHERE id = ? AND state IN ('pending', 'running', 'dead')`
)

// WriteOrder queues w for the writer and returns once its batch is committed: nil,
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

// writer commits batches until the queue is closed and drained.
func (s *Store) writer() {
	defer close(s.done)
	for {
		reqs, ok := s.queue.Take(maxBatch, false)
		if !ok {
			return
		}
		s.commit(reqs)
		s.queue.Done()
	}
}

// batchStmts are the statements of one batch transaction, prepared once per batch; those
// of jobs only for a batch with jobs.
type batchStmts struct {
	insertOrder, updateOrder, insertEvent *sql.Stmt
	insertJob, endJob                     *sql.Stmt
}

// commit writes reqs in one transaction and completes every request. The transaction
// does not use a caller's context: it is shared by all callers in the batch, and a
// queued write whose caller gave up was already dropped by Take.
func (s *Store) commit(reqs []*batch.Request) {
	ctx := context.Background()
	start := time.Now()
	results, err := s.commitBatch(ctx, reqs)
	s.observed.Observe(len(reqs), start, err)
	for i, r := range reqs {
		if err != nil {
			r.Complete(err)
		} else {
			r.Complete(results[i])
		}
	}
}

func (s *Store) commitBatch(ctx context.Context, reqs []*batch.Request) ([]error, error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("writing orders: beginning transaction: %w", err)
	}
	defer tx.Rollback()
	var st batchStmts
	type prepared struct {
		stmt **sql.Stmt
		sql  string
	}
	stmts := []prepared{{&st.insertOrder, insertOrderSQL}, {&st.updateOrder, updateOrderSQL}, {&st.insertEvent, insertEventSQL}}
	if slices.ContainsFunc(reqs, func(r *batch.Request) bool { return len(r.Write.Jobs) > 0 || len(r.Write.EndJobs) > 0 }) {
		stmts = append(stmts, prepared{&st.insertJob, insertJobSQL}, prepared{&st.endJob, endJobSQL})
	}
	for _, p := range stmts {
		if *p.stmt, err = tx.PrepareContext(ctx, p.sql); err != nil {
			return nil, fmt.Errorf("writing orders: preparing: %w", err)
		}
		defer (*p.stmt).Close()
	}
	results := make([]error, len(reqs))
	for i, r := range reqs {
		var fatal error
		results[i], fatal = applyWrite(ctx, tx, &st, r.Write)
		if fatal != nil {
			return nil, fatal
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("writing orders: committing: %w", err)
	}
	return results, nil
}

// applyWrite applies one write under a savepoint. result is the write's own outcome
// (nil, ErrConflict, or an error that rolled back only this write); fatal means the
// transaction itself is broken and the whole batch must fail.
func applyWrite(ctx context.Context, tx *sql.Tx, st *batchStmts, w persistence.Write) (result, fatal error) {
	if _, err := tx.ExecContext(ctx, "SAVEPOINT write"); err != nil {
		return nil, fmt.Errorf("writing orders: opening savepoint: %w", err)
	}
	result = applyRows(ctx, st, w)
	if result != nil && !errors.Is(result, persistence.ErrConflict) {
		if _, err := tx.ExecContext(ctx, "ROLLBACK TO write"); err != nil {
			return nil, fmt.Errorf("writing orders: rolling back to savepoint: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, "RELEASE write"); err != nil {
		return nil, fmt.Errorf("writing orders: releasing savepoint: %w", err)
	}
	return result, nil
}

// applyRows writes the order row conditionally and, if that succeeded, its events and
// its jobs: the ended ones first, so that, as in the PostgreSQL store, a write's EndJobs
// apply only to jobs stored before it. A conflict changes nothing, so it needs no rollback.
func applyRows(ctx context.Context, st *batchStmts, w persistence.Write) error {
	o := w.Order
	var res sql.Result
	var err error
	if w.ExpectedVersion == 0 {
		res, err = st.insertOrder.ExecContext(ctx, o.ID, o.Customer, o.Status, o.Version, nonNil(o.Snapshot),
			micros(o.PaymentDeadline), micros(o.CreatedAt), micros(o.UpdatedAt))
	} else {
		res, err = st.updateOrder.ExecContext(ctx, o.Customer, o.Status, o.Version, nonNil(o.Snapshot),
			micros(o.PaymentDeadline), micros(o.UpdatedAt), o.ID, w.ExpectedVersion)
	}
	if err != nil {
		return fmt.Errorf("writing order %s: %w", o.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("writing order %s: counting rows: %w", o.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("writing order %s at version %d: %w", o.ID, w.ExpectedVersion, persistence.ErrConflict)
	}
	for _, e := range w.Events {
		if _, err := st.insertEvent.ExecContext(ctx, e.OrderID, e.Version, e.Type, e.From, e.To,
			e.IdempotencyKey, e.Node, micros(e.At), e.Payload); err != nil {
			return fmt.Errorf("writing event %d of order %s: %w", e.Version, o.ID, err)
		}
	}
	for _, e := range w.EndJobs {
		if _, err := st.endJob.ExecContext(ctx, e.State, e.Note, micros(o.UpdatedAt), e.ID); err != nil {
			return fmt.Errorf("ending job %s of order %s: %w", e.ID, o.ID, err)
		}
	}
	for _, j := range w.Jobs {
		if _, err := st.insertJob.ExecContext(ctx, j.ID, j.Kind, j.OrderID, micros(j.NextAt), j.Payload,
			micros(j.CreatedAt), micros(j.UpdatedAt)); err != nil {
			return fmt.Errorf("writing job %s of order %s: %w", j.ID, o.ID, err)
		}
	}
	return nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
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
	if _, err := s.write.ExecContext(ctx, `INSERT INTO users (username, password_hash, role, created_at, disabled)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role, disabled = excluded.disabled`,
		u.Username, u.PasswordHash, u.Role, u.CreatedAt.UnixMicro(), u.Disabled); err != nil {
		return fmt.Errorf("putting user %s: %w", u.Username, err)
	}
	return nil
}
