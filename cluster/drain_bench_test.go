package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
)

// BenchmarkDrain measures Node.Drain with many active grains (in process, embedded
// store). Run with -benchtime 1x.
func BenchmarkDrain(b *testing.B) {
	for _, grains := range []int{10_000, 50_000} {
		b.Run(fmt.Sprintf("grains=%d", grains), func(b *testing.B) {
			store := openStore(b, filepath.Join(b.TempDir(), "om.db"))
			n := startNode(b, store, nil)
			ids := make([]string, grains)
			for i := range ids {
				ids[i] = fmt.Sprintf("o_drain_%d", i)
			}
			// Activating an order that does not exist is enough to have a live grain.
			forEach(b, ids, func(_ int, id string) error {
				_, err := n.Get(context.Background(), id, alice, "bench")
				if order.ErrorCode(err) == order.CodeNotFound {
					return nil
				}
				return err
			})
			if got := n.Activations(); got != int64(grains) {
				b.Fatalf("%d active", got)
			}
			b.ResetTimer()
			start := time.Now()
			if err := n.Drain(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(time.Since(start).Seconds(), "drain-s")
		})
	}
}
