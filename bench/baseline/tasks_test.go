package baseline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/payment"
	"github.com/ordermesh/ordermesh/actors/payment/client"
	"github.com/ordermesh/ordermesh/actors/payment/sim"
	"github.com/ordermesh/ordermesh/actors/warehouse"
	"github.com/ordermesh/ordermesh/bench/baseline"
	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/pgtest"
)

var provider = order.Principal{Subject: "payment-provider", Role: order.RoleSystem}

// tasks reads baseline_tasks directly, for what the service does not list (payment tasks).
type tasks struct {
	t  *testing.T
	db *pgxpool.Pool
}

func openTasks(t *testing.T, url string) tasks {
	db, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return tasks{t, db}
}

// get returns a task's state, attempts, last error and payload ("" state if none).
func (x tasks) get(id string) (state string, attempts int, note string, payload []byte) {
	x.t.Helper()
	err := x.db.QueryRow(context.Background(), `SELECT state, attempts, last_error, payload FROM baseline_tasks WHERE id = $1`, id).
		Scan(&state, &attempts, &note, &payload)
	if err != nil && err.Error() != "no rows in result set" {
		x.t.Fatal(err)
	}
	return state, attempts, note, payload
}

func (x tasks) want(id, state string) {
	x.t.Helper()
	if got, _, note, _ := x.get(id); got != state {
		x.t.Fatalf("task %s is %q (%s), want %q", id, got, note, state)
	}
}

// eventually polls cond, moving clk (when not nil) a second on every round, so that
// backoffs pass without waiting for them.
func eventually(t *testing.T, clk *clock, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		if clk != nil {
			clk.Advance(time.Second)
		}
	}
}

func status(t *testing.T, s *baseline.Service, id string) order.Status {
	t.Helper()
	v, err := s.Get(context.Background(), id, olga, "test")
	if err != nil {
		t.Fatal(err)
	}
	return v.Status
}

func fulfilID(id string) string { return "fulfil_" + id }

