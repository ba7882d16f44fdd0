package baseline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/payment"
	"github.com/ordermesh/ordermesh/actors/payment/client"
	"github.com/ordermesh/ordermesh/actors/warehouse"
	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/keyset"
)

// Payments and fulfilment, the classic way. The order statements write the tasks
// (execute.go: entering PAYING inserts the payment task, entering PAID the fulfilment
// task, and a transition that makes one moot ends it), and worker goroutines poll the
// baseline_tasks table:
//
//	SELECT ... WHERE kind = $1 AND state IN ('pending', 'running') AND next_at <= now
//	ORDER BY next_at LIMIT 1 FOR UPDATE SKIP LOCKED
//
// A claim leases the task (running, lease_until = next_at = now + lease, attempts and
// fence incremented); a run ends before its lease does, and its outcome is written only
// while the task is still running under the fence it claimed, so a task is never finished
// by two runs, and one whose worker died is claimed again once its lease has passed.
// Failures retry with exponential backoff and full jitter; a fulfilment task is
// dead-lettered after FulfilmentAttempts runs, a payment task only when the provider
// rejects the intent (otherwise the order's payment deadline ends it). The JSON the edge
// serves is ordermesh's, because the tasks are handed to it as persistence.Job values.

// The kinds and states of tasks: ordermesh's job kinds and states.
const (
	kindPayment    = "payment"
	kindFulfilment = "fulfilment"
)

// fulfilmentSubject is the "by" of the Ship a fulfilment task ends with.
const fulfilmentSubject = "fulfilment"

// Defaults of the task options.
const (
	DefaultFulfilmentAttempts = 5
	DefaultPaymentWorkers     = 2
	DefaultTaskPoll           = time.Second
	DefaultTaskLease          = 30 * time.Second
	DefaultRetryOpen          = 5 * time.Second
)

// backoff is how long the n-th failed run of a kind waits: min(max, base*2^(n-1)), with
// full jitter in [d/2, d].
type backoff struct{ base, max time.Duration }

var (
	paymentBackoff    = backoff{time.Second, 30 * time.Second}
	fulfilmentBackoff = backoff{time.Second, time.Minute}
)

func (b backoff) after(attempts int) time.Duration {
	d := b.base
	for i := 1; i < attempts && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	return d/2 + rand.N(d/2+1)
}

// taskColumns are the columns scanTask reads, of the table as aliased t.
const taskColumns = `t.id, t.kind, t.order_id, t.state, t.attempts, t.fence, t.next_at, t.lease_owner, t.lease_until,
	t.last_error, t.payload, t.created_at, t.updated_at`

// claimSet is what a claim does to a task row: $1 now, $2 lease end, $3 owner.
const claimSet = `
UPDATE baseline_tasks t
SET state = 'running', attempts = t.attempts + 1, fence = t.fence + 1,
	lease_owner = $3, lease_until = $2, next_at = $2, updated_at = $1
FROM due WHERE t.id = due.id
RETURNING ` + taskColumns

// claimDueSQL claims the next due task of kind $4.
const claimDueSQL = `
WITH due AS (
	SELECT id FROM baseline_tasks
	WHERE kind = $4 AND state IN ('pending', 'running') AND next_at <= $1
	ORDER BY next_at, id
	LIMIT 1
	FOR UPDATE SKIP LOCKED
)` + claimSet

// claimOneSQL claims task $4 if it is due (for an inline submit).
const claimOneSQL = `
WITH due AS (
	SELECT id FROM baseline_tasks
	WHERE id = $4 AND state IN ('pending', 'running') AND next_at <= $1
	FOR UPDATE SKIP LOCKED
)` + claimSet

// finishSQL records a run's outcome while the run still holds its claim.
const finishSQL = `
UPDATE baseline_tasks
SET state = $3, next_at = COALESCE($4, next_at), last_error = $5, lease_until = NULL, updated_at = $6
WHERE id = $1 AND fence = $2 AND state = 'running'`

