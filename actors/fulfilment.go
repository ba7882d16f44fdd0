package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/warehouse"
	"github.com/ordermesh/ordermesh/persistence"
)

// fulfilmentBy is who ships the orders the pool fulfils.
var fulfilmentBy = order.Principal{Subject: "fulfilment", Role: order.RoleSystem}

// FulfilmentConfig configures Fulfilment. Zero values take the defaults in brackets.
type FulfilmentConfig struct {
	Jobs      persistence.Jobs
	Orders    order.Service
	Warehouse warehouse.Warehouse
	Node      string // this node's id
	// Workers is how many tasks this node fulfils at once; 0 turns auto-ship off on this
	// node: it runs no pool, and tasks wait for an operator (or another node's pool).
	Workers     int
	MaxAttempts int     // failed runs that dead-letter a task [5]
	Backoff     Backoff // [1s..1m, the pool's]
	Lease       time.Duration
	Poll        time.Duration
	Now         func() time.Time // [time.Now]
	Logger      *slog.Logger     // [slog.Default()]
	Observer    PoolObserver     // may be nil
}

// Fulfilment runs the fulfilment tasks of paid orders (jobs of kind JobFulfilment, which
// the order grain writes when an order is paid): the warehouse picks, packs and hands the
// order to the carrier, then the order is shipped, with the task's id as the Ship's
// idempotency key, so a task run twice (a lease that passed while its node was stalled)
// ships once. It is also the operators' view of the tasks: List, Retry, Cancel.
type Fulfilment struct {
	cfg  FulfilmentConfig
	pool *Pool // nil when auto-ship is off
}

// NewFulfilment returns a Fulfilment that is not started yet.
func NewFulfilment(cfg FulfilmentConfig) *Fulfilment {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	f := &Fulfilment{cfg: cfg}
	if cfg.Workers > 0 {
		f.pool = NewPool(PoolConfig{Jobs: cfg.Jobs, Kind: JobFulfilment, Node: cfg.Node, Workers: cfg.Workers,
			Poll: cfg.Poll, Lease: cfg.Lease, MaxAttempts: cfg.MaxAttempts, Backoff: cfg.Backoff, Now: cfg.Now,
			Logger: cfg.Logger, Run: f.run, Observer: cfg.Observer})
	}
	return f
}

// Start starts the pool; with auto-ship off it does nothing.
func (f *Fulfilment) Start() {
	if f.pool != nil {
		f.pool.Start()
	}
}

// Stop stops the pool and waits for the tasks in flight (see Pool.Stop).
func (f *Fulfilment) Stop(ctx context.Context) {
	if f.pool != nil {
		f.pool.Stop(ctx)
	}
}

// Kick makes the pool look for due tasks now.
func (f *Fulfilment) Kick() {
	if f.pool != nil {
		f.pool.Kick()
	}
}

// List returns a page of fulfilment tasks, newest first; q.Kind is ignored.
func (f *Fulfilment) List(ctx context.Context, q persistence.JobQuery) (persistence.JobPage, error) {
	q.Kind = JobFulfilment
	return f.cfg.Jobs.ListJobs(ctx, q)
}

// Retry makes a dead or pending task due now, its attempts counted afresh, and kicks the
// pool. ErrNotFound for an unknown id (or a job that is not a fulfilment task),
// ErrConflict when the task is running, done or cancelled.
func (f *Fulfilment) Retry(ctx context.Context, id string) (persistence.Job, error) {
	if err := f.own(ctx, id); err != nil {
		return persistence.Job{}, err
	}
	j, err := f.cfg.Jobs.RetryJob(ctx, id, f.cfg.Now())
	if err == nil {
		f.Kick()
	}
	return j, err
}

// Cancel cancels a dead or pending task, keeping reason as its note; errors as Retry's.
func (f *Fulfilment) Cancel(ctx context.Context, id, reason string) (persistence.Job, error) {
	if err := f.own(ctx, id); err != nil {
		return persistence.Job{}, err
	}
	return f.cfg.Jobs.CancelJob(ctx, id, reason, f.cfg.Now())
}

// own returns ErrNotFound unless id is a fulfilment task, so operators reach no other
// kind of job through Fulfilment.
func (f *Fulfilment) own(ctx context.Context, id string) error {
	j, err := f.cfg.Jobs.GetJob(ctx, id)
	if err == nil && j.Kind != JobFulfilment {
		err = fmt.Errorf("%w: %s is not a fulfilment task", persistence.ErrNotFound, id)
	}
	return err
}

// run fulfils one task and ships its order.
func (f *Fulfilment) run(ctx context.Context, j persistence.Job) error {
	var t warehouse.Task
	if err := json.Unmarshal(j.Payload, &t); err != nil {
		return fmt.Errorf("%w: undecodable task: %w", ErrDeadJob, err)
	}
	if err := f.cfg.Warehouse.Fulfil(ctx, t); err != nil {
		return fmt.Errorf("warehouse: %w", err)
	}
	// The Ship's write ends the task done; the pool then finds it so.
	_, err := f.cfg.Orders.Execute(ctx, order.Command{Type: order.CmdShip, OrderID: t.OrderID, Key: j.ID, By: fulfilmentBy}, j.ID)
	if order.ErrorCode(err) != order.CodeIllegalTransition {
		return err // nil, or retried: with backoff, and dead-lettered after MaxAttempts
	}
	v, gerr := f.cfg.Orders.Get(ctx, t.OrderID, fulfilmentBy, j.ID)
	if gerr != nil {
		return fmt.Errorf("shipping: %w; reading the order: %w", err, gerr)
	}
	switch v.Status {
	case order.StatusShipped, order.StatusDelivered:
		f.cfg.Logger.Info("fulfilment task done: the order was shipped by someone else", "job", j.ID, "order_id", t.OrderID)
		return nil
	default:
		return fmt.Errorf("%w: the order is %s", ErrCancelJob, v.Status)
	}
}