// TestTasksFollowTheOrder: the order statements write and end the tasks in their own
// transaction, as ordermesh's outbox does.
func TestTasksFollowTheOrder(t *testing.T) {
	url := pgtest.URL(t)
	s, clk := openAt(t, url, baseline.Options{PaymentTimeout: time.Minute})
	x := openTasks(t, url)

	id := create(t, s, alice, "o1").ID
	v := do(t, s, cmd(order.CmdSubmitPayment, id, "p1", alice)).View
	pay1 := payment.IntentID(id, v.Version)
	state, _, _, payload := x.get(pay1)
	var in payment.Intent
	if err := json.Unmarshal(payload, &in); err != nil || state != persistence.JobPending ||
		in != (payment.Intent{ID: pay1, OrderID: id, Customer: "alice", Amount: v.Total, Currency: "EUR"}) {
		t.Fatalf("payment task %s %s: %+v (%v)", pay1, state, in, err)
	}
	do(t, s, cmd(order.CmdFailPayment, id, "f1", olga))
	x.want(pay1, persistence.JobCancelled)

	v = do(t, s, cmd(order.CmdSubmitPayment, id, "p2", alice)).View
	pay2 := payment.IntentID(id, v.Version)
	x.want(pay2, persistence.JobPending)
	do(t, s, cmd(order.CmdConfirmPayment, id, "c", olga))
	x.want(pay2, persistence.JobCancelled)
	state, _, _, payload = x.get(fulfilID(id))
	var task warehouse.Task
	if err := json.Unmarshal(payload, &task); err != nil || state != persistence.JobPending || task.ID != fulfilID(id) ||
		task.OrderID != id || task.Customer != "alice" || len(task.Lines) != 2 || task.Lines[0] != teaLines[0] {
		t.Fatalf("fulfilment task %s: %+v (%v)", state, task, err)
	}
	do(t, s, cmd(order.CmdShip, id, "s", olga))
	x.want(fulfilID(id), persistence.JobDone)

	// A refund of a PAID order cancels its pending fulfilment task.
	id2 := create(t, s, alice, "o2").ID
	do(t, s, cmd(order.CmdSubmitPayment, id2, "p", alice))
	do(t, s, cmd(order.CmdConfirmPayment, id2, "c", olga))
	do(t, s, order.Command{Type: order.CmdRefund, OrderID: id2, Key: "r", By: olga, Reason: "out of tea"})
	x.want(fulfilID(id2), persistence.JobCancelled)

	// Cancelling a PAYING order, or its deadline passing, cancels its payment task.
	id3 := create(t, s, alice, "o3").ID
	v = do(t, s, cmd(order.CmdSubmitPayment, id3, "p", alice)).View
	do(t, s, cmd(order.CmdCancel, id3, "x", alice))
	x.want(payment.IntentID(id3, v.Version), persistence.JobCancelled)
	id4 := create(t, s, alice, "o4").ID
	v = do(t, s, cmd(order.CmdSubmitPayment, id4, "p", alice)).View
	clk.Advance(2 * time.Minute)
	if _, err := s.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	x.want(payment.IntentID(id4, v.Version), persistence.JobCancelled)

	// The operators' listing: fulfilment tasks only, by state and order.
	page, err := s.Fulfilment().List(context.Background(), persistence.JobQuery{OrderID: id2})
	if err != nil || len(page.Jobs) != 1 || page.Jobs[0].ID != fulfilID(id2) || page.Jobs[0].State != persistence.JobCancelled ||
		page.Jobs[0].Kind != "fulfilment" {
		t.Fatalf("list by order: %+v %v", page, err)
	}
	page, err = s.Fulfilment().List(context.Background(), persistence.JobQuery{Limit: 1})
	if err != nil || len(page.Jobs) != 1 || page.NextCursor == "" {
		t.Fatalf("first page: %+v %v", page, err)
	}
	next, err := s.Fulfilment().List(context.Background(), persistence.JobQuery{Limit: 1, Cursor: page.NextCursor})
	if err != nil || len(next.Jobs) != 1 || next.NextCursor != "" || next.Jobs[0].ID == page.Jobs[0].ID {
		t.Fatalf("second page: %+v %v", next, err)
	}
	if _, err := s.Fulfilment().List(context.Background(), persistence.JobQuery{Cursor: "nope"}); !errors.Is(err, persistence.ErrBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
	if _, err := s.Fulfilment().Cancel(context.Background(), fulfilID(id), ""); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("cancel a done task: %v", err)
	}
	if _, err := s.Fulfilment().Retry(context.Background(), pay1); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("retry a payment task: %v", err)
	}
	if s.Payments() != nil {
		t.Fatal("manual payments have a Payments")
	}
}

