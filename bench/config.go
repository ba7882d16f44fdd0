package bench

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Config is one run of the harness. Zero values are filled from DefaultConfig by Run.
type Config struct {
	Targets  []string      // node base URLs, e.g. http://127.0.0.1:8080
	Scenario string        // lifecycle, hot, read, chaos
	Rate     float64       // commands (requests) per second, open loop
	Duration time.Duration // measured part of the run
	Warmup   time.Duration // run before Duration, not recorded in the per-op report

	Shoppers        int      // simulated shoppers; they share the ShopperUsers accounts round robin
	ShopperUsers    []string // demo shoppers: alice, bob
	ShopperPassword string
	User            string // operator, for fulfilment commands and the checker
	Password        string

	Concurrency int           // cap on in-flight requests; requests over it wait and count as late
	Timeout     time.Duration // one HTTP request
	Out         string        // directory for report.json, report.svg, report.txt, acks.jsonl; "" writes none
	NoCheck     bool          // skip the consistency check
	// RoundRobin sends every request round robin, ignoring the owner the cluster names
	// (HeaderOwner), as a balancer that knows nothing of the cluster would.
	RoundRobin bool
	Seed       int64 // of the scenario's random choices; 0 picks one

	CancelShare float64 // lifecycle: share of orders cancelled (after create or after pay)
	FailShare   float64 // lifecycle: share whose payment fails once, then is paid again
	RefundShare float64 // lifecycle: share refunded (after confirm or after deliver)

	HotOrders int // hot: orders raced on at once
	Racers    int // hot: concurrent requests per race
	// PaymentTimeout is the payment timeout the system under test was started with
	// (`ordermesh node --payment-timeout`). When > 0, hot also races confirm-payment
	// against the payment's expiry; 0 means unknown: no expiry races.
	PaymentTimeout time.Duration

	ReadCreateShare float64 // read: share of creates among gets and lists

	FlashSKU    string  // flash, restock: the sku on sale
	FlashStock  int64   // flash, restock: units available when the sale opens (set through the API)
	FlashBuyers int     // flash, restock: shoppers of the first wave, one attempt each; later arrivals are late shoppers
	FlashChurn  float64 // flash, restock: share of winners who cancel, or pay and let the payment expire
	Restock     int64   // restock: units the operator adds in the middle of the first wave
	// BasketSKU (basket): every attempt also buys one unit of this sku, of which half as
	// many units as FlashStock are available: one basket in two can get at most one of
	// its lines, so the all-or-nothing reservation is what decides it.
	BasketSKU string

	// Provider (lifecycle, chaos): the payment provider and the fulfilment pool are in the
	// loop. After pay the shopper waits for the system (polling its order) until PAID,
	// pays again when the provider declined, then waits for SHIPPED and delivers; the
	// bench sends no confirm-payment or ship. The check adds the fulfilment rules.
	Provider     bool
	ProviderWait time.Duration // provider: longest wait for PAID, and again for SHIPPED
	PayTries     int           // provider: pays of one order at most (the provider may decline each)
	// SystemArgs are the extra arguments of the systems the bench started itself (--local,
	// compare), shown in the report's header; nil when it drove running ones.
	SystemArgs []string

	Chaos       string      // chaos schedule, e.g. "10s:kill:1,20s:add,30s:drain:2"
	ChaosDriver ChaosDriver // executes Chaos; nil uses the API driver (drain only)

	// Cost: the processes (besides the harness, always measured) and the database whose
	// cost over the measured window the report gives (cost.go).
	Cost CostSources

	Progress io.Writer // live progress line each second; nil for none
	Clock    Clock     // nil for the wall clock
}

// Scenarios lists the scenario names Run accepts.
var Scenarios = []string{"lifecycle", "hot", "read", "chaos", "flash", "restock", "basket"}

