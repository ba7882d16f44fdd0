package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ordermesh/ordermesh/actors/payment"
	"github.com/ordermesh/ordermesh/persistence"
)

// Breaker is the provider's circuit breaker, as far as Payments reports it.
type Breaker interface {
	State() string // "closed", "half-open" or "open"
}

// What Payments.Submit reports of a payment.
const (
	SubmissionSubmitted = "submitted" // the provider has the intent
	SubmissionQueued    = "queued"    // the intent waits in the durable queue
)

// PaymentsConfig configures Payments. Zero values take the defaults in brackets.
type PaymentsConfig struct {
	Jobs persistence.Jobs
	// Provider is the payment provider, already guarded (a timeout per call and a
	// circuit breaker).
	Provider payment.Provider
	Breaker  Breaker // the provider's breaker, for BreakerState; may be nil
	// IsOpen reports whether an error of Provider says its breaker is open (the guard's
	// "open" error); such a payment is tried again after RetryOpen, without backoff. nil:
	// no error does.
	IsOpen    func(error) bool
	RetryOpen time.Duration // [5s]
	Node      string        // this node's id
	Workers   int           // [2]
	Poll      time.Duration
	Lease     time.Duration
	Backoff   Backoff          // [1s..30s]
	Now       func() time.Time // [time.Now]
	Logger    *slog.Logger     // [slog.Default()]
	Observer  PoolObserver     // may be nil
}

// Payments submits payment intents to the provider: the jobs of kind JobPayment, which
// the order grain writes when an order becomes PAYING and cancels when it stops being
// PAYING. A payment is tried until the provider has it or the order's payment deadline
// ends it: it is never dead-lettered, but for an intent the provider rejects (which no
// retry can fix). The intent's id is its idempotency key at the provider, so one
// submitted twice (a run that lost its lease) is charged once.
type Payments struct {
	cfg  PaymentsConfig
	pool *Pool
}

// NewPayments returns Payments that are not started yet.
func NewPayments(cfg PaymentsConfig) *Payments {
	if cfg.RetryOpen <= 0 {
		cfg.RetryOpen = 5 * time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.Backoff == (Backoff{}) {
		cfg.Backoff = Backoff{Base: time.Second, Max: 30 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Payments{cfg: cfg}
	p.pool = NewPool(PoolConfig{Jobs: cfg.Jobs, Kind: JobPayment, Node: cfg.Node, Workers: cfg.Workers,
		Poll: cfg.Poll, Lease: cfg.Lease, Backoff: cfg.Backoff, Now: cfg.Now, Logger: cfg.Logger,
		Run: p.run, Observer: cfg.Observer})
	return p
}

// Start starts the pool.
func (p *Payments) Start() { p.pool.Start() }

// Stop stops the pool and waits for the submissions in flight (see Pool.Stop).
func (p *Payments) Stop(ctx context.Context) { p.pool.Stop(ctx) }

// Kick makes the pool look for due payments now.
func (p *Payments) Kick() { p.pool.Kick() }

// BreakerState returns the state of the provider's breaker, "" without one.
func (p *Payments) BreakerState() string {
	if p.cfg.Breaker == nil {
		return ""
	}
	return p.cfg.Breaker.State()
}

// Submit makes the first attempt to submit the payment intent of an order that just
// became PAYING at version, on the caller's goroutine, and reports SubmissionSubmitted
// (the provider has it) or SubmissionQueued (it waits in the durable queue: the breaker
// is open, the provider failed or timed out, another worker has it, or the provider
// rejected it and the job is dead). The pay stands either way. An error is the store's
// (ErrNotFound if the order never was PAYING at version, or a failure to claim the job
// or record its outcome), reported with SubmissionQueued: whatever the queue holds, a
// pool submits.
func (p *Payments) Submit(ctx context.Context, orderID string, version uint64) (string, error) {
	id := PaymentJobID(orderID, version)
	j, err := p.pool.RunNow(ctx, id)
	switch {
	case errors.Is(err, persistence.ErrConflict):
		// Not claimable: another worker has it, or it has ended.
		if j, err = p.cfg.Jobs.GetJob(ctx, id); err != nil {
			return SubmissionQueued, err
		}
	case errors.Is(err, ErrPoolStopped):
		return SubmissionQueued, nil // another node's pool submits it
	case err != nil:
		return SubmissionQueued, err
	}
	if j.State == persistence.JobDone {
		return SubmissionSubmitted, nil
	}
	return SubmissionQueued, nil
}

// run submits one intent.
func (p *Payments) run(ctx context.Context, j persistence.Job) error {
	var in payment.Intent
	if err := json.Unmarshal(j.Payload, &in); err != nil {
		return fmt.Errorf("%w: undecodable intent: %w", ErrDeadJob, err)
	}
	_, err := p.cfg.Provider.CreateIntent(ctx, in)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, payment.ErrRejected):
		return fmt.Errorf("%w: %w", ErrDeadJob, err)
	case p.cfg.IsOpen != nil && p.cfg.IsOpen(err):
		return RetryAt{At: p.cfg.Now().Add(p.cfg.RetryOpen), Err: err}
	default:
		return err
	}
}
