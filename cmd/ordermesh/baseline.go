package main

import (
	"context"
	crand "crypto/rand"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

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
	WebDir         string // the built web app, served from / as a node does

	Work workFlags // payments and fulfilment, as `ordermesh node` takes them
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
	fs.StringVar(&c.WebDir, "web-dir", DefaultWebDir, "directory of the built web app, served from / as a node does; empty = no app")
	addWorkFlags(fs, &c.Work)
	if err := parseWithEnv(fs, args, "Usage: ordermesh baseline [flags]\n\n"+
		"Starts the classic stateless design for comparison: the same HTTP API as a node, with every\n"+
		"order transition one PostgreSQL statement (no actors, no group commit). Several may run\n"+
		"behind a load balancer.\n"); err != nil {
		return c, err
	}
	if !isPostgresURL(c.Store) {
		return c, fmt.Errorf("--store must be a postgres:// URL: the baseline is the PostgreSQL design")
	}
	if err := c.Work.check(c.Demo, fs); err != nil {
		return c, err
	}
	return c, nil
}

// baselineProvider sets up the payments and the warehouse of opts as cfg says: nothing
// for manual payments; else the guarded client of the provider, which with --payments sim
// is a simulated one served by this process on a loopback port, posting its webhooks to
// this baseline's own HTTP address and signing them with --webhook-secret or, without it,
// a secret of the moment (the baseline has no cluster to share one with).
func baselineProvider(cfg baselineConfig, opts *baseline.Options, logger *slog.Logger) (payments, *warehouse.Sim, error) {
	wh := newWarehouse(cfg.Work)
	if cfg.Work.AutoShip {
		opts.Warehouse = wh
		opts.FulfilmentWorkers, opts.FulfilmentAttempts = cfg.Work.Workers, cfg.Work.Attempts
		opts.TaskLease = cfg.Work.Lease
	}
	secret := cfg.Work.WebhookSecret
	if secret == "" {
		secret = "whsec_" + crand.Text()
	}
	pay, err := newPayments(cfg.Work, [][]byte{[]byte(secret)}, func() []string { return []string{webhookURL(cfg.HTTP)} }, logger)
	if err != nil {
		return pay, nil, err
	}
	if pay.provider != nil {
		opts.Provider, opts.WebhookSecrets = pay.provider, pay.secrets
	}
	return pay, wh, nil
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
	pay, wh, err := baselineProvider(cfg, &opts, logger)
	if err != nil {
		return err
	}
	svc, err := baseline.Open(ctx, cfg.Store, opts)
	if err != nil {
		pay.close(context.Background(), logger)
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
		WebDir: cfg.WebDir,
	}, edge.Deps{
		Stock:  svc.Stock(), // issue 9: the baseline's inventory (edge.Deps.Stock comes with the edge's inventory endpoints)
		Orders: svc, Store: svc, Catalog: catalog, Logger: logger, Metrics: reg, InFlight: inflight, Keys: keys,
		Payments: baselinePayments(svc), Fulfilment: svc.Fulfilment(), Simulation: simulation{node: cfg.Node, provider: pay.sim, warehouse: wh},
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
	pay.close(sctx, logger)
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

// baselinePayments is the baseline's payments for the edge: a nil interface with
// --payments manual.
func baselinePayments(svc *baseline.Service) edge.Payments {
	if p := svc.Payments(); p != nil {
		return p
	}
	return nil
}
