package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// lateSlack is how far behind its intended start a request may be sent before it counts
// as late; below it the difference is goroutine scheduling, not queueing.
const lateSlack = 10 * time.Millisecond

// scenario generates the traffic of one run. Arrive runs one arrival (a whole order
// lifecycle, one race, one read) on its own goroutine and must return once ctx is done.
type scenario interface {
	// requestsPerArrival is the expected number of requests of one arrival, so that
	// arrivals come at Rate / requestsPerArrival and Rate stays in requests per second.
	requestsPerArrival() float64
	setup(ctx context.Context, r *runner) error
	arrive(ctx context.Context, r *runner, i int, intended time.Time)
}

// runner is the state of one run shared by the scenario's sessions.
type runner struct {
	cfg      Config
	clock    Clock
	lb       *Balancer
	rec      *Recorder
	acks     AckLog
	sem      chan struct{}
	runID    string
	operator *Account
	shoppers []*Account
	reqCtx   context.Context // cancelled when in-flight requests are abandoned

	mu    sync.Mutex
	races []Race

	provider *providerStats // --provider: the shoppers' waits for the system
}

// call is one request a scenario makes.
type call struct {
	op        string
	order     string // order id, when known
	as        *Account
	method    string
	path      string
	key       string // set for commands
	body      any
	race      string
	expect409 bool // a lost race: 409 is the expected answer, not an error
}

// exec sends c, measuring from intended, and records the sample and (for commands) the
// ack. It returns the response and its completion time (the next step's intended start).
func (r *runner) exec(c call, intended time.Time) (Response, time.Time) {
	late := false
	select {
	case r.sem <- struct{}{}:
	default:
		late = true // over the concurrency cap: wait, still measured from intended
		select {
		case r.sem <- struct{}{}:
		case <-r.reqCtx.Done():
			return Response{Err: r.reqCtx.Err()}, r.clock.Now()
		}
	}
	if r.clock.Now().Sub(intended) > lateSlack {
		late = true
	}
	req := Request{Method: c.method, Path: c.path, Key: c.key, Body: c.body}
	if c.as != nil {
		req.Token = c.as.Token()
	}
	resp := r.lb.Do(r.reqCtx, req)
	if resp.HTTP == http.StatusUnauthorized && c.as != nil && r.reqCtx.Err() == nil {
		// The access token expired mid-run: log in again and resend (same key).
		if err := c.as.login(r.reqCtx, r.lb); err == nil {
			req.Token = c.as.Token()
			resp = r.lb.Do(r.reqCtx, req)
		}
	}
	done := r.clock.Now()
	<-r.sem

	code := resp.CodeString()
	expected := c.expect409 && resp.HTTP == http.StatusConflict
	r.rec.Record(Sample{Op: c.op, Intended: intended, Done: done, Code: code, Expected: expected, Late: late})
	if c.key != "" {
		a := Ack{Op: c.op, OrderID: c.order, Key: c.key, HTTP: resp.HTTP, Code: code, Message: resp.Message,
			Replayed: resp.Replayed, Race: c.race, Target: resp.Target, Intended: intended, Done: done}
		if resp.Err != nil {
			a.Message = resp.Err.Error()
		}
		if resp.OK() {
			var v orderView
			if json.Unmarshal(resp.Data, &v) == nil {
				a.Version, a.State = v.Version, v.Status
				if a.OrderID == "" {
					a.OrderID = v.ID
				}
			}
		}
		r.acks.Add(a)
	}
	return resp, done
}

// command builds a call to POST /api/v1/orders/{id}/{op}.
func command(op, order string, as *Account, key string) call {
	return call{op: op, order: order, as: as, method: http.MethodPost, path: "/api/v1/orders/" + order + "/" + op, key: key}
}

// basketSKUs are the skus of the bench's baskets: the demo catalog's.
var basketSKUs = []string{"tea-sencha", "tea-earlgrey", "mug-stoneware", "kettle-gooseneck", "filter-paper", "scale-digital"}

// createCall builds a create of a small random basket.
func createCall(as *Account, key string, rng *mrand.Rand) call {
	skus := basketSKUs
	n := 1 + rng.IntN(3)
	items := make([]map[string]any, 0, n)
	for _, i := range rng.Perm(len(skus))[:n] {
		items = append(items, map[string]any{"sku": skus[i], "qty": 1 + rng.IntN(3)})
	}
	return call{op: OpCreate, as: as, method: http.MethodPost, path: "/api/v1/orders", key: key,
		body: map[string]any{"items": items}}
}

func (r *runner) addRace(race Race) {
	r.mu.Lock()
	r.races = append(r.races, race)
	r.mu.Unlock()
}