// retrySQL and cancelSQL are the operators' actions on a fulfilment task.
const (
	retrySQL = `
UPDATE baseline_tasks t SET state = 'pending', attempts = 0, next_at = $2, updated_at = $2
WHERE id = $1 AND kind = 'fulfilment' AND state IN ('pending', 'dead')
RETURNING ` + taskColumns
	cancelSQL = `
UPDATE baseline_tasks t SET state = 'cancelled', last_error = $3, updated_at = $2
WHERE id = $1 AND kind = 'fulfilment' AND state IN ('pending', 'dead')
RETURNING ` + taskColumns
)

// scanTask reads one row of taskColumns as a persistence.Job.
func scanTask(row pgx.Row) (persistence.Job, error) {
	var j persistence.Job
	var attempts int32
	var next, until, created, updated pgtype.Timestamptz
	err := row.Scan(&j.ID, &j.Kind, &j.OrderID, &j.State, &attempts, &j.Fence, &next, &j.LeaseOwner, &until,
		&j.LastError, &j.Payload, &created, &updated)
	j.Attempts, j.NextAt, j.LeaseUntil, j.CreatedAt, j.UpdatedAt = int(attempts), utc(next), utc(until), utc(created), utc(updated)
	return j, err
}

// claim leases a task: the next due one of kind, or the one with id. ok is false when
// there is none to claim.
func (s *Service) claim(ctx context.Context, kind, id string) (j persistence.Job, ok bool, err error) {
	now := s.now()
	sql, arg := claimDueSQL, kind
	if id != "" {
		sql, arg = claimOneSQL, id
	}
	j, err = scanTask(s.pool.QueryRow(ctx, sql, now, now.Add(s.opts.TaskLease), s.opts.Node, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return persistence.Job{}, false, nil
	}
	if err != nil {
		return persistence.Job{}, false, fmt.Errorf("claiming a %s task: %w", kind, err)
	}
	return j, true, nil
}

// outcome is how a run ended: the state the task goes to, when it is due again
// (pending), and why.
type outcome struct {
	state string
	next  time.Time
	note  string
}

// finish records o for the run of j. A task that is no longer running under j's claim
// (its order ended it, or its lease passed and another worker has it) is left alone.
func (s *Service) finish(ctx context.Context, j persistence.Job, o outcome) error {
	_, err := s.pool.Exec(ctx, finishSQL, j.ID, j.Fence, o.state, timestamptz(o.next), o.note, s.now())
	if err != nil {
		return fmt.Errorf("finishing task %s: %w", j.ID, err)
	}
	return nil
}

// run runs a claimed task within its lease and records the outcome.
func (s *Service) run(ctx context.Context, j persistence.Job) outcome {
	ctx, cancel := context.WithTimeout(ctx, s.opts.TaskLease/2)
	defer cancel()
	var o outcome
	if j.Kind == kindPayment {
		o = s.runPayment(ctx, j)
	} else {
		o = s.runFulfilment(ctx, j)
	}
	if err := s.finish(context.WithoutCancel(ctx), j, o); err != nil {
		s.opts.Logger.Warn("baseline task outcome not recorded", "task", j.ID, "err", err)
	}
	return o
}

// retry is the outcome of a failed run that may be tried again, or the dead letter when
// the task has used its attempts (maxAttempts 0: never).
func (s *Service) retry(j persistence.Job, b backoff, maxAttempts int, err error) outcome {
	if maxAttempts > 0 && j.Attempts >= maxAttempts {
		return outcome{state: persistence.JobDead, note: err.Error()}
	}
	return outcome{state: persistence.JobPending, next: s.now().Add(b.after(j.Attempts)), note: err.Error()}
}

// runPayment hands a payment task's intent to the provider.
func (s *Service) runPayment(ctx context.Context, j persistence.Job) outcome {
	var in payment.Intent
	if err := json.Unmarshal(j.Payload, &in); err != nil {
		return outcome{state: persistence.JobDead, note: "undecodable intent: " + err.Error()}
	}
	_, err := s.opts.Provider.CreateIntent(ctx, in)
	switch {
	case err == nil:
		return outcome{state: persistence.JobDone, note: ""}
	case errors.Is(err, payment.ErrRejected):
		return outcome{state: persistence.JobDead, note: err.Error()}
	case errors.Is(err, client.ErrOpen):
		return outcome{state: persistence.JobPending, next: s.now().Add(s.opts.RetryOpen), note: err.Error()}
	default:
		return s.retry(j, paymentBackoff, 0, err)
	}
}

// runFulfilment has the warehouse fulfil a task's order, then ships it with the task's
// id as the key.
func (s *Service) runFulfilment(ctx context.Context, j persistence.Job) outcome {
	var t warehouse.Task
	if err := json.Unmarshal(j.Payload, &t); err != nil {
		return outcome{state: persistence.JobDead, note: "undecodable task: " + err.Error()}
	}
	if err := s.opts.Warehouse.Fulfil(ctx, t); err != nil {
		return s.retry(j, fulfilmentBackoff, s.opts.FulfilmentAttempts, err)
	}
	_, err := s.Execute(ctx, order.Command{Type: order.CmdShip, OrderID: t.OrderID, Key: j.ID,
		By: order.Principal{Subject: fulfilmentSubject, Role: order.RoleSystem}}, j.ID)
	if order.ErrorCode(err) != order.CodeIllegalTransition {
		if err != nil {
			return s.retry(j, fulfilmentBackoff, s.opts.FulfilmentAttempts, err)
		}
		return outcome{state: persistence.JobDone, note: "shipped"}
	}
	o, found, lerr := s.load(ctx, t.OrderID)
	switch {
	case lerr != nil:
		return s.retry(j, fulfilmentBackoff, s.opts.FulfilmentAttempts, lerr)
	case found && (o.Status == order.StatusShipped || o.Status == order.StatusDelivered):
		return outcome{state: persistence.JobDone, note: "shipped by someone else"}
	default:
		return outcome{state: persistence.JobCancelled, note: "the order is " + string(o.Status)}
	}
}

// startWorkers starts n workers of kind, which poll until ctx ends.
func (s *Service) startWorkers(ctx context.Context, kind string, n int, kick <-chan struct{}) {
	for range n {
		s.workers.Add(1)
		go func() {
			defer s.workers.Done()
			s.work(ctx, kind, kick)
		}()
	}
}

// work claims and runs due tasks of kind one at a time; when there is none it waits for
// the poll interval or a kick.
func (s *Service) work(ctx context.Context, kind string, kick <-chan struct{}) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
		for ctx.Err() == nil {
			j, ok, err := s.claim(ctx, kind, "")
			if err != nil && ctx.Err() == nil {
				s.opts.Logger.Warn("baseline task poll failed", "kind", kind, "err", err)
			}
			if !ok {
				break
			}
			s.run(ctx, j)
		}
		t.Reset(s.opts.TaskPoll)
	}
}

