package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
)

// JobStore is what RunJobs tests: the jobs, and the order writes that insert and end them
// (the outbox).
type JobStore interface {
	persistence.Orders
	persistence.Jobs
}

// RunJobs runs the conformance suite of persistence.Jobs and of Write.Jobs and
// Write.EndJobs. open must return a new, empty store and arrange for it to be closed when
// t ends.
func RunJobs(t *testing.T, open func(t *testing.T) JobStore) {
	runAll(t, open, []suiteTest[JobStore]{
		{"OutboxInsertsWithTheWrite", testOutboxInserts},
		{"OutboxNothingOnConflict", testOutboxConflict},
		{"OutboxNothingOnInvalid", testOutboxInvalid},
		{"OutboxKeepsExistingJob", testOutboxExisting},
		{"EndJobs", testEndJobs},
		{"ClaimJobs", testClaimJobs},
		{"ReclaimExpiredLease", testReclaimExpiredLease},
		{"ConcurrentClaims", testConcurrentClaims},
		{"ClaimJob", testClaimJob},
		{"FinishJob", testFinishJob},
		{"RetryJob", testRetryJob},
		{"CancelJob", testCancelJob},
		{"ListJobs", testListJobs},
		{"CountJobs", testCountJobs},
	})
}

const (
	kindPay  = "payment"
	kindShip = "fulfilment"
)

// newJob is a pending job of order, due at base+due, created at base+created.
func newJob(id, kind, order string, due, created time.Duration) persistence.Job {
	return persistence.Job{ID: id, Kind: kind, OrderID: order, State: persistence.JobPending, NextAt: base.Add(due),
		Payload: []byte(fmt.Sprintf(`{"job":%q}`, id)), CreatedAt: base.Add(created), UpdatedAt: base.Add(created)}
}

// withJobs is the write creating order id (or moving it on, for a version above 1) with
// jobs.
func withJobs(id string, v int64, jobs ...persistence.Job) persistence.Write {
	w := transition(id, v, "n1")
	w.Jobs = jobs
	return w
}

func mustWriteJobs(t *testing.T, s JobStore, w persistence.Write) {
	t.Helper()
	if err := s.WriteOrder(context.Background(), w); err != nil {
		t.Fatalf("WriteOrder(%s, expected %d): %v", w.Order.ID, w.ExpectedVersion, err)
	}
}

func mustGetJob(t *testing.T, s JobStore, id string) persistence.Job {
	t.Helper()
	j, err := s.GetJob(context.Background(), id)
	if err != nil {
		t.Fatalf("GetJob(%s): %v", id, err)
	}
	return j
}

func mustClaim(t *testing.T, s JobStore, kind, owner string, now time.Time, limit int) []persistence.Job {
	t.Helper()
	jobs, err := s.ClaimJobs(context.Background(), kind, owner, now, now.Add(time.Minute), limit)
	if err != nil {
		t.Fatalf("ClaimJobs(%s, %s): %v", kind, owner, err)
	}
	return jobs
}

func mustFinish(t *testing.T, s JobStore, f persistence.JobFinish) {
	t.Helper()
	if err := s.FinishJob(context.Background(), f); err != nil {
		t.Fatalf("FinishJob(%+v): %v", f, err)
	}
}

func diffJob(got, want persistence.Job) string {
	if got.ID != want.ID || got.Kind != want.Kind || got.OrderID != want.OrderID || got.State != want.State ||
		got.Attempts != want.Attempts || got.Fence != want.Fence || got.LeaseOwner != want.LeaseOwner ||
		got.LastError != want.LastError || string(got.Payload) != string(want.Payload) ||
		!sameTime(got.NextAt, want.NextAt) || !sameTime(got.LeaseUntil, want.LeaseUntil) ||
		!sameTime(got.CreatedAt, want.CreatedAt) || !sameTime(got.UpdatedAt, want.UpdatedAt) {
		return fmt.Sprintf("job %+v\nwant %+v", got, want)
	}
	return ""
}

