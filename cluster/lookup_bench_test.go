package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// BenchmarkLookupTouch measures what the bound on grains adds to every call: marking the
// grain used in the recency ring, from many goroutines over 10,000 grains.
func BenchmarkLookupTouch(b *testing.B) {
	const grains = 10_000
	l := newLookup(0, grains)
	ids := make([]string, grains)
	for i := range ids {
		ids[i] = fmt.Sprintf("o_%d", i)
		a := &activation{identity: ids[i], pid: actor.NewPID("local", ids[i])}
		l.active[ids[i]] = a
		l.pushFront(a)
	}
	var seq atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		i := int(seq.Add(7919))
		for pb.Next() {
			i++
			a := l.active[ids[i%grains]] // read-only: the map does not change here
			l.touch(a.identity, a.pid)
		}
	})
}

// BenchmarkGetActiveGrain measures a read of an active grain with and without the bound
// on grains (the difference is the recency bookkeeping on the hot path).
func BenchmarkGetActiveGrain(b *testing.B) {
	for _, bound := range []int{0, 1_000_000} {
		b.Run(fmt.Sprintf("max=%d", bound), func(b *testing.B) {
			const grains = 1_000
			store := openStore(b, filepath.Join(b.TempDir(), "om.db"))
			n := startNodeConfig(b, store, func(c *Config) { c.MaxGrains = bound })
			ids := createOrders(b, n, "get", grains)
			var seq atomic.Uint64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(seq.Add(7919))
				for pb.Next() {
					i++
					if _, err := n.Get(context.Background(), ids[i%grains], alice, "bench"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
