package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/ordermesh/ordermesh/actors/order"
)

// BenchmarkIdleGrains measures the heap held by idle, activated order grains: 100,000
// orders are created by one node, then a second node on the same store activates them all
// (each loads its snapshot) and the growth of its live heap is divided by the number of
// grains. Target: at most 4 KiB per grain. Run with -benchtime 1x.
func BenchmarkIdleGrains(b *testing.B) {
	const grains = 100_000
	path := filepath.Join(b.TempDir(), "om.db")
	var ids []string
	{
		store := openStore(b, path)
		n := startNode(b, store, nil)
		ids = createOrders(b, n, "mem", grains)
		n.Stop(context.Background())
		store.Close()
	}
	store := openStore(b, path)
	n := startNode(b, store, nil)
	before := liveHeap()
	b.ResetTimer()
	forEach(b, ids, func(_ int, id string) error {
		_, err := n.Get(context.Background(), id, alice, "bench")
		return err
	})
	b.StopTimer()
	after := liveHeap()
	if got := n.Activations(); got != grains {
		b.Fatalf("%d grains active, want %d", got, grains)
	}
	b.ReportMetric(float64(after-before)/grains, "heap-bytes/grain")
	b.ReportMetric(float64(grains)/b.Elapsed().Seconds(), "activations/s")
}

// createOrders creates count orders of alice (keys prefix-0, prefix-1, ...) through svc,
// 64 at a time, and returns their ids.
func createOrders(b *testing.B, svc order.Service, prefix string, count int) []string {
	ids := make([]string, count)
	for i := range ids {
		ids[i] = order.OrderIDFor(alice.Subject, fmt.Sprintf("%s-%d", prefix, i))
	}
	forEach(b, ids, func(i int, id string) error {
		_, err := svc.Execute(context.Background(), order.Command{
			Type: order.CmdCreate, OrderID: id, Key: fmt.Sprintf("%s-%d", prefix, i), By: alice,
			Lines: []order.Line{{SKU: "tea", Name: "Tea", Qty: 2, UnitPrice: 450}}, Currency: "EUR",
		}, "bench")
		return err
	})
	return ids
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