// DefaultConfig returns the defaults the CLI shows.
func DefaultConfig() Config {
	return Config{
		Targets: []string{"http://127.0.0.1:8080"}, Scenario: "lifecycle", Rate: 100,
		Duration: 30 * time.Second, Warmup: 5 * time.Second,
		Shoppers: 20, ShopperUsers: []string{"alice", "bob"}, ShopperPassword: "ordermesh",
		User: "olga", Password: "ordermesh",
		Concurrency: 256, Timeout: 10 * time.Second,
		CancelShare: 0.1, FailShare: 0.05, RefundShare: 0.1,
		HotOrders: 8, Racers: 4, ReadCreateShare: 0.05,
		FlashSKU: "kettle-gooseneck", FlashStock: 500, FlashBuyers: 2000, FlashChurn: 0.2, Restock: 100, BasketSKU: "mug-stoneware",
		ProviderWait: 60 * time.Second, PayTries: 5,
	}
}

// RegisterFlags binds c's fields to flags of fs; c's current values are the defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Var((*listFlag)(&c.Targets), "targets", "comma-separated node base URLs")
	fs.StringVar(&c.Scenario, "scenario", c.Scenario, "scenario: "+strings.Join(Scenarios, ", "))
	fs.Float64Var(&c.Rate, "rate", c.Rate, "arrival rate in requests per second (open loop)")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "measured duration")
	fs.DurationVar(&c.Warmup, "warmup", c.Warmup, "warm-up before the measured duration (not recorded)")
	fs.IntVar(&c.Shoppers, "shoppers", c.Shoppers, "simulated shoppers (sharing the shopper accounts round robin)")
	fs.Var((*listFlag)(&c.ShopperUsers), "shopper-users", "comma-separated shopper accounts")
	fs.StringVar(&c.ShopperPassword, "shopper-password", c.ShopperPassword, "password of the shopper accounts")
	fs.StringVar(&c.User, "user", c.User, "operator account (fulfilment commands and the checker)")
	fs.StringVar(&c.Password, "password", c.Password, "operator password")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "cap on in-flight requests (requests over it wait and count as late)")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "timeout of one HTTP request")
	fs.StringVar(&c.Out, "out", c.Out, "directory for report.json, report.svg, report.txt and acks.jsonl")
	fs.BoolVar(&c.NoCheck, "no-check", c.NoCheck, "skip the consistency check after the run")
	fs.BoolVar(&c.RoundRobin, "round-robin", c.RoundRobin, "send every request round robin over the targets, not to the order's owner that the nodes name (Ordermesh-Owner)")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "random seed of the scenario (0: random)")
	fs.Float64Var(&c.CancelShare, "cancel-share", c.CancelShare, "lifecycle: share of orders cancelled")
	fs.Float64Var(&c.FailShare, "fail-share", c.FailShare, "lifecycle: share whose first payment fails")
	fs.Float64Var(&c.RefundShare, "refund-share", c.RefundShare, "lifecycle: share refunded")
	fs.IntVar(&c.HotOrders, "hot-orders", c.HotOrders, "hot: orders raced on at once")
	fs.IntVar(&c.Racers, "racers", c.Racers, "hot: concurrent requests per race")
	fs.DurationVar(&c.PaymentTimeout, "payment-timeout", c.PaymentTimeout, "hot: the --payment-timeout the system under test runs with; > 0 adds confirm-vs-expiry races (0: unknown, none)")
	fs.Float64Var(&c.ReadCreateShare, "read-create-share", c.ReadCreateShare, "read: share of creates")
	fs.StringVar(&c.FlashSKU, "sku", c.FlashSKU, "flash, restock: the sku on sale")
	fs.Int64Var(&c.FlashStock, "stock", c.FlashStock, "flash, restock: units available when the sale opens (the operator adjusts the sku to it)")
	fs.IntVar(&c.FlashBuyers, "buyers", c.FlashBuyers, "flash, restock: shoppers of the first wave (one attempt each, at --rate); arrivals after them are late shoppers")
	fs.Float64Var(&c.FlashChurn, "churn", c.FlashChurn, "flash, restock: share of winners who cancel, or pay and let the payment expire (with --payment-timeout)")
	fs.Int64Var(&c.Restock, "restock", c.Restock, "restock: units the operator adds in the middle of the first wave")
	fs.StringVar(&c.BasketSKU, "basket-sku", c.BasketSKU, "basket: the second sku of every attempt (half of --stock available): a flash sale of two-line baskets, all or nothing")
	fs.BoolVar(&c.Provider, "provider", c.Provider, "lifecycle, chaos: the payment provider and the fulfilment pool are in the loop: after pay the shopper polls its order until PAID (paying again, new key, when the provider declined), then until SHIPPED, then delivers; no confirm-payment or ship by the bench; the check adds the fulfilment rules")
	fs.DurationVar(&c.ProviderWait, "provider-wait", c.ProviderWait, "provider: longest wait for PAID after a pay, and for SHIPPED after PAID")
	fs.IntVar(&c.PayTries, "pay-tries", c.PayTries, "provider: pays of one order at most (the provider may decline each)")
	fs.StringVar(&c.Chaos, "chaos", c.Chaos, `chaos schedule, e.g. "10s:kill:1,20s:add,30s:drain:2" (times from the start of the run, node = index in --targets)`)
}

