package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors"
	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/stock"
	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/pgtest"
)

// bothStores opens a fresh store of each kind.
var bothStores = map[string]func(t *testing.T) persistence.Store{
	"embedded": func(t *testing.T) persistence.Store { return openStore(t, filepath.Join(t.TempDir(), "om.db")) },
	"postgres": func(t *testing.T) persistence.Store { return openPostgres(t, pgtest.URL(t)) },
}

// faultyStock passes stock commands on to the node's stock service, except that it
// fails the ones fail says to, as a node that died at that point would never have sent
// them.
type faultyStock struct {
	inner stock.Service
	mu    sync.Mutex
	fail  func(c stock.Command) bool
}

func (f *faultyStock) Execute(ctx context.Context, c stock.Command, requestID string) (stock.Result, error) {
	f.mu.Lock()
	fail := f.fail != nil && f.fail(c)
	f.mu.Unlock()
	if fail {
		return stock.Result{}, order.Unavailable(order.ReasonUnreachable, "injected failure")
	}
	return f.inner.Execute(ctx, c, requestID)
}

func (f *faultyStock) Get(ctx context.Context, sku, requestID string) (stock.View, error) {
	return f.inner.Get(ctx, sku, requestID)
}

func (f *faultyStock) failWhen(fail func(c stock.Command) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fail
}

// startStockNode starts a node alone on store with stock grains; its order grains reach
// them through the returned faultyStock, which fails nothing until told to.
func startStockNode(t testing.TB, store persistence.Store, tweak func(*Config)) (*Node, *faultyStock) {
	t.Helper()
	f := &faultyStock{}
	n := startNodeConfig(t, store, func(c *Config) {
		c.Grain.Stock = f
		c.Stock = &actors.StockConfig{Store: store.(persistence.Stocks)}
		if tweak != nil {
			tweak(c)
		}
	})
	f.inner = n.Stock()
	return n, f
}

func adjust(t testing.TB, svc stock.Service, sku string, delta int64, key string) stock.View {
	t.Helper()
	res, err := svc.Execute(context.Background(), stock.Command{
		Type: stock.CmdAdjust, SKU: sku, Delta: delta, Key: key, By: olga,
	}, "test")
	if err != nil {
		t.Fatalf("adjust %s by %d: %v", sku, delta, err)
	}
	return res.View
}

func stockOf(t testing.TB, svc stock.Service, sku string) stock.View {
	t.Helper()
	v, err := svc.Get(context.Background(), sku, "test")
	if err != nil {
		t.Fatalf("stock of %s: %v", sku, err)
	}
	return v
}

func wantStock(t testing.TB, svc stock.Service, sku string, onHand, reserved int64) {
	t.Helper()
	if v := stockOf(t, svc, sku); v.OnHand != onHand || v.Reserved != reserved || v.Available != onHand-reserved {
		t.Fatalf("stock of %s: %+v, want on hand %d, reserved %d", sku, v, onHand, reserved)
	}
}

func createLines(svc order.Service, by order.Principal, key string, lines ...order.Line) (order.Result, error) {
	return svc.Execute(context.Background(), order.Command{
		Type: order.CmdCreate, OrderID: order.OrderIDFor(by.Subject, key), Key: key, By: by,
		Lines: lines, Currency: "EUR",
	}, "test")
}

func line(sku string, qty int64) order.Line {
	return order.Line{SKU: sku, Name: sku, Qty: qty, UnitPrice: 100}
}

