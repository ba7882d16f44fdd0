package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/bench"
)

// TestChaosScenarioPassesTheChecker runs the bench's chaos scenario (lifecycle load
// while a node is killed, one is added and one is drained) against a local 3-node
// cluster on PostgreSQL, and requires the consistency checker to pass.
func TestChaosScenarioPassesTheChecker(t *testing.T) {
	dir, err := os.MkdirTemp("", "ordermesh-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l, err := newLauncher(postgresURL(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	l.bin = binary
	t.Cleanup(l.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	targets, err := l.startCluster(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	cfg := bench.DefaultConfig()
	cfg.Targets, cfg.Scenario, cfg.Rate = targets, "chaos", 200
	cfg.Warmup, cfg.Duration = time.Second, 14*time.Second
	cfg.Chaos = "4s:kill:1,7s:add,11s:drain:2"
	cfg.ChaosDriver = l
	cfg.Out = dir
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Chaos {
		t.Logf("chaos at %s: %s %d: %s", c.At, c.Action, c.Node, c.Error)
		if c.Error != "" {
			t.Errorf("chaos action %s failed: %s", c.Action, c.Error)
		}
	}
	t.Logf("%.0f req/s, p99 %.1f ms, %d errors; check: %s", rep.Total.Throughput, rep.Total.P99Ms, rep.Total.Errors, rep.Check.Summary())
	if rep.Check == nil || !rep.Check.Pass {
		t.Fatalf("the checker failed: %+v", rep.Check)
	}
}
