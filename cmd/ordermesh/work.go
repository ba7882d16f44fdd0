package main

import (
	"context"
	crand "crypto/rand"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordermesh/ordermesh/actors"
	payclient "github.com/ordermesh/ordermesh/actors/payment/client"
	"github.com/ordermesh/ordermesh/actors/payment/sim"
	"github.com/ordermesh/ordermesh/actors/warehouse"
	"github.com/ordermesh/ordermesh/cluster"
	"github.com/ordermesh/ordermesh/edge"
	"github.com/ordermesh/ordermesh/persistence"
)

// Payments and fulfilment, as the flags of `ordermesh node` and `ordermesh baseline`
// set them up: the payment provider (none, the simulated one inside the process, or one
// at a URL) behind its timeout and circuit breaker, the webhook secrets, the simulated
// warehouse, and the edge's control of the simulated services.

// workFlags configure the payment provider and the fulfilment pool (see work.go).
type workFlags struct {
	Payments        string // manual, sim or the provider's base URL
	ProviderKey     string
	WebhookSecret   string
	ProviderTimeout time.Duration
	SimDelay        time.Duration
	SimFailureRate  float64
	AutoShip        bool
	Workers         int
	Attempts        int
	WarehouseDelay  time.Duration
	WarehouseFail   float64
	Lease           time.Duration
	Backoff         time.Duration
}

// addWorkFlags declares the flags of the payment provider and the fulfilment pool.
func addWorkFlags(fs *flag.FlagSet, w *workFlags) {
	fs.StringVar(&w.Payments, "payments", "", `the payment provider: "manual" (none: operators confirm payments), "sim" (a simulated provider inside this node, which calls back by signed webhook), or the base URL of a provider speaking the same API (default: sim with --demo, else manual)`)
	fs.StringVar(&w.ProviderKey, "provider-key", "", "the API key sent to the provider named by --payments (a URL)")
	fs.StringVar(&w.WebhookSecret, "webhook-secret", "", "the secret payment webhooks are signed with (default: a secret the cluster keeps in its store, which the simulated provider uses too)")
	fs.DurationVar(&w.ProviderTimeout, "provider-timeout", 3*time.Second, "how long one call to the payment provider may take; pay waits at most this long before it leaves the payment queued")
	fs.DurationVar(&w.SimDelay, "sim-payment-delay", 2*time.Second, "with --payments sim: how long the simulated provider takes to call back")
	fs.Float64Var(&w.SimFailureRate, "sim-payment-failure-rate", 0.1, "with --payments sim: the share of payments the simulated provider declines")
	fs.BoolVar(&w.AutoShip, "auto-ship", false, "run the fulfilment pool: paid orders are fulfilled by the (simulated) warehouse and shipped by the node (default: true with --demo); without it, fulfilment tasks wait for operators")
	fs.IntVar(&w.Workers, "fulfilment-workers", 4, "fulfilment tasks this node runs at once")
	fs.IntVar(&w.Attempts, "fulfilment-attempts", 5, "attempts of a fulfilment task before it is dead-lettered")
	fs.DurationVar(&w.Lease, "fulfilment-lease", 30*time.Second, "how long a node holds a task it runs; a task whose node died is run elsewhere after it")
	fs.DurationVar(&w.Backoff, "fulfilment-backoff", time.Second, "the wait before a failed task's second attempt; it doubles with every attempt (up to a minute), with jitter")
	fs.DurationVar(&w.WarehouseDelay, "warehouse-latency", 500*time.Millisecond, "how long the simulated warehouse takes to fulfil an order")
	fs.Float64Var(&w.WarehouseFail, "warehouse-failure-rate", 0.05, "the share of fulfilment attempts the simulated warehouse fails")
}

