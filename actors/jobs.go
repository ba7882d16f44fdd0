package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
)

// What a run's error says about its job. A run that returns nil is done; one that returns
// an error wrapping ErrCancelJob is cancelled, with the error's message as its note; one
// wrapping ErrDeadJob is dead-lettered at once (retrying cannot help); a RetryAt runs
// again at its time; any other error runs again after the pool's Backoff, and is
// dead-lettered after MaxAttempts runs.
var (
	ErrCancelJob = errors.New("job cancelled")
	ErrDeadJob   = errors.New("job dead-lettered")
)

// ErrPoolStopped: RunNow was called on a pool that is stopping. The job stays queued.
var ErrPoolStopped = errors.New("the worker pool is stopped")

// RetryAt is a run's error that makes its job run again at At, without the backoff and
// never dead-lettered for it: the job failed for a reason that says when to look again
// (a provider's open circuit breaker), not for one of its own. Err says why.
type RetryAt struct {
	At  time.Time
	Err error
}

func (r RetryAt) Error() string {
	return fmt.Sprintf("retry at %s: %v", r.At.Format(time.RFC3339), r.Err)
}

func (r RetryAt) Unwrap() error { return r.Err }

// Backoff is how long a failed job waits before it runs again: after its nth failed run,
// d = min(Max, Base*2^(n-1)), with full jitter in [d/2, d], so that jobs which failed
// together (a warehouse outage) do not all come back at once.
type Backoff struct{ Base, Max time.Duration }

// Delay returns the wait after the attempt-th failed run (attempt >= 1).
func (b Backoff) Delay(attempt int) time.Duration {
	d := b.Base
	for i := 1; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d-d/2+1)
}

// The outcomes a PoolObserver is told of.
const (
	OutcomeDone      = "done"
	OutcomeRetry     = "retry"
	OutcomeDead      = "dead"
	OutcomeCancelled = "cancelled"
	// OutcomeLost: the run could not record its outcome because the job was no longer
	// its own (its lease passed and another node claimed it, or its order ended it).
	OutcomeLost = "lost"
)

// PoolObserver is told of every finished run (for metrics).
type PoolObserver interface {
	// Finished reports one run of a job of kind: its outcome (one of the Outcome
	// constants), how long the run took, and the job's age (since it was written).
	Finished(kind, outcome string, took, age time.Duration)
}

// PoolConfig configures a Pool. Zero values take the defaults in brackets.
type PoolConfig struct {
	Jobs    persistence.Jobs
	Kind    string // the kind of jobs the pool runs
	Node    string // this node's id: the owner of the pool's leases
	Workers int    // how many jobs run at once [1]
	// Poll is how often an idle pool looks for due jobs [1s]; Kick looks at once.
	Poll time.Duration
	// Lease is how long a claim holds a job [30s]. A run's context ends Lease/2 before
	// the lease does, leaving the rest to record the outcome, so no two runs of one job
	// overlap as long as the nodes' clocks agree to within Lease/2.
	Lease time.Duration
	// MaxAttempts is how many runs that fail with an ordinary error dead-letter a job;
	// 0 = never.
	MaxAttempts int
	Backoff     Backoff          // [1s..1m]
	Now         func() time.Time // [time.Now]
	Logger      *slog.Logger     // [slog.Default()]
	// Run runs one job. It must honour its context, which ends before the job's lease
	// does; its error says what becomes of the job (see ErrCancelJob).
	Run      func(ctx context.Context, j persistence.Job) error
	Observer PoolObserver // may be nil
}

// finishTimeout bounds the store write that records a run's outcome.
const finishTimeout = 10 * time.Second

// Pool runs the jobs of one kind from the store, on every node that has one: it claims
// due jobs under a lease (the store hands a job to one claimer at a time, on any node),
// runs them on a bounded number of workers, and records each outcome under the claim's
// fence, so a run that outlived its lease cannot overwrite the outcome of the run that
// took over. It claims only as many jobs as it has idle workers, so a busy node leaves
// the rest of the queue to others.
type Pool struct {
	cfg PoolConfig

	kick     chan struct{} // Kick: look now
	freed    chan struct{} // a worker finished a run
	stopping chan struct{} // closed by Stop: claim no more
	loopDone chan struct{} // closed when the claiming loop has returned
	root     context.Context
	abort    context.CancelFunc // ends the runs in flight when Stop's context ends first

	mu      sync.Mutex
	busy    int  // workers running a job
	started bool // Start was called
	stopped bool // Stop was called
	runs    sync.WaitGroup
}