func ids(jobs []persistence.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

// jobGone checks that job id does not exist.
func jobGone(t *testing.T, s JobStore, id string) {
	t.Helper()
	if j, err := s.GetJob(context.Background(), id); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("GetJob(%s) = %+v, %v; want ErrNotFound", id, j, err)
	}
}

// jobIs checks that job want.ID is stored as want.
func jobIs(t *testing.T, s JobStore, what string, want persistence.Job) {
	t.Helper()
	if d := diffJob(mustGetJob(t, s, want.ID), want); d != "" {
		t.Error(what+":", d)
	}
}

// testOutboxInserts: the jobs of a write are stored with it, pending and unclaimed, times
// in UTC at microseconds; an empty OrderID, State and NextAt are filled in.
func testOutboxInserts(t *testing.T, s JobStore) {
	pay := newJob("pay_o1_1", kindPay, "o1", 0, 0)
	pay.NextAt = pay.NextAt.Add(time.Nanosecond).In(time.FixedZone("X", 3600))
	ship := persistence.Job{ID: "fulfil_o1", Kind: kindShip, CreatedAt: base, UpdatedAt: base}
	mustWriteJobs(t, s, withJobs("o1", 1, pay, ship))

	pay.NextAt = base
	jobIs(t, s, "payment job", pay)
	got := mustGetJob(t, s, "fulfil_o1")
	ship.OrderID, ship.State, ship.NextAt = "o1", persistence.JobPending, got.NextAt
	if d := diffJob(got, ship); d != "" {
		t.Error(d)
	}
	if got.NextAt.IsZero() || got.NextAt.Location() != time.UTC || got.NextAt.Nanosecond()%1000 != 0 {
		t.Errorf("zero NextAt stored as %v, want the store's now in UTC at microseconds", got.NextAt)
	}
	jobGone(t, s, "unknown")
}

// testOutboxConflict: a write that fails its version check inserts none of its jobs and
// ends none.
func testOutboxConflict(t *testing.T, s JobStore) {
	ctx := context.Background()
	mustWriteJobs(t, s, withJobs("o1", 1, newJob("j1", kindShip, "o1", 0, 0)))
	for name, w := range map[string]persistence.Write{
		"conflicting create": withJobs("o1", 1, newJob("j2", kindShip, "o1", 0, 0)),
		"stale update":       withJobs("o1", 3, newJob("j3", kindShip, "o1", 0, 0)),
	} {
		w.EndJobs = []persistence.JobEnd{{ID: "j1", State: persistence.JobCancelled, Note: "moot"}}
		if err := s.WriteOrder(ctx, w); !errors.Is(err, persistence.ErrConflict) {
			t.Errorf("%s: err = %v, want ErrConflict", name, err)
		}
	}
	jobGone(t, s, "j2")
	jobGone(t, s, "j3")
	jobIs(t, s, "job of the conflicting writes' EndJobs", newJob("j1", kindShip, "o1", 0, 0))
}