// kickWorkers wakes an idle worker of a kind without waiting.
func kickWorkers(kick chan struct{}) {
	select {
	case kick <- struct{}{}:
	default:
	}
}

// Payments is the baseline's side of the payment provider, the edge's Payments: the
// inline submit of a pay and the webhook secrets.
type Payments struct{ s *Service }

// Payments returns the payments of s, for the edge. Without Options.Provider (manual
// payments) it is nil.
func (s *Service) Payments() *Payments {
	if s.opts.Provider == nil {
		return nil
	}
	return &Payments{s: s}
}

// The submissions Submit reports.
const (
	Submitted = "submitted"
	Queued    = "queued"
)

// Submit makes the first attempt to submit the intent of an order that just became
// PAYING at version, inline: it claims the order's payment task and runs it through the
// provider (whose calls are bounded by its guard's timeout). It answers Submitted (the
// provider has it) or Queued (the task waits for a payment worker: the breaker is open,
// the call failed, or a worker has it already). The pay stands either way.
func (p *Payments) Submit(ctx context.Context, orderID string, version uint64) (string, error) {
	j, ok, err := p.s.claim(ctx, kindPayment, payment.IntentID(orderID, version))
	if err != nil || !ok {
		return Queued, err
	}
	if o := p.s.run(ctx, j); o.state != persistence.JobDone {
		kickWorkers(p.s.kickPayments)
		return Queued, nil
	}
	return Submitted, nil
}

// WebhookSecrets returns the secrets the provider's webhooks may be signed with, newest
// first.
func (p *Payments) WebhookSecrets() [][]byte { return p.s.opts.WebhookSecrets }

