package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ordermesh/ordermesh/bench"
	"github.com/ordermesh/ordermesh/persistence/pgtest"
	"github.com/ordermesh/ordermesh/persistence/postgres"
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
	rounds    int
	sim       simFlags // --provider: the simulated provider and warehouse of both systems
}

// runCompare runs one scenario against a local ordermesh cluster and against the
// classic stateless baseline, on the same PostgreSQL, taking turns (so each has the
// machine to itself while measured, and neither always gets the warmer database), and
// prints them side by side.
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
	fs.IntVar(&cc.rounds, "rounds", 2, "measured runs at --rate per system, alternating between the systems (A, B, A, B); the table gives their mean")
	cc.sim = defaultSimFlags()
	cc.sim.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: ordermesh bench compare [flags]\n\nRuns a scenario at --rate against a local ordermesh cluster and against the classic\nstateless baseline on the same PostgreSQL, --rounds times each, alternating (A, B, A, B),\nthen (with --search) finds the highest rate each sustains with p99 under --slo-p99 and\nerrors under --max-error-rate, the two searches also taking turns step by step. Both\nsystems stay up for the whole compare (the one not measured is idle), and the baseline\ngets as many database connections as all the nodes together. The table gives the mean\nover the rounds, and the cost of each system, of PostgreSQL and of the harness.\n\nWith --provider (lifecycle) both systems run the simulated payment provider and the\nfulfilment pool (--payments sim --auto-ship; provider delay and warehouse latency from\n--sim-payment-delay, default 200ms, and --warehouse-latency, default 50ms), and the report\nadds how long payment and fulfilment took; otherwise both run --payments manual\n--auto-ship=false and the bench confirms and ships.\n\nFlags:\n")
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

	// Both systems run side by side, idle while the other is measured, so that their runs
	// can alternate: the database grows and warms during a compare, and alternating
	// (A, B, A, B, and the rate search step by step) keeps either from always getting the
	// warmer one. The baseline gets as many connections as all the nodes together.
	baseStore, conns, err := withPoolTotal(store, cc.nodes)
	if err != nil {
		return err
	}
	contenders := []*contender{
		{name: fmt.Sprintf("ordermesh (%d nodes)", cc.nodes), store: store, start: func(ctx context.Context, l *launcher) ([]string, error) {
			return l.startCluster(ctx, cc.nodes)
		}},
		{name: "baseline (stateless)", store: baseStore, start: func(ctx context.Context, l *launcher) ([]string, error) {
			base, err := l.startBaseline(ctx)
			return []string{base}, err
		}},
	}
	for i, c := range contenders {
		fmt.Fprintf(os.Stderr, "== %s: starting\n", c.name)
		if c.l, err = newLauncher(c.store, filepath.Join(out, fmt.Sprintf("logs-%d", i)), extra...); err != nil {
			return err
		}
		defer c.l.stop()
		if c.targets, err = c.start(ctx, c.l); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		c.cost = cost
		c.cost.Processes = append(c.l.processes(), cost.Processes...)
		c.res.Name = c.name
	}
	fmt.Fprintf(os.Stderr, "== both systems up; %d database connections each\n", conns)
	if err := runRounds(ctx, cc, out, contenders); err != nil {
		return err
	}
	if cc.search && cc.run.Scenario != "chaos" && !bench.IsFlash(cc.run.Scenario) {
		// A flash sale is measured by the sale itself (sold/s), not by a rate search.
		if err := searchAlternately(ctx, cc, contenders); err != nil {
			return err
		}
	}
	results := make([]systemResult, len(contenders))
	for i, c := range contenders {
		results[i] = c.res
	}
	printComparison(os.Stdout, cc, results)
	b, _ := json.MarshalIndent(results, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "compare.json"), b, 0o644); err != nil {
		return err
	}
	fmt.Println("reports in", out)
	for _, r := range results {
		for _, rep := range r.Rounds {
			if rep.Check != nil && !rep.Check.Pass {
				return fmt.Errorf("%s: consistency check FAILED", r.Name)
			}
		}
	}
	return nil
}

// contender is one system of a compare, running.
type contender struct {
	name    string
	store   string
	start   func(context.Context, *launcher) ([]string, error)
	l       *launcher
	targets []string
	cost    bench.CostSources
	res     systemResult
}

// withPoolTotal returns the store URL for the baseline with pool_max_conns set to what
// the nodes have together (each node's pool_max_conns from the URL, else the store's
// default), and that number.
func withPoolTotal(store string, nodes int) (string, int, error) {
	u, err := url.Parse(store)
	if err != nil {
		return "", 0, fmt.Errorf("--store: %w", err)
	}
	q := u.Query()
	per := postgres.DefaultMaxConns
	if v := q.Get("pool_max_conns"); v != "" {
		if per, err = strconv.Atoi(v); err != nil || per < 1 {
			return "", 0, fmt.Errorf("--store: pool_max_conns %q", v)
		}
	}
	total := per * nodes
	q.Set("pool_max_conns", strconv.Itoa(total))
	u.RawQuery = q.Encode()
	return u.String(), total, nil
}