// testOutboxInvalid: a write with a malformed job or end fails with ErrInvalid and applies
// nothing, neither its order nor its other jobs; writes beside it succeed.
func testOutboxInvalid(t *testing.T, s JobStore) {
	ctx := context.Background()
	bad := map[string]func(w *persistence.Write){
		"empty id":           func(w *persistence.Write) { w.Jobs[1].ID = "" },
		"empty kind":         func(w *persistence.Write) { w.Jobs[1].Kind = "" },
		"other order":        func(w *persistence.Write) { w.Jobs[1].OrderID = "elsewhere" },
		"not pending":        func(w *persistence.Write) { w.Jobs[1].State = persistence.JobRunning },
		"NUL in id":          func(w *persistence.Write) { w.Jobs[1].ID = "j\x00" },
		"bad UTF-8 in kind":  func(w *persistence.Write) { w.Jobs[1].Kind = "k\xff" },
		"end as dead":        func(w *persistence.Write) { w.EndJobs = []persistence.JobEnd{{ID: "x", State: persistence.JobDead}} },
		"end without id":     func(w *persistence.Write) { w.EndJobs = []persistence.JobEnd{{State: persistence.JobDone}} },
		"bad UTF-8 end note": func(w *persistence.Write) { w.EndJobs[0].Note = "\xc3" },
	}
	var wg sync.WaitGroup
	i := 0
	for name, breakIt := range bad {
		i++
		id := fmt.Sprintf("bad%d", i)
		w := withJobs(id, 1, newJob(id+"-a", kindShip, id, 0, 0), newJob(id+"-b", kindShip, id, 0, 0))
		w.EndJobs = []persistence.JobEnd{{ID: "x", State: persistence.JobDone, Note: "n"}}
		breakIt(&w)
		good := fmt.Sprintf("good%d", i)
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := s.WriteOrder(ctx, w); !errors.Is(err, persistence.ErrInvalid) {
				t.Errorf("%s: err = %v, want ErrInvalid", name, err)
			}
		}()
		go func() {
			defer wg.Done()
			if err := s.WriteOrder(ctx, withJobs(good, 1, newJob(good+"-a", kindShip, good, 0, 0))); err != nil {
				t.Errorf("%s: the write beside it failed: %v", name, err)
			}
		}()
		wg.Wait()
		if _, err := s.LoadOrder(ctx, id); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("%s: order stored: %v", name, err)
		}
		jobGone(t, s, id+"-a")
		mustGetJob(t, s, good+"-a")
	}
}

// testOutboxExisting: a job whose id exists already is left as it is, and the write that
// carries it again succeeds.
func testOutboxExisting(t *testing.T, s JobStore) {
	first := newJob("fulfil_o1", kindShip, "o1", 0, 0)
	mustWriteJobs(t, s, withJobs("o1", 1, first))
	again := newJob("fulfil_o1", kindPay, "o1", time.Hour, time.Hour)
	again.Payload = []byte("second")
	mustWriteJobs(t, s, withJobs("o1", 2, again, newJob("j2", kindShip, "o1", 0, 0)))
	jobIs(t, s, "job written again", first)
	mustGetJob(t, s, "j2")
	// The same id twice in one write: the first is kept.
	mustWriteJobs(t, s, withJobs("o3", 1, newJob("dup", kindShip, "o3", 0, 0), newJob("dup", kindShip, "o3", time.Hour, 0)))
	jobIs(t, s, "job twice in a write", newJob("dup", kindShip, "o3", 0, 0))
}

// jobsInEveryState stores one job of order o1 in each state: pending, running (claimed
// by n1), dead, done and cancelled, ids named after their state. It returns them.
func jobsInEveryState(t *testing.T, s JobStore) map[string]persistence.Job {
	ctx := context.Background()
	states := []string{persistence.JobPending, persistence.JobRunning, persistence.JobDead, persistence.JobDone, persistence.JobCancelled}
	var jobs []persistence.Job
	for i, st := range states {
		jobs = append(jobs, newJob(st, kindShip, "o1", time.Duration(i)*time.Second, 0))
	}
	mustWriteJobs(t, s, withJobs("o1", 1, jobs...))
	at := base.Add(time.Minute)
	for _, id := range []string{persistence.JobRunning, persistence.JobDead, persistence.JobDone} {
		j, err := s.ClaimJob(ctx, id, "n1", at, at.Add(time.Hour))
		if err != nil {
			t.Fatalf("ClaimJob(%s): %v", id, err)
		}
		if id != persistence.JobRunning {
			mustFinish(t, s, persistence.JobFinish{ID: id, Fence: j.Fence, State: id, Error: "ran", At: at})
		}
	}
	if _, err := s.CancelJob(ctx, persistence.JobCancelled, "by hand", at); err != nil {
		t.Fatal(err)
	}
	out := map[string]persistence.Job{}
	for _, st := range states {
		out[st] = mustGetJob(t, s, st)
	}
	return out
}