// webhook is the test's stand-in for the edge's POST /api/v1/payments/webhook: a verified
// event becomes confirm-payment or fail-payment, keyed by the event id.
func webhook(t *testing.T, s *baseline.Service, secret []byte, now func() time.Time) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := payment.Verify(r.Header.Get(payment.SignatureHeader), body, [][]byte{secret}, now(), payment.DefaultTolerance); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev payment.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		c := order.Command{Type: order.CmdConfirmPayment, OrderID: ev.Data.Object.Metadata[payment.MetadataOrderID], Key: ev.ID, By: provider}
		if ev.Type == payment.EventFailed {
			c.Type, c.Reason = order.CmdFailPayment, ev.Data.Object.LastPaymentError.Message
		}
		if _, err := s.Execute(r.Context(), c, "webhook"); err != nil && order.ErrorCode(err) != order.CodeIllegalTransition {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// withSim opens a service whose provider is a simulated one posting to the service, in
// mode m, and whose fulfilment runs on wh.
func withSim(t *testing.T, m sim.Mode, wh warehouse.Warehouse, guard client.GuardConfig) (*baseline.Service, *clock, *sim.Provider) {
	clk := newClock()
	secret := []byte("whsec_baseline_test")
	var hook *httptest.Server
	p := sim.New(sim.Config{Secret: secret, APIKey: "sk", Mode: m, Now: clk.Now, Seed: 1, RetryBase: time.Millisecond,
		Targets: func() []string { return []string{hook.URL} }})
	url, err := p.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := open(t, baseline.Options{Now: clk.Now, Provider: client.NewGuard(client.New(client.Config{BaseURL: url, APIKey: "sk"}), guard),
		WebhookSecrets: [][]byte{secret}, Warehouse: wh, FulfilmentWorkers: 2, TaskPoll: 5 * time.Millisecond})
	hook = webhook(t, s, secret, clk.Now)
	t.Cleanup(func() { _ = p.Close(context.Background()) }) // before the service closes
	return s, clk, p
}

// submit submits a pay inline. A payment worker may have claimed the task first, so
// either answer is right.
func submit(t *testing.T, s *baseline.Service, id string, version uint64) {
	t.Helper()
	sub, err := s.Payments().Submit(context.Background(), id, version)
	if err != nil || (sub != baseline.Submitted && sub != baseline.Queued) {
		t.Fatalf("Submit = %s, %v", sub, err)
	}
}

// TestPayThroughTheProviderShips: pay submits inline, the provider's webhook confirms,
// the pool ships; a replayed webhook changes nothing; a failed payment returns the order
// to CREATED.
func TestPayThroughTheProviderShips(t *testing.T) {
	s, _, p := withSim(t, sim.Mode{}, warehouse.NewSim(warehouse.Mode{}, 1), client.GuardConfig{})
	if s.Payments().WebhookSecrets() == nil {
		t.Fatal("no webhook secrets")
	}
	id := create(t, s, alice, "o1").ID
	v := do(t, s, cmd(order.CmdSubmitPayment, id, "p", alice)).View
	submit(t, s, id, v.Version)
	eventually(t, nil, "SHIPPED", func() bool { return status(t, s, id) == order.StatusShipped })
	events := checkHistory(t, s, id)
	confirm, ship := events[3], events[4]
	if confirm.Type != string(order.EvtPaymentConfirmed) || len(confirm.IdempotencyKey) < 5 || confirm.IdempotencyKey[:4] != "evt_" ||
		ship.Type != string(order.EvtShipped) || ship.IdempotencyKey != fulfilID(id) {
		t.Fatalf("history %+v", events)
	}
	// The same event again (a provider retries, or delivers to two processes): a replay.
	res, err := s.Execute(context.Background(), order.Command{Type: order.CmdConfirmPayment, OrderID: id, Key: confirm.IdempotencyKey, By: provider}, "t")
	if err != nil || !res.Replayed || len(checkHistory(t, s, id)) != len(events) {
		t.Fatalf("replay: %+v %v", res, err)
	}
	if st := p.Stats(); st.Intents != 1 || st.Delivered != 1 {
		t.Fatalf("provider stats %+v", st)
	}
	// Submitting again finds nothing to do: the task is over.
	if sub, err := s.Payments().Submit(context.Background(), id, v.Version); err != nil || sub != baseline.Queued {
		t.Fatalf("second Submit = %s, %v", sub, err)
	}

	if err := p.SetMode(sim.Mode{FailureRate: 1}); err != nil {
		t.Fatal(err)
	}
	id2 := create(t, s, alice, "o2").ID
	v = do(t, s, cmd(order.CmdSubmitPayment, id2, "p", alice)).View
	submit(t, s, id2, v.Version)
	eventually(t, nil, "the failed payment", func() bool { return status(t, s, id2) == order.StatusCreated })
}

// TestProviderDownQueuesAndRecovers: with the provider down the pay stands and its intent
// is queued; the breaker opens; once the provider is back the workers submit it.
func TestProviderDownQueuesAndRecovers(t *testing.T) {
	s, clk, p := withSim(t, sim.Mode{Down: true}, warehouse.NewSim(warehouse.Mode{}, 1),
		client.GuardConfig{Failures: 1, OpenFor: time.Millisecond})
	id := create(t, s, alice, "o1").ID
	v := do(t, s, cmd(order.CmdSubmitPayment, id, "p", alice)).View
	if sub, err := s.Payments().Submit(context.Background(), id, v.Version); err != nil || sub != baseline.Queued {
		t.Fatalf("Submit while down = %s, %v", sub, err)
	}
	if err := p.SetMode(sim.Mode{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, clk, "SHIPPED after the provider came back", func() bool { return status(t, s, id) == order.StatusShipped })
	if st := p.Stats(); st.Intents != 1 {
		t.Fatalf("provider stats %+v", st)
	}
}

// failing is a warehouse that fails while fail is set and counts its calls by task.
type failing struct {
	mu    sync.Mutex
	fail  bool
	calls map[string]int
	slow  time.Duration
}

func (f *failing) Fulfil(ctx context.Context, t warehouse.Task) error {
	f.mu.Lock()
	f.calls[t.ID]++
	fail := f.fail
	f.mu.Unlock()
	time.Sleep(f.slow)
	if fail {
		return warehouse.ErrSimulated
	}
	return nil
}

func (f *failing) set(fail bool) { f.mu.Lock(); f.fail = fail; f.mu.Unlock() }

func (f *failing) count() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.calls {
		out[k] = v
	}
	return out
}

// TestDeadLetterAndOperatorRetry: a warehouse that keeps failing dead-letters the task
// after the configured attempts; an operator's retry once it recovers ships the order.
func TestDeadLetterAndOperatorRetry(t *testing.T) {
	wh := &failing{fail: true, calls: map[string]int{}}
	url := pgtest.URL(t)
	s, clk := openAt(t, url, baseline.Options{Warehouse: wh, FulfilmentWorkers: 1, FulfilmentAttempts: 3, TaskPoll: 5 * time.Millisecond})
	x := openTasks(t, url)
	id := create(t, s, alice, "o1").ID
	do(t, s, cmd(order.CmdSubmitPayment, id, "p", alice))
	do(t, s, cmd(order.CmdConfirmPayment, id, "c", olga))
	eventually(t, clk, "the dead letter", func() bool { st, _, _, _ := x.get(fulfilID(id)); return st == persistence.JobDead })
	if _, attempts, note, _ := x.get(fulfilID(id)); attempts != 3 || note != warehouse.ErrSimulated.Error() || wh.count()[fulfilID(id)] != 3 {
		t.Fatalf("dead after %d attempts (%d calls): %s", attempts, wh.count()[fulfilID(id)], note)
	}
	page, err := s.Fulfilment().List(context.Background(), persistence.JobQuery{State: persistence.JobDead})
	if err != nil || len(page.Jobs) != 1 || page.Jobs[0].ID != fulfilID(id) || page.Jobs[0].LeaseOwner != baseline.DefaultNode {
		t.Fatalf("dead letters: %+v %v", page, err)
	}
	wh.set(false)
	j, err := s.Fulfilment().Retry(context.Background(), fulfilID(id))
	if err != nil || j.State != persistence.JobPending || j.Attempts != 0 {
		t.Fatalf("Retry = %+v, %v", j, err)
	}
	eventually(t, nil, "SHIPPED after the retry", func() bool { return status(t, s, id) == order.StatusShipped })
	x.want(fulfilID(id), persistence.JobDone)
	if _, err := s.Fulfilment().Retry(context.Background(), fulfilID(id)); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("retry a done task: %v", err)
	}
	if _, err := s.Fulfilment().Retry(context.Background(), "fulfil_nobody"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("retry an unknown task: %v", err)
	}
}