// runRounds runs the scenario cc.rounds times on each system, alternating.
func runRounds(ctx context.Context, cc compareConfig, out string, cs []*contender) error {
	for round := range cc.rounds {
		for i, c := range cs {
			cfg := cc.run
			cfg.Targets = c.targets
			cfg.Cost = c.cost
			cfg.Out = filepath.Join(out, fmt.Sprintf("system-%d", i))
			if cc.rounds > 1 {
				cfg.Out = filepath.Join(cfg.Out, fmt.Sprintf("round-%d", round+1))
			}
			cfg.Progress = os.Stderr
			if cfg.Scenario == "chaos" {
				cfg.ChaosDriver = c.l
			}
			fmt.Fprintf(os.Stderr, "== %s: round %d of %d, %s at %.0f/s for %s\n", c.name, round+1, cc.rounds, cfg.Scenario, cfg.Rate, cfg.Duration)
			rep, err := bench.Run(ctx, cfg)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			c.res.Rounds = append(c.res.Rounds, rep)
		}
	}
	return nil
}

// rateSearch finds the highest rate within the objectives: it doubles the rate until a
// step fails, then bisects three times between the last pass and the first failure.
type rateSearch struct {
	lo, hi  float64
	bisects int // steps since the first failure
}

func (s *rateSearch) done() bool { return s.bisects > 3 }
func (s *rateSearch) next() float64 {
	return map[bool]float64{true: (s.lo + s.hi) / 2, false: s.hi}[s.bisects > 0]
}

// record takes the outcome of a step at rate.
func (s *rateSearch) record(rate float64, pass bool) error {
	switch {
	case s.bisects == 0 && pass:
		s.lo, s.hi = s.hi, s.hi*2
		if s.hi > 200_000 {
			return errors.New("rate search did not find a limit")
		}
	case s.bisects == 0:
		s.bisects = 1
	default:
		if pass {
			s.lo = rate
		} else {
			s.hi = rate
		}
		s.bisects++
	}
	return nil
}

// searchAlternately runs the rate searches of the systems step by step in turn.
func searchAlternately(ctx context.Context, cc compareConfig, cs []*contender) error {
	searches := make([]*rateSearch, len(cs))
	for i := range cs {
		searches[i] = &rateSearch{hi: cc.startRate}
	}
	for {
		busy := false
		for i, c := range cs {
			s := searches[i]
			if s.done() {
				continue
			}
			busy = true
			rate := s.next()
			step, err := probeRate(ctx, cc, c, rate)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			c.res.Steps = append(c.res.Steps, step)
			if err := s.record(rate, step.Pass); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			c.res.Sustained = s.lo
		}
		if !busy {
			return nil
		}
	}
}

// probeRate runs one step of the search.
func probeRate(ctx context.Context, cc compareConfig, c *contender, rate float64) (searchStep, error) {
	probe := cc.run
	probe.Targets, probe.Duration, probe.Warmup, probe.Out, probe.Progress, probe.NoCheck = c.targets, cc.probe, 2*time.Second, "", nil, true
	probe.Cost = c.cost
	probe.Rate = rate
	r, err := bench.Run(ctx, probe)
	if err != nil {
		return searchStep{}, err
	}
	ok := r.Total.P99Ms <= float64(cc.slo.Milliseconds()) && r.Total.ErrorRate <= cc.maxErrors &&
		r.Total.Throughput >= 0.9*rate && (r.Check == nil || r.Check.Pass)
	fmt.Fprintf(os.Stderr, "   %s: %.0f/s -> %.0f/s done, p99 %.1f ms, errors %.3f%%: %s\n",
		c.name, rate, r.Total.Throughput, r.Total.P99Ms, 100*r.Total.ErrorRate, map[bool]string{true: "within", false: "outside"}[ok])
	return searchStep{Rate: rate, Throughput: r.Total.Throughput, P99Ms: r.Total.P99Ms, ErrorRate: r.Total.ErrorRate, Pass: ok, Cost: r.Cost}, nil
}