// testEndJobs: a write's EndJobs end its pending, running and dead jobs (note and the
// write's time kept) and leave done, cancelled and unknown ones alone; a run that held an
// ended job's lease can no longer finish it.
func testEndJobs(t *testing.T, s JobStore) {
	before := jobsInEveryState(t, s)
	w := transition("o1", 2, "n1")
	for _, st := range []string{persistence.JobPending, persistence.JobRunning, persistence.JobDead, persistence.JobDone,
		persistence.JobCancelled, "unknown"} {
		w.EndJobs = append(w.EndJobs, persistence.JobEnd{ID: st, State: persistence.JobCancelled, Note: "refunded"})
	}
	mustWriteJobs(t, s, w)
	for _, st := range []string{persistence.JobPending, persistence.JobRunning, persistence.JobDead} {
		want := before[st]
		want.State, want.LastError, want.UpdatedAt = persistence.JobCancelled, "refunded", w.Order.UpdatedAt
		jobIs(t, s, "ended "+st+" job", want)
	}
	for _, st := range []string{persistence.JobDone, persistence.JobCancelled} {
		jobIs(t, s, "ended "+st+" job", before[st])
	}
	jobGone(t, s, "unknown")
	err := s.FinishJob(context.Background(), persistence.JobFinish{ID: persistence.JobRunning,
		Fence: before[persistence.JobRunning].Fence, State: persistence.JobDone})
	if !errors.Is(err, persistence.ErrConflict) {
		t.Errorf("FinishJob of an ended job: err = %v, want ErrConflict", err)
	}

	// Done, as a shipment ends its fulfilment.
	w = transition("o2", 1, "n1")
	w.Jobs = []persistence.Job{newJob("fulfil_o2", kindShip, "o2", 0, 0)}
	mustWriteJobs(t, s, w)
	w = transition("o2", 2, "n1")
	w.EndJobs = []persistence.JobEnd{{ID: "fulfil_o2", State: persistence.JobDone, Note: "shipped"}}
	mustWriteJobs(t, s, w)
	if j := mustGetJob(t, s, "fulfil_o2"); j.State != persistence.JobDone || j.LastError != "shipped" {
		t.Errorf("shipped job = %+v, want done with note shipped", j)
	}
}

// testClaimJobs: ClaimJobs leases the due pending jobs of its kind, earliest first, up
// to its limit (none for 0), and no job twice while its lease holds.
func testClaimJobs(t *testing.T, s JobStore) {
	mustWriteJobs(t, s, withJobs("o1", 1,
		newJob("later", kindShip, "o1", 2*time.Minute, 0),
		newJob("b-first", kindShip, "o1", 0, 0),
		newJob("a-first", kindShip, "o1", 0, time.Second),
		newJob("second", kindShip, "o1", time.Minute, 0),
		newJob("other-kind", kindPay, "o1", 0, 0)))
	now := base.Add(time.Minute)
	lease := now.Add(30 * time.Second)
	if got := mustClaim(t, s, kindShip, "n1", now, 0); len(got) != 0 {
		t.Fatalf("a claim of 0 jobs got %v", ids(got))
	}
	got, err := s.ClaimJobs(context.Background(), kindShip, "n1", now, lease, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), []string{"a-first", "b-first"}) {
		t.Fatalf("claimed %v, want [a-first b-first]", ids(got))
	}
	want := newJob("a-first", kindShip, "o1", 0, time.Second)
	want.State, want.Attempts, want.Fence, want.LeaseOwner, want.LeaseUntil, want.UpdatedAt =
		persistence.JobRunning, 1, 1, "n1", lease, now
	if d := diffJob(got[0], want); d != "" {
		t.Error("claimed job:", d)
	}
	jobIs(t, s, "claimed job as stored", want)
	if got := mustClaim(t, s, kindShip, "n2", now, 10); !slices.Equal(ids(got), []string{"second"}) {
		t.Errorf("second claim got %v, want [second]", ids(got))
	}
	if got := mustClaim(t, s, kindShip, "n2", now, 10); len(got) != 0 {
		t.Errorf("third claim got %v, want nothing: the rest is leased or not due", ids(got))
	}
	if got := mustClaim(t, s, "unknown-kind", "n2", now, 10); len(got) != 0 {
		t.Errorf("claim of another kind got %v", ids(got))
	}
}

