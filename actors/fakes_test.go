package actors

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/persistence"
)

// The fakes of the pool tests: an in-memory persistence.Jobs, a clock that moves only
// when told, an order service that ships like the grain, and an observer on a channel.

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeJobs is persistence.Jobs in memory, with the states and fences of the contract.
type fakeJobs struct {
	mu   sync.Mutex
	jobs map[string]*persistence.Job
	// claimErrs fail the next ClaimJobs calls, one each.
	claimErrs []error
	// peak is the most jobs each owner held running at once, after a ClaimJobs.
	peak map[string]int
}

func newJobs() *fakeJobs {
	return &fakeJobs{jobs: map[string]*persistence.Job{}, peak: map[string]int{}}
}

// add inserts a pending job due at at, as an order's write does.
func (s *fakeJobs) add(id, kind, orderID string, payload []byte, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs[id] = &persistence.Job{ID: id, Kind: kind, OrderID: orderID, State: persistence.JobPending,
		NextAt: at, Payload: payload, CreatedAt: at, UpdatedAt: at}
}

// end ends a job that has not ended, as an order's write does (Write.EndJobs).
func (s *fakeJobs) end(id, state, note string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j, ok := s.jobs[id]; ok && !ended(j.State) {
		j.State, j.LastError, j.UpdatedAt = state, note, at
	}
}

func (s *fakeJobs) get(id string) persistence.Job {
	j, _ := s.GetJob(context.Background(), id)
	return j
}

func ended(state string) bool {
	return state == persistence.JobDone || state == persistence.JobCancelled || state == persistence.JobDead
}

// claimable reports whether j may be claimed at now.
func claimable(j *persistence.Job, now time.Time) bool {
	return (j.State == persistence.JobPending && !j.NextAt.After(now)) ||
		(j.State == persistence.JobRunning && !j.LeaseUntil.After(now))
}

func lease(j *persistence.Job, owner string, now, until time.Time) persistence.Job {
	j.State, j.LeaseOwner, j.LeaseUntil, j.UpdatedAt = persistence.JobRunning, owner, until, now
	j.Attempts++
	j.Fence++
	return *j
}

func (s *fakeJobs) ClaimJobs(_ context.Context, kind, owner string, now, leaseUntil time.Time, limit int) ([]persistence.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.claimErrs) > 0 {
		err := s.claimErrs[0]
		s.claimErrs = s.claimErrs[1:]
		return nil, err
	}
	var due []*persistence.Job
	running := 0
	for _, j := range s.jobs {
		if j.Kind != kind {
			continue
		}
		if j.State == persistence.JobRunning && j.LeaseOwner == owner && j.LeaseUntil.After(now) {
			running++
		}
		if claimable(j, now) {
			due = append(due, j)
		}
	}
	slices.SortFunc(due, func(a, b *persistence.Job) int { return a.NextAt.Compare(b.NextAt) })
	var got []persistence.Job
	for _, j := range due[:min(limit, len(due))] {
		got = append(got, lease(j, owner, now, leaseUntil))
	}
	s.peak[owner] = max(s.peak[owner], running+len(got))
	return got, nil
}

func (s *fakeJobs) ClaimJob(_ context.Context, id, owner string, now, leaseUntil time.Time) (persistence.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return persistence.Job{}, persistence.ErrNotFound
	}
	if !claimable(j, now) {
		return persistence.Job{}, persistence.ErrConflict
	}
	return lease(j, owner, now, leaseUntil), nil
}

func (s *fakeJobs) FinishJob(_ context.Context, f persistence.JobFinish) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[f.ID]
	if !ok {
		return persistence.ErrNotFound
	}
	if j.State != persistence.JobRunning || j.Fence != f.Fence {
		return persistence.ErrConflict
	}
	j.State, j.NextAt, j.LastError, j.UpdatedAt = f.State, f.NextAt, f.Error, f.At
	return nil
}

// operate applies an operator's retry or cancel to a pending or dead job.
func (s *fakeJobs) operate(id string, apply func(j *persistence.Job)) (persistence.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return persistence.Job{}, persistence.ErrNotFound
	}
	if j.State != persistence.JobPending && j.State != persistence.JobDead {
		return persistence.Job{}, persistence.ErrConflict
	}
	apply(j)
	return *j, nil
}

func (s *fakeJobs) RetryJob(_ context.Context, id string, now time.Time) (persistence.Job, error) {
	return s.operate(id, func(j *persistence.Job) {
		j.State, j.NextAt, j.Attempts, j.UpdatedAt = persistence.JobPending, now, 0, now
	})
}

