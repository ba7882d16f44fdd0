package edge

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/persistence"
)

// fakeFulfilment keeps tasks in memory with the store's rules for retry and cancel; its
// cursor is the id of the last task of a page.
type fakeFulfilment struct {
	mu    sync.Mutex
	jobs  map[string]persistence.Job
	now   func() time.Time
	lists []persistence.JobQuery
}

func newFakeFulfilment(now func() time.Time, jobs ...persistence.Job) *fakeFulfilment {
	f := &fakeFulfilment{jobs: map[string]persistence.Job{}, now: now}
	for _, j := range jobs {
		f.jobs[j.ID] = j
	}
	return f
}

func (f *fakeFulfilment) List(_ context.Context, q persistence.JobQuery) (persistence.JobPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists = append(f.lists, q)
	var all []persistence.Job
	for _, j := range f.jobs {
		if (q.State == "" || j.State == q.State) && (q.OrderID == "" || j.OrderID == q.OrderID) {
			all = append(all, j)
		}
	}
	slices.SortFunc(all, func(a, b persistence.Job) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.ID, a.ID))
	})
	start := 0
	if q.Cursor != "" {
		i := slices.IndexFunc(all, func(j persistence.Job) bool { return j.ID == q.Cursor })
		if i < 0 {
			return persistence.JobPage{}, persistence.ErrBadCursor
		}
		start = i + 1
	}
	page := persistence.JobPage{Jobs: all[start:min(len(all), start+q.Limit)]}
	if start+q.Limit < len(all) {
		page.NextCursor = page.Jobs[len(page.Jobs)-1].ID
	}
	return page, nil
}

func (f *fakeFulfilment) change(id string, from []string, to func(*persistence.Job)) (persistence.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	if !ok {
		return persistence.Job{}, persistence.ErrNotFound
	}
	if !slices.Contains(from, j.State) {
		return persistence.Job{}, persistence.ErrConflict
	}
	to(&j)
	j.UpdatedAt = f.now()
	f.jobs[id] = j
	return j, nil
}

func (f *fakeFulfilment) Retry(_ context.Context, id string) (persistence.Job, error) {
	return f.change(id, []string{persistence.JobDead, persistence.JobPending}, func(j *persistence.Job) {
		j.State, j.Attempts, j.NextAt = persistence.JobPending, 0, f.now()
	})
}

func (f *fakeFulfilment) Cancel(_ context.Context, id, reason string) (persistence.Job, error) {
	return f.change(id, []string{persistence.JobDead, persistence.JobPending}, func(j *persistence.Job) {
		j.State, j.LastError = persistence.JobCancelled, reason
	})
}

// task is a fulfilment job of order id, created at minute m of the test.
func task(id, state string, m int) persistence.Job {
	t0 := time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC).Add(time.Duration(m) * time.Minute)
	j := persistence.Job{ID: "fulfil_" + id, Kind: "fulfilment", OrderID: id, State: state, Attempts: 1, Fence: 1,
		NextAt: t0, LeaseOwner: "node-2", CreatedAt: t0, UpdatedAt: t0, Payload: []byte(`{}`)}
	if state == persistence.JobDead {
		j.Attempts, j.LastError = 5, "simulated warehouse failure"
	}
	return j
}

func (r response) tasks(t testing.TB) taskListResponse {
	t.Helper()
	var out taskListResponse
	if err := json.Unmarshal(r.Data, &out); err != nil {
		t.Fatalf("decoding tasks: %v: %s", err, r.Data)
	}
	return out
}

func (r response) task(t testing.TB) Task {
	t.Helper()
	var out Task
	if err := json.Unmarshal(r.Data, &out); err != nil {
		t.Fatalf("decoding task: %v: %s", err, r.Data)
	}
	return out
}

func newFulfilmentHarness(t *testing.T) (*harness, *fakeFulfilment) {
	var f *fakeFulfilment
	h := newHarness(t, func(_ *Config, d *Deps) {
		f = newFakeFulfilment(d.Clock,
			task("o1", persistence.JobDone, 1), task("o2", persistence.JobDead, 2), task("o3", persistence.JobPending, 3),
			task("o4", persistence.JobRunning, 4), task("o5", persistence.JobDead, 5))
		d.Fulfilment = f
	})
	return h, f
}