func (r *runner) shopper(i int) *Account { return r.shoppers[i%len(r.shoppers)] }

// key returns an idempotency key unique to this run, so repeated runs against the same
// store never replay each other's commands (a create's id derives from its key).
func (r *runner) key(parts ...any) string {
	s := make([]string, 0, len(parts)+1)
	s = append(s, r.runID)
	for _, p := range parts {
		s = append(s, fmt.Sprint(p))
	}
	return strings.Join(s, "-")
}

// sessionRand returns a deterministic random source for arrival i.
func (r *runner) sessionRand(i int) *mrand.Rand {
	return mrand.New(mrand.NewPCG(uint64(r.cfg.Seed), uint64(i)))
}

func newScenario(cfg Config) scenario {
	switch cfg.Scenario {
	case "hot":
		return &hotScenario{}
	case "read":
		return &readScenario{}
	case "flash", "restock", "basket":
		return &flashScenario{restock: cfg.Scenario == "restock"}
	default: // lifecycle and chaos: chaos is lifecycle with a chaos schedule beside it
		return &lifecycleScenario{}
	}
}

// withDefaults fills zero fields of c from DefaultConfig.
func withDefaults(c Config) Config {
	d := DefaultConfig()
	if c.Scenario == "" {
		c.Scenario = d.Scenario
	}
	if c.Shoppers == 0 {
		c.Shoppers = d.Shoppers
	}
	if len(c.ShopperUsers) == 0 {
		c.ShopperUsers, c.ShopperPassword = d.ShopperUsers, d.ShopperPassword
	}
	if c.User == "" {
		c.User, c.Password = d.User, d.Password
	}
	if c.Concurrency == 0 {
		c.Concurrency = d.Concurrency
	}
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	if c.HotOrders == 0 {
		c.HotOrders = d.HotOrders
	}
	if c.Racers == 0 {
		c.Racers = d.Racers
	}
	if c.FlashSKU == "" {
		c.FlashSKU, c.FlashStock, c.FlashBuyers, c.FlashChurn = d.FlashSKU, d.FlashStock, d.FlashBuyers, d.FlashChurn
	}
	if IsFlash(c.Scenario) {
		c.Warmup = 0 // the sale is the measurement: its first seconds are the ones that matter
	}
	if c.ProviderWait == 0 {
		c.ProviderWait = d.ProviderWait
	}
	if c.PayTries == 0 {
		c.PayTries = d.PayTries
	}
	if c.Clock == nil {
		c.Clock = RealClock{}
	}
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano()
	}
	return c
}

