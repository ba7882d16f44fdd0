package actors

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
)

const testKind = "test"

// newTestPool returns a pool of testKind on node "a" over jobs, with the fake clock, a
// poll too slow to matter (tests Kick) and an observer; cfg's other fields are kept.
func newTestPool(t *testing.T, jobs *fakeJobs, clock *fakeClock, cfg PoolConfig) (*Pool, outcomes) {
	t.Helper()
	obs := make(outcomes, 100)
	cfg.Jobs, cfg.Kind, cfg.Node, cfg.Now, cfg.Logger, cfg.Observer = jobs, testKind, "a", clock.Now, quiet, obs
	if cfg.Poll == 0 {
		cfg.Poll = time.Hour
	}
	p := NewPool(cfg)
	stopped(t, p.Stop)
	return p, obs
}

// counter counts runs per job.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) inc(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[id]++
	return c.n[id]
}

func (c *counter) get(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[id]
}

func TestPoolRunsEachJobOnceOnItsIdleWorkers(t *testing.T) {
	jobs, clock := newJobs(), newClock()
	for i := range 5 {
		jobs.add(fmt.Sprint("j", i), testKind, "", nil, clock.Now())
	}
	jobs.add("other", "other-kind", "", nil, clock.Now())
	var runs counter
	started, release := make(chan string, 5), make(chan struct{})
	p, obs := newTestPool(t, jobs, clock, PoolConfig{Workers: 2, Run: func(ctx context.Context, j persistence.Job) error {
		runs.inc(j.ID)
		started <- j.ID
		<-release
		return nil
	}})
	p.Start()
	p.Kick()
	<-started
	<-started
	p.Kick() // both workers are busy: nothing more is claimed
	close(release)
	for range 5 {
		obs.next(t, OutcomeDone)
	}
	for i := range 5 {
		id := fmt.Sprint("j", i)
		if n := runs.get(id); n != 1 {
			t.Errorf("%s ran %d times", id, n)
		}
		if j := jobs.get(id); j.State != persistence.JobDone || j.Attempts != 1 || j.LeaseOwner != "a" {
			t.Errorf("%s: %+v", id, j)
		}
	}
	if st := jobs.get("other").State; st != persistence.JobPending {
		t.Errorf("a job of another kind is %s", st)
	}
	jobs.mu.Lock()
	defer jobs.mu.Unlock()
	if jobs.peak["a"] != 2 {
		t.Errorf("the pool of 2 workers held %d jobs at once", jobs.peak["a"])
	}
}

func TestBackoffDelayGrowsBoundedWithJitter(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond, Max: time.Second}
	for attempt, d := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond,
		3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 60: time.Second} {
		seen := map[time.Duration]bool{}
		for range 200 {
			got := b.Delay(attempt)
			if got < d/2 || got > d {
				t.Fatalf("attempt %d waits %s, want within [%s, %s]", attempt, got, d/2, d)
			}
			seen[got] = true
		}
		if len(seen) < 2 {
			t.Errorf("attempt %d always waits %v: no jitter", attempt, seen)
		}
	}
}

func TestPoolRetriesWithBackoffThenDeadLetters(t *testing.T) {
	jobs, clock := newJobs(), newClock()
	jobs.add("j", testKind, "", nil, clock.Now())
	var runs counter
	p, obs := newTestPool(t, jobs, clock, PoolConfig{MaxAttempts: 3, Backoff: Backoff{Base: time.Second, Max: 90 * time.Second},
		Run: func(ctx context.Context, j persistence.Job) error {
			return fmt.Errorf("try %d failed", runs.inc(j.ID))
		}})
	p.Start()
	for attempt, d := range []time.Duration{time.Second, 2 * time.Second} {
		p.Kick()
		obs.next(t, OutcomeRetry)
		j := jobs.get("j")
		if wait := j.NextAt.Sub(clock.Now()); j.State != persistence.JobPending || wait < d/2 || wait > d {
			t.Fatalf("after run %d: %s, due in %s; want pending, due within [%s, %s]", attempt+1, j.State, wait, d/2, d)
		}
		if want := fmt.Sprintf("try %d failed", attempt+1); j.LastError != want {
			t.Fatalf("last error %q, want %q", j.LastError, want)
		}
		p.Kick() // not due yet: not run
		clock.Advance(d)
	}
	p.Kick()
	obs.next(t, OutcomeDead)
	j := jobs.get("j")
	if j.State != persistence.JobDead || j.Attempts != 3 || !strings.Contains(j.LastError, "failed 3 times: try 3 failed") {
		t.Fatalf("after 3 runs: %+v", j)
	}
	if n := runs.get("j"); n != 3 {
		t.Fatalf("ran %d times, want 3", n)
	}
}

