package main

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ordermesh/ordermesh/bench"
)

// The database counters move with what is written: one write transaction, its WAL, and
// (once the server has reported it) its rows.
func TestPGStatsCountWrites(t *testing.T) {
	ctx := context.Background()
	url := postgresURL(t)
	st, err := newPGStats(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.settle, st.poll = 15*time.Second, 100*time.Millisecond

	w, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	// flush makes the writer report its statistics at once (at the end of its next
	// transaction) rather than a while later.
	flush := func() {
		t.Helper()
		for _, q := range []string{`SELECT pg_stat_force_next_flush()`, `SELECT 1`} {
			if _, err := w.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := w.Exec(ctx, `CREATE TABLE t (v int)`); err != nil {
		t.Fatal(err)
	}
	flush()
	before, err := st.Sample(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Exec(ctx, `INSERT INTO t SELECT generate_series(1, 100)`); err != nil {
		t.Fatal(err)
	}
	flush()
	after, err := st.Sample(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if d := after.XID - before.XID; d != 1 {
		t.Errorf("write transactions: %d, want 1", d)
	}
	if d := after.WALBytes - before.WALBytes; d < 100*4 {
		t.Errorf("WAL bytes: %d for 100 rows", d)
	}
	if d := after.Rows - before.Rows; d != 100 {
		t.Errorf("rows written: %d, want 100", d)
	}
	if after.Commits <= before.Commits {
		t.Errorf("commits %d -> %d", before.Commits, after.Commits)
	}
}

func TestCostPIDFlags(t *testing.T) {
	var procs []bench.Process
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Var(processFlag{list: &procs}, "cost-pid", "")
	fs.Var(processFlag{list: &procs, tree: true}, "cost-tree", "")
	if err := fs.Parse([]string{"--cost-pid", "node-0=10,node-1=11", "--cost-tree", "postgres=20", "--cost-pid", "baseline=30"}); err != nil {
		t.Fatal(err)
	}
	want := []bench.Process{{Name: "node-0", PID: 10}, {Name: "node-1", PID: 11}, {Name: "postgres", PID: 20, Tree: true}, {Name: "baseline", PID: 30}}
	if len(procs) != len(want) {
		t.Fatalf("%+v", procs)
	}
	for i := range want {
		if procs[i] != want[i] {
			t.Errorf("%d: %+v, want %+v", i, procs[i], want[i])
		}
	}
	for _, bad := range []string{"node-0", "=4", "x=0", "x=-1", "x=abc"} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(discard{})
		fs.Var(processFlag{list: &procs}, "cost-pid", "")
		if err := fs.Parse([]string{"--cost-pid", bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
