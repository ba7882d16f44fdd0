package actors

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/warehouse"
	"github.com/ordermesh/ordermesh/persistence"
)

// warehouseFunc is a warehouse.Warehouse.
type warehouseFunc func(ctx context.Context, t warehouse.Task) error

func (w warehouseFunc) Fulfil(ctx context.Context, t warehouse.Task) error { return w(ctx, t) }

var instantWarehouse = warehouseFunc(func(context.Context, warehouse.Task) error { return nil })

// fulfilmentRig is a Fulfilment on node over the fakes.
type fulfilmentRig struct {
	jobs   *fakeJobs
	clock  *fakeClock
	orders *fakeOrders
}

func newFulfilmentRig() *fulfilmentRig {
	jobs, clock := newJobs(), newClock()
	return &fulfilmentRig{jobs: jobs, clock: clock, orders: newOrders(jobs, clock.Now)}
}

// task makes an order in status st with its fulfilment task, as paying it did.
func (r *fulfilmentRig) task(t *testing.T, orderID string, st order.Status) string {
	t.Helper()
	id := FulfilmentJobID(orderID)
	b, err := json.Marshal(warehouse.Task{ID: id, OrderID: orderID, Customer: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	r.orders.set(orderID, st)
	r.jobs.add(id, JobFulfilment, orderID, b, r.clock.Now())
	return id
}

func (r *fulfilmentRig) start(t *testing.T, node string, cfg FulfilmentConfig) (*Fulfilment, outcomes) {
	t.Helper()
	obs := make(outcomes, 100)
	cfg.Jobs, cfg.Orders, cfg.Node, cfg.Now, cfg.Logger, cfg.Observer = r.jobs, r.orders, node, r.clock.Now, quiet, obs
	cfg.Poll = time.Hour
	if cfg.Warehouse == nil {
		cfg.Warehouse = instantWarehouse
	}
	f := NewFulfilment(cfg)
	f.Start()
	stopped(t, f.Stop)
	return f, obs
}

func TestFulfilmentShipsPaidOrders(t *testing.T) {
	r := newFulfilmentRig()
	ids := []string{r.task(t, "o1", order.StatusPaid), r.task(t, "o2", order.StatusPaid)}
	f, obs := r.start(t, "a", FulfilmentConfig{Workers: 2})
	f.Kick()
	obs.next(t, OutcomeDone)
	obs.next(t, OutcomeDone)
	for i, o := range []string{"o1", "o2"} {
		if n := r.orders.shipped(o); n != 1 {
			t.Errorf("%s shipped %d times", o, n)
		}
		if j := r.jobs.get(ids[i]); j.State != persistence.JobDone || j.LastError != "" || j.Attempts != 1 {
			t.Errorf("%+v", j)
		}
	}
}

func TestFulfilmentDeadTaskRetriedByAnOperatorShips(t *testing.T) {
	r := newFulfilmentRig()
	id := r.task(t, "o1", order.StatusPaid)
	var up atomic.Bool
	f, obs := r.start(t, "a", FulfilmentConfig{Workers: 1, MaxAttempts: 2, Backoff: Backoff{Base: time.Second, Max: time.Second},
		Warehouse: warehouseFunc(func(context.Context, warehouse.Task) error {
			if !up.Load() {
				return warehouse.ErrSimulated
			}
			return nil
		})})
	f.Kick()
	obs.next(t, OutcomeRetry)
	r.clock.Advance(time.Second)
	f.Kick()
	obs.next(t, OutcomeDead)
	if j := r.jobs.get(id); j.State != persistence.JobDead || j.LastError != "failed 2 times: warehouse: "+warehouse.ErrSimulated.Error() {
		t.Fatalf("%+v", j)
	}
	up.Store(true)
	j, err := f.Retry(context.Background(), id)
	if err != nil || j.State != persistence.JobPending || j.Attempts != 0 {
		t.Fatalf("Retry: %+v, %v", j, err)
	}
	obs.next(t, OutcomeDone) // Retry kicked the pool
	if j := r.jobs.get(id); j.State != persistence.JobDone || j.Attempts != 1 || r.orders.shipped("o1") != 1 {
		t.Fatalf("%+v, shipped %d times", j, r.orders.shipped("o1"))
	}
}

func TestFulfilmentOrderNoLongerPaid(t *testing.T) {
	r := newFulfilmentRig()
	refunded := r.task(t, "refunded", order.StatusRefunded)
	delivered := r.task(t, "delivered", order.StatusDelivered)
	f, obs := r.start(t, "a", FulfilmentConfig{Workers: 1})
	f.Kick()
	got := map[string]int{}
	for range 2 {
		got[<-obs]++
	}
	if got[OutcomeCancelled] != 1 || got[OutcomeDone] != 1 {
		t.Fatalf("outcomes %v", got)
	}
	if j := r.jobs.get(refunded); j.State != persistence.JobCancelled || j.LastError != "job cancelled: the order is REFUNDED" {
		t.Errorf("refunded: %+v", j)
	}
	if j := r.jobs.get(delivered); j.State != persistence.JobDone {
		t.Errorf("shipped by someone else: %+v", j)
	}
	if n := r.orders.shipped("delivered") + r.orders.shipped("refunded"); n != 0 {
		t.Errorf("%d ships", n)
	}
}

func TestFulfilmentRetriesAnUnavailableOrder(t *testing.T) {
	r := newFulfilmentRig()
	id := r.task(t, "o1", order.StatusPaid)
	var failed atomic.Bool
	r.orders.fail = func(order.Command) error {
		if failed.CompareAndSwap(false, true) {
			return order.Unavailable(order.ReasonMoved, "the order moved")
		}
		return nil
	}
	f, obs := r.start(t, "a", FulfilmentConfig{Workers: 1, Backoff: Backoff{Base: time.Second, Max: time.Second}})
	f.Kick()
	obs.next(t, OutcomeRetry)
	if j := r.jobs.get(id); j.State != persistence.JobPending || j.Attempts != 1 {
		t.Fatalf("%+v", j)
	}
	r.clock.Advance(time.Second)
	f.Kick()
	obs.next(t, OutcomeDone)
	if n := r.orders.shipped("o1"); n != 1 {
		t.Fatalf("shipped %d times", n)
	}
}

// A node claims a task and dies (or stalls) before it records anything: once the lease
// passes, another node's pool takes the task over and ships the order, once, even when
// the first node wakes up and ships too.
func TestFulfilmentAbandonedLeaseIsReclaimedAndShipsOnce(t *testing.T) {
	r := newFulfilmentRig()
	id := r.task(t, "o1", order.StatusPaid)
	const lease = 30 * time.Second
	now := r.clock.Now()
	claimed, err := r.jobs.ClaimJobs(context.Background(), JobFulfilment, "dead", now, now.Add(lease), 1)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("the dead node's claim: %v, %v", claimed, err)
	}
	f, obs := r.start(t, "b", FulfilmentConfig{Workers: 1, Lease: lease})
	if _, err := f.pool.RunNow(context.Background(), id); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("claiming a leased task: %v", err)
	}
	r.clock.Advance(lease)
	f.Kick()
	obs.next(t, OutcomeDone)
	j := r.jobs.get(id)
	if j.State != persistence.JobDone || j.LeaseOwner != "b" || j.Attempts != 2 || r.orders.shipped("o1") != 1 {
		t.Fatalf("%+v, shipped %d times", j, r.orders.shipped("o1"))
	}
	// The dead node wakes up: its Ship is a replay, and its outcome is refused.
	res, err := r.orders.Execute(context.Background(), order.Command{Type: order.CmdShip, OrderID: "o1", Key: id, By: fulfilmentBy}, "")
	if err != nil || !res.Replayed {
		t.Fatalf("the late Ship: %+v, %v", res, err)
	}
	err = r.jobs.FinishJob(context.Background(), persistence.JobFinish{ID: id, Fence: claimed[0].Fence, State: persistence.JobPending})
	if !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("the late finish: %v", err)
	}
	if n := r.orders.shipped("o1"); n != 1 {
		t.Fatalf("shipped %d times", n)
	}
}