// 200 shoppers race for 50 units: exactly 50 orders stand, 150 are refused with the
// out-of-stock code naming the sku, and a refused shopper's retry is refused alike.
func TestFlashSaleNeverOversells(t *testing.T) {
	for name, open := range bothStores {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			n, _ := startStockNode(t, store, nil)
			adjust(t, n.Stock(), "kettle", 50, "stock-in")

			var ok, out atomic.Int32
			var wg sync.WaitGroup
			var refusedKey atomic.Value
			for i := range 200 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					shopper := order.Principal{Subject: fmt.Sprintf("shopper-%d", i), Role: order.RoleShopper}
					res, err := createLines(n, shopper, "buy", line("kettle", 1))
					switch order.ErrorCode(err) {
					case order.CodeOK:
						if res.View.Status != order.StatusCreated || res.View.Version != 2 {
							t.Errorf("created %+v", res.View)
						}
						ok.Add(1)
					case order.CodeOutOfStock:
						out.Add(1)
						refusedKey.Store(shopper)
					default:
						t.Errorf("create: %v", err)
					}
				}()
			}
			wg.Wait()
			if ok.Load() != 50 || out.Load() != 150 {
				t.Fatalf("%d created, %d out of stock; want 50 and 150", ok.Load(), out.Load())
			}
			wantStock(t, n.Stock(), "kettle", 50, 50)

			shopper := refusedKey.Load().(order.Principal)
			_, err := createLines(n, shopper, "buy", line("kettle", 1))
			if order.ErrorCode(err) != order.CodeOutOfStock || order.ErrorMessage(err) == "" {
				t.Fatalf("retry of a refused create: %v, want %d", err, order.CodeOutOfStock)
			}
			id := order.OrderIDFor(shopper.Subject, "buy")
			checkHistory(t, store, id, order.EvtCreated, order.EvtRejected)
			if v, err := n.Get(context.Background(), id, shopper, "t"); err != nil || v.Status != order.StatusRejected {
				t.Fatalf("refused order: %+v, %v", v, err)
			}
			// A cancel frees a unit, which the next shopper gets.
			var winner order.Principal
			for i := range 200 {
				p := order.Principal{Subject: fmt.Sprintf("shopper-%d", i), Role: order.RoleShopper}
				if v, err := n.Get(context.Background(), order.OrderIDFor(p.Subject, "buy"), p, "t"); err == nil && v.Status == order.StatusCreated {
					winner = p
					break
				}
			}
			mustExec(t, n, order.OrderIDFor(winner.Subject, "buy"), order.CmdCancel, "cancel", winner)
			wantStock(t, n.Stock(), "kettle", 50, 49)
			late := order.Principal{Subject: "late", Role: order.RoleShopper}
			if _, err := createLines(n, late, "buy", line("kettle", 1)); err != nil {
				t.Fatalf("create after a cancel: %v", err)
			}
			wantStock(t, n.Stock(), "kettle", 50, 50)
		})
	}
}

