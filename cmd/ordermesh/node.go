package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only with --pprof, on its own address
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ordermesh/ordermesh/actors"
	"github.com/ordermesh/ordermesh/actors/live"
	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/stock"
	"github.com/ordermesh/ordermesh/cluster"
	"github.com/ordermesh/ordermesh/edge"
	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/postgres"
	"github.com/ordermesh/ordermesh/persistence/sqlite"
)

func runNode(args []string) error {
	cfg, err := parseNodeConfig(args)
	if err != nil {
		return err
	}
	logger, err := newLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if cfg.Pprof != "" {
		go func() { logger.Warn("pprof server stopped", "err", http.ListenAndServe(cfg.Pprof, nil)) }()
	}

	store, err := openStore(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer store.Close()
	catalog, keys, err := edgeSetup(ctx, logger, store, cfg.Demo, cfg.Catalog, cfg.JWTSecret)
	if err != nil {
		return err
	}

	reg := newRegistry()
	var otelMetrics *cluster.OTelMetrics
	if cfg.ActorMetrics {
		// Before the actor system starts: protoactor reads the global meter provider.
		if otelMetrics, err = cluster.NewOTelMetrics(reg); err != nil {
			return err
		}
		defer func() { _ = otelMetrics.Shutdown(context.Background()) }()
	}
	metrics := cluster.NewMetrics(reg)
	if o, ok := store.(interface {
		ObserveBatches(persistence.BatchObserver)
	}); ok {
		o.ObserveBatches(metrics.StoreBatch)
	}

	stocks, ok := store.(persistence.Stocks)
	if !ok {
		return fmt.Errorf("store %s keeps no stock", redact(cfg.Store))
	}
	timeouts := cluster.TimeoutsFor(cfg.RequestTimeout)
	if err := timeouts.Check(); err != nil {
		return fmt.Errorf("--request-timeout %s: %w", cfg.RequestTimeout, err)
	}
	security, err := nodeSecurity(ctx, logger, store, cfg.Insecure)
	if err != nil {
		return err
	}

	// Live push: the grains of this node and the peers publish to hub; /ws serves it.
	hub := live.NewHub(live.HubConfig{Store: store, ResyncEvery: cfg.WS.Resync, Logger: logger})
	hubCtx, stopHub := context.WithCancel(context.Background())
	defer stopHub()
	go hub.Run(hubCtx)

	// Payments and fulfilment: the provider (and its simulator) exist before the node, the
	// pools that need the node to reach the orders start after it.
	jobs, ok := store.(persistence.Jobs)
	if !ok {
		return fmt.Errorf("store %s keeps no jobs", redact(cfg.Store))
	}
	secrets, err := webhookSecrets(ctx, store, cfg.Work.WebhookSecret)
	if err != nil {
		return err
	}
	var self atomic.Pointer[cluster.Node]
	pay, err := newPayments(cfg.Work, secrets, func() []string { return webhookTargets(self.Load(), advertised(cfg.HTTP, cfg.Advertise)) }, logger)
	if err != nil {
		return err
	}
	var fulfilment atomic.Pointer[actors.Fulfilment]

	// The edge measures its requests; the node reports them to the cluster view.
	requests := edge.NewRequestStats(nil)

	var join []string
	if cfg.Join != "" {
		join = strings.Split(cfg.Join, ",")
	}
	node, err := cluster.Start(cluster.Config{
		Remote: cfg.Remote, Gossip: cfg.Gossip, Advertise: cfg.Advertise, Join: join, HTTP: advertised(cfg.HTTP, cfg.Advertise),
		Fast: cfg.Fast, Logger: logger, Metrics: metrics, OTel: otelMetrics, MaxGrains: cfg.MaxGrains, RequestTimeout: timeouts.Attempt,
		Security:       security,
		Push:           &cluster.Push{Publish: hub.Publish, Topology: hub.Resync},
		PaymentBreaker: pay.breakerState(),
		Load: func() cluster.Load {
			l := requests.Load()
			return cluster.Load{RequestsPerSecond: l.RequestsPerSecond, LatencyP50Ms: l.LatencyP50Ms, LatencyP99Ms: l.LatencyP99Ms}
		},
		Grain: &actors.GrainConfig{
			Store:          store,
			Now:            time.Now,
			PaymentTimeout: cfg.PaymentTimeout,
			OrderTimeout:   cfg.OrderTimeout,
			IdleTimeout:    cfg.IdleTimeout,
			WriteTimeout:   timeouts.Write,
			Logger:         logger,
			Outcome:        metrics.Outcome,
			Queued: func(kind string) {
				// Only the fulfilment pool: a payment's first attempt is the pay's own (edge).
				if f := fulfilment.Load(); f != nil && kind == actors.JobFulfilment {
					f.Kick()
				}
			},
		},
		Stock: &actors.StockConfig{Store: stocks, Batched: metrics.StockBatch},
	})
	if err != nil {
		return err
	}
	metrics.Watch(reg, node)
	logger = logger.With("node", node.ID())
	self.Store(node)
	work := startWork(cfg.Work, pay, jobs, node, reg, logger)
	fulfilment.Store(work.fulfilment)

	sweepCtx, stopSweep := context.WithCancel(context.Background())
	defer stopSweep()
	sweeper := &actors.Sweeper{
		Store: store, Orders: node, Now: time.Now, Interval: cfg.SweepInterval, Batch: 500, CallTimeout: timeouts.Attempt,
		Owns: node.Owns, Logger: logger,
	}
	sweepDone := make(chan struct{})
	go func() { defer close(sweepDone); sweeper.Run(sweepCtx) }()
	go edge.PruneRefreshTokens(sweepCtx, store, time.Now, time.Hour, logger)

	var draining atomic.Bool
	inflight := &edge.InFlight{}
	app, err := edge.New(edge.Config{
		AccessTTL: cfg.AccessTTL, RefreshTTL: cfg.RefreshTTL, NodeID: node.ID(), RequestTimeout: timeouts.Request, RetryFor: timeouts.Retry,
		Limits: cfg.limits(), CORSOrigins: cfg.corsOrigins(), MetricsToken: cfg.MetricsToken, NoMetricsRoute: cfg.MetricsListen != "",
		WS:     edge.WSConfig{MaxConnections: cfg.WS.MaxConnections, SendBuffer: cfg.WS.SendBuffer, PingInterval: cfg.WS.PingInterval},
		WebDir: cfg.WebDir,
	}, edge.Deps{
		Orders: node, Stock: node.Stock(), Store: store, Catalog: catalog, Logger: logger, Metrics: reg, Cluster: clusterOps{node}, InFlight: inflight, Keys: keys, Requests: requests,
		Live: hub, Payments: work.edgePayments(), Fulfilment: work.fulfilment, Simulation: work.simulation,
		Ready: func(context.Context) error {
			select {
			case <-node.DrainRequested():
				return errors.New("draining")
			default:
			}
			if draining.Load() {
				return errors.New("draining")
			}
			return nil
		},
	})
	if err != nil {
		node.Stop(context.Background())
		return err
	}
	if cfg.Demo && cfg.DemoStock > 0 {
		// Before serving, so that the demo shop has stock from its first request on.
		seedCtx, cancelSeed := context.WithTimeout(ctx, 15*time.Second)
		seedStock(seedCtx, node.Stock(), catalog, cfg.DemoStock, logger)
		cancelSeed()
	}
	ln, err := listenHTTP(cfg.HTTP, cfg.MaxConns, reg)
	if err != nil {
		node.Stop(context.Background())
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- app.Listener(ln) }()
	if cfg.MetricsListen != "" {
		stopMetrics, err := serveMetrics(cfg.MetricsListen, edge.MetricsHandler(reg, cfg.MetricsToken), serveErr)
		if err != nil {
			node.Stop(context.Background())
			return err
		}
		defer stopMetrics()
	}
	logger.Info("node started", "http", cfg.HTTP, "remote", node.Address(), "gossip", cfg.Gossip, "store", redact(cfg.Store))

	select {
	case err := <-serveErr:
		node.Stop(context.Background())
		return fmt.Errorf("serving HTTP on %s: %w", cfg.HTTP, err)
	case <-ctx.Done():
		logger.Info("signal received: draining")
	case <-node.DrainRequested():
		logger.Info("drain requested: draining")
	}
	// Drain: announce leaving so peers route around this node, hand its orders over
	// (each grain finishes the command it is on), finish in-flight HTTP requests (they
	// are routed to the new owners), leave the cluster, exit 0.
	start := time.Now()
	draining.Store(true)
	hub.Drain() // WebSocket clients get 1001 and resubscribe on another node
	dctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	stopSweep()
	<-sweepDone
	// The pools finish the tasks they run (their orders are still here), and the simulated
	// provider delivers the outcomes it holds while the cluster still takes them.
	work.stop(dctx, logger)
	if err := node.Drain(dctx); err != nil {
		logger.Warn("drain", "err", err)
	}
	// Wait for the requests being served, then close the connections: idle keep-alive
	// connections would otherwise hold the shutdown until they time out. A client that
	// sends on a closed idle connection resends (the same Idempotency-Key makes it safe).
	if err := inflight.Wait(dctx); err != nil {
		logger.Warn("in-flight requests did not finish", "count", inflight.Count(), "err", err)
	}
	if err := app.ShutdownWithTimeout(100 * time.Millisecond); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		logger.Warn("HTTP shutdown", "err", err)
	}
	node.Stop(dctx)
	logger.Info("stopped", "drain_seconds", time.Since(start).Seconds())
	return nil
}