func TestPoolOutcomes(t *testing.T) {
	clock := newClock()
	at := clock.Now().Add(time.Hour)
	for _, tc := range []struct {
		name        string
		err         error
		max         int
		outcome     string
		state, note string
		nextAt      time.Time
	}{
		{"cancel", fmt.Errorf("%w: the order is REFUNDED", ErrCancelJob), 0, OutcomeCancelled, persistence.JobCancelled, "job cancelled: the order is REFUNDED", time.Time{}},
		{"dead now", fmt.Errorf("%w: rejected", ErrDeadJob), 0, OutcomeDead, persistence.JobDead, "job dead-lettered: rejected", time.Time{}},
		{"retry at, past max attempts", RetryAt{At: at, Err: errors.New("open")}, 1, OutcomeRetry, persistence.JobPending, "retry at 2026-01-01T13:00:00Z: open", at},
		{"last attempt", errors.New("boom"), 1, OutcomeDead, persistence.JobDead, "failed 1 times: boom", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jobs := newJobs()
			jobs.add("j", testKind, "", nil, clock.Now())
			p, obs := newTestPool(t, jobs, clock, PoolConfig{MaxAttempts: tc.max,
				Run: func(context.Context, persistence.Job) error { return tc.err }})
			got, err := p.RunNow(context.Background(), "j")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, jobs.get("j")) {
				t.Errorf("RunNow returned %+v, the store has %+v", got, jobs.get("j"))
			}
			if got.State != tc.state || got.LastError != tc.note || !got.NextAt.Equal(tc.nextAt) {
				t.Errorf("got %s %q due %s, want %s %q due %s", got.State, got.LastError, got.NextAt, tc.state, tc.note, tc.nextAt)
			}
			obs.next(t, tc.outcome)
		})
	}
}

func TestPoolRunNow(t *testing.T) {
	jobs, clock := newJobs(), newClock()
	jobs.add("due", testKind, "", nil, clock.Now())
	jobs.add("later", testKind, "", nil, clock.Now().Add(time.Minute))
	const lease = 10 * time.Second
	p, _ := newTestPool(t, jobs, clock, PoolConfig{Lease: lease, Run: func(ctx context.Context, j persistence.Job) error {
		dl, ok := ctx.Deadline()
		if left := time.Until(dl); !ok || left > lease/2 {
			return fmt.Errorf("the run has %s left of a %s lease", left, lease)
		}
		if _, err := jobs.ClaimJob(ctx, j.ID, "b", clock.Now(), clock.Now().Add(time.Minute)); !errors.Is(err, persistence.ErrConflict) {
			return fmt.Errorf("claiming a leased job: %v", err)
		}
		return nil
	}})
	if j, err := p.RunNow(context.Background(), "due"); err != nil || j.State != persistence.JobDone {
		t.Fatalf("RunNow: %+v, %v", j, err)
	}
	for id, want := range map[string]error{"due": persistence.ErrConflict, "later": persistence.ErrConflict, "unknown": persistence.ErrNotFound} {
		if _, err := p.RunNow(context.Background(), id); !errors.Is(err, want) {
			t.Errorf("RunNow(%s): %v, want %v", id, err, want)
		}
	}
	p.Stop(context.Background())
	clock.Advance(time.Minute)
	if _, err := p.RunNow(context.Background(), "later"); !errors.Is(err, ErrPoolStopped) {
		t.Errorf("RunNow after Stop: %v", err)
	}
}

