package actors_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors"
	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/pgtest"
	"github.com/ordermesh/ordermesh/persistence/postgres"
	"github.com/ordermesh/ordermesh/persistence/sqlite"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// stores opens each real store for t.
var stores = map[string]func(t *testing.T) persistence.Store{
	"embedded": func(t *testing.T) persistence.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "om.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
	"postgres": func(t *testing.T) persistence.Store {
		s, err := postgres.Open(context.Background(), pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
}

// writePaying stores a PAYING order whose payment deadline is deadline.
func writePaying(t *testing.T, s persistence.Store, id string, deadline time.Time) {
	t.Helper()
	err := s.WriteOrder(context.Background(), persistence.Write{
		Order: persistence.Order{
			ID: id, Customer: "alice", Status: string(order.StatusPaying), Version: 1, Snapshot: []byte("{}"),
			PaymentDeadline: deadline, CreatedAt: now.Add(-time.Hour), UpdatedAt: now.Add(-time.Hour),
		},
		Events: []persistence.Event{{OrderID: id, Version: 1, Type: "PaymentSubmitted", From: "NONE", To: "PAYING",
			IdempotencyKey: "k-" + id, Node: "test", At: now.Add(-time.Hour), Payload: []byte("{}")}},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// recorder is an order.Service that records the ExpirePayment calls it gets and answers
// them with answer (the store is left alone, so what was due stays due).
type recorder struct {
	mu     sync.Mutex
	calls  map[string]int
	answer func(ctx context.Context, id string) error
}

func (r *recorder) Execute(ctx context.Context, c order.Command, _ string) (order.Result, error) {
	r.mu.Lock()
	if r.calls == nil {
		r.calls = map[string]int{}
	}
	r.calls[c.OrderID]++
	r.mu.Unlock()
	if c.Type != order.CmdExpirePayment {
		return order.Result{}, fmt.Errorf("unexpected %s", c.Type)
	}
	if r.answer != nil {
		return order.Result{}, r.answer(ctx, c.OrderID)
	}
	return order.Result{}, nil
}

func (r *recorder) Get(context.Context, string, order.Principal, string) (order.View, error) {
	return order.View{}, order.Errorf(order.CodeNotFound, "not here")
}

func (r *recorder) called() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.calls))
	for id, n := range r.calls {
		out[id] = n
	}
	return out
}

// dueStore is an embedded store holding count orders o-00, o-01, ... whose payment
// deadline passed a minute ago.
func dueStore(t *testing.T, count int) persistence.Store {
	t.Helper()
	store := stores["embedded"](t)
	for i := range count {
		writePaying(t, store, fmt.Sprintf("o-%02d", i), now.Add(-time.Minute))
	}
	return store
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A backlog of due orders owned by one node (whose calls never succeed, as when it is
// overloaded) must not starve the others: every node's sweeps reach all of its own orders.
func TestSweepersMakeProgressOnTheirOwnOrders(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			const batch, backlog = 5, 120
			owned := map[string][]string{}
			add := func(owner string, i int, deadline time.Time) {
				id := fmt.Sprintf("%s-%03d", owner, i)
				writePaying(t, store, id, deadline)
				owned[owner] = append(owned[owner], id)
			}
			for i := range backlog { // a's backlog comes first
				add("a", i, now.Add(-2*time.Hour).Add(time.Duration(i)*time.Second))
			}
			for i := range 3 {
				add("b", i, now.Add(-time.Hour).Add(time.Duration(i)*time.Second))
				add("c", i, now.Add(-time.Hour).Add(time.Duration(i)*time.Second))
			}
			writePaying(t, store, "b-later", now.Add(time.Hour)) // not due

			for _, owner := range []string{"a", "b", "c"} {
				svc := &recorder{}
				if owner == "a" {
					svc.answer = func(context.Context, string) error {
						return order.Unavailable(order.ReasonTimeout, "overloaded")
					}
				}
				sw := &actors.Sweeper{
					Store: store, Orders: svc, Now: func() time.Time { return now }, Batch: batch, Logger: discard(),
					Owns: func(id string) bool { return strings.HasPrefix(id, owner+"-") },
				}
				// Each sweep either sends batch of its own orders or reads at least a page of
				// the due list past where the last one stopped, so this many sweeps reach all
				// of them, wherever they are in the list.
				due := backlog + 6
				sweeps := (due+batch-1)/batch + (len(owned[owner])+batch-1)/batch + 1
				for range sweeps {
					if _, err := sw.Sweep(context.Background()); err != nil {
						t.Fatal(err)
					}
				}
				calls := svc.called()
				for _, id := range owned[owner] {
					if calls[id] == 0 {
						t.Errorf("node %s: %d sweeps never reached its order %s", owner, sweeps, id)
					}
				}
				for id := range calls {
					if !strings.HasPrefix(id, owner+"-") || id == "b-later" {
						t.Errorf("node %s swept %s", owner, id)
					}
				}
			}
		})
	}
}

// Sweep reports the orders it expired, not those that were settled meanwhile.
func TestSweepCountsExpired(t *testing.T) {
	store := dueStore(t, 3)
	svc := &recorder{answer: func(_ context.Context, id string) error {
		if id == "o-01" {
			return order.Errorf(order.CodeIllegalTransition, "paid meanwhile")
		}
		return nil
	}}
	sw := &actors.Sweeper{Store: store, Orders: svc, Now: func() time.Time { return now }, Batch: 10, Logger: discard()}
	if n, err := sw.Sweep(context.Background()); err != nil || n != 2 {
		t.Fatalf("Sweep = %d, %v; want 2", n, err)
	}
}

// A sweep stops when its context ends, even while a call hangs on a service that ignores
// cancellation, and sends nothing more.
func TestSweeperStopsWithItsContext(t *testing.T) {
	store := dueStore(t, 20)
	started, hang := make(chan struct{}, 100), make(chan struct{})
	t.Cleanup(func() { close(hang) })
	svc := &recorder{answer: func(context.Context, string) error {
		started <- struct{}{}
		<-hang // ignores its context
		return nil
	}}
	sw := &actors.Sweeper{
		Store: store, Orders: svc, Now: func() time.Time { return now }, Interval: time.Millisecond, Batch: 10,
		CallTimeout: time.Hour, Logger: discard(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sw.Run(ctx) }()
	<-started
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the sweeper did not stop after its context ended")
	}
	if calls := svc.called(); len(calls) != 1 {
		t.Fatalf("the sweeper called %d orders, want only the one in flight when it was stopped", len(calls))
	}
}

// One order that does not answer holds up a sweep for CallTimeout at most.
func TestSweepGivesUpOnAHangingCall(t *testing.T) {
	store := dueStore(t, 3)
	svc := &recorder{answer: func(ctx context.Context, id string) error {
		if id == "o-00" {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}}
	sw := &actors.Sweeper{
		Store: store, Orders: svc, Now: func() time.Time { return now }, Batch: 10,
		CallTimeout: 10 * time.Millisecond, Logger: discard(),
	}
	if n, err := sw.Sweep(context.Background()); err != nil || n != 2 {
		t.Fatalf("Sweep = %d, %v; want the 2 orders that answer", n, err)
	}
}
