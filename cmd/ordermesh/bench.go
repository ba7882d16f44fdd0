package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/ordermesh/ordermesh/bench"
)

const benchUsage = `Usage:
  ordermesh bench run [flags]     drive a scenario against running nodes (or --local N started here), report, check
  ordermesh bench compare [flags] the same scenario against a local cluster and the stateless baseline, side by side
  ordermesh bench check [flags]   re-run the consistency check of a run from its acks.jsonl

Example:
  ordermesh bench run --scenario lifecycle --targets http://127.0.0.1:8080,http://127.0.0.1:8081 \
    --rate 300 --duration 30s --out bench/out/lifecycle
  ordermesh bench run --local 3 --scenario lifecycle --provider --rate 200 --duration 30s
    (the payment provider and the fulfilment pool in the loop: the shoppers wait for PAID
    and SHIPPED; the nodes run --payments sim --auto-ship with a 200ms provider and a 50ms
    warehouse unless --sim-payment-delay / --warehouse-latency say otherwise)

ordermesh bench run --help lists every flag.
`

// runBench is "ordermesh bench": the load harness (package bench) on the command line.
func runBench(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, benchUsage)
		return flag.ErrHelp
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "run":
		return runBenchRun(ctx, args[1:])
	case "check":
		return runBenchCheck(ctx, args[1:])
	case "compare":
		return runCompare(args[1:])
	case "-h", "--help", "help":
		fmt.Print(benchUsage)
		return nil
	default:
		return fmt.Errorf("bench: unknown subcommand %q\n\n%s", args[0], benchUsage)
	}
}

func benchFlags(name string, cfg *bench.Config) *flag.FlagSet {
	fs := flag.NewFlagSet("ordermesh bench "+name, flag.ContinueOnError)
	cfg.User = envOr("ORDERMESH_USER", cfg.User)
	cfg.Password = envOr("ORDERMESH_PASSWORD", cfg.Password)
	cfg.RegisterFlags(fs)
	return fs
}

func runBenchRun(ctx context.Context, args []string) error {
	cfg := bench.DefaultConfig()
	fs := benchFlags("run", &cfg)
	local := fs.Int("local", 0, "start this many ordermesh nodes here (a local cluster the chaos scenario can kill, add and drain) instead of using --targets")
	store := fs.String("store", "", "with --local: postgres:// URL or embedded store file for the nodes (default: a throwaway PostgreSQL)")
	fs.Var(processFlag{list: &cfg.Cost.Processes}, "cost-pid", "name=pid of a process whose CPU time and memory the report gives (e.g. node-0=4242); repeatable. With --local the nodes are measured anyway")
	fs.Var(processFlag{list: &cfg.Cost.Processes, tree: true}, "cost-tree", "like --cost-pid, with the process's children: name=pid of a PostgreSQL postmaster, for its backends. With --local on a throwaway PostgreSQL it is measured anyway")
	costDB := fs.String("cost-db", "", "postgres:// URL of the store, whose write transactions, rows and WAL per transition the report gives (default with --local: the store, when it is PostgreSQL)")
	sim := defaultSimFlags()
	sim.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Progress = os.Stderr
	if *local == 0 && sim.given(fs) {
		fmt.Fprintln(os.Stderr, "bench: the --sim-payment-* and --warehouse-* flags apply only to the nodes the bench starts (--local)")
	}
	if *local > 0 {
		l, pg, stopAll, err := startLocal(ctx, *local, *store, cfg.Out, localExtras(&cfg, sim)...)
		if err != nil {
			return err
		}
		defer stopAll()
		cfg.Targets = l.targets()
		cfg.ChaosDriver = l
		cfg.Cost.Processes = append(l.processes(), cfg.Cost.Processes...)
		switch {
		case pg != nil:
			cfg.Cost.Processes = append(cfg.Cost.Processes, bench.Process{Name: "postgres", PID: pg.PID(), Tree: true})
			*costDB = cmp.Or(*costDB, pg.URL())
		case isPostgresURL(*store):
			*costDB = cmp.Or(*costDB, *store)
		}
	}
	if *costDB != "" {
		db, err := newPGStats(ctx, *costDB)
		if err != nil {
			return err
		}
		defer db.Close()
		cfg.Cost.DB = db
	}
	rep, err := bench.Run(ctx, cfg)
	if rep != nil {
		if werr := rep.WriteText(os.Stdout); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return err
	}
	if rep.Check != nil && !rep.Check.Pass {
		return errors.New("bench: consistency check FAILED")
	}
	return nil
}