func (s *fakeJobs) CancelJob(_ context.Context, id, note string, now time.Time) (persistence.Job, error) {
	return s.operate(id, func(j *persistence.Job) {
		j.State, j.LastError, j.UpdatedAt = persistence.JobCancelled, note, now
	})
}

func (s *fakeJobs) GetJob(_ context.Context, id string) (persistence.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return persistence.Job{}, persistence.ErrNotFound
	}
	return *j, nil
}

// ListJobs filters like the stores and orders newest first; it has one page.
func (s *fakeJobs) ListJobs(_ context.Context, q persistence.JobQuery) (persistence.JobPage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var page persistence.JobPage
	for _, j := range s.jobs {
		if j.Kind == q.Kind && (q.State == "" || j.State == q.State) && (q.OrderID == "" || j.OrderID == q.OrderID) {
			page.Jobs = append(page.Jobs, *j)
		}
	}
	slices.SortFunc(page.Jobs, func(a, b persistence.Job) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return page, nil
}

func (s *fakeJobs) CountJobs(context.Context) ([]persistence.JobCount, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := map[[2]string]int64{}
	for _, j := range s.jobs {
		if !ended(j.State) || j.State == persistence.JobDead {
			n[[2]string{j.Kind, j.State}]++
		}
	}
	var counts []persistence.JobCount
	for k, v := range n {
		counts = append(counts, persistence.JobCount{Kind: k[0], State: k[1], N: v})
	}
	return counts, nil
}

// fakeOrders is an order.Service that ships like the grain: Ship is legal from PAID,
// idempotent by key, and ends the order's fulfilment task in the same write.
type fakeOrders struct {
	jobs *fakeJobs
	now  func() time.Time

	mu     sync.Mutex
	status map[string]order.Status
	keys   map[string]bool // idempotency keys applied
	ships  map[string]int  // Ships applied per order
	// fail, if set, answers a Ship before it is applied.
	fail func(c order.Command) error
}

func newOrders(jobs *fakeJobs, now func() time.Time) *fakeOrders {
	return &fakeOrders{jobs: jobs, now: now, status: map[string]order.Status{}, keys: map[string]bool{}, ships: map[string]int{}}
}

func (o *fakeOrders) set(id string, st order.Status) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.status[id] = st
}

func (o *fakeOrders) shipped(id string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ships[id]
}

func (o *fakeOrders) Execute(_ context.Context, c order.Command, _ string) (order.Result, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	st, ok := o.status[c.OrderID]
	switch {
	case c.Type != order.CmdShip || c.By.Role != order.RoleSystem:
		return order.Result{}, order.Errorf(order.CodeForbidden, "unexpected %s by %s", c.Type, c.By.Role)
	case !ok:
		return order.Result{}, order.Errorf(order.CodeNotFound, "no order %s", c.OrderID)
	case o.keys[c.Key]:
		return order.Result{View: order.View{ID: c.OrderID, Status: st}, Replayed: true}, nil
	}
	if o.fail != nil {
		if err := o.fail(c); err != nil {
			return order.Result{}, err
		}
	}
	if st != order.StatusPaid {
		return order.Result{}, order.Errorf(order.CodeIllegalTransition, "cannot ship an order that is %s", st)
	}
	o.status[c.OrderID], o.keys[c.Key] = order.StatusShipped, true
	o.ships[c.OrderID]++
	o.jobs.end(FulfilmentJobID(c.OrderID), persistence.JobDone, "", o.now())
	return order.Result{View: order.View{ID: c.OrderID, Status: order.StatusShipped}}, nil
}

func (o *fakeOrders) Get(_ context.Context, id string, _ order.Principal, _ string) (order.View, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	st, ok := o.status[id]
	if !ok {
		return order.View{}, order.Errorf(order.CodeNotFound, "no order %s", id)
	}
	return order.View{ID: id, Status: st}, nil
}

// outcomes is a PoolObserver that sends every outcome to a channel.
type outcomes chan string

func (o outcomes) Finished(_, outcome string, _, _ time.Duration) { o <- outcome }

// next waits for the next outcome and checks it.
func (o outcomes) next(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-o:
		if got != want {
			t.Fatalf("outcome %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no outcome, want %q", want)
	}
}

// stopped stops a pool (or anything that stops like one) when the test ends.
func stopped(t *testing.T, stop func(context.Context)) {
	t.Cleanup(func() { stop(context.Background()) })
}