// testReclaimExpiredLease: a running job whose lease passed is claimed again, with its
// fence and attempts incremented, and the run that lost it can no longer finish it.
func testReclaimExpiredLease(t *testing.T, s JobStore) {
	mustWriteJobs(t, s, withJobs("o1", 1, newJob("j1", kindShip, "o1", 0, 0)))
	first := mustClaim(t, s, kindShip, "n1", base, 1)[0]
	if got := mustClaim(t, s, kindShip, "n2", first.LeaseUntil.Add(-time.Microsecond), 1); len(got) != 0 {
		t.Fatalf("claimed %v before the lease passed", ids(got))
	}
	got := mustClaim(t, s, kindShip, "n2", first.LeaseUntil, 1)
	if len(got) != 1 || got[0].Fence != 2 || got[0].Attempts != 2 || got[0].LeaseOwner != "n2" {
		t.Fatalf("reclaimed %+v, want j1 leased by n2 with fence 2 and attempt 2", got)
	}
	err := s.FinishJob(context.Background(), persistence.JobFinish{ID: "j1", Fence: first.Fence, State: persistence.JobDone})
	if !errors.Is(err, persistence.ErrConflict) {
		t.Errorf("FinishJob with the lost lease's fence: err = %v, want ErrConflict", err)
	}
	jobIs(t, s, "job after a stale finish", got[0])
}