// NewPool returns a pool that is not started yet.
func NewPool(cfg PoolConfig) *Pool {
	cfg.Workers = max(cfg.Workers, 1)
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.Backoff == (Backoff{}) {
		cfg.Backoff = Backoff{Base: time.Second, Max: time.Minute}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	root, abort := context.WithCancel(context.Background())
	return &Pool{cfg: cfg, kick: make(chan struct{}, 1), freed: make(chan struct{}, 1),
		stopping: make(chan struct{}), loopDone: make(chan struct{}), root: root, abort: abort}
}

// Start starts claiming and running jobs. It does nothing after Stop or a first Start.
func (p *Pool) Start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started || p.stopped {
		return
	}
	p.started = true
	go p.loop()
}

// Stop stops claiming jobs and waits for the runs in flight to finish and record their
// outcomes. If ctx ends first, it ends their contexts (and a claim in flight) and returns
// without waiting more: an interrupted run makes its job due again at once, and what is
// not recorded at all is claimed again by some pool once its lease passes.
func (p *Pool) Stop(ctx context.Context) {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.stopped = true
	started := p.started
	p.mu.Unlock()
	close(p.stopping)
	drained := make(chan struct{})
	go func() {
		if started {
			<-p.loopDone // it claims no more, so it starts no more runs
		}
		p.runs.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-ctx.Done():
		p.abort()
	}
}

// Kick makes the pool look for due jobs now rather than at its next poll.
func (p *Pool) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// RunNow claims the job id and runs it on the caller's goroutine (not one of the pool's
// workers), for a first attempt that should not wait for a poll. It returns the job as
// the run left it; ErrNotFound or ErrConflict (the job is not due, is leased or has
// ended) from the claim, as the store says; ErrPoolStopped after Stop. Its run's context
// ends with ctx.
func (p *Pool) RunNow(ctx context.Context, id string) (persistence.Job, error) {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return persistence.Job{}, ErrPoolStopped
	}
	p.runs.Add(1)
	p.mu.Unlock()
	defer p.runs.Done()
	now := p.cfg.Now()
	j, err := p.cfg.Jobs.ClaimJob(ctx, id, p.cfg.Node, now, now.Add(p.cfg.Lease))
	if err != nil {
		return persistence.Job{}, err
	}
	return p.run(ctx, j)
}

// loop claims due jobs for the idle workers: when kicked, at every poll, and, after a
// claim that filled every idle worker (so more may be due), whenever a worker is freed.
// After a store error it waits for the next poll, kicks or not.
func (p *Pool) loop() {
	defer close(p.loopDone)
	tick := time.NewTicker(p.cfg.Poll)
	defer tick.Stop()
	want, held := true, false // want: jobs may be due; held: the last claim failed
	for {
		select {
		case <-p.stopping:
			return // and claim nothing more, even if a worker was freed meanwhile
		default:
		}
		if want && !held {
			if idle := p.idle(); idle > 0 {
				n, err := p.claim(idle)
				if err != nil {
					p.cfg.Logger.Warn("claiming jobs failed; trying again at the next poll", "kind", p.cfg.Kind, "err", err)
					held = true
				}
				want = err == nil && n == idle
			}
		}
		select {
		case <-p.stopping:
			return
		case <-p.kick:
			want = true
		case <-tick.C:
			want, held = true, false
		case <-p.freed:
		}
	}
}

// idle returns how many workers are free.
func (p *Pool) idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg.Workers - p.busy
}

// claim leases up to n due jobs and starts a worker for each; it returns how many it got.
func (p *Pool) claim(n int) (int, error) {
	// A claim that took half the lease would leave its runs little time: it fails instead.
	ctx, cancel := context.WithTimeout(p.root, p.cfg.Lease/2)
	defer cancel()
	now := p.cfg.Now()
	jobs, err := p.cfg.Jobs.ClaimJobs(ctx, p.cfg.Kind, p.cfg.Node, now, now.Add(p.cfg.Lease), n)
	if err != nil {
		return 0, err
	}
	p.mu.Lock()
	p.busy += len(jobs)
	p.runs.Add(len(jobs))
	p.mu.Unlock()
	for _, j := range jobs {
		go func() {
			defer p.release()
			_, _ = p.run(p.root, j) // the outcome is logged and observed by run
		}()
	}
	return len(jobs), nil
}

