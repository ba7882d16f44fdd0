package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/orderpb"
)

func getRequest(id string) *orderpb.GetRequest {
	return &orderpb.GetRequest{OrderId: id, By: orderpb.PrincipalToPB(alice), RequestId: "t"}
}

// Reads of order ids that do not exist must not pile up grains: each such grain stops
// right after answering.
func TestReadsOfMissingOrdersLeaveNoGrains(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "om.db"))
	n := startNode(t, store, nil)
	create(t, n, "exists")
	before := n.Activations()

	const reads, workers = 10_000, 16
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				id := fmt.Sprintf("o_missing_%d_%x", i, rand.Uint64())
				if _, err := n.Get(context.Background(), id, olga, "t"); order.ErrorCode(err) != order.CodeNotFound {
					t.Errorf("get %s: %v, want CodeNotFound", id, err)
				}
			}
		}()
	}
	for i := range reads {
		next <- i
	}
	close(next)
	wg.Wait()
	eventually(t, 30*time.Second, fmt.Sprintf("active grains back to %d", before), func() bool { return n.Activations() == before })
}

// A create queued behind a read of the same, not yet existing order is still applied.
func TestCreateAfterReadOfMissingOrder(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "om.db"))
	n := startNode(t, store, nil)
	id := order.OrderIDFor(alice.Subject, "later")
	if _, err := n.Get(context.Background(), id, alice, "t"); order.ErrorCode(err) != order.CodeNotFound {
		t.Fatalf("get before create: %v", err)
	}
	var v order.View
	eventually(t, 10*time.Second, "the create", func() bool {
		res, err := n.Execute(context.Background(), order.Command{
			Type: order.CmdCreate, OrderID: id, Key: "later", By: alice,
			Lines: []order.Line{{SKU: "tea", Name: "Tea", Qty: 1, UnitPrice: 450}}, Currency: "EUR",
		}, "t")
		if err != nil && order.ErrorCode(err) != order.CodeUnavailable {
			t.Fatalf("create: %v", err)
		}
		v = res.View
		return err == nil
	})
	if got, err := n.Get(context.Background(), id, alice, "t"); err != nil || got.Version != v.Version {
		t.Fatalf("get after create = %+v, %v", got, err)
	}
	if n.Activations() != 1 {
		t.Fatalf("%d grains active, want the created order's", n.Activations())
	}
}

// With a bound of N grains a node never holds more than N, whatever it is asked for;
// passivated grains reactivate from the store with their state.
func TestMaxGrainsIsNeverExceeded(t *testing.T) {
	const bound, orders = 50, 500
	store := openStore(t, filepath.Join(t.TempDir(), "om.db"))
	n := startNodeConfig(t, store, func(c *Config) { c.MaxGrains = bound })
	check := func() {
		t.Helper()
		if got := n.Activations(); got > bound {
			t.Fatalf("%d grains active, bound %d", got, bound)
		}
	}
	ids := make([]string, orders)
	for i := range ids {
		ids[i] = create(t, n, fmt.Sprintf("bound-%d", i)).ID
		check()
	}
	for i, id := range ids {
		if i%2 == 0 {
			mustExec(t, n, id, order.CmdSubmitPayment, "pay", alice)
			check()
		}
		v, err := n.Get(context.Background(), id, alice, "t")
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		if want := uint64(2 + (1 - i%2)); v.Version != want {
			t.Fatalf("order %d at version %d, want %d", i, v.Version, want)
		}
		check()
	}
	if n.Evictions() < orders-bound {
		t.Fatalf("%d evictions, want at least %d", n.Evictions(), orders-bound)
	}
}

// The least recently used grain is the one passivated, whoever sent its last message.
func TestEvictionIsLeastRecentlyUsed(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "om.db"))
	n := startNodeConfig(t, store, func(c *Config) { c.MaxGrains = 2 })
	a, b := create(t, n, "a"), create(t, n, "b")
	pidOf := func(id string) *actor.PID {
		n.lookup.mu.Lock()
		defer n.lookup.mu.Unlock()
		if act, ok := n.lookup.active[id]; ok {
			return act.pid
		}
		return nil
	}
	pidA := pidOf(a.ID)
	// a is used again (straight to its PID, as a peer would), so b is the oldest.
	if _, err := n.system.Root.RequestFuture(pidA, getRequest(a.ID), 5*time.Second).Result(); err != nil {
		t.Fatal(err)
	}
	create(t, n, "c")
	if pidOf(b.ID) != nil || !pidOf(a.ID).Equal(pidA) {
		t.Fatalf("after a third order: a active=%v, b active=%v; want a kept and b passivated", pidOf(a.ID) != nil, pidOf(b.ID) != nil)
	}
}

// Creates racing reads of the same not yet existing orders all land, once each: a grain
// that stops after a read of a missing order never swallows a create (at worst the
// create is answered "retry", as the edge does).
func TestCreatesRacingReadsOfMissingOrders(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "om.db"))
	n := startNode(t, store, nil)
	const orders = 30
	var wg sync.WaitGroup
	for i := range orders {
		key := fmt.Sprintf("race-%d", i)
		id := order.OrderIDFor(alice.Subject, key)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 20 {
				if _, err := n.Get(context.Background(), id, alice, "t"); err != nil {
					if c := order.ErrorCode(err); c != order.CodeNotFound && c != order.CodeUnavailable {
						t.Errorf("get %s: %v", id, err)
					}
				}
			}
		}()
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(30 * time.Second)
			for {
				_, err := n.Execute(context.Background(), order.Command{
					Type: order.CmdCreate, OrderID: id, Key: key, By: alice,
					Lines: []order.Line{{SKU: "tea", Name: "Tea", Qty: 1, UnitPrice: 450}}, Currency: "EUR",
				}, "t")
				if err == nil {
					return
				}
				if order.ErrorCode(err) != order.CodeUnavailable || time.Now().After(deadline) {
					t.Errorf("create %s: %v", id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for i := range orders {
		checkHistory(t, store, order.OrderIDFor(alice.Subject, fmt.Sprintf("race-%d", i)), order.EvtCreated, order.EvtStockReserved)
	}
}
