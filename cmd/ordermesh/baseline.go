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
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	payclient "github.com/ordermesh/ordermesh/actors/payment/client"
	"github.com/ordermesh/ordermesh/actors/payment/sim"
	"github.com/ordermesh/ordermesh/actors/warehouse"
	"github.com/ordermesh/ordermesh/bench/baseline"
	"github.com/ordermesh/ordermesh/edge"
)

// baselineConfig is everything `ordermesh baseline` can be told. As for `ordermesh node`,
// every flag has an ORDERMESH_* environment variable and the command line wins, so one
// environment (store, secret, payment timeout) configures both designs alike.
type baselineConfig struct {
	HTTP           string
	Store          string
	Node           string
	Demo           bool
	JWTSecret      string
	Catalog        string
	PaymentTimeout time.Duration
	OrderTimeout   time.Duration
	SweepInterval  time.Duration
	AccessTTL      time.Duration
	RefreshTTL     time.Duration
	RequestTimeout time.Duration
	DrainTimeout   time.Duration
	LogLevel       string
	LogFormat      string

	// Payments and fulfilment, as `ordermesh node` takes them.
	Payments             string // manual | sim | the provider's base URL
	ProviderKey          string
	WebhookSecret        string
	ProviderTimeout      time.Duration
	SimPaymentDelay      time.Duration
	SimPaymentFailure    float64
	AutoShip             bool
	FulfilmentWorkers    int
	FulfilmentAttempts   int
	WarehouseLatency     time.Duration
	WarehouseFailureRate float64
}

func parseBaselineConfig(args []string) (baselineConfig, error) {
	var c baselineConfig
	fs := flag.NewFlagSet("ordermesh baseline", flag.ContinueOnError)
	fs.StringVar(&c.HTTP, "http", "127.0.0.1:8180", "HTTP listen address of the edge (REST, /metrics)")
	fs.StringVar(&c.Store, "store", "", "postgres:// URL of the database (required; may be the one ordermesh nodes use)")
	fs.StringVar(&c.Node, "node-id", baseline.DefaultNode, "name recorded on the events this process writes and sent as X-Node-ID")
	fs.BoolVar(&c.Demo, "demo", false, "seed the demo users alice and bob (shoppers), olga (operator), ada (admin); password \"ordermesh\"")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "HS256 secret for access tokens, at least 32 bytes, overriding the signing keys in the store (default: the store's keys, shared with the nodes on the same database)")
	fs.StringVar(&c.Catalog, "catalog", "", "product catalog JSON file (default: the built-in demo catalog)")
	fs.DurationVar(&c.PaymentTimeout, "payment-timeout", baseline.DefaultPaymentTimeout, "how long a PAYING order waits for its payment before it is closed")
	fs.DurationVar(&c.OrderTimeout, "order-timeout", baseline.DefaultOrderTimeout, "how long a CREATED order may wait to be paid before it is closed and its stock released")
	fs.DurationVar(&c.SweepInterval, "sweep-interval", baseline.DefaultSweepInterval, "how often passed payment deadlines are expired")
	fs.DurationVar(&c.AccessTTL, "access-ttl", 15*time.Minute, "lifetime of an access token (at most 1h)")
	fs.DurationVar(&c.RefreshTTL, "refresh-ttl", 7*24*time.Hour, "lifetime of a refresh token; each refresh hands out a new one with a new lifetime")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 10*time.Second, "how long one API request may take, retries included")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 30*time.Second, "how long shutdown waits for in-flight requests")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.StringVar(&c.Payments, "payments", "manual", "manual (operators confirm payments), sim (a simulated provider in this process, posting signed webhooks to this baseline) or the base URL of a provider's API")
	fs.StringVar(&c.ProviderKey, "provider-key", "", "API key sent to the payment provider")
	fs.StringVar(&c.WebhookSecret, "webhook-secret", "", "secret the provider signs its webhooks with (required with a provider URL; with sim: a random one shared in-process)")
	fs.DurationVar(&c.ProviderTimeout, "provider-timeout", payclient.DefaultTimeout, "how long one call to the payment provider may take")
	fs.DurationVar(&c.SimPaymentDelay, "sim-payment-delay", time.Duration(sim.DefaultMode.DelayMS)*time.Millisecond, "with --payments sim: how long after a pay its outcome is posted")
	fs.Float64Var(&c.SimPaymentFailure, "sim-payment-failure-rate", sim.DefaultMode.FailureRate, "with --payments sim: share of payments that fail (0..1)")
	fs.BoolVar(&c.AutoShip, "auto-ship", false, "ship paid orders with the fulfilment workers and the simulated warehouse (off: operators ship)")
	fs.IntVar(&c.FulfilmentWorkers, "fulfilment-workers", 4, "fulfilment workers of this process, with --auto-ship")
	fs.IntVar(&c.FulfilmentAttempts, "fulfilment-attempts", baseline.DefaultFulfilmentAttempts, "runs of a fulfilment task before it is dead-lettered")
	fs.DurationVar(&c.WarehouseLatency, "warehouse-latency", time.Duration(warehouse.DefaultMode.LatencyMS)*time.Millisecond, "how long the simulated warehouse takes per order")
	fs.Float64Var(&c.WarehouseFailureRate, "warehouse-failure-rate", warehouse.DefaultMode.FailureRate, "share of the simulated warehouse's attempts that fail (0..1)")
	if err := parseWithEnv(fs, args, "Usage: ordermesh baseline [flags]\n\n"+
		"Starts the classic stateless design for comparison: the same HTTP API as a node, with every\n"+
		"order transition one PostgreSQL statement (no actors, no group commit). Several may run\n"+
		"behind a load balancer.\n"); err != nil {
		return c, err
	}
	if !strings.HasPrefix(c.Store, "postgres://") && !strings.HasPrefix(c.Store, "postgresql://") {
		return c, fmt.Errorf("--store must be a postgres:// URL: the baseline is the PostgreSQL design")
	}
	switch {
	case c.Payments == "manual", c.Payments == "sim":
	case strings.HasPrefix(c.Payments, "http://"), strings.HasPrefix(c.Payments, "https://"):
		if c.WebhookSecret == "" {
			return c, fmt.Errorf("--payments %s needs --webhook-secret: the secret the provider signs its webhooks with", c.Payments)
		}
	default:
		return c, fmt.Errorf("--payments must be manual, sim or a provider's http(s):// base URL, not %q", c.Payments)
	}
	if c.FulfilmentWorkers < 0 || c.FulfilmentAttempts < 1 || c.WarehouseLatency < 0 || c.ProviderTimeout <= 0 ||
		c.SimPaymentDelay < 0 || c.SimPaymentFailure < 0 || c.SimPaymentFailure > 1 ||
		c.WarehouseFailureRate < 0 || c.WarehouseFailureRate > 1 {
		return c, fmt.Errorf("payments and fulfilment: counts and durations must be positive, rates within 0..1")
	}
	return c, nil
}