// Fulfilment is the operators' view of the fulfilment tasks, the edge's Fulfilment.
type Fulfilment struct{ s *Service }

// Fulfilment returns the fulfilment tasks of s, for the edge.
func (s *Service) Fulfilment() *Fulfilment { return &Fulfilment{s: s} }

// List returns a page of fulfilment tasks (q.Kind is ignored), newest by creation first,
// with ordermesh's keyset cursors; persistence.ErrBadCursor for a cursor not made here.
func (f *Fulfilment) List(ctx context.Context, q persistence.JobQuery) (persistence.JobPage, error) {
	limit := keyset.Limit(q.Limit)
	at, id := time.Time{}, ""
	if q.Cursor != "" {
		c, err := keyset.Decode(q.Cursor)
		if err != nil {
			return persistence.JobPage{}, fmt.Errorf("listing fulfilment tasks: %w", err)
		}
		at, id = c.CreatedAt, c.ID
	}
	rows, err := f.s.pool.Query(ctx, `SELECT `+taskColumns+` FROM baseline_tasks t
		WHERE kind = 'fulfilment' AND ($1 = '' OR state = $1) AND ($2 = '' OR order_id = $2)
		  AND ($3 = '' OR (created_at, id) < ($4, $3))
		ORDER BY created_at DESC, id DESC LIMIT $5`, q.State, q.OrderID, id, at, limit+1)
	if err != nil {
		return persistence.JobPage{}, fmt.Errorf("listing fulfilment tasks: %w", err)
	}
	jobs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (persistence.Job, error) { return scanTask(row) })
	if err != nil {
		return persistence.JobPage{}, fmt.Errorf("listing fulfilment tasks: %w", err)
	}
	page := persistence.JobPage{Jobs: jobs}
	if len(jobs) > limit {
		last := jobs[limit-1]
		page = persistence.JobPage{Jobs: jobs[:limit], NextCursor: keyset.Encode(keyset.Cursor{CreatedAt: last.CreatedAt, ID: last.ID})}
	}
	if page.Jobs == nil {
		page.Jobs = []persistence.Job{}
	}
	return page, nil
}

// Retry makes a dead or pending fulfilment task due now with its attempts reset (an
// operator's retry) and wakes a worker; persistence.ErrNotFound if there is no such task,
// persistence.ErrConflict if it is running, done or cancelled.
func (f *Fulfilment) Retry(ctx context.Context, id string) (persistence.Job, error) {
	j, err := f.operate(ctx, retrySQL, id, f.s.now())
	if err == nil {
		kickWorkers(f.s.kickFulfilment)
	}
	return j, err
}

// Cancel cancels a dead or pending fulfilment task, keeping reason as its last error;
// errors as Retry.
func (f *Fulfilment) Cancel(ctx context.Context, id, reason string) (persistence.Job, error) {
	if reason == "" {
		reason = "cancelled by an operator"
	}
	return f.operate(ctx, cancelSQL, id, f.s.now(), reason)
}

// operate runs an operator's statement on task id and tells a task it does not apply to
// (ErrConflict) from an unknown one (ErrNotFound).
func (f *Fulfilment) operate(ctx context.Context, sql, id string, args ...any) (persistence.Job, error) {
	j, err := scanTask(f.s.pool.QueryRow(ctx, sql, append([]any{id}, args...)...))
	if !errors.Is(err, pgx.ErrNoRows) {
		if err != nil {
			return persistence.Job{}, fmt.Errorf("fulfilment task %s: %w", id, err)
		}
		return j, nil
	}
	j, err = scanTask(f.s.pool.QueryRow(ctx, `SELECT `+taskColumns+` FROM baseline_tasks t WHERE id = $1 AND kind = 'fulfilment'`, id))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return persistence.Job{}, fmt.Errorf("fulfilment task %s: %w", id, persistence.ErrNotFound)
	case err != nil:
		return persistence.Job{}, fmt.Errorf("fulfilment task %s: %w", id, err)
	default:
		return j, fmt.Errorf("fulfilment task %s is %s: %w", id, j.State, persistence.ErrConflict)
	}
}