// check validates the work flags and fills in the defaults that depend on --demo.
func (w *workFlags) check(demo bool, fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if _, ok := os.LookupEnv(envName("auto-ship")); ok {
		given["auto-ship"] = true
	}
	if w.Payments == "" {
		w.Payments = "manual"
		if demo {
			w.Payments = "sim"
		}
	}
	if demo && !given["auto-ship"] {
		w.AutoShip = true
	}
	switch {
	case w.Payments == "manual" || w.Payments == "sim":
	case strings.HasPrefix(w.Payments, "http://") || strings.HasPrefix(w.Payments, "https://"):
		if w.ProviderKey == "" {
			return errors.New("--payments with a provider URL needs --provider-key")
		}
	default:
		return fmt.Errorf("--payments must be manual, sim or a provider URL, not %q", w.Payments)
	}
	if w.ProviderTimeout <= 0 || w.SimDelay < 0 || w.WarehouseDelay < 0 || w.Backoff <= 0 {
		return errors.New("--provider-timeout and --fulfilment-backoff must be positive, --sim-payment-delay and --warehouse-latency not negative")
	}
	if w.Lease < 2*w.WarehouseDelay || w.Lease < time.Second {
		return errors.New("--fulfilment-lease must be at least a second and twice --warehouse-latency: a task's run must end within its lease")
	}
	if w.SimFailureRate < 0 || w.SimFailureRate > 1 || w.WarehouseFail < 0 || w.WarehouseFail > 1 {
		return errors.New("--sim-payment-failure-rate and --warehouse-failure-rate must be within 0..1")
	}
	if w.Workers < 1 || w.Attempts < 1 {
		return errors.New("--fulfilment-workers and --fulfilment-attempts must be at least 1")
	}
	return nil
}

// webhookKind is the kind of the store's secret that signs payment webhooks when
// --webhook-secret is not given: one per cluster, created by the first node.
const webhookKind = "webhook"

// webhookSecrets returns the secrets a webhook may be signed with, newest first: the
// flag's, or the cluster's from the store (created on the first start, so every node
// and the simulated providers share it).
func webhookSecrets(ctx context.Context, store persistence.Secrets, flagValue string) ([][]byte, error) {
	if flagValue != "" {
		return [][]byte{[]byte(flagValue)}, nil
	}
	if _, err := store.CreateSecret(ctx, persistence.Secret{Kind: webhookKind, ID: "initial", Value: []byte("whsec_" + crand.Text())}); err != nil {
		return nil, fmt.Errorf("creating the webhook secret: %w", err)
	}
	stored, err := store.Secrets(ctx, webhookKind)
	if err != nil || len(stored) == 0 {
		return nil, fmt.Errorf("reading the webhook secrets: %w", err)
	}
	out := make([][]byte, len(stored))
	for i, s := range stored {
		out[len(stored)-1-i] = s.Value
	}
	return out, nil
}

// payments is a process's side of the payments port.
type payments struct {
	provider *payclient.Guarded // nil with --payments manual
	sim      *sim.Provider      // the simulated provider, with --payments sim
	secrets  [][]byte
}

// newPayments sets up the provider the flags name. With --payments sim it starts a
// simulated provider on a loopback port that posts its signed webhooks to targets (asked
// again for every delivery).
func newPayments(w workFlags, secrets [][]byte, targets func() []string, logger *slog.Logger) (payments, error) {
	p := payments{secrets: secrets}
	if w.Payments == "manual" {
		return p, nil
	}
	base, key := w.Payments, w.ProviderKey
	if w.Payments == "sim" {
		key = crand.Text() // the simulator is this process's own: a key of the moment
		p.sim = sim.New(sim.Config{Secret: secrets[0], APIKey: key, Targets: targets, Logger: logger.With("component", "payment-simulator"),
			Mode: sim.Mode{DelayMS: w.SimDelay.Milliseconds(), FailureRate: w.SimFailureRate}})
		var err error
		if base, err = p.sim.Listen("127.0.0.1:0"); err != nil {
			return p, fmt.Errorf("starting the payment simulator: %w", err)
		}
		logger.Info("payment simulator started", "url", base)
	}
	p.provider = payclient.NewGuard(payclient.New(payclient.Config{BaseURL: base, APIKey: key}), payclient.GuardConfig{
		Timeout: w.ProviderTimeout,
		OnStateChange: func(from, to string) {
			logger.Warn("payment provider circuit breaker", "from", from, "to", to)
		},
	})
	return p, nil
}

// breakerState reports the provider's circuit breaker; nil without a provider.
func (p payments) breakerState() func() string {
	if p.provider == nil {
		return nil
	}
	return p.provider.State
}

// close stops the simulated provider after it delivered the outcomes it holds.
func (p payments) close(ctx context.Context, logger *slog.Logger) {
	if p.sim == nil {
		return
	}
	if err := p.sim.Close(ctx); err != nil {
		logger.Warn("payment simulator did not deliver every outcome", "err", err)
	}
}

// webhookURL is the webhook endpoint of an edge listening on addr (a wildcard host is
// reached on loopback).
func webhookURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr + "/api/v1/payments/webhook"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/api/v1/payments/webhook"
}