// release frees the worker of a finished run.
func (p *Pool) release() {
	p.mu.Lock()
	p.busy--
	p.mu.Unlock()
	p.runs.Done()
	select {
	case p.freed <- struct{}{}:
	default:
	}
}

// run runs one claimed job and records its outcome under the claim's fence. It returns
// the job as it is after the run.
func (p *Pool) run(ctx context.Context, j persistence.Job) (persistence.Job, error) {
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, j.LeaseUntil.Sub(p.cfg.Now())-p.cfg.Lease/2)
	err := rctx.Err() // a run whose context ended already (the pool stopped) is not started
	if err == nil {
		err = p.cfg.Run(rctx, j)
	}
	cancel()
	f, outcome := p.finish(ctx, j, err)
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	log := p.cfg.Logger.With("kind", j.Kind, "job", j.ID, "order_id", j.OrderID, "attempt", j.Attempts)
	ferr := p.cfg.Jobs.FinishJob(fctx, f)
	switch {
	case ferr == nil:
		j.State, j.NextAt, j.LastError, j.UpdatedAt = f.State, f.NextAt, f.Error, f.At
	case errors.Is(ferr, persistence.ErrConflict):
		// No longer ours. If what ended it agrees with the run (an order's Ship ends its
		// fulfilment task done in the same write), that is the outcome; else the run is
		// lost, and whoever holds the job now decides.
		ferr = nil
		cur, gerr := p.cfg.Jobs.GetJob(fctx, j.ID)
		if gerr == nil {
			j = cur
		}
		if gerr != nil || cur.State != f.State || (f.State != persistence.JobDone && f.State != persistence.JobCancelled) {
			outcome = OutcomeLost
			log.Info("job run lost: the job is no longer this run's", "state", cur.State, "err", err)
		}
	default:
		log.Warn("recording a job's outcome failed; it runs again once its lease passes", "outcome", outcome, "err", ferr)
	}
	switch outcome {
	case OutcomeRetry:
		log.Info("job failed; it runs again", "next_at", f.NextAt, "err", err)
	case OutcomeDead:
		log.Warn("job dead-lettered", "err", err)
	case OutcomeCancelled:
		log.Info("job cancelled", "note", f.Error)
	}
	if p.cfg.Observer != nil {
		p.cfg.Observer.Finished(j.Kind, outcome, time.Since(start), p.cfg.Now().Sub(j.CreatedAt))
	}
	return j, ferr
}

// finish turns a run's error into the job's outcome.
func (p *Pool) finish(ctx context.Context, j persistence.Job, err error) (persistence.JobFinish, string) {
	now := p.cfg.Now()
	f := persistence.JobFinish{ID: j.ID, Fence: j.Fence, At: now}
	var at RetryAt
	switch {
	case err == nil:
		f.State = persistence.JobDone
		return f, OutcomeDone
	case errors.Is(err, ErrCancelJob):
		f.State, f.Error = persistence.JobCancelled, err.Error()
		return f, OutcomeCancelled
	case errors.Is(err, ErrDeadJob):
		f.State, f.Error = persistence.JobDead, err.Error()
		return f, OutcomeDead
	case ctx.Err() != nil:
		// The pool (or RunNow's caller) gave up on the run, not the job on itself: it
		// runs again at once, on whichever node claims it.
		f.State, f.NextAt, f.Error = persistence.JobPending, now, "interrupted: "+err.Error()
		return f, OutcomeRetry
	case errors.As(err, &at):
		f.State, f.NextAt, f.Error = persistence.JobPending, at.At, err.Error()
		return f, OutcomeRetry
	case p.cfg.MaxAttempts > 0 && j.Attempts >= p.cfg.MaxAttempts:
		f.State, f.Error = persistence.JobDead, fmt.Sprintf("failed %d times: %v", j.Attempts, err)
		return f, OutcomeDead
	default:
		f.State, f.NextAt, f.Error = persistence.JobPending, now.Add(p.cfg.Backoff.Delay(j.Attempts)), err.Error()
		return f, OutcomeRetry
	}
}