// Validate reports the first thing wrong with c.
func (c Config) Validate() error {
	var errs []error
	if len(c.Targets) == 0 {
		errs = append(errs, errors.New("no targets"))
	}
	known := false
	for _, s := range Scenarios {
		known = known || s == c.Scenario
	}
	if !known {
		errs = append(errs, fmt.Errorf("unknown scenario %q (want one of %s)", c.Scenario, strings.Join(Scenarios, ", ")))
	}
	if c.Rate <= 0 {
		errs = append(errs, errors.New("rate must be positive"))
	}
	if c.Duration <= 0 || c.Warmup < 0 {
		errs = append(errs, errors.New("duration must be positive and warmup not negative"))
	}
	if c.Shoppers < 1 || len(c.ShopperUsers) == 0 {
		errs = append(errs, errors.New("need at least one shopper and one shopper account"))
	}
	if c.Concurrency < 1 {
		errs = append(errs, errors.New("concurrency must be at least 1"))
	}
	if IsFlash(c.Scenario) && (c.FlashSKU == "" || c.FlashStock < 0 || c.FlashBuyers < 1 || c.Restock < 0) {
		errs = append(errs, errors.New("flash needs --sku, --stock >= 0, --buyers >= 1 and --restock >= 0"))
	}
	if c.Scenario == "basket" && (c.BasketSKU == "" || c.BasketSKU == c.FlashSKU) {
		errs = append(errs, errors.New("basket needs a --basket-sku other than --sku"))
	}
	for _, s := range []float64{c.CancelShare, c.FailShare, c.RefundShare, c.ReadCreateShare, c.FlashChurn} {
		if s < 0 || s > 1 {
			errs = append(errs, errors.New("shares must be within 0..1"))
			break
		}
	}
	if c.PaymentTimeout < 0 {
		errs = append(errs, errors.New("payment timeout must not be negative"))
	}
	if c.Scenario == "hot" && (c.HotOrders < 1 || c.Racers < 2) {
		errs = append(errs, errors.New("hot needs --hot-orders >= 1 and --racers >= 2"))
	}
	if c.Provider && c.Scenario != "lifecycle" && c.Scenario != "chaos" {
		errs = append(errs, errors.New("--provider goes with the lifecycle and chaos scenarios"))
	}
	if c.Provider && (c.ProviderWait <= 0 || c.PayTries < 1) {
		errs = append(errs, errors.New("--provider needs a positive --provider-wait and --pay-tries >= 1"))
	}
	if _, err := ParseChaos(c.Chaos); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// listFlag is a comma-separated list flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	*l = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, strings.TrimRight(p, "/"))
		}
	}
	return nil
}
