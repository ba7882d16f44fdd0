package cluster

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
	"github.com/ordermesh/ordermesh/persistence/pgtest"
)

// BenchmarkHotSKUCreates is a flash sale without HTTP on one node and PostgreSQL:
// `buyers` goroutines each create one-unit orders of one sku as fast as they can, every
// create the whole saga (order stored RESERVING, the sku's grain reserves, order stored
// CREATED). The sku's grain decides whatever queued during its last write in one batch
// and writes it at once. The stock never runs out. Its counterpart, the classic design,
// is bench/baseline's BenchmarkHotSKUCreates; compare their creates/s.
func BenchmarkHotSKUCreates(b *testing.B) {
	for _, buyers := range []int{64, 256} {
		b.Run(fmt.Sprintf("buyers=%d", buyers), func(b *testing.B) {
			store := openPostgres(b, pgtest.URL(b))
			n, _ := startStockNode(b, store, nil)
			adjust(b, n.Stock(), "hot", int64(b.N)+1, "in")
			runBuyers(b, buyers, func(i int64) error {
				key := "buy-" + strconv.FormatInt(i, 10)
				_, err := createLines(n, alice, key, line("hot", 1))
				return err
			}, "creates/s")
		})
	}
}

// BenchmarkHotSKUReserve is the sku's grain alone: `buyers` goroutines send Reserve
// commands (one unit, each for a new order) to one sku on PostgreSQL: reservations/s that
// one sku sustains, with every one durable before its answer.
func BenchmarkHotSKUReserve(b *testing.B) {
	for _, buyers := range []int{64, 256, 1024} {
		b.Run(fmt.Sprintf("buyers=%d", buyers), func(b *testing.B) {
			store := openPostgres(b, pgtest.URL(b))
			n, _ := startStockNode(b, store, nil)
			s := n.Stock()
			adjust(b, s, "hot", int64(b.N)+1, "in")
			sys := order.Principal{Subject: "bench", Role: order.RoleSystem}
			runBuyers(b, buyers, func(i int64) error {
				_, err := s.Execute(context.Background(), stock.Command{
					Type: stock.CmdReserve, SKU: "hot", OrderID: "o" + strconv.FormatInt(i, 10), Qty: 1, By: sys,
				}, "bench")
				return err
			}, "reservations/s")
		})
	}
}

// runBuyers runs b.N calls of do (numbered 1..b.N) from buyers goroutines and reports
// their rate as unit.
func runBuyers(b *testing.B, buyers int, do func(i int64) error, unit string) {
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range buyers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := do(i); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
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
