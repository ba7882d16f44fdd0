package bench

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// providerRun runs the lifecycle with the provider in the loop against fake.
func providerRun(t *testing.T, p *fakeProvider, wait time.Duration) *Report {
	t.Helper()
	api := newCatalogFakeAPI()
	api.provider = p
	srv := httptest.NewServer(api.handler())
	defer srv.Close()
	cfg := quickConfig(srv.URL, "lifecycle")
	cfg.Provider, cfg.ProviderWait = true, wait
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Check == nil || rep.Check.Fulfilment == nil {
		t.Fatalf("no fulfilment check: %+v", rep.Check)
	}
	return rep
}

func TestRunLifecycleWithTheProviderInTheLoopPasses(t *testing.T) {
	rep := providerRun(t, &fakeProvider{delay: 30 * time.Millisecond, declineEvery: 4, deadEvery: 5}, 500*time.Millisecond)
	f := rep.Check.Fulfilment
	if !rep.Check.Pass {
		t.Fatalf("check: %s\n%s %+v", rep.Check.Summary(), f.Summary(), rep.Check.Violations)
	}
	t.Logf("%s", f.Summary())
	if f.ProviderConfirms == 0 || f.ProviderFails == 0 || f.PoolShips == 0 || f.PaidDead == 0 || f.TasksByState[taskDone] == 0 {
		t.Fatalf("want confirms, declines, ships and dead tasks: %s", f.Summary())
	}
	for _, op := range []string{OpConfirm, OpFailPayment, OpShip, OpGet} {
		if o, ok := rep.Op(op); ok {
			t.Errorf("the bench sent %d %s in --provider mode (or counted its polls)", o.Count, op)
		}
	}
	for _, op := range []string{OpCreate, OpPay, OpDeliver} {
		if o, ok := rep.Op(op); !ok || o.Count == 0 || o.Errors != 0 {
			t.Errorf("%s: %+v", op, o)
		}
	}
	p := rep.Provider
	if p == nil || p.Payment.Count == 0 || p.Fulfilment.Count == 0 || p.Declined == 0 || p.Polls == 0 {
		t.Fatalf("provider report %+v", p)
	}
	if p.Payment.P50Ms < 30 || p.Fulfilment.P50Ms < 30 || p.Payment.P99Ms < p.Payment.P50Ms {
		t.Fatalf("waits shorter than the fake's delay: %+v", p)
	}
	if p.Fulfilment.TimedOut == 0 {
		t.Fatalf("orders whose task died should time out waiting for SHIPPED: %+v", p)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"check fulfilment PASS", "payment ", "fulfilment ", "polls "} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
}

func TestRunWithTheProviderCatchesAFulfilmentBug(t *testing.T) {
	cases := []struct {
		name string
		bug  fakeProvider
		want string
	}{
		{"the pool ships twice", fakeProvider{shipTwice: true}, ViolationDoubleShip},
		{"a paid order loses its task", fakeProvider{loseTask: true}, ViolationTaskMissing},
		{"a paid order gets two tasks", fakeProvider{twoTasks: true}, ViolationTaskDuplicate},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bug := tc.bug
			bug.delay = 20 * time.Millisecond
			rep := providerRun(t, &bug, time.Second)
			if rep.Check.Pass || rep.Check.Counts[tc.want] == 0 {
				t.Fatalf("want %s, got %s\n%s", tc.want, rep.Check.Summary(), rep.Check.Fulfilment.Summary())
			}
		})
	}
}

// providerHistory is an order paid after one decline and shipped by the pool.
func providerHistory() []Event {
	return []Event{
		{Version: 1, Type: "OrderCreated", To: stateReserving, IdempotencyKey: "kc", By: "alice"},
		{Version: 2, Type: "StockReserved", To: stateCreated, IdempotencyKey: "reserve-stock", By: "saga"},
		{Version: 3, Type: "PaymentSubmitted", To: statePaying, IdempotencyKey: "kp1", By: "alice"},
		{Version: 4, Type: "PaymentFailed", To: stateCreated, IdempotencyKey: "evt_1", By: byProvider},
		{Version: 5, Type: "PaymentSubmitted", To: statePaying, IdempotencyKey: "kp2", By: "alice"},
		{Version: 6, Type: "PaymentConfirmed", To: statePaid, IdempotencyKey: "evt_2", By: byProvider},
		{Version: 7, Type: "OrderShipped", To: stateShipped, IdempotencyKey: "fulfil_o1", By: byPool},
	}
}

func cleanFulfilment() FulfilmentInput {
	return FulfilmentInput{
		Created: []string{"o1", "o2"},
		Histories: map[string][]Event{
			"o1": providerHistory(),
			"o2": providerHistory()[:3], // still paying
			"o3": providerHistory()[:6], // not the run's, paid: checked too; its task died
		},
		Tasks: map[string][]FulfilmentTask{
			"o1": {{ID: "fulfil_o1", OrderID: "o1", State: taskDone}},
			"o2": {},
			"o3": {{ID: "fulfil_o3", OrderID: "o3", State: taskDead}},
		},
	}
}

