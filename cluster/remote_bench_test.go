package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/ordermesh/ordermesh/cluster/clusterpb"
	"github.com/ordermesh/ordermesh/cluster/trust"
	"github.com/ordermesh/ordermesh/persistence"
)

// BenchmarkRemoteRoundTrip measures one request and reply between two nodes in this
// process over actor remoting (loopback), in the clear and over mutual TLS, with 64
// requests in flight: what TLS costs the hop between an edge and an order's owner.
func BenchmarkRemoteRoundTrip(b *testing.B) {
	for _, secure := range []bool{false, true} {
		b.Run(fmt.Sprintf("tls=%v", secure), func(b *testing.B) {
			store := openStore(b, filepath.Join(b.TempDir(), "om.db"))
			var sec *Security
			if secure {
				sec = testSecurity(b, store)
			}
			from := startNodeConfig(b, store, func(c *Config) { c.Security = sec })
			to := startNodeConfig(b, store, func(c *Config) { c.Security = sec })
			target := actor.NewPID(to.Address(), placementName)
			ask := func() {
				res, err := from.system.Root.RequestFuture(target, &clusterpb.StatsRequest{}, 10*time.Second).Result()
				if _, ok := res.(*clusterpb.StatsReply); err != nil || !ok {
					b.Errorf("stats request: %T %v", res, err)
				}
			}
			ask() // the first request dials
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ask()
				}
			})
		})
	}
}

// testSecurity is what a node of the cluster on store runs with.
func testSecurity(tb testing.TB, store persistence.Secrets) *Security {
	tb.Helper()
	now := time.Now()
	m, err := trust.Bootstrap(context.Background(), store, now)
	if err != nil {
		tb.Fatal(err)
	}
	creds, err := trust.NewCredentials(m, now)
	if err != nil {
		tb.Fatal(err)
	}
	kr, err := m.Keyring(now)
	if err != nil {
		tb.Fatal(err)
	}
	return &Security{ServerTLS: creds.ServerTLS(), ClientTLS: creds.ClientTLS(), GossipKeyring: kr}
}