func TestFulfilmentOperatorsWithAutoShipOff(t *testing.T) {
	r := newFulfilmentRig()
	id := r.task(t, "o1", order.StatusPaid)
	r.task(t, "o2", order.StatusPaid)
	r.jobs.add(PaymentJobID("o3", 2), JobPayment, "o3", nil, r.clock.Now())
	f, _ := r.start(t, "a", FulfilmentConfig{})
	f.Kick()
	if f.pool != nil {
		t.Fatal("a pool runs with auto-ship off")
	}
	page, err := f.List(context.Background(), persistence.JobQuery{Kind: JobPayment, Limit: 10})
	if err != nil || len(page.Jobs) != 2 || page.Jobs[0].Kind != JobFulfilment || page.Jobs[1].Kind != JobFulfilment {
		t.Fatalf("List: %+v, %v", page, err)
	}
	j, err := f.Cancel(context.Background(), id, "out of stock at the warehouse")
	if err != nil || j.State != persistence.JobCancelled || j.LastError != "out of stock at the warehouse" {
		t.Fatalf("Cancel: %+v, %v", j, err)
	}
	for _, tc := range []struct {
		id   string
		want error
	}{{id, persistence.ErrConflict}, {"fulfil_nope", persistence.ErrNotFound}, {PaymentJobID("o3", 2), persistence.ErrNotFound}} {
		if _, err := f.Retry(context.Background(), tc.id); !errors.Is(err, tc.want) {
			t.Errorf("Retry(%s): %v, want %v", tc.id, err, tc.want)
		}
		if _, err := f.Cancel(context.Background(), tc.id, ""); !errors.Is(err, tc.want) {
			t.Errorf("Cancel(%s): %v, want %v", tc.id, err, tc.want)
		}
	}
}