// hotPaymentTimeout is the payment timeout of the systems bench starts itself for the hot
// scenario: short enough that confirm-vs-expiry races happen every few seconds.
const hotPaymentTimeout = 2 * time.Second

// localExtras returns the extra arguments of the nodes (and baseline) bench starts itself
// for cfg, sets cfg.PaymentTimeout to match, and cfg.SystemArgs for the report's header.
//
// Payments and fulfilment: with --provider, the simulated provider and the fulfilment pool
// (--payments sim --auto-ship, with sim's delays and failure rates); otherwise neither
// (--payments manual --auto-ship=false), since the bench confirms and ships itself.
//
// hot runs them with a short payment timeout (--payment-timeout, or hotPaymentTimeout) so
// that it can race confirm against expiry, and so do flash and restock (expired payments
// release units that sell again); other scenarios keep the nodes' default unless
// --payment-timeout is given.
func localExtras(cfg *bench.Config, sim simFlags) []string {
	args := []string{"--payments", "manual", "--auto-ship=false"}
	if cfg.Provider {
		args = append([]string{"--payments", "sim", "--auto-ship"}, sim.args()...)
	}
	if (cfg.Scenario == "hot" || bench.IsFlash(cfg.Scenario)) && cfg.PaymentTimeout == 0 {
		// flash: winners who churn by letting the payment expire free their unit within
		// the run, for the late shoppers.
		cfg.PaymentTimeout = hotPaymentTimeout
	}
	if cfg.PaymentTimeout > 0 {
		args = append(args, "--payment-timeout", cfg.PaymentTimeout.String())
	}
	cfg.SystemArgs = args
	return args
}

// simFlags are the simulated provider's and warehouse's settings of the systems the bench
// starts itself with --provider, passed through as the node's flags of the same names.
// The defaults are faster than the node's (2s, 500ms), for a quick benchmark.
type simFlags struct {
	paymentDelay     time.Duration
	paymentFailure   float64
	warehouseLatency time.Duration
	warehouseFailure float64
}

func defaultSimFlags() simFlags {
	return simFlags{paymentDelay: 200 * time.Millisecond, paymentFailure: 0.1,
		warehouseLatency: 50 * time.Millisecond, warehouseFailure: 0.05}
}

var simFlagNames = []string{"sim-payment-delay", "sim-payment-failure-rate", "warehouse-latency", "warehouse-failure-rate"}

func (s *simFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&s.paymentDelay, simFlagNames[0], s.paymentDelay, "with --provider, for the systems the bench starts: how long the simulated provider takes to call back")
	fs.Float64Var(&s.paymentFailure, simFlagNames[1], s.paymentFailure, "with --provider, for the systems the bench starts: the share of payments the simulated provider declines")
	fs.DurationVar(&s.warehouseLatency, simFlagNames[2], s.warehouseLatency, "with --provider, for the systems the bench starts: how long the simulated warehouse takes to fulfil an order")
	fs.Float64Var(&s.warehouseFailure, simFlagNames[3], s.warehouseFailure, "with --provider, for the systems the bench starts: the share of fulfilment attempts the simulated warehouse fails")
}

// given reports whether any of the sim flags was set on fs.
func (s simFlags) given(fs *flag.FlagSet) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || slices.Contains(simFlagNames, f.Name) })
	return set
}

func (s simFlags) args() []string {
	return []string{
		"--" + simFlagNames[0], s.paymentDelay.String(),
		"--" + simFlagNames[1], strconv.FormatFloat(s.paymentFailure, 'g', -1, 64),
		"--" + simFlagNames[2], s.warehouseLatency.String(),
		"--" + simFlagNames[3], strconv.FormatFloat(s.warehouseFailure, 'g', -1, 64),
	}
}

func runBenchCheck(ctx context.Context, args []string) error {
	cfg := bench.DefaultConfig()
	fs := benchFlags("check", &cfg)
	acksPath := fs.String("acks", "", "acks.jsonl of the run to check (in its --out directory)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *acksPath == "" {
		return errors.New("bench check: --acks is required")
	}
	f, err := os.Open(*acksPath)
	if err != nil {
		return fmt.Errorf("bench check: %w", err)
	}
	defer f.Close()
	acks, err := bench.ReadJSONL(f)
	if err != nil {
		return fmt.Errorf("bench check: %w", err)
	}
	res, err := bench.Recheck(ctx, cfg, acks)
	if err != nil {
		return err
	}
	for _, v := range res.Violations {
		fmt.Printf("violation %s order %s: %s\n", v.Kind, v.OrderID, v.Detail)
	}
	fmt.Println("check", res.Summary())
	if !res.Pass {
		return errors.New("bench check: FAILED")
	}
	return nil
}