func TestPoolRunThatLostItsLease(t *testing.T) {
	jobs, clock := newJobs(), newClock()
	jobs.add("j", testKind, "", nil, clock.Now())
	p, obs := newTestPool(t, jobs, clock, PoolConfig{Lease: time.Minute, Run: func(ctx context.Context, j persistence.Job) error {
		// The run stalls past its lease; node b claims the job meanwhile.
		clock.Advance(2 * time.Minute)
		_, err := jobs.ClaimJob(ctx, j.ID, "b", clock.Now(), clock.Now().Add(time.Minute))
		return err
	}})
	j, err := p.RunNow(context.Background(), "j")
	if err != nil {
		t.Fatal(err)
	}
	obs.next(t, OutcomeLost)
	if j.State != persistence.JobRunning || j.LeaseOwner != "b" || j.Fence != 2 {
		t.Fatalf("the late run overwrote b's claim: %+v", j)
	}
}

func TestPoolStopWaitsForRunsInFlight(t *testing.T) {
	jobs, clock := newJobs(), newClock()
	jobs.add("first", testKind, "", nil, clock.Now())
	started, release := make(chan struct{}), make(chan struct{})
	p, obs := newTestPool(t, jobs, clock, PoolConfig{Run: func(ctx context.Context, j persistence.Job) error {
		close(started)
		<-release
		return ctx.Err()
	}})
	p.Start()
	p.Kick()
	<-started
	stoppedc := make(chan struct{})
	go func() {
		p.Stop(context.Background())
		close(stoppedc)
	}()
	<-p.loopDone // no more claims
	jobs.add("second", testKind, "", nil, clock.Now())
	p.Kick()
	select {
	case <-stoppedc:
		t.Fatal("Stop returned while a run was in flight")
	default:
	}
	close(release)
	<-stoppedc
	obs.next(t, OutcomeDone)
	if st := jobs.get("first").State; st != persistence.JobDone {
		t.Errorf("the run in flight left its job %s", st)
	}
	if j := jobs.get("second"); j.State != persistence.JobPending || j.Attempts != 0 {
		t.Errorf("a stopped pool claimed a job: %+v", j)
	}
}

func TestPoolStopThatTimesOutInterruptsRuns(t *testing.T) {
	jobs, clock := newJobs(), newClock()
	jobs.add("j", testKind, "", nil, clock.Now())
	started := make(chan struct{})
	p, obs := newTestPool(t, jobs, clock, PoolConfig{MaxAttempts: 1, Run: func(ctx context.Context, j persistence.Job) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}})
	p.Start()
	p.Kick()
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.Stop(ctx)
	obs.next(t, OutcomeRetry)
	j := jobs.get("j")
	if j.State != persistence.JobPending || !j.NextAt.Equal(clock.Now()) || !strings.HasPrefix(j.LastError, "interrupted") {
		t.Fatalf("an interrupted run should leave its job due now, not dead: %+v", j)
	}
}

func TestPoolClaimErrorIsRetriedAtThePoll(t *testing.T) {
	jobs, clock := newJobs(), newClock()
	jobs.add("j", testKind, "", nil, clock.Now())
	jobs.claimErrs = []error{errors.New("store down"), errors.New("store still down")}
	p, obs := newTestPool(t, jobs, clock, PoolConfig{Poll: time.Millisecond,
		Run: func(context.Context, persistence.Job) error { return nil }})
	p.Start()
	p.Kick()
	obs.next(t, OutcomeDone)
	if j := jobs.get("j"); j.State != persistence.JobDone || j.Attempts != 1 {
		t.Fatalf("%+v", j)
	}
}

// hangingClaims is a store whose claims hang until their context ends.
type hangingClaims struct {
	*fakeJobs
	entered chan struct{}
}

func (h hangingClaims) ClaimJobs(ctx context.Context, _, _ string, _, _ time.Time, _ int) ([]persistence.Job, error) {
	h.entered <- struct{}{}
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestPoolStopDoesNotWaitForAHangingStoreBeyondItsContext(t *testing.T) {
	store := hangingClaims{fakeJobs: newJobs(), entered: make(chan struct{}, 1)}
	p := NewPool(PoolConfig{Jobs: store, Kind: testKind, Node: "a", Poll: time.Hour, Logger: quiet,
		Run: func(context.Context, persistence.Job) error { return nil }})
	p.Start()
	<-store.entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.Stop(ctx) // returns: the test would time out otherwise
}