// testConcurrentClaims: claimers racing over many jobs never get the same job twice, and
// between them get them all.
func testConcurrentClaims(t *testing.T, s JobStore) {
	const orders, perOrder, claimers = 40, 5, 8
	var wg sync.WaitGroup
	for o := range orders {
		id := fmt.Sprintf("o%02d", o)
		var jobs []persistence.Job
		for i := range perOrder {
			jobs = append(jobs, newJob(fmt.Sprintf("%s-j%d", id, i), kindShip, id, time.Duration(i)*time.Millisecond, 0))
		}
		wg.Go(func() {
			if err := s.WriteOrder(context.Background(), withJobs(id, 1, jobs...)); err != nil {
				t.Errorf("WriteOrder(%s): %v", id, err)
			}
		})
	}
	wg.Wait()
	var mu sync.Mutex
	claimed := map[string]string{}
	for c := range claimers {
		owner := fmt.Sprintf("n%d", c)
		wg.Go(func() {
			for {
				jobs, err := s.ClaimJobs(context.Background(), kindShip, owner, base.Add(time.Second), base.Add(time.Hour), 3)
				if err != nil {
					t.Errorf("%s: ClaimJobs: %v", owner, err)
					return
				}
				if len(jobs) == 0 {
					return
				}
				mu.Lock()
				for _, j := range jobs {
					if other, dup := claimed[j.ID]; dup {
						t.Errorf("%s claimed by %s and %s", j.ID, other, owner)
					}
					claimed[j.ID] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(claimed) != orders*perOrder {
		t.Errorf("claimed %d jobs, want %d", len(claimed), orders*perOrder)
	}
}

// testClaimJob: ClaimJob leases one job by id on ClaimJobs' terms.
func testClaimJob(t *testing.T, s JobStore) {
	ctx := context.Background()
	mustWriteJobs(t, s, withJobs("o1", 1, newJob("j1", kindShip, "o1", time.Minute, 0)))
	claim := func(id string, now time.Time) (persistence.Job, error) {
		return s.ClaimJob(ctx, id, "n1", now, now.Add(time.Minute))
	}
	if _, err := claim("unknown", base); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("unknown job: err = %v, want ErrNotFound", err)
	}
	if _, err := claim("j1", base); !errors.Is(err, persistence.ErrConflict) {
		t.Errorf("job not due: err = %v, want ErrConflict", err)
	}
	now := base.Add(time.Minute)
	j, err := claim("j1", now)
	if err != nil || j.State != persistence.JobRunning || j.Fence != 1 || j.Attempts != 1 || !sameTime(j.LeaseUntil, now.Add(time.Minute)) {
		t.Fatalf("claiming a due job = %+v, %v", j, err)
	}
	if _, err := claim("j1", now); !errors.Is(err, persistence.ErrConflict) {
		t.Errorf("leased job: err = %v, want ErrConflict", err)
	}
	if j, err = claim("j1", j.LeaseUntil); err != nil || j.Fence != 2 {
		t.Fatalf("claiming a job whose lease passed = %+v, %v; want fence 2", j, err)
	}
	mustFinish(t, s, persistence.JobFinish{ID: "j1", Fence: j.Fence, State: persistence.JobDone, At: now})
	if _, err := claim("j1", now.Add(time.Hour)); !errors.Is(err, persistence.ErrConflict) {
		t.Errorf("done job: err = %v, want ErrConflict", err)
	}
}

// testFinishJob: FinishJob applies only under the run's fence; a pending outcome is due
// again at its NextAt with its error kept.
func testFinishJob(t *testing.T, s JobStore) {
	ctx := context.Background()
	mustWriteJobs(t, s, withJobs("o1", 1, newJob("j1", kindShip, "o1", 0, 0), newJob("j2", kindShip, "o1", 0, 0),
		newJob("j3", kindShip, "o1", 0, 0)))
	claimed := mustClaim(t, s, kindShip, "n1", base, 3)
	j1 := claimed[0]

	err := s.FinishJob(ctx, persistence.JobFinish{ID: "j1", Fence: j1.Fence + 1, State: persistence.JobDone})
	if !errors.Is(err, persistence.ErrConflict) {
		t.Errorf("stale fence: err = %v, want ErrConflict", err)
	}
	jobIs(t, s, "job after a finish with a wrong fence", j1)
	if err := s.FinishJob(ctx, persistence.JobFinish{ID: "unknown", Fence: 1, State: persistence.JobDone}); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("unknown job: err = %v, want ErrNotFound", err)
	}
	if err := s.FinishJob(ctx, persistence.JobFinish{ID: "j1", Fence: 1, State: persistence.JobRunning}); !errors.Is(err, persistence.ErrInvalid) {
		t.Errorf("finishing as running: err = %v, want ErrInvalid", err)
	}

	at, next := base.Add(time.Second), base.Add(time.Hour)
	for _, f := range []persistence.JobFinish{
		{ID: "j2", Fence: claimed[1].Fence, State: persistence.JobDead, Error: "rejected", At: at},
		{ID: "j3", Fence: claimed[2].Fence, State: persistence.JobDone, At: at},
	} {
		mustFinish(t, s, f)
		want := claimed[slices.Index(ids(claimed), f.ID)]
		want.State, want.LastError, want.UpdatedAt = f.State, f.Error, at
		jobIs(t, s, f.State+" job", want)
		if err := s.FinishJob(ctx, f); !errors.Is(err, persistence.ErrConflict) {
			t.Errorf("finishing %s twice: err = %v, want ErrConflict", f.ID, err)
		}
	}
	mustFinish(t, s, persistence.JobFinish{ID: "j1", Fence: j1.Fence, State: persistence.JobPending, NextAt: next,
		Error: "warehouse down", At: at})
	want := j1
	want.State, want.NextAt, want.LastError, want.UpdatedAt = persistence.JobPending, next, "warehouse down", at
	jobIs(t, s, "job to retry", want)
	if got := mustClaim(t, s, kindShip, "n1", next.Add(-time.Microsecond), 3); len(got) != 0 {
		t.Errorf("claimed %v before its NextAt", ids(got))
	}
	again := mustClaim(t, s, kindShip, "n2", next, 3)
	if len(again) != 1 || again[0].Attempts != 2 || again[0].Fence != 2 || again[0].LastError != "warehouse down" {
		t.Errorf("claim at NextAt = %+v, want j1 at attempt 2, fence 2, its error kept", again)
	}
}

// testRetryJob: an operator's retry makes a dead or pending job due now with no attempts;
// running, done and cancelled jobs are a conflict.
func testRetryJob(t *testing.T, s JobStore) {
	ctx := context.Background()
	before := jobsInEveryState(t, s)
	now := base.Add(time.Hour)
	for _, st := range []string{persistence.JobDead, persistence.JobPending} {
		j, err := s.RetryJob(ctx, st, now)
		if err != nil {
			t.Fatalf("RetryJob(%s): %v", st, err)
		}
		want := before[st]
		want.State, want.Attempts, want.NextAt, want.UpdatedAt = persistence.JobPending, 0, now, now
		if d := diffJob(j, want); d != "" {
			t.Errorf("retried %s job: %s", st, d)
		}
		jobIs(t, s, "retried "+st+" job as stored", want)
	}
	for _, st := range []string{persistence.JobRunning, persistence.JobDone, persistence.JobCancelled} {
		if _, err := s.RetryJob(ctx, st, now); !errors.Is(err, persistence.ErrConflict) {
			t.Errorf("RetryJob(%s): err = %v, want ErrConflict", st, err)
		}
		jobIs(t, s, "job after a refused retry", before[st])
	}
	if _, err := s.RetryJob(ctx, "unknown", now); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("RetryJob(unknown): err = %v, want ErrNotFound", err)
	}
	if got := mustClaim(t, s, kindShip, "n2", now, 10); !slices.Equal(ids(got), []string{persistence.JobDead, persistence.JobPending}) {
		t.Errorf("claimed %v after the retries, want [dead pending] (due at once, ties by id)", ids(got))
	}
}

// testCancelJob: an operator cancels a pending or dead job with a note; running, done and
// cancelled jobs are a conflict.
func testCancelJob(t *testing.T, s JobStore) {
	ctx := context.Background()
	before := jobsInEveryState(t, s)
	now := base.Add(time.Hour)
	for _, st := range []string{persistence.JobDead, persistence.JobPending} {
		j, err := s.CancelJob(ctx, st, "customer called", now)
		if err != nil {
			t.Fatalf("CancelJob(%s): %v", st, err)
		}
		want := before[st]
		want.State, want.LastError, want.UpdatedAt = persistence.JobCancelled, "customer called", now
		if d := diffJob(j, want); d != "" {
			t.Errorf("cancelled %s job: %s", st, d)
		}
	}
	for _, st := range []string{persistence.JobRunning, persistence.JobDone, persistence.JobCancelled} {
		if _, err := s.CancelJob(ctx, st, "again", now); !errors.Is(err, persistence.ErrConflict) {
			t.Errorf("CancelJob(%s): err = %v, want ErrConflict", st, err)
		}
		jobIs(t, s, "job after a refused cancel", before[st])
	}
	if _, err := s.CancelJob(ctx, "unknown", "", now); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("CancelJob(unknown): err = %v, want ErrNotFound", err)
	}
	if _, err := s.CancelJob(ctx, persistence.JobPending, "nul\x00", now); !errors.Is(err, persistence.ErrInvalid) {
		t.Errorf("CancelJob with a NUL in its note: err = %v, want ErrInvalid", err)
	}
}

// testListJobs: ListJobs pages through the jobs of a kind, newest first (ties by id),
// filtered by state and order.
func testListJobs(t *testing.T, s JobStore) {
	ctx := context.Background()
	var all []persistence.Job
	for o := range 6 {
		id := fmt.Sprintf("o%d", o)
		var jobs []persistence.Job
		for i := range 4 {
			// Pairs share a creation time, so ties must be broken by id.
			jobs = append(jobs, newJob(fmt.Sprintf("%s-j%d", id, i), kindShip, id, 0, time.Duration(o*4+i)/2*time.Millisecond))
		}
		all = append(all, jobs...)
		jobs = append(jobs, newJob(id+"-pay", kindPay, id, 0, time.Hour))
		mustWriteJobs(t, s, withJobs(id, 1, jobs...))
	}
	claimed := mustClaim(t, s, kindShip, "n1", base, 5)
	for i := range all {
		if slices.Contains(ids(claimed), all[i].ID) {
			all[i] = mustGetJob(t, s, all[i].ID)
		}
	}
	slices.SortFunc(all, func(a, b persistence.Job) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})

	tests := []struct {
		name           string
		state, orderID string
		limit, size    int
	}{
		{"all default limit", "", "", 0, 50},
		{"one per page", "", "", 1, 1},
		{"pages of 7", "", "", 7, 7},
		{"clamped above max", "", "", 5000, 1000},
		{"state", persistence.JobRunning, "", 2, 2},
		{"order", "", "o3", 3, 3},
		{"state and order", persistence.JobPending, "o0", 2, 2},
		{"no match", persistence.JobDead, "", 10, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []string
			for _, j := range all {
				if (tt.state == "" || j.State == tt.state) && (tt.orderID == "" || j.OrderID == tt.orderID) {
					want = append(want, j.ID)
				}
			}
			var got []string
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > len(all)+1 {
					t.Fatal("pagination does not end")
				}
				page, err := s.ListJobs(ctx, persistence.JobQuery{Kind: kindShip, State: tt.state, OrderID: tt.orderID,
					Cursor: cursor, Limit: tt.limit})
				if err != nil {
					t.Fatalf("ListJobs page %d: %v", pages, err)
				}
				if len(page.Jobs) > tt.size || (page.NextCursor != "" && len(page.Jobs) != tt.size) {
					t.Fatalf("page %d has %d jobs, next cursor %q; want full pages of %d before the last",
						pages, len(page.Jobs), page.NextCursor, tt.size)
				}
				got = append(got, ids(page.Jobs)...)
				if cursor = page.NextCursor; cursor == "" {
					break
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("listed %v\nwant   %v", got, want)
			}
		})
	}

	page, err := s.ListJobs(ctx, persistence.JobQuery{Kind: kindShip, Limit: 1})
	if err != nil || len(page.Jobs) != 1 {
		t.Fatalf("ListJobs = %+v, %v", page, err)
	}
	if d := diffJob(page.Jobs[0], all[0]); d != "" {
		t.Error("listed row:", d)
	}
	if _, err := s.ListJobs(ctx, persistence.JobQuery{Kind: kindShip, Cursor: "!!!not-a-cursor"}); !errors.Is(err, persistence.ErrBadCursor) {
		t.Errorf("bad cursor: err = %v, want ErrBadCursor", err)
	}
	if _, err := s.ListJobs(ctx, persistence.JobQuery{}); !errors.Is(err, persistence.ErrInvalid) {
		t.Errorf("no kind: err = %v, want ErrInvalid", err)
	}
}

