package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"

	"github.com/ordermesh/ordermesh/actors/order"
)

// BenchmarkIdleGrains measures the heap held by idle, activated order grains: the orders
// are created (and driven) by one node, then a second node on the same store activates
// them all (each loads its snapshot) and the growth of its live heap is divided by the
// number of grains. Two shapes: the smallest order (one line, its create key; 100,000
// grains; target at most 4 KiB) and a realistic one (three lines, ten remembered keys:
// created, paid and declined four times, paid again; 20,000 grains; target at most
// 2 KiB). Run with -benchtime 1x. With ORDERMESH_HEAP_PROFILE=FILE set, it writes heap
// profiles before (FILE.base) and after the activations: `go tool pprof -base FILE.base
// FILE` shows what the grains hold (add -memprofilerate 64 for a fine sample).
func BenchmarkIdleGrains(b *testing.B) {
	b.Run("lines=1,keys=1", func(b *testing.B) {
		benchIdleGrains(b, 100_000, []order.Line{{SKU: "tea", Name: "Tea", Qty: 2, UnitPrice: 450}}, 0)
	})
	b.Run("lines=3,keys=10", func(b *testing.B) {
		benchIdleGrains(b, 20_000, []order.Line{
			{SKU: "tea-sencha", Name: "Sencha, first flush", Qty: 2, UnitPrice: 1250},
			{SKU: "mug-stoneware", Name: "Stoneware mug", Qty: 1, UnitPrice: 1800},
			{SKU: "kettle-gooseneck", Name: "Gooseneck kettle", Qty: 1, UnitPrice: 6900},
		}, 4)
	})
}

// benchIdleGrains creates grains orders of lines, declines a payment declines times on
// each (every pay and decline is one more remembered key), and measures them idle.
func benchIdleGrains(b *testing.B, grains int, lines []order.Line, declines int) {
	path := filepath.Join(b.TempDir(), "om.db")
	var ids []string
	{
		store := openStore(b, path)
		n := startNode(b, store, nil)
		ids = createOrdersOf(b, n, "mem", grains, lines)
		for round := range declines + 1 {
			forEach(b, ids, func(i int, id string) error {
				cmds := []order.Command{{Type: order.CmdSubmitPayment, OrderID: id, Key: fmt.Sprintf("pay-%d", round), By: alice}}
				if round < declines {
					cmds = append(cmds, order.Command{Type: order.CmdFailPayment, OrderID: id, Key: fmt.Sprintf("decline-%d", round), By: olga, Reason: "card declined"})
				}
				for _, c := range cmds {
					if err := executeRetrying(n, c); err != nil {
						return err
					}
				}
				return nil
			})
		}
		n.Stop(context.Background())
		store.Close()
	}
	store := openStore(b, path)
	n := startNode(b, store, nil)
	before := liveHeap()
	if p := os.Getenv("ORDERMESH_HEAP_PROFILE"); p != "" {
		f, _ := os.Create(p + ".base")
		_ = pprof.WriteHeapProfile(f)
		f.Close()
	}
	b.ResetTimer()
	forEach(b, ids, func(_ int, id string) error {
		v, err := n.Get(context.Background(), id, alice, "bench")
		if err == nil && v.Version < uint64(2+2*declines) {
			err = fmt.Errorf("version %d, want at least %d", v.Version, 2+2*declines)
		}
		return err
	})
	b.StopTimer()
	after := liveHeap()
	if p := os.Getenv("ORDERMESH_HEAP_PROFILE"); p != "" {
		f, _ := os.Create(p)
		_ = pprof.WriteHeapProfile(f)
		f.Close()
	}
	if got := n.Activations(); got != int64(grains) {
		b.Fatalf("%d grains active, want %d", got, grains)
	}
	b.ReportMetric(float64(after-before)/float64(grains), "heap-bytes/grain")
	b.ReportMetric(float64(grains)/b.Elapsed().Seconds(), "activations/s")
}

// createOrders creates count one-line orders of alice (keys prefix-0, prefix-1, ...)
// through svc, 64 at a time, and returns their ids.
func createOrders(b *testing.B, svc order.Service, prefix string, count int) []string {
	return createOrdersOf(b, svc, prefix, count, []order.Line{{SKU: "tea", Name: "Tea", Qty: 2, UnitPrice: 450}})
}

// createOrdersOf is createOrders with the orders' lines.
func createOrdersOf(b *testing.B, svc order.Service, prefix string, count int, lines []order.Line) []string {
	ids := make([]string, count)
	for i := range ids {
		ids[i] = order.OrderIDFor(alice.Subject, fmt.Sprintf("%s-%d", prefix, i))
	}
	forEach(b, ids, func(i int, id string) error {
		return executeRetrying(svc, order.Command{
			Type: order.CmdCreate, OrderID: id, Key: fmt.Sprintf("%s-%d", prefix, i), By: alice,
			Lines: lines, Currency: "EUR",
		})
	})
	return ids
}

// executeRetrying runs c, again with the same key while the answer is "unavailable,
// retry" (a busy machine can outlast the nodes' short request timeout), as the API says.
func executeRetrying(svc order.Service, c order.Command) error {
	for try := 0; ; try++ {
		_, err := svc.Execute(context.Background(), c, "bench")
		var e *order.Error
		if err == nil || try == 20 || !errors.As(err, &e) || !e.Code.Retryable() {
			return err
		}
	}
}

func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// forEach runs f over ids on 64 goroutines and fails b on the first error.
func forEach(b *testing.B, ids []string, f func(i int, id string) error) {
	var wg sync.WaitGroup
	var once sync.Once
	next := make(chan int)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i, ids[i]); err != nil {
					once.Do(func() { b.Errorf("order %s: %v", ids[i], err) })
				}
			}
		}()
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
}
