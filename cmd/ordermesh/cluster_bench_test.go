package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkClusterCommands drives order lifecycles (create, pay, confirm, ship, deliver)
// through the HTTP edges of a local 3-node cluster on PostgreSQL, closed loop with 128
// concurrent clients spread over the nodes, and reports commands/s and latency
// percentiles. Run with e.g. -benchtime 30000x. Client, nodes and PostgreSQL share the
// machine, so compare runs, not absolute figures.
func BenchmarkClusterCommands(b *testing.B) {
	c := startCluster(b, postgresURL(b), 3)
	c.waitConverged(10*time.Second, 3, c.nodes...)
	shopper, operator := login(b, c.nodes[0].base, "alice"), login(b, c.nodes[0].base, "olga")
	const clients = 128
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	var failed atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := c.nodes[w%len(c.nodes)].base
			for o := 0; ; o++ {
				id := ""
				for _, s := range steps {
					if next.Add(1) > int64(b.N) {
						return
					}
					cl, path, body := *shopper, "/api/v1/orders", any(orderBody)
					if s.by == "operator" {
						cl = *operator
					}
					cl.base = base
					if s.action != "" {
						path, body = "/api/v1/orders/"+id+"/"+s.action, nil
					}
					start := time.Now()
					status, env, err := cl.do("POST", path, fmt.Sprintf("b%d-%d-%s", w, o, s.event), body)
					lat[w] = append(lat[w], time.Since(start))
					if err != nil || status/100 != 2 {
						failed.Add(1)
						break
					}
					var v orderView
					_ = json.Unmarshal(env.Data, &v)
					id = v.ID
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/b.Elapsed().Seconds(), "commands/s")
	b.ReportMetric(float64(percentile(all, 0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(all, 0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(failed.Load()), "failed")
}

// BenchmarkDrain100k measures the time from a drain request to the exit of a node that
// holds 100,000 active grains (on PostgreSQL). Run with -benchtime 1x.
func BenchmarkDrain100k(b *testing.B) {
	grains := 100_000
	if v := os.Getenv("ORDERMESH_BENCH_GRAINS"); v != "" {
		grains, _ = strconv.Atoi(v)
	}
	node := startFresh(b, postgresURL(b), "--log-level", "info")
	shopper := login(b, node.base, "alice")
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(grains); i = next.Add(1) {
				if status, env, err := shopper.do("POST", "/api/v1/orders", fmt.Sprintf("drain-%d", i), orderBody); err != nil || status != 201 {
					b.Errorf("create %d: %d %+v %v", i, status, env, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := activeGrains(b, node.base); n != grains {
		b.Fatalf("%d active grains, want %d", n, grains)
	}
	id := nodeID(b, node)
	operator := login(b, node.base, "olga")
	b.ResetTimer()
	start := time.Now()
	if status, env, err := operator.do("POST", "/api/v1/cluster/nodes/"+id+"/drain", "", nil); err != nil || status != 202 {
		b.Fatalf("drain: %d %+v %v", status, env, err)
	}
	<-node.done
	elapsed := time.Since(start)
	b.StopTimer()
	if code := node.cmd.ProcessState.ExitCode(); code != 0 {
		b.Fatalf("node exited %d", code)
	}
	b.ReportMetric(elapsed.Seconds(), "drain-s")
	for _, line := range strings.Split(node.logs.String(), "\n") {
		if strings.Contains(line, "drain") || strings.Contains(line, "stop") || strings.Contains(line, "WARN") {
			b.Log(line)
		}
	}
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}
