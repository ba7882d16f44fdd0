package edge

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/stock"
)

// localStock is a real, in-process stock.Service: one mutex plays every sku's grain,
// stock.DecideBatch and Apply are the domain logic. Only persistence and placement are
// missing, which the edge cannot see.
type localStock struct {
	now func() time.Time

	mu          sync.Mutex
	skus        map[string]stock.Stock
	unavailable int             // the next n calls fail with CodeUnavailable, like a moving grain
	broken      map[string]bool // skus whose every Get fails with CodeUnavailable
	executed    int             // commands that reached a grain and were decided
}

func newLocalStock(now func() time.Time) *localStock {
	return &localStock{now: now, skus: map[string]stock.Stock{}, broken: map[string]bool{}}
}

// withStock gives the harness st as its stock service.
func withStock(st *localStock) option {
	return func(_ *Config, d *Deps) { d.Stock = st }
}

// newStockHarness is a harness whose node serves inventory from a fresh localStock.
func newStockHarness(t testing.TB, opts ...option) (*harness, *localStock) {
	t.Helper()
	st := newLocalStock(time.Now)
	h := newHarness(t, append(opts, withStock(st))...)
	st.now = h.clock.Now
	return h, st
}

func (s *localStock) failNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unavailable = n
}

func (s *localStock) breakSKU(sku string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.broken[sku] = true
}

func (s *localStock) enter() error {
	if s.unavailable > 0 {
		s.unavailable--
		return order.Unavailable(order.ReasonMoved, "stock grain is moving")
	}
	return nil
}

func (s *localStock) state(sku string) stock.Stock {
	st, ok := s.skus[sku]
	if !ok {
		st = stock.New(sku)
	}
	return st
}

func (s *localStock) Execute(_ context.Context, c stock.Command, _ string) (stock.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(); err != nil {
		return stock.Result{}, err
	}
	c.At = s.now().UTC()
	b := stock.DecideBatch(s.state(c.SKU), []stock.Command{c})
	out := b.Results[0]
	if out.Err != nil {
		return stock.Result{}, out.Err
	}
	s.executed++
	s.skus[c.SKU] = b.State
	res := stock.Result{View: b.State.View(), Holding: b.State.Holding(c.OrderID), Replayed: out.Replay}
	return res, out.Decision.Err()
}

func (s *localStock) Get(_ context.Context, sku, _ string) (stock.View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(); err != nil {
		return stock.View{}, err
	}
	if s.broken[sku] {
		return stock.View{}, order.Unavailable(order.ReasonUnreachable, "stock grain of %s is unreachable", sku)
	}
	st := s.state(sku)
	return st.View(), nil
}

// reserve holds qty units of sku for an order, as the node's reservation saga does.
func (s *localStock) reserve(t testing.TB, sku, orderID string, qty int64) {
	t.Helper()
	_, err := s.Execute(context.Background(), stock.Command{
		Type: stock.CmdReserve, SKU: sku, OrderID: orderID, Qty: qty, By: order.Principal{Subject: "system", Role: order.RoleSystem},
	}, "test")
	if err != nil {
		t.Fatalf("reserving %d of %s: %v", qty, sku, err)
	}
}

// TestLocalStockIsTheDomain: the fake answers as the domain decides, so the edge tests
// built on it test real behaviour.
func TestLocalStockIsTheDomain(t *testing.T) {
	st := newLocalStock(time.Now)
	ctx := context.Background()
	by := order.Principal{Subject: "olga", Role: order.RoleOperator}
	res, err := st.Execute(ctx, stock.Command{Type: stock.CmdAdjust, SKU: "a", Delta: 3, Key: "k", By: by}, "r")
	if err != nil || res.View.OnHand != 3 || res.View.Available != 3 || res.View.Version != 1 || res.Replayed {
		t.Fatalf("adjust: %+v, %v", res, err)
	}
	st.reserve(t, "a", "o1", 2)
	if _, err := st.Execute(ctx, stock.Command{Type: stock.CmdReserve, SKU: "a", OrderID: "o2", Qty: 2,
		By: order.Principal{Subject: "system", Role: order.RoleSystem}}, "r"); order.ErrorCode(err) != order.CodeOutOfStock {
		t.Fatalf("reserve over the available: %v", err)
	}
	if v, err := st.Get(ctx, "a", "r"); err != nil || v.OnHand != 3 || v.Reserved != 2 || v.Available != 1 {
		t.Fatalf("get: %+v, %v", v, err)
	}
}