// Run drives cfg.Scenario against cfg.Targets for Warmup+Duration, then (unless NoCheck)
// checks consistency, writes the report files when cfg.Out is set, and returns the report.
// A failed check is not an error: see Report.Check.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = withDefaults(cfg)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bench config: %w", err)
	}
	chaos, _ := ParseChaos(cfg.Chaos) // validated above
	idb := make([]byte, 4)
	_, _ = rand.Read(idb)
	r := &runner{cfg: cfg, clock: cfg.Clock, sem: make(chan struct{}, cfg.Concurrency), runID: "b" + hex.EncodeToString(idb),
		provider: newProviderStats()}
	r.lb = NewBalancer(cfg.Concurrency, cfg.Timeout, cfg.Targets)
	r.lb.RouteByOwner(!cfg.RoundRobin)
	defer r.lb.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var bg sync.WaitGroup
	defer bg.Wait()
	defer cancel() // runs before bg.Wait: stops the watchers
	r.lb.Probe(ctx)
	bg.Go(func() { r.lb.Watch(ctx) })

	var err error
	if r.operator, err = Login(ctx, r.lb, cfg.User, cfg.Password); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	// Each simulated shopper logs in for itself, like a real client, as one of the
	// shopper accounts (round robin); a few at a time, since logins are slow on purpose.
	if r.shoppers, err = loginShoppers(ctx, r.lb, cfg); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}

	sc := newScenario(cfg)
	reqCtx, abandon := context.WithCancel(ctx)
	defer abandon()
	r.reqCtx = reqCtx
	start := r.clock.Now()
	r.rec = NewRecorder(start, start.Add(cfg.Warmup))
	if !IsFlash(cfg.Scenario) {
		if err := stockCatalog(ctx, r); err != nil {
			return nil, fmt.Errorf("bench: stocking the catalog: %w", err)
		}
	}
	if err := sc.setup(ctx, r); err != nil {
		return nil, fmt.Errorf("bench: setting up %s: %w", cfg.Scenario, err)
	}
	// Setup may take a while (hot creates its orders): the schedule starts after it.
	start = r.clock.Now()
	r.rec = NewRecorder(start, start.Add(cfg.Warmup))
	end := start.Add(cfg.Warmup + cfg.Duration)
	// The cost window opens when the warm-up ends (see cost.go).
	meter := newCostMeter(cfg.Cost)
	bg.Go(func() {
		if r.clock.SleepUntil(ctx, start.Add(cfg.Warmup)) == nil {
			meter.begin(ctx, r.clock.Now())
		}
	})

	var chaosLog []ChaosLog
	if len(chaos) > 0 {
		driver := cfg.ChaosDriver
		if driver == nil {
			driver = APIDriver{Balancer: r.lb, Operator: r.operator}
		}
		bg.Go(func() { chaosLog = runChaos(ctx, r.clock, start, chaos, driver, r.lb.Add) })
	}
	if cfg.Progress != nil {
		bg.Go(func() { progress(ctx, cfg.Progress, r.rec, start) })
	}

	// Sessions stop starting new steps at the end of the schedule; requests in flight
	// then get up to one request timeout before they are abandoned.
	stepsCtx, stopSteps := context.WithCancel(ctx)
	defer stopSteps()
	var sessions sync.WaitGroup
	arrivalRate := cfg.Rate / sc.requestsPerArrival()
	arrivals := RunOpenLoop(ctx, r.clock, Schedule{Start: start, Rate: arrivalRate}, end, func(i int, intended time.Time) {
		sessions.Go(func() { sc.arrive(stepsCtx, r, i, intended) })
	})
	stopSteps()
	waitOrAbandon(&sessions, cfg.Timeout+time.Second, abandon)
	finished := r.clock.Now()
	cancel() // stops progress, watcher, chaos
	bg.Wait()

	rep := buildReport(cfg, r, start, finished, arrivals, chaosLog)
	rep.Cost = meter.end(context.WithoutCancel(ctx), finished, rep.Total.Count, rep.transitions())
	fs, isFlashRun := sc.(*flashScenario)
	if isFlashRun {
		rep.Flash = fs.report(start)
	}
	if ctx := context.WithoutCancel(ctx); !cfg.NoCheck {
		res, err := r.check(ctx)
		if err != nil {
			return rep, fmt.Errorf("bench: checking: %w", err)
		}
		if isFlashRun {
			st, err := fs.check(ctx, r)
			if err != nil {
				return rep, fmt.Errorf("bench: checking stock: %w", err)
			}
			res.addStock(st)
		}
		rep.Check = &res
	}
	if cfg.Out != "" {
		if err := rep.WriteFiles(cfg.Out, r.acks.Snapshot()); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func loginShoppers(ctx context.Context, lb *Balancer, cfg Config) ([]*Account, error) {
	out := make([]*Account, cfg.Shoppers)
	errs := make([]error, cfg.Shoppers)
	gate := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() {
			gate <- struct{}{}
			defer func() { <-gate }()
			out[i], errs[i] = Login(ctx, lb, cfg.ShopperUsers[i%len(cfg.ShopperUsers)], cfg.ShopperPassword)
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// waitOrAbandon waits for wg; after grace it calls abandon (cancelling in-flight
// requests) and waits for the rest, which then return promptly.
func waitOrAbandon(wg *sync.WaitGroup, grace time.Duration, abandon func()) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		abandon()
		<-done
	}
}

// check reads the histories of every order the run touched and runs Check; with
// --provider it first waits for the provider and the pool to finish with the run's
// orders, and adds the fulfilment check.
func (r *runner) check(ctx context.Context) (CheckResult, error) {
	r.mu.Lock()
	races := append([]Race(nil), r.races...)
	r.mu.Unlock()
	return checkRun(ctx, r.cfg, r.lb, r.operator, r.acks.Snapshot(), races)
}

// checkRun is the check of a run (or of its ack log, again) against lb.
func checkRun(ctx context.Context, cfg Config, lb *Balancer, operator *Account, acks []Ack, races []Race) (CheckResult, error) {
	unsettled := 0
	if cfg.Provider {
		var err error
		if unsettled, err = settle(ctx, lb, operator, createdOrders(acks), min(cfg.ProviderWait, settleWait)); err != nil {
			return CheckResult{}, fmt.Errorf("waiting for the provider and the pool: %w", err)
		}
	}
	hist, err := FetchHistories(ctx, lb, operator, OrdersTouched(acks), 8)
	if err != nil {
		return CheckResult{}, err
	}
	res := Check(acks, hist, races)
	if cfg.Provider {
		f, err := checkFulfilment(ctx, lb, operator, acks, hist, unsettled)
		if err != nil {
			return CheckResult{}, err
		}
		res.addFulfilment(f)
	}
	return res, nil
}

// ceilDiv is used by scenarios sizing pools.
func ceilDiv(a, b float64) int { return int(math.Ceil(a / b)) }