// TestOperatorCancelsDeadTask: a dead task cancelled by an operator stays cancelled.
func TestOperatorCancelsDeadTask(t *testing.T) {
	s, clk := open(t, baseline.Options{Warehouse: &failing{fail: true, calls: map[string]int{}}, FulfilmentWorkers: 1,
		FulfilmentAttempts: 1, TaskPoll: 5 * time.Millisecond})
	id := create(t, s, alice, "o1").ID
	do(t, s, cmd(order.CmdSubmitPayment, id, "p", alice))
	do(t, s, cmd(order.CmdConfirmPayment, id, "c", olga))
	var j persistence.Job
	eventually(t, clk, "the dead letter", func() bool {
		var err error
		j, err = s.Fulfilment().Cancel(context.Background(), fulfilID(id), "lost in the warehouse")
		return err == nil
	})
	if j.State != persistence.JobCancelled || j.LastError != "lost in the warehouse" {
		t.Fatalf("cancelled %+v", j)
	}
}

// TestTwoPollersNeverRunATaskTwice: two baseline processes on one database, several
// workers each, ship every order once, each task run once.
func TestTwoPollersNeverRunATaskTwice(t *testing.T) {
	url := pgtest.URL(t)
	clk := newClock()
	wh := &failing{calls: map[string]int{}, slow: time.Millisecond}
	opts := baseline.Options{Now: clk.Now, Warehouse: wh, FulfilmentWorkers: 3, TaskPoll: 5 * time.Millisecond}
	opts.Node = "b1"
	s1, _ := openAt(t, url, opts)
	opts.Node = "b2"
	s2, _ := openAt(t, url, opts)
	const n = 30
	ids := make([]string, n)
	for i := range ids {
		ids[i] = create(t, s1, alice, fmt.Sprint("o", i)).ID
		do(t, s1, cmd(order.CmdSubmitPayment, ids[i], "p", alice))
		do(t, s2, cmd(order.CmdConfirmPayment, ids[i], "c", olga))
	}
	eventually(t, nil, "every order SHIPPED", func() bool {
		for _, id := range ids {
			if status(t, s1, id) != order.StatusShipped {
				return false
			}
		}
		return true
	})
	calls := wh.count()
	nodes := map[string]int{}
	for _, id := range ids {
		if calls[fulfilID(id)] != 1 {
			t.Errorf("task %s ran %d times", fulfilID(id), calls[fulfilID(id)])
		}
		shipped := 0
		for _, e := range checkHistory(t, s1, id) {
			if e.Type == string(order.EvtShipped) {
				shipped++
				nodes[e.Node]++
			}
		}
		if shipped != 1 {
			t.Errorf("order %s shipped %d times", id, shipped)
		}
	}
	t.Logf("shipped by node: %v", nodes)
}