// testCountJobs: CountJobs counts the pending, running and dead jobs by kind and state.
func testCountJobs(t *testing.T, s JobStore) {
	counts, err := s.CountJobs(context.Background())
	if err != nil || len(counts) != 0 {
		t.Fatalf("CountJobs of no jobs = %v, %v", counts, err)
	}
	jobsInEveryState(t, s)
	mustWriteJobs(t, s, withJobs("o2", 1, newJob("p1", kindPay, "o2", 0, 0), newJob("p2", kindPay, "o2", 0, 0),
		newJob("s1", kindShip, "o2", 0, 0)))
	counts, err = s.CountJobs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []persistence.JobCount{
		{Kind: kindShip, State: persistence.JobDead, N: 1},
		{Kind: kindShip, State: persistence.JobPending, N: 2},
		{Kind: kindShip, State: persistence.JobRunning, N: 1},
		{Kind: kindPay, State: persistence.JobPending, N: 2},
	}
	slices.SortFunc(counts, func(a, b persistence.JobCount) int {
		return strings.Compare(a.Kind+"/"+a.State, b.Kind+"/"+b.State)
	})
	slices.SortFunc(want, func(a, b persistence.JobCount) int {
		return strings.Compare(a.Kind+"/"+a.State, b.Kind+"/"+b.State)
	})
	if !slices.Equal(counts, want) {
		t.Errorf("CountJobs = %v, want %v", counts, want)
	}
}
