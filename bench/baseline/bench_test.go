package baseline_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/stock"

	"github.com/ordermesh/ordermesh/bench/baseline"
	"github.com/ordermesh/ordermesh/persistence/pgtest"
)

// BenchmarkTransitions measures the baseline's write path: `orders` goroutines, each
// driving one order at a time through create → pay → confirm → ship → deliver via
// Execute, so at most `orders` orders are written concurrently. Every Execute is one
// transition. It is the counterpart of persistence/postgres's BenchmarkWriteTransitions
// (the ordermesh store's group commit); compare their transitions/s.
func BenchmarkTransitions(b *testing.B) {
	lifecycle := []struct {
		typ order.CommandType
		by  order.Principal
	}{
		{order.CmdSubmitPayment, alice},
		{order.CmdConfirmPayment, olga},
		{order.CmdShip, olga},
		{order.CmdDeliver, olga},
	}
	for _, orders := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("orders=%d", orders), func(b *testing.B) {
			ctx := context.Background()
			s := openStocked(b, "tea-sencha")
			lines := []order.Line{{SKU: "tea-sencha", Name: "Sencha", Qty: 1, UnitPrice: 1290}}
			var worker atomic.Int64
			measure(b, orders, "transitions/s", func(take func() bool) error {
				prefix := "w" + strconv.FormatInt(worker.Add(1), 10) + "-"
				for n := 0; ; n++ {
					key := prefix + strconv.Itoa(n)
					id := order.OrderIDFor(alice.Subject, key)
					cmds := make([]order.Command, 0, 1+len(lifecycle))
					cmds = append(cmds, order.Command{Type: order.CmdCreate, OrderID: id, Key: key, By: alice, Lines: lines, Currency: "EUR"})
					for i, st := range lifecycle {
						cmds = append(cmds, order.Command{Type: st.typ, OrderID: id, Key: key + "/" + strconv.Itoa(i), By: st.by})
					}
					for _, c := range cmds {
						if !take() {
							return nil
						}
						if _, err := s.Execute(ctx, c, ""); err != nil {
							return err
						}
					}
				}
			})
		})
	}
}

// BenchmarkHotSKUCreates is a flash sale without HTTP, the classic way: `buyers`
// goroutines each create one-unit orders of one sku as fast as they can, every create one
// transaction (order insert plus the conditional update of the sku's row, which every
// buyer waits for in turn). The stock never runs out. Its counterpart for ordermesh is
// cluster's BenchmarkHotSKUCreates; compare their creates/s.
func BenchmarkHotSKUCreates(b *testing.B) {
	for _, buyers := range []int{64, 256} {
		b.Run(fmt.Sprintf("buyers=%d", buyers), func(b *testing.B) {
			ctx := context.Background()
			s := openStocked(b, "hot")
			lines := []order.Line{{SKU: "hot", Name: "Hot", Qty: 1, UnitPrice: 100}}
			var n atomic.Int64
			measure(b, buyers, "creates/s", func(take func() bool) error {
				for take() {
					key := "buy-" + strconv.FormatInt(n.Add(1), 10)
					c := order.Command{Type: order.CmdCreate, OrderID: order.OrderIDFor(alice.Subject, key), Key: key, By: alice, Lines: lines, Currency: "EUR"}
					if _, err := s.Execute(ctx, c, ""); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
}

// openStocked opens the baseline on a fresh database with more of sku on hand than the
// benchmark can sell.
func openStocked(b *testing.B, sku string) *baseline.Service {
	ctx := context.Background()
	s, err := baseline.Open(ctx, pgtest.URL(b), baseline.Options{SweepInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if _, err := s.Stock().Execute(ctx, stock.Command{Type: stock.CmdAdjust, SKU: sku, Delta: int64(b.N) + 1, Key: "in", By: olga}, ""); err != nil {
		b.Fatal(err)
	}
	return s
}

// measure runs workers goroutines of work and reports b.N operations per second as
// unit. take hands out the b.N operations, one per call, and says false once they are
// gone; the first error fails the benchmark.
func measure(b *testing.B, workers int, unit string, work func(take func() bool) error) {
	var next atomic.Int64
	take := func() bool { return next.Add(1) <= int64(b.N) }
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range workers {
		wg.Go(func() {
			if err := work(take); err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), unit)
}