// TestLeaseOfALostWorkerPasses: a task claimed by a worker that died is left alone until
// its lease passes, then another process claims it (a new fence) and ships the order.
func TestLeaseOfALostWorkerPasses(t *testing.T) {
	url := pgtest.URL(t)
	clk := newClock()
	manual, _ := openAt(t, url, baseline.Options{Now: clk.Now})
	x := openTasks(t, url)
	id := create(t, manual, alice, "o1").ID
	do(t, manual, cmd(order.CmdSubmitPayment, id, "p", alice))
	do(t, manual, cmd(order.CmdConfirmPayment, id, "c", olga))
	// As a claim by a process that then died leaves the task.
	lease := clk.Now().Add(time.Minute)
	if _, err := x.db.Exec(context.Background(), `UPDATE baseline_tasks SET state = 'running', attempts = 1, fence = 1,
		lease_owner = 'gone', lease_until = $2, next_at = $2 WHERE id = $1`, fulfilID(id), lease); err != nil {
		t.Fatal(err)
	}
	wh := &failing{calls: map[string]int{}}
	s, _ := openAt(t, url, baseline.Options{Now: clk.Now, Node: "b2", Warehouse: wh, FulfilmentWorkers: 2, TaskPoll: time.Millisecond})
	time.Sleep(50 * time.Millisecond) // some polls of the workers (a negative check: it cannot prove more)
	if n := wh.count()[fulfilID(id)]; n != 0 || status(t, s, id) != order.StatusPaid {
		t.Fatalf("a leased task ran %d times", n)
	}
	clk.Advance(time.Minute)
	eventually(t, nil, "SHIPPED after the lease passed", func() bool { return status(t, s, id) == order.StatusShipped })
	page, err := s.Fulfilment().List(context.Background(), persistence.JobQuery{OrderID: id})
	if err != nil || len(page.Jobs) != 1 {
		t.Fatal(page, err)
	}
	if j := page.Jobs[0]; j.State != persistence.JobDone || j.Attempts != 2 || j.Fence != 2 || j.LeaseOwner != "b2" {
		t.Fatalf("task %+v", j)
	}
}