// baselineProvider sets up the payments and the warehouse of opts as cfg says: nothing
// for manual payments; else the guarded HTTP client of the provider, which with
// --payments sim is a simulated one served by this process on a loopback port, posting
// its webhooks to this baseline's own HTTP address. stop ends the simulated provider
// after delivering its pending outcomes (nil when there is none).
func baselineProvider(cfg baselineConfig, opts *baseline.Options, logger *slog.Logger) (stop func(context.Context) error, err error) {
	if cfg.AutoShip {
		opts.Warehouse = warehouse.NewSim(warehouse.Mode{LatencyMS: cfg.WarehouseLatency.Milliseconds(), FailureRate: cfg.WarehouseFailureRate}, rand.Uint64())
		opts.FulfilmentWorkers, opts.FulfilmentAttempts = cfg.FulfilmentWorkers, cfg.FulfilmentAttempts
	}
	if cfg.Payments == "manual" {
		return nil, nil
	}
	base, secret := cfg.Payments, []byte(cfg.WebhookSecret)
	if cfg.Payments == "sim" {
		if len(secret) == 0 {
			secret = []byte(crand.Text())
		}
		host, port, err := net.SplitHostPort(cfg.HTTP)
		if err != nil {
			return nil, fmt.Errorf("--http %s: %w", cfg.HTTP, err)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		hook := "http://" + net.JoinHostPort(host, port) + "/api/v1/payments/webhook"
		p := sim.New(sim.Config{Secret: secret, APIKey: cfg.ProviderKey, Logger: logger.With("component", "payment-simulator"),
			Mode:    sim.Mode{DelayMS: cfg.SimPaymentDelay.Milliseconds(), FailureRate: cfg.SimPaymentFailure},
			Targets: func() []string { return []string{hook} }})
		if base, err = p.Listen("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("starting the payment simulator: %w", err)
		}
		logger.Info("payment simulator started", "url", base, "webhook", hook)
		stop = p.Close
	}
	opts.Provider = payclient.NewGuard(payclient.New(payclient.Config{BaseURL: base, APIKey: cfg.ProviderKey}), payclient.GuardConfig{
		Timeout: cfg.ProviderTimeout,
		OnStateChange: func(from, to string) {
			logger.Warn("payment provider circuit breaker", "from", from, "to", to)
		},
	})
	opts.WebhookSecrets = [][]byte{secret}
	return stop, nil
}

// runBaseline serves the baseline service through the same edge as a node, until SIGINT
// or SIGTERM; then it reports not ready, finishes in-flight requests and exits.
func runBaseline(args []string) error {
	cfg, err := parseBaselineConfig(args)
	if err != nil {
		return err
	}
	logger, err := newLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	logger = logger.With("node", cfg.Node)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	opts := baseline.Options{
		PaymentTimeout: cfg.PaymentTimeout, OrderTimeout: cfg.OrderTimeout, SweepInterval: cfg.SweepInterval, Node: cfg.Node, Logger: logger,
	}
	stopSim, err := baselineProvider(cfg, &opts, logger)
	if err != nil {
		return err
	}
	if stopSim == nil {
		stopSim = func(context.Context) error { return nil }
	}
	svc, err := baseline.Open(ctx, cfg.Store, opts)
	if err != nil {
		_ = stopSim(context.Background())
		return err
	}
	defer svc.Close()
	catalog, keys, err := edgeSetup(ctx, logger, svc, cfg.Demo, cfg.Catalog, cfg.JWTSecret)
	if err != nil {
		return err
	}

	go edge.PruneRefreshTokens(ctx, svc, time.Now, time.Hour, logger)

	reg := newRegistry()
	var draining atomic.Bool
	inflight := &edge.InFlight{}
	app, err := edge.New(edge.Config{
		AccessTTL: cfg.AccessTTL, RefreshTTL: cfg.RefreshTTL, NodeID: cfg.Node, RequestTimeout: cfg.RequestTimeout, RetryFor: cfg.RequestTimeout,
	}, edge.Deps{
		Stock:  svc.Stock(), // issue 9: the baseline's inventory (edge.Deps.Stock comes with the edge's inventory endpoints)
		Orders: svc, Store: svc, Catalog: catalog, Logger: logger, Metrics: reg, InFlight: inflight, Keys: keys,
		// Ready while the database answers: a balancer then stops sending to a process
		// that lost it, and to one that is shutting down.
		Ready: func(ctx context.Context) error {
			if draining.Load() {
				return errors.New("shutting down")
			}
			return svc.Ping(ctx)
		},
	})
	if err != nil {
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- app.Listen(cfg.HTTP) }()
	logger.Info("baseline started", "http", cfg.HTTP, "store", redact(cfg.Store))

	select {
	case err := <-serveErr:
		return fmt.Errorf("serving HTTP on %s: %w", cfg.HTTP, err)
	case <-ctx.Done():
		logger.Info("signal received: shutting down")
	}
	// Nothing to hand over: every acknowledged command is committed. Finish the requests
	// in flight, then close the connections (as a node does: idle keep-alive connections
	// would otherwise hold the shutdown until they time out; a client resends on a closed
	// one, safely, with the same Idempotency-Key), then stop the sweeper and close the
	// pools (the deferred Close).
	start := time.Now()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	// The simulated provider delivers the outcomes it still holds while this process
	// still takes them.
	if err := stopSim(sctx); err != nil {
		logger.Warn("payment simulator did not deliver everything", "err", err)
	}
	draining.Store(true)
	if err := inflight.Wait(sctx); err != nil {
		logger.Warn("in-flight requests did not finish", "count", inflight.Count(), "err", err)
	}
	if err := app.ShutdownWithTimeout(100 * time.Millisecond); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		logger.Warn("HTTP shutdown", "err", err)
	}
	logger.Info("stopped", "shutdown_seconds", time.Since(start).Seconds())
	return nil
}
