package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ordermesh/ordermesh/bench"
	"github.com/ordermesh/ordermesh/persistence/pgtest"
)

// compareConfig is `ordermesh bench compare`.
type compareConfig struct {
	run       bench.Config
	store     string
	nodes     int
	slo       time.Duration
	maxErrors float64
	search    bool
	probe     time.Duration
	startRate float64
	sim       simFlags // --provider: the simulated provider and warehouse of both systems
}

// runCompare runs one scenario against a local ordermesh cluster and against the
// classic stateless baseline, on the same PostgreSQL, one after the other (so each has
// the machine to itself), and prints them side by side.
func runCompare(args []string) error {
	cc := compareConfig{run: bench.DefaultConfig()}
	fs := flag.NewFlagSet("ordermesh bench compare", flag.ContinueOnError)
	cc.run.RegisterFlags(fs)
	fs.StringVar(&cc.store, "store", "", "postgres:// URL both systems use (default: a throwaway PostgreSQL started from the local binaries)")
	fs.IntVar(&cc.nodes, "nodes", 3, "ordermesh nodes to start")
	fs.DurationVar(&cc.slo, "slo-p99", 50*time.Millisecond, "p99 latency objective for the highest sustained rate")
	fs.Float64Var(&cc.maxErrors, "max-error-rate", 0.001, "error rate objective for the highest sustained rate")
	fs.BoolVar(&cc.search, "search", true, "search for the highest rate each system sustains within the objectives")
	fs.DurationVar(&cc.probe, "probe", 10*time.Second, "measured duration of each step of the rate search")
	fs.Float64Var(&cc.startRate, "search-from", 250, "first rate of the search (doubled until the objectives fail, then bisected)")
	cc.sim = defaultSimFlags()
	cc.sim.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: ordermesh bench compare [flags]\n\nRuns a scenario at --rate against a local ordermesh cluster and against the classic\nstateless baseline on the same PostgreSQL, then (with --search) finds the highest rate\neach sustains with p99 under --slo-p99 and errors under --max-error-rate.\n\nWith --provider (lifecycle) both systems run the simulated payment provider and the\nfulfilment pool (--payments sim --auto-ship; provider delay and warehouse latency from\n--sim-payment-delay, default 200ms, and --warehouse-latency, default 50ms), and the report\nadds how long payment and fulfilment took; otherwise both run --payments manual\n--auto-ship=false and the bench confirms and ships.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	out := cc.run.Out
	if out == "" {
		out = filepath.Join("bench", "out", "compare-"+cc.run.Scenario+"-"+time.Now().Format("20060102-150405"))
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	store := cc.store
	var cost bench.CostSources // PostgreSQL's share; measure adds each system's processes
	if store == "" {
		dir, err := os.MkdirTemp("", "ordermesh-compare-pg-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		fmt.Fprintln(os.Stderr, "starting a throwaway PostgreSQL in", dir)
		srv, err := pgtest.Start(ctx, dir)
		if err != nil {
			return fmt.Errorf("starting PostgreSQL (or pass --store postgres://...): %w", err)
		}
		defer srv.Stop()
		store = srv.URL()
		cost.Processes = []bench.Process{{Name: "postgres", PID: srv.PID(), Tree: true}}
	}
	db, err := newPGStats(ctx, store)
	if err != nil {
		return err
	}
	defer db.Close()
	cost.DB = db
	extra := localExtras(&cc.run, cc.sim) // payments and fulfilment; hot: a short payment timeout

	systems := []struct {
		name  string
		start func(ctx context.Context, l *launcher) ([]string, error)
	}{
		{fmt.Sprintf("ordermesh (%d nodes)", cc.nodes), func(ctx context.Context, l *launcher) ([]string, error) {
			return l.startCluster(ctx, cc.nodes)
		}},
		{"baseline (stateless)", func(ctx context.Context, l *launcher) ([]string, error) {
			base, err := l.startBaseline(ctx)
			return []string{base}, err
		}},
	}
	results := make([]systemResult, len(systems))
	for i, sys := range systems {
		l, err := newLauncher(store, filepath.Join(out, fmt.Sprintf("logs-%d", i)), extra...)
		if err != nil {
			return err
		}
		res, err := measure(ctx, cc, sys.name, out, i, l, cost, sys.start)
		l.stop()
		if err != nil {
			return fmt.Errorf("%s: %w", sys.name, err)
		}
		results[i] = res
	}
	printComparison(os.Stdout, cc, results)
	b, _ := json.MarshalIndent(results, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "compare.json"), b, 0o644); err != nil {
		return err
	}
	fmt.Println("reports in", out)
	for _, r := range results {
		if r.Report.Check != nil && !r.Report.Check.Pass {
			return fmt.Errorf("%s: consistency check FAILED", r.Name)
		}
	}
	return nil
}

// systemResult is what compare measured of one system.
type systemResult struct {
	Name      string        `json:"name"`
	Report    *bench.Report `json:"report"`
	Sustained float64       `json:"sustained_rate"` // highest rate within the objectives; 0 = not searched or none
	Steps     []searchStep  `json:"search,omitempty"`
}

type searchStep struct {
	Rate       float64           `json:"rate"`
	Throughput float64           `json:"throughput"`
	P99Ms      float64           `json:"p99_ms"`
	ErrorRate  float64           `json:"error_rate"`
	Pass       bool              `json:"pass"`
	Cost       *bench.CostReport `json:"cost,omitempty"`
}

// atSustained is the cost of the search step at the highest sustained rate, if any.
func (r systemResult) atSustained() *bench.CostReport {
	for _, s := range r.Steps {
		if s.Pass && s.Rate == r.Sustained {
			return s.Cost
		}
	}
	return nil
}

func measure(ctx context.Context, cc compareConfig, name, out string, i int, l *launcher, cost bench.CostSources,
	start func(context.Context, *launcher) ([]string, error)) (systemResult, error) {
	fmt.Fprintf(os.Stderr, "== %s: starting\n", name)
	targets, err := start(ctx, l)
	if err != nil {
		return systemResult{}, err
	}
	cost.Processes = append(l.processes(), cost.Processes...)
	cfg := cc.run
	cfg.Targets = targets
	cfg.Cost = cost
	cfg.Out = filepath.Join(out, fmt.Sprintf("system-%d", i))
	cfg.Progress = os.Stderr
	if cfg.Scenario == "chaos" {
		cfg.ChaosDriver = l
	}
	fmt.Fprintf(os.Stderr, "== %s: %s at %.0f/s for %s\n", name, cfg.Scenario, cfg.Rate, cfg.Duration)
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return systemResult{}, err
	}
	res := systemResult{Name: name, Report: rep}
	if !cc.search || cfg.Scenario == "chaos" || bench.IsFlash(cfg.Scenario) {
		// A flash sale is measured by the sale itself (sold/s), not by a rate search.
		return res, nil
	}
	// Highest sustained rate: double until a step fails the objectives, then bisect.
	probe := cc.run
	probe.Targets, probe.Duration, probe.Warmup, probe.Out, probe.Progress, probe.NoCheck = targets, cc.probe, 2*time.Second, "", nil, true
	probe.Cost = cost
	pass := func(rate float64) (bool, error) {
		probe.Rate = rate
		r, err := bench.Run(ctx, probe)
		if err != nil {
			return false, err
		}
		ok := r.Total.P99Ms <= float64(cc.slo.Milliseconds()) && r.Total.ErrorRate <= cc.maxErrors &&
			r.Total.Throughput >= 0.9*rate && (r.Check == nil || r.Check.Pass)
		res.Steps = append(res.Steps, searchStep{Rate: rate, Throughput: r.Total.Throughput, P99Ms: r.Total.P99Ms, ErrorRate: r.Total.ErrorRate, Pass: ok, Cost: r.Cost})
		fmt.Fprintf(os.Stderr, "   %s: %.0f/s -> %.0f/s done, p99 %.1f ms, errors %.3f%%: %s\n",
			name, rate, r.Total.Throughput, r.Total.P99Ms, 100*r.Total.ErrorRate, map[bool]string{true: "within", false: "outside"}[ok])
		return ok, nil
	}
	lo, hi := 0.0, cc.startRate
	for {
		ok, err := pass(hi)
		if err != nil {
			return res, err
		}
		if !ok {
			break
		}
		lo, hi = hi, hi*2
		if hi > 200_000 {
			return res, errors.New("rate search did not find a limit")
		}
	}
	for range 3 {
		mid := (lo + hi) / 2
		ok, err := pass(mid)
		if err != nil {
			return res, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	res.Sustained = lo
	return res, nil
}

func printComparison(w io.Writer, cc compareConfig, rs []systemResult) {
	a, b := rs[0], rs[1]
	fmt.Fprintf(w, "\nbench compare: scenario %s, offered %.0f requests/s for %s (open loop), same PostgreSQL\n",
		cc.run.Scenario, cc.run.Rate, cc.run.Duration)
	fmt.Fprintf(w, "both systems started with: %s\n\n", strings.Join(cc.run.SystemArgs, " "))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\t%s\t%s\tratio\t\n", a.Name, b.Name)
	row := func(label string, x, y float64, unit string, higherIsBetter bool) {
		ratio := "-"
		if x > 0 && y > 0 {
			if higherIsBetter {
				ratio = fmt.Sprintf("%.2fx", x/y)
			} else {
				ratio = fmt.Sprintf("%.2fx", y/x)
			}
		}
		fmt.Fprintf(tw, "%s\t%.1f%s\t%.1f%s\t%s\t\n", label, x, unit, y, unit, ratio)
	}
	row("throughput (req/s)", a.Report.Total.Throughput, b.Report.Total.Throughput, "", true)
	row("p50", a.Report.Total.P50Ms, b.Report.Total.P50Ms, " ms", false)
	row("p90", a.Report.Total.P90Ms, b.Report.Total.P90Ms, " ms", false)
	row("p99", a.Report.Total.P99Ms, b.Report.Total.P99Ms, " ms", false)
	row("p99.9", a.Report.Total.P999Ms, b.Report.Total.P999Ms, " ms", false)
	row("max", a.Report.Total.MaxMs, b.Report.Total.MaxMs, " ms", false)
	row("error rate", 100*a.Report.Total.ErrorRate, 100*b.Report.Total.ErrorRate, " %", false)
	if a.Report.Flash != nil && b.Report.Flash != nil {
		fa, fb := a.Report.Flash, b.Report.Flash
		row("flash: sold/s", fa.SoldPerSec, fb.SoldPerSec, "", true)
		row("flash: attempts/s", fa.AttemptsPerSec, fb.AttemptsPerSec, "", true)
		row("flash: units sold", float64(fa.Sold), float64(fb.Sold), "", true)
		row("flash: first sold out at", fa.FirstSellout, fb.FirstSellout, " ms", false)
		row("flash: sold out for good at", fa.FinalSellout, fb.FinalSellout, " ms", false)
		row("flash: create p50", fa.CreateP50Ms, fb.CreateP50Ms, " ms", false)
		row("flash: create p99", fa.CreateP99Ms, fb.CreateP99Ms, " ms", false)
		row("flash: refused out of stock", float64(fa.Refused), float64(fb.Refused), "", false)
	}
	if pa, pb := a.Report.Provider, b.Report.Provider; pa != nil && pb != nil {
		row("provider: payment p50", pa.Payment.P50Ms, pb.Payment.P50Ms, " ms", false)
		row("provider: payment p99", pa.Payment.P99Ms, pb.Payment.P99Ms, " ms", false)
		row("provider: fulfilment p50", pa.Fulfilment.P50Ms, pb.Fulfilment.P50Ms, " ms", false)
		row("provider: fulfilment p99", pa.Fulfilment.P99Ms, pb.Fulfilment.P99Ms, " ms", false)
		row("provider: waits timed out", float64(pa.Payment.TimedOut+pa.Fulfilment.TimedOut), float64(pb.Payment.TimedOut+pb.Fulfilment.TimedOut), "", false)
	}
	costRows(row, "", a.Report.Cost, b.Report.Cost)
	if cc.search && cc.run.Scenario != "chaos" && !bench.IsFlash(cc.run.Scenario) {
		row(fmt.Sprintf("highest rate with p99 <= %s, errors <= %.1f%%", cc.slo, 100*cc.maxErrors), a.Sustained, b.Sustained, "/s", true)
		costRows(row, "at the highest rate: ", a.atSustained(), b.atSustained())
	}
	tw.Flush()
	for _, r := range rs {
		if r.Report.Check != nil {
			fmt.Fprintf(w, "%s: check %s\n", r.Name, strings.TrimSpace(r.Report.Check.Summary()))
			if r.Report.Check.Stock != nil {
				fmt.Fprintf(w, "%s: %s\n", r.Name, r.Report.Check.Stock.Summary())
			}
			if r.Report.Check.Fulfilment != nil {
				fmt.Fprintf(w, "%s: %s\n", r.Name, r.Report.Check.Fulfilment.Summary())
			}
		}
	}
	for _, r := range rs {
		if r.Report.Flash != nil {
			fmt.Fprintf(w, "\n%s:\n", r.Name)
			r.Report.Flash.WriteText(w)
		}
	}
	for _, r := range rs {
		if r.Report.Check == nil || len(r.Report.Check.Races) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", r.Name)
		for _, race := range r.Report.Check.Races {
			fmt.Fprintln(w, race)
		}
	}
}

// costRows adds the cost figures of two runs to the comparison (lower is better):
// the system's own processes (nodes or baseline) summed, PostgreSQL and the harness
// separately, and what the database wrote per transition.
func costRows(row func(string, float64, float64, string, bool), prefix string, a, b *bench.CostReport) {
	if a == nil || b == nil {
		return
	}
	row(prefix+"system CPU per transition", systemCPU(a)*1e6/float64(max(a.Transitions, 1)),
		systemCPU(b)*1e6/float64(max(b.Transitions, 1)), " µs", false)
	row(prefix+"system CPU per request", systemCPU(a)*1e6/float64(max(a.Requests, 1)),
		systemCPU(b)*1e6/float64(max(b.Requests, 1)), " µs", false)
	pa, oka := a.Process("postgres")
	pb, okb := b.Process("postgres")
	if oka && okb {
		row(prefix+"PostgreSQL CPU per transition", pa.CPUMicrosPerTransition, pb.CPUMicrosPerTransition, " µs", false)
	}
	ha, _ := a.Process("bench")
	hb, _ := b.Process("bench")
	row(prefix+"harness CPU per request", ha.CPUMsPerRequest*1e3, hb.CPUMsPerRequest*1e3, " µs", false)
	row(prefix+"system peak RSS", float64(systemRSS(a))/(1<<20), float64(systemRSS(b))/(1<<20), " MiB", false)
	if a.DB != nil && b.DB != nil && a.DB.Error == "" && b.DB.Error == "" {
		row(prefix+"DB write transactions per transition", a.DB.WritesPerTrans, b.DB.WritesPerTrans, "", false)
		row(prefix+"DB rows written per transition", a.DB.RowsPerTrans, b.DB.RowsPerTrans, "", false)
		row(prefix+"DB WAL bytes per transition", a.DB.WALBytesPerTrans, b.DB.WALBytesPerTrans, "", false)
	}
}

// isSystem reports whether a measured process is one of the system's own (not the
// database, not the harness).
func isSystem(p bench.ProcessCost) bool { return p.Name != "postgres" && p.Name != "bench" }

// systemCPU and systemRSS add up the system's own processes.
func systemCPU(c *bench.CostReport) float64 {
	return systemSum(c, func(p bench.ProcessCost) float64 { return p.CPUSeconds })
}

func systemRSS(c *bench.CostReport) int64 {
	return systemSum(c, func(p bench.ProcessCost) int64 { return p.PeakRSSBytes })
}

func systemSum[T int64 | float64](c *bench.CostReport, of func(bench.ProcessCost) T) T {
	var s T
	for _, p := range c.Processes {
		if isSystem(p) {
			s += of(p)
		}
	}
	return s
}