func TestCheckFulfilmentPassesAndCounts(t *testing.T) {
	res := CheckFulfilment(cleanFulfilment())
	if !res.Pass || res.Orders != 3 || res.Paid != 2 || res.PaidDead != 1 || res.PoolShips != 1 ||
		res.ProviderConfirms != 2 || res.ProviderFails != 2 || res.TasksByState[taskDone] != 1 {
		t.Fatalf("%s %+v", res.Summary(), res.Violations)
	}
	// The system transitions are legal histories for the history check too.
	if c := Check(nil, cleanFulfilment().Histories, nil); !c.Pass {
		t.Fatalf("history check: %s %+v", c.Summary(), c.Violations)
	}
}

func TestCheckFulfilmentCatchesPlantedViolations(t *testing.T) {
	cases := []struct {
		name  string
		plant func(in *FulfilmentInput)
		want  string
	}{
		{"paid without a task", func(in *FulfilmentInput) { in.Tasks["o1"] = nil }, ViolationTaskMissing},
		{"two tasks", func(in *FulfilmentInput) {
			in.Tasks["o1"] = append(in.Tasks["o1"], FulfilmentTask{ID: "fulfil_o1b", OrderID: "o1", State: taskPending})
		}, ViolationTaskDuplicate},
		{"a task without a payment", func(in *FulfilmentInput) {
			in.Tasks["o2"] = []FulfilmentTask{{ID: "fulfil_o2", OrderID: "o2", State: taskPending}}
		}, ViolationTaskUnpaid},
		{"shipped twice", func(in *FulfilmentInput) {
			in.Histories["o1"] = append(in.Histories["o1"], Event{Version: 8, Type: "OrderShipped", To: stateShipped, IdempotencyKey: "fulfil_o1-2", By: byPool})
		}, ViolationDoubleShip},
		{"tasks unread", func(in *FulfilmentInput) { delete(in.Tasks, "o3") }, ViolationTasksUnread},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := cleanFulfilment()
			tc.plant(&in)
			res := CheckFulfilment(in)
			if res.Pass || res.Counts[tc.want] == 0 {
				t.Fatalf("want %s, got %s %+v", tc.want, res.Summary(), res.Violations)
			}
			merged := CheckResult{Pass: true, Counts: map[string]int{}}
			merged.addFulfilment(res)
			if merged.Pass || merged.Counts[tc.want] == 0 || merged.Fulfilment == nil {
				t.Fatalf("merged %+v", merged)
			}
		})
	}
}

func TestPlanProviderFollowsTheShares(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CancelShare, cfg.RefundShare = 0, 0
	if got := meanProviderLength(cfg); got != 3 {
		t.Fatalf("no cancels or refunds: mean length %v, want 3 (create pay deliver)", got)
	}
	cfg = DefaultConfig()
	rng := rand.New(rand.NewPCG(7, 7))
	var cancels, refunds int
	const n = 20000
	for range n {
		p := planProvider(rng, cfg)
		if p.cancel != "" {
			cancels++
		}
		if p.refund != "" {
			refunds++
		}
	}
	if got := float64(cancels) / n; got < cfg.CancelShare*0.85 || got > cfg.CancelShare*1.15 {
		t.Errorf("cancels in %.3f of lifecycles, want about %.3f", got, cfg.CancelShare)
	}
	if want, got := (1-cfg.CancelShare)*cfg.RefundShare, float64(refunds)/n; got < want*0.85 || got > want*1.15 {
		t.Errorf("refunds in %.3f of lifecycles, want about %.3f", got, want)
	}
}

func TestProviderNeedsALifecycle(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Scenario, cfg.Provider = "hot", true
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--provider") {
		t.Fatalf("err = %v", err)
	}
}

// A payment confirmed between the history read and the tasks read is not a task without
// its payment: the history of such an order is read again.
func TestCheckFulfilmentRereadsAHistoryOlderThanItsTask(t *testing.T) {
	api := newFakeAPI()
	api.provider = &fakeProvider{}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	api.now = func() time.Time { return now }
	stale := providerHistory()[:3] // PAYING
	api.orders["o1"] = &fakeOrder{id: "o1", status: statePaying, events: slices.Clone(stale), due: now}
	srv := httptest.NewServer(api.handler())
	defer srv.Close()
	ctx := context.Background()
	lb := NewBalancer(16, 5*time.Second, []string{srv.URL})
	defer lb.Close()
	lb.Probe(ctx)
	op, err := Login(ctx, lb, "olga", "ordermesh")
	if err != nil {
		t.Fatal(err)
	}
	acks := []Ack{{Op: OpCreate, OrderID: "o1", Key: "kc", HTTP: 201, Version: 2, State: stateCreated}}
	res, err := checkFulfilment(ctx, lb, op, acks, map[string][]Event{"o1": stale}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Pass || res.Paid != 1 || res.TasksByState[taskDone] != 1 {
		t.Fatalf("%s %+v", res.Summary(), res.Violations)
	}
}