// newWarehouse is the simulated warehouse the flags describe.
func newWarehouse(w workFlags) *warehouse.Sim {
	return warehouse.NewSim(warehouse.Mode{LatencyMS: w.WarehouseDelay.Milliseconds(), FailureRate: w.WarehouseFail}, rand.Uint64())
}

// simulation is the edge's control of this process's simulated services
// (GET/PUT /api/v1/simulation).
type simulation struct {
	node      string
	provider  *sim.Provider // nil without the simulated provider
	warehouse *warehouse.Sim
}

var _ edge.Simulation = simulation{}

func (s simulation) Simulation() edge.SimulationState {
	st := edge.SimulationState{Node: s.node}
	if s.provider != nil {
		m := edge.ProviderSimMode(s.provider.Mode())
		st.Provider = &m
	}
	if s.warehouse != nil {
		m := s.warehouse.Mode()
		st.Warehouse = &m
	}
	return st
}

func (s simulation) SetSimulation(st edge.SimulationState) (edge.SimulationState, error) {
	if st.Provider != nil {
		if s.provider == nil {
			return edge.SimulationState{}, errors.New("this node runs no simulated payment provider (see --payments)")
		}
		if err := s.provider.SetMode(sim.Mode(*st.Provider)); err != nil {
			return edge.SimulationState{}, err
		}
	}
	if st.Warehouse != nil {
		if err := s.warehouse.SetMode(*st.Warehouse); err != nil {
			return edge.SimulationState{}, err
		}
	}
	return s.Simulation(), nil
}

// nodeWork is a node's payments and fulfilment: the pools that submit payment intents
// and fulfil paid orders, on the jobs its order grains write.
type nodeWork struct {
	pay        payments
	payments   *actors.Payments // nil with --payments manual
	fulfilment *actors.Fulfilment
	simulation simulation
}

// startWork starts the node's pools; the fulfilment pool runs only with --auto-ship
// (without it the tasks wait for operators).
func startWork(w workFlags, pay payments, jobs persistence.Jobs, node *cluster.Node, reg prometheus.Registerer, logger *slog.Logger) *nodeWork {
	metrics := cluster.NewWorkMetrics(reg, jobs.CountJobs, pay.breakerState())
	wh := newWarehouse(w)
	nw := &nodeWork{pay: pay, simulation: simulation{node: node.ID(), provider: pay.sim, warehouse: wh}}
	workers := 0
	if w.AutoShip {
		workers = w.Workers
	}
	nw.fulfilment = actors.NewFulfilment(actors.FulfilmentConfig{
		Jobs: jobs, Orders: node, Warehouse: wh, Node: node.ID(), Workers: workers, MaxAttempts: w.Attempts,
		Backoff: actors.Backoff{Base: w.Backoff, Max: time.Minute}, Lease: w.Lease, Logger: logger, Observer: metrics,
	})
	nw.fulfilment.Start()
	if pay.provider != nil {
		nw.payments = actors.NewPayments(actors.PaymentsConfig{
			Jobs: jobs, Provider: pay.provider, Breaker: pay.provider, IsOpen: func(err error) bool { return errors.Is(err, payclient.ErrOpen) },
			Node: node.ID(), Logger: logger, Observer: metrics,
		})
		nw.payments.Start()
	}
	return nw
}

// edgePayments is what the edge needs of the payments: nil (a nil interface, not a nil
// pointer in one) with --payments manual.
func (nw *nodeWork) edgePayments() edge.Payments {
	if nw.payments == nil {
		return nil
	}
	return nodePayments{nw.payments, nw.pay.secrets}
}

// nodePayments adds the webhook secrets to the payment pool for the edge.
type nodePayments struct {
	*actors.Payments
	secrets [][]byte
}

func (p nodePayments) WebhookSecrets() [][]byte { return p.secrets }

// stop lets the pools finish the runs in flight, then the simulated provider deliver
// what it holds.
func (nw *nodeWork) stop(ctx context.Context, logger *slog.Logger) {
	nw.fulfilment.Stop(ctx)
	if nw.payments != nil {
		nw.payments.Stop(ctx)
	}
	nw.pay.close(ctx, logger)
}

// webhookTargets are where a node's simulated provider posts: the node itself first,
// then the other active members, so that an outcome still arrives while this node
// leaves.
func webhookTargets(node *cluster.Node, self string) []string {
	out := []string{webhookURL(self)}
	if node == nil {
		return out
	}
	for _, m := range node.View().Members {
		if m.ID != node.ID() && m.State == cluster.StateActive && m.HTTP != "" {
			out = append(out, webhookURL(m.HTTP))
		}
	}
	return out
}