// systemResult is what compare measured of one system.
type systemResult struct {
	Name string `json:"name"`
	// Rounds are the runs at the offered rate, in the order they ran (alternating with
	// the other system's).
	Rounds    []*bench.Report `json:"rounds"`
	Sustained float64         `json:"sustained_rate"` // highest rate within the objectives; 0 = not searched or none
	Steps     []searchStep    `json:"search,omitempty"`
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
	// Each figure is the mean over the rounds (cost: pooled, total CPU over total work).
	pair := func(f func(*bench.Report) float64) (float64, float64) { return a.mean(f), b.mean(f) }
	rowOf := func(label string, f func(*bench.Report) float64, unit string, higherIsBetter bool) {
		x, y := pair(f)
		row(label, x, y, unit, higherIsBetter)
	}
	rowOf("throughput (req/s)", func(r *bench.Report) float64 { return r.Total.Throughput }, "", true)
	rowOf("p50", func(r *bench.Report) float64 { return r.Total.P50Ms }, " ms", false)
	rowOf("p90", func(r *bench.Report) float64 { return r.Total.P90Ms }, " ms", false)
	rowOf("p99", func(r *bench.Report) float64 { return r.Total.P99Ms }, " ms", false)
	rowOf("p99.9", func(r *bench.Report) float64 { return r.Total.P999Ms }, " ms", false)
	rowOf("max", func(r *bench.Report) float64 { return r.Total.MaxMs }, " ms", false)
	rowOf("error rate", func(r *bench.Report) float64 { return 100 * r.Total.ErrorRate }, " %", false)
	if a.all(func(r *bench.Report) bool { return r.Flash != nil }) && b.all(func(r *bench.Report) bool { return r.Flash != nil }) {
		rowOf("flash: sold/s", func(r *bench.Report) float64 { return r.Flash.SoldPerSec }, "", true)
		rowOf("flash: attempts/s", func(r *bench.Report) float64 { return r.Flash.AttemptsPerSec }, "", true)
		rowOf("flash: units sold", func(r *bench.Report) float64 { return float64(r.Flash.Sold) }, "", true)
		rowOf("flash: first sold out at", func(r *bench.Report) float64 { return r.Flash.FirstSellout }, " ms", false)
		rowOf("flash: sold out for good at", func(r *bench.Report) float64 { return r.Flash.FinalSellout }, " ms", false)
		rowOf("flash: create p50", func(r *bench.Report) float64 { return r.Flash.CreateP50Ms }, " ms", false)
		rowOf("flash: create p99", func(r *bench.Report) float64 { return r.Flash.CreateP99Ms }, " ms", false)
		rowOf("flash: refused out of stock", func(r *bench.Report) float64 { return float64(r.Flash.Refused) }, "", false)
	}
	if a.all(func(r *bench.Report) bool { return r.Provider != nil }) && b.all(func(r *bench.Report) bool { return r.Provider != nil }) {
		rowOf("provider: payment p50", func(r *bench.Report) float64 { return r.Provider.Payment.P50Ms }, " ms", false)
		rowOf("provider: payment p99", func(r *bench.Report) float64 { return r.Provider.Payment.P99Ms }, " ms", false)
		rowOf("provider: fulfilment p50", func(r *bench.Report) float64 { return r.Provider.Fulfilment.P50Ms }, " ms", false)
		rowOf("provider: fulfilment p99", func(r *bench.Report) float64 { return r.Provider.Fulfilment.P99Ms }, " ms", false)
		rowOf("provider: waits timed out", func(r *bench.Report) float64 {
			return float64(r.Provider.Payment.TimedOut + r.Provider.Fulfilment.TimedOut)
		}, "", false)
	}
	costRows(row, "", a.cost(), b.cost())
	if cc.search && cc.run.Scenario != "chaos" && !bench.IsFlash(cc.run.Scenario) {
		row(fmt.Sprintf("highest rate with p99 <= %s, errors <= %.1f%%", cc.slo, 100*cc.maxErrors), a.Sustained, b.Sustained, "/s", true)
		costRows(row, "at the highest rate: ", a.atSustained(), b.atSustained())
	}
	tw.Flush()
	for _, r := range rs {
		for k, rep := range r.Rounds {
			name := r.roundName(k)
			if rep.Check != nil {
				fmt.Fprintf(w, "%s: check %s\n", name, strings.TrimSpace(rep.Check.Summary()))
				if rep.Check.Stock != nil {
					fmt.Fprintf(w, "%s: %s\n", name, rep.Check.Stock.Summary())
				}
				if rep.Check.Fulfilment != nil {
					fmt.Fprintf(w, "%s: %s\n", name, rep.Check.Fulfilment.Summary())
				}
			}
		}
	}
	for _, r := range rs {
		for k, rep := range r.Rounds {
			if rep.Flash != nil {
				fmt.Fprintf(w, "\n%s:\n", r.roundName(k))
				rep.Flash.WriteText(w)
			}
			if rep.Check != nil && len(rep.Check.Races) > 0 {
				fmt.Fprintf(w, "\n%s:\n", r.roundName(k))
				for _, race := range rep.Check.Races {
					fmt.Fprintln(w, race)
				}
			}
		}
	}
}

// mean is the mean of f over the rounds.
func (r systemResult) mean(f func(*bench.Report) float64) float64 {
	if len(r.Rounds) == 0 {
		return 0
	}
	var s float64
	for _, rep := range r.Rounds {
		s += f(rep)
	}
	return s / float64(len(r.Rounds))
}

// all reports whether every round satisfies f.
func (r systemResult) all(f func(*bench.Report) bool) bool {
	for _, rep := range r.Rounds {
		if !f(rep) {
			return false
		}
	}
	return len(r.Rounds) > 0
}

// cost is the rounds' cost pooled.
func (r systemResult) cost() *bench.CostReport {
	var cs []*bench.CostReport
	for _, rep := range r.Rounds {
		cs = append(cs, rep.Cost)
	}
	return bench.PoolCost(cs...)
}

func (r systemResult) roundName(k int) string {
	if len(r.Rounds) == 1 {
		return r.Name
	}
	return fmt.Sprintf("%s, round %d", r.Name, k+1)
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