// advertised is the HTTP address published to peers: the advertise host, if given,
// with the listen port.
func advertised(listen, host string) string {
	if host == "" {
		return listen
	}
	if i := strings.LastIndex(listen, ":"); i >= 0 {
		return host + listen[i:]
	}
	return listen
}

// isPostgresURL reports whether a --store value names a PostgreSQL server (anything else
// is a file of the embedded store).
func isPostgresURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

func openStore(ctx context.Context, dsn string) (persistence.Store, error) {
	if isPostgresURL(dsn) {
		return postgres.Open(ctx, dsn)
	}
	return sqlite.Open(ctx, dsn)
}

// redact hides the password of a store URL in logs.
func redact(dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		if at := strings.LastIndex(dsn, "@"); at > i {
			if colon := strings.Index(dsn[i+3:at], ":"); colon >= 0 {
				return dsn[:i+3+colon] + ":***" + dsn[at:]
			}
		}
	}
	return dsn
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}

// edgeStore is what the edge setup needs of a store: accounts and signing keys.
type edgeStore interface {
	persistence.Users
	persistence.Secrets
}

// edgeSetup does what every process serving the edge does before it starts: seed the
// demo users if asked, load the catalog, and load the token keys from the store (kept up
// to date until ctx ends) unless --jwt-secret overrides them.
func edgeSetup(ctx context.Context, logger *slog.Logger, store edgeStore, demo bool, catalogPath, jwtSecret string) (*edge.Catalog, *edge.KeyRing, error) {
	if demo {
		if err := edge.SeedDemoUsers(ctx, store); err != nil {
			return nil, nil, fmt.Errorf("seeding demo users: %w", err)
		}
	}
	catalog := edge.DemoCatalog()
	if catalogPath != "" {
		var err error
		if catalog, err = edge.LoadCatalog(catalogPath); err != nil {
			return nil, nil, err
		}
	}
	if jwtSecret != "" {
		keys, err := edge.StaticKeyRing([]byte(jwtSecret))
		if err != nil {
			return nil, nil, fmt.Errorf("--jwt-secret: %w", err)
		}
		logger.Info("signing access tokens with --jwt-secret; the store's keys are not used")
		return catalog, keys, nil
	}
	keys, err := edge.OpenKeyRing(ctx, store, edge.KeyRingOptions{Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	go keys.Run(ctx)
	return catalog, keys, nil
}

// newRegistry is the Prometheus registry a process serves on /metrics.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// seedStock gives every catalog sku whose stock was never set n units, once per cluster:
// every node of a --demo cluster runs it, with one idempotency key, so however many run
// it (or run it again after a restart) the units are added once; a sku an operator has
// adjusted is left alone. It retries until the cluster answers or ctx ends.
func seedStock(ctx context.Context, svc stock.Service, catalog *edge.Catalog, n int64, logger *slog.Logger) {
	seeder := order.Principal{Subject: "demo", Role: order.RoleAdmin}
	for _, p := range catalog.Products() {
		for try := 0; ; try++ {
			err := seedSKU(ctx, svc, p.SKU, n, seeder)
			if err == nil {
				break
			}
			if !order.ErrorCode(err).Retryable() || ctx.Err() != nil {
				logger.Warn("stocking the demo catalog", "sku", p.SKU, "err", err)
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

func seedSKU(ctx context.Context, svc stock.Service, sku string, n int64, by order.Principal) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := svc.Get(cctx, sku, "demo-stock")
	if err != nil || v.Version > 0 {
		return err
	}
	_, err = svc.Execute(cctx, stock.Command{
		Type: stock.CmdAdjust, SKU: sku, Delta: n, Key: "demo-stock", Reason: "demo catalog", By: by,
	}, "demo-stock")
	return err
}