// An order holds its units from creation until it closes, ships or is refunded, and
// every step shows in the sku's counters.
func TestStockFollowsTheOrder(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "om.db"))
	n, _ := startStockNode(t, store, nil)
	s := n.Stock()
	adjust(t, s, "tea", 10, "in-tea")
	adjust(t, s, "mug", 3, "in-mug")

	// All or nothing: one line short, nothing is held.
	if _, err := createLines(n, alice, "too-many", line("tea", 2), line("mug", 4)); order.ErrorCode(err) != order.CodeOutOfStock {
		t.Fatalf("create beyond the stock of mug: %v", err)
	}
	wantStock(t, s, "tea", 10, 0)
	wantStock(t, s, "mug", 3, 0)

	res, err := createLines(n, alice, "basket", line("tea", 2), line("mug", 1))
	if err != nil {
		t.Fatal(err)
	}
	id := res.View.ID
	wantStock(t, s, "tea", 10, 2)
	mustExec(t, n, id, order.CmdSubmitPayment, "pay", alice)
	mustExec(t, n, id, order.CmdConfirmPayment, "confirm", olga)
	wantStock(t, s, "tea", 10, 2) // sold, still held until it ships
	mustExec(t, n, id, order.CmdShip, "ship", olga)
	wantStock(t, s, "tea", 8, 0)
	wantStock(t, s, "mug", 2, 0)
	mustExec(t, n, id, order.CmdDeliver, "deliver", olga)
	mustExec(t, n, id, order.CmdRefund, "refund", olga)
	wantStock(t, s, "tea", 8, 0) // the goods left: a refund after delivery changes no stock

	res, err = createLines(n, alice, "refund-early", line("tea", 3))
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, n, res.View.ID, order.CmdSubmitPayment, "pay", alice)
	mustExec(t, n, res.View.ID, order.CmdConfirmPayment, "confirm", olga)
	wantStock(t, s, "tea", 8, 3)
	mustExec(t, n, res.View.ID, order.CmdRefund, "refund", olga)
	wantStock(t, s, "tea", 8, 0)

	// Removing more than is available is refused; what is reserved stays.
	res, err = createLines(n, alice, "held", line("mug", 2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Execute(context.Background(), stock.Command{Type: stock.CmdAdjust, SKU: "mug", Delta: -1, Key: "shrink", By: olga}, "t"); order.ErrorCode(err) != order.CodeOutOfStock {
		t.Fatalf("removing a reserved unit: %v", err)
	}
	mustExec(t, n, res.View.ID, order.CmdCancel, "cancel", alice)
	wantStock(t, s, "mug", 2, 0)
}

// An unpaid order closes at its expiry, by its grain's timer or by the sweeper once the
// grain passivated, and its units come back.
func TestUnpaidOrderExpiresAndReleasesItsStock(t *testing.T) {
	for _, passivated := range []bool{false, true} {
		t.Run(fmt.Sprintf("passivated=%v", passivated), func(t *testing.T) {
			store := openStore(t, filepath.Join(t.TempDir(), "om.db"))
			clock := &fakeClock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
			n, _ := startStockNode(t, store, func(c *Config) {
				c.Grain.Now, c.Grain.AfterFunc, c.Grain.OrderTimeout = clock.Now, clock.AfterFunc, 30*time.Minute
				if passivated {
					c.Grain.IdleTimeout = 50 * time.Millisecond
				}
			})
			adjust(t, n.Stock(), "tea", 5, "in")
			res, err := createLines(n, alice, "unpaid", line("tea", 2))
			if err != nil {
				t.Fatal(err)
			}
			if want := res.View.CreatedAt.Add(30 * time.Minute); !res.View.ExpiresAt.Equal(want) {
				t.Fatalf("expires_at %v, want %v", res.View.ExpiresAt, want)
			}
			wantStock(t, n.Stock(), "tea", 5, 2)
			if passivated {
				eventually(t, 5*time.Second, "passivation", func() bool { return n.Activations() <= 1 }) // the sku's grain may stay
			}
			clock.Advance(31 * time.Minute)
			if passivated {
				sw := &actors.Sweeper{Store: store, Orders: n, Now: clock.Now, Batch: 100, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
				if got, err := sw.Sweep(context.Background()); err != nil || got != 1 {
					t.Fatalf("sweep expired %d, %v", got, err)
				}
			}
			eventually(t, 5*time.Second, "expiry", func() bool {
				v, err := n.Get(context.Background(), res.View.ID, alice, "t")
				return err == nil && v.Status == order.StatusClosed
			})
			wantStock(t, n.Stock(), "tea", 5, 0)
			checkHistory(t, store, res.View.ID, order.EvtCreated, order.EvtStockReserved, order.EvtExpired)
		})
	}
}

// A node that fails in the middle of the saga leaves it durable and unfinished; the next
// node to take the order up (its sweeper, here) completes it forward, with the outcome
// the first run would have had, and no unit leaked or held twice.
func TestInterruptedSagaIsCompleted(t *testing.T) {
	type step struct {
		name       string
		stockTea   int64 // units of tea on hand (mug has 5)
		failAt     func(c stock.Command) bool
		wantStatus order.Status
		wantEvents []order.EventType
	}
	reserveOf := func(sku string) func(c stock.Command) bool {
		return func(c stock.Command) bool { return c.Type == stock.CmdReserve && c.SKU == sku }
	}
	for _, tt := range []step{
		{"after the order was recorded", 10, func(stock.Command) bool { return true },
			order.StatusCreated, []order.EventType{order.EvtCreated, order.EvtStockReserved}},
		{"after one line was reserved", 10, reserveOf("tea"),
			order.StatusCreated, []order.EventType{order.EvtCreated, order.EvtStockReserved}},
		{"after a refusal, before the release", 1, func(c stock.Command) bool { return c.Type == stock.CmdRelease },
			order.StatusRejected, []order.EventType{order.EvtCreated, order.EvtRejected}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := openStore(t, filepath.Join(t.TempDir(), "om.db"))
			clock := &fakeClock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
			n, f := startStockNode(t, store, func(c *Config) { c.Grain.Now, c.Grain.AfterFunc = clock.Now, clock.AfterFunc })
			adjust(t, n.Stock(), "tea", tt.stockTea, "in-tea")
			adjust(t, n.Stock(), "mug", 5, "in-mug")
			f.failWhen(tt.failAt)
			_, err := createLines(n, alice, "saga", line("mug", 1), line("tea", 2))
			if order.ErrorCode(err) != order.CodeUnavailable {
				t.Fatalf("create with the stock failing: %v, want %d", err, order.CodeUnavailable)
			}
			id := order.OrderIDFor(alice.Subject, "saga")
			rec, err := store.LoadOrder(context.Background(), id)
			if err != nil || rec.Status != string(order.StatusReserving) {
				t.Fatalf("stored order after the failure: %+v, %v", rec, err)
			}
			stopGrain(t, n, id) // the node that ran the saga is gone
			f.failWhen(nil)

			sw := &actors.Sweeper{Store: store, Orders: n, Now: clock.Now, Batch: 100, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if got, _ := sw.Sweep(context.Background()); got != 0 {
				t.Fatalf("swept %d before the saga's retry time", got)
			}
			clock.Advance(order.StockRetry)
			_, _ = sw.Sweep(context.Background())
			v, err := n.Get(context.Background(), id, alice, "t")
			if err != nil || v.Status != tt.wantStatus {
				t.Fatalf("after the sweep: %+v, %v; want %s", v, err, tt.wantStatus)
			}
			checkHistory(t, store, id, tt.wantEvents...)
			held := int64(0)
			if tt.wantStatus == order.StatusCreated {
				held = 1
			}
			wantStock(t, n.Stock(), "mug", 5, held)
			wantStock(t, n.Stock(), "tea", tt.stockTea, 2*held)
			// The shopper's retry gets the saga's outcome.
			_, err = createLines(n, alice, "saga", line("mug", 1), line("tea", 2))
			if want := map[order.Status]order.Code{order.StatusCreated: order.CodeOK, order.StatusRejected: order.CodeOutOfStock}[tt.wantStatus]; order.ErrorCode(err) != want {
				t.Fatalf("retried create: %v, want code %d", err, want)
			}
		})
	}
}

// A transition whose stock effect could not be applied (the node died right after it)
// has it applied by the sweeper: a cancelled order's units come back.
func TestStockEffectAppliedAfterAFailure(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "om.db"))
	clock := &fakeClock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	n, f := startStockNode(t, store, func(c *Config) { c.Grain.Now, c.Grain.AfterFunc = clock.Now, clock.AfterFunc })
	adjust(t, n.Stock(), "tea", 4, "in")
	res, err := createLines(n, alice, "c", line("tea", 3))
	if err != nil {
		t.Fatal(err)
	}
	f.failWhen(func(c stock.Command) bool { return c.Type == stock.CmdRelease })
	mustExec(t, n, res.View.ID, order.CmdCancel, "cancel", alice) // durable, whatever the stock says
	wantStock(t, n.Stock(), "tea", 4, 3)
	stopGrain(t, n, res.View.ID)
	f.failWhen(nil)
	sw := &actors.Sweeper{Store: store, Orders: n, Now: clock.Now, Batch: 100, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	clock.Advance(order.StockRetry)
	_, _ = sw.Sweep(context.Background())
	wantStock(t, n.Stock(), "tea", 4, 0)
	rec, err := store.LoadOrder(context.Background(), res.View.ID)
	if err != nil || !rec.PaymentDeadline.IsZero() {
		t.Fatalf("the closed order is still due: %+v, %v", rec, err)
	}
	checkHistory(t, store, res.View.ID, order.EvtCreated, order.EvtStockReserved, order.EvtCancelled)
}
