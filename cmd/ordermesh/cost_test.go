package main

import (
	"context"
	"flag"
	"strings"
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

// The search doubles until a step fails, then bisects three times; the answer is the
// highest rate that passed.
func TestRateSearch(t *testing.T) {
	limit := 1100.0 // the system passes at or below this rate
	s := &rateSearch{hi: 250}
	var tried []float64
	for !s.done() {
		r := s.next()
		tried = append(tried, r)
		if err := s.record(r, r <= limit); err != nil {
			t.Fatal(err)
		}
	}
	want := []float64{250, 500, 1000, 2000, 1500, 1250, 1125}
	if len(tried) != len(want) {
		t.Fatalf("tried %v, want %v", tried, want)
	}
	for i := range want {
		if tried[i] != want[i] {
			t.Fatalf("tried %v, want %v", tried, want)
		}
	}
	if s.lo != 1000 {
		t.Errorf("sustained %v, want 1000", s.lo)
	}

	never := &rateSearch{hi: 250}
	for !never.done() {
		_ = never.record(never.next(), false)
	}
	if never.lo != 0 {
		t.Errorf("a system failing every step sustains %v", never.lo)
	}
	always := &rateSearch{hi: 250}
	var err error
	for err == nil && !always.done() {
		err = always.record(always.next(), true)
	}
	if err == nil {
		t.Error("a search without a limit must stop with an error")
	}
}

func TestPoolTotalForTheBaseline(t *testing.T) {
	for _, tt := range []struct {
		store string
		nodes int
		want  string
		conns int
	}{
		{"postgres://u@h:5432/db?sslmode=disable", 3, "pool_max_conns=30", 30},
		{"postgres://u@h/db?pool_max_conns=4", 3, "pool_max_conns=12", 12},
		{"postgres://u@h/db", 1, "pool_max_conns=10", 10},
	} {
		got, n, err := withPoolTotal(tt.store, tt.nodes)
		if err != nil || n != tt.conns || !strings.Contains(got, tt.want) || strings.Count(got, "pool_max_conns") != 1 {
			t.Errorf("%s x%d: %q %d %v", tt.store, tt.nodes, got, n, err)
		}
	}
	if _, _, err := withPoolTotal("postgres://h/db?pool_max_conns=x", 2); err == nil {
		t.Error("a bad pool_max_conns was accepted")
	}
}