func TestListFulfilment(t *testing.T) {
	h, f := newFulfilmentHarness(t)
	get := func(user, query string) response {
		return h.do(req{method: "GET", path: "/api/v1/fulfilment" + query, token: h.token(user)})
	}
	all := get("olga", "").expect(t, 200, order.CodeOK).tasks(t)
	var ids []string
	for _, tk := range all.Tasks {
		ids = append(ids, tk.ID)
	}
	if !slices.Equal(ids, []string{"fulfil_o5", "fulfil_o4", "fulfil_o3", "fulfil_o2", "fulfil_o1"}) || all.NextCursor != "" {
		t.Fatalf("tasks %v, cursor %q", ids, all.NextCursor)
	}
	if d := all.Tasks[3]; d.State != "dead" || d.Attempts != 5 || d.LastError == "" || d.Node != "node-2" || d.OrderID != "o2" ||
		!d.NextAttemptAt.IsZero() {
		t.Errorf("dead task %+v", d)
	}
	if p := all.Tasks[2]; p.NextAttemptAt.IsZero() {
		t.Errorf("pending task without next_attempt_at: %+v", p)
	}

	// Pages of the dead tasks, one at a time, with the cursor.
	first := get("ada", "?state=dead&limit=1").expect(t, 200, order.CodeOK).tasks(t)
	if len(first.Tasks) != 1 || first.Tasks[0].ID != "fulfil_o5" || first.NextCursor == "" {
		t.Fatalf("first page %+v", first)
	}
	second := get("ada", "?state=dead&limit=1&cursor="+first.NextCursor).expect(t, 200, order.CodeOK).tasks(t)
	if len(second.Tasks) != 1 || second.Tasks[0].ID != "fulfil_o2" || second.NextCursor != "" {
		t.Fatalf("second page %+v", second)
	}
	// A cursor belongs to its filter, and only this API makes them.
	get("ada", "?state=pending&limit=1&cursor="+first.NextCursor).expect(t, 400, order.CodeInvalidRequest)
	get("ada", "?state=dead&limit=1&cursor=fulfil_o5").expect(t, 400, order.CodeInvalidRequest)
	if byOrder := get("olga", "?order_id=o3").expect(t, 200, order.CodeOK).tasks(t); len(byOrder.Tasks) != 1 || byOrder.Tasks[0].ID != "fulfil_o3" {
		t.Fatalf("by order: %+v", byOrder)
	}
	if last := f.lists[len(f.lists)-1]; last.OrderID != "o3" || last.Limit != defaultPageSize {
		t.Errorf("query %+v", last)
	}
	for _, q := range []string{"?state=lost", "?limit=0", "?limit=201", "?limit=x", "?order_id=a/b", "?cursor=garbage"} {
		get("olga", q).expect(t, 400, order.CodeInvalidRequest)
	}
	get("alice", "").expect(t, 403, order.CodeForbidden)
	h.do(req{method: "GET", path: "/api/v1/fulfilment"}).expect(t, 401, order.CodeUnauthenticated)
}

func TestRetryAndCancelFulfilment(t *testing.T) {
	h, _ := newFulfilmentHarness(t)
	post := func(user, id, action, body string) response {
		return h.do(req{method: "POST", path: "/api/v1/fulfilment/" + id + "/" + action, token: h.token(user), body: body})
	}
	h.clock.Advance(time.Hour)
	r := post("olga", "fulfil_o2", "retry", "").expect(t, 200, order.CodeOK).task(t)
	if r.State != "pending" || r.Attempts != 0 || !r.NextAttemptAt.Equal(h.clock.Now()) || !r.UpdatedAt.Equal(h.clock.Now()) {
		t.Fatalf("retried %+v", r)
	}
	post("olga", "fulfil_o1", "retry", "").expect(t, 409, order.CodeIllegalTransition) // done
	post("olga", "fulfil_o4", "retry", "").expect(t, 409, order.CodeIllegalTransition) // running
	post("olga", "fulfil_nope", "retry", "").expect(t, 404, order.CodeNotFound)
	post("olga", strings.Repeat("x", 129), "retry", "").expect(t, 404, order.CodeNotFound)
	post("olga", "fulfil.o2", "retry", "").expect(t, 404, order.CodeNotFound)

	c := post("ada", "fulfil_o5", "cancel", `{"reason":"customer moved away"}`).expect(t, 200, order.CodeOK).task(t)
	if c.State != "cancelled" || c.LastError != "customer moved away" {
		t.Fatalf("cancelled %+v", c)
	}
	if c := post("olga", "fulfil_o3", "cancel", "").expect(t, 200, order.CodeOK).task(t); c.LastError != "cancelled by olga" {
		t.Fatalf("cancelled without a reason: %+v", c)
	}
	post("olga", "fulfil_o5", "cancel", "").expect(t, 409, order.CodeIllegalTransition)
	post("olga", "fulfil_o5", "retry", "").expect(t, 409, order.CodeIllegalTransition)
	post("olga", "fulfil_nope", "cancel", "").expect(t, 404, order.CodeNotFound)
	post("olga", "fulfil_o2", "cancel", `{"reason":`).expect(t, 400, order.CodeInvalidRequest)
	post("olga", "fulfil_o2", "cancel", `{"reason":"`+strings.Repeat("r", order.MaxReason+1)+`"}`).expect(t, 422, order.CodeValidation)
	post("olga", "fulfil_o2", "cancel", `{"reason":"bad\u0007bell"}`).expect(t, 400, order.CodeInvalidRequest)

	for _, action := range []string{"retry", "cancel"} {
		post("alice", "fulfil_o2", action, "").expect(t, 403, order.CodeForbidden)
		h.do(req{method: "POST", path: "/api/v1/fulfilment/fulfil_o2/" + action}).expect(t, 401, order.CodeUnauthenticated)
	}
}

func TestFulfilmentOff(t *testing.T) {
	h := newHarness(t)
	h.do(req{method: "GET", path: "/api/v1/fulfilment", token: h.token("olga")}).expect(t, 503, order.CodeUnavailable)
	for _, action := range []string{"retry", "cancel"} {
		h.do(req{method: "POST", path: "/api/v1/fulfilment/fulfil_o1/" + action, token: h.token("olga")}).expect(t, 503, order.CodeUnavailable)
	}
}
