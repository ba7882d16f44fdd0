// Package edge is the HTTP face of an ordermesh node: the REST API under /api/v1, login
// and JWT authentication, the catalog, health and readiness probes and Prometheus metrics.
// It turns requests into actors.Commands for the order grains (through order.Service),
// reads listings and histories straight from the store, and answers every request with
// one JSON envelope whose code comes from order.Code.
package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/stock"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordermesh/ordermesh/actors/live"
	"github.com/ordermesh/ordermesh/persistence"
)

// Defaults used for zero Config fields.
const (
	DefaultAccessTTL      = 15 * time.Minute
	DefaultBodyLimit      = 64 << 10
	DefaultHeaderLimit    = 8 << 10
	DefaultRequestTimeout = 10 * time.Second
	DefaultRetryFor       = 5 * time.Second
	DefaultIssuer         = "ordermesh"
	DefaultAudience       = "ordermesh-api"
	DefaultRefreshTTL     = 7 * 24 * time.Hour
	// MaxAccessTTL is the longest AccessTTL New accepts: an access token cannot be
	// revoked, so its life is what a stolen one, or a disabled user's, is worth.
	MaxAccessTTL = time.Hour
	// MinSecretLen is the shortest JWT secret New accepts: HS256 is only as strong as its key.
	MinSecretLen = 32
)

// Config tunes the edge. Zero values take the defaults above.
type Config struct {
	// JWTSecret, if set, is the one HS256 key for access tokens (at least MinSecretLen
	// bytes), instead of the store's keys in Deps.Keys: see StaticKeyRing.
	JWTSecret      []byte
	Issuer         string        // "iss" of issued tokens, checked on every request
	Audience       string        // "aud" of issued tokens, checked on every request
	AccessTTL      time.Duration // lifetime of an access token, at most MaxAccessTTL; tokens with a longer exp-iat are refused
	RefreshTTL     time.Duration // lifetime of a refresh token; each rotation starts a new one
	BodyLimit      int           // largest accepted request body, in bytes
	HeaderLimit    int           // largest accepted request line plus headers, in bytes; more is a 431
	NodeID         string        // this node's id, sent in the X-Node-ID header
	RequestTimeout time.Duration // upper bound for one request's work on grains and store
	RetryFor       time.Duration // how long a retryable command is retried before 503
	// Limits are the abuse limits (see limits.go); the zero value limits nothing.
	Limits Limits
	// CORSOrigins are the origins (scheme://host[:port]) whose web apps may call the API
	// from a browser; none = CORS off (see cors.go).
	CORSOrigins []string
	// MetricsToken, if set, is the bearer token /metrics requires.
	MetricsToken string
	// NoMetricsRoute leaves /metrics off this app, when it is served on its own address.
	NoMetricsRoute bool
	WS             WSConfig // live push on /ws
	// WebDir is the built web app (vue-app/dist), served from / with index.html for the
	// app's own routes (see web.go); "" = no app, every unknown path is a 404.
	WebDir string
}

func (c Config) withDefaults() Config {
	if c.Issuer == "" {
		c.Issuer = DefaultIssuer
	}
	if c.Audience == "" {
		c.Audience = DefaultAudience
	}
	if c.AccessTTL <= 0 {
		c.AccessTTL = DefaultAccessTTL
	}
	if c.RefreshTTL <= 0 {
		c.RefreshTTL = DefaultRefreshTTL
	}
	if c.BodyLimit <= 0 {
		c.BodyLimit = DefaultBodyLimit
	}
	if c.HeaderLimit <= 0 {
		c.HeaderLimit = DefaultHeaderLimit
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.RetryFor <= 0 {
		c.RetryFor = DefaultRetryFor
	}
	return c
}

// Store is the part of persistence the edge reads directly: listings, event histories,
// accounts and sessions. Writes to orders only ever go through the grains (order.Service).
type Store interface {
	persistence.Orders
	persistence.Users
	persistence.RefreshTokens
}

// Deps are the collaborators of the edge. Orders and Store are required.
type Deps struct {
	Orders  order.Service        // executes commands on the order grains
	Store   Store                // listings, events, users
	Catalog *Catalog             // nil = DemoCatalog()
	Logger  *slog.Logger         // nil = slog.Default()
	Metrics *prometheus.Registry // nil = a private registry; served at /metrics
	// Ready reports whether the node has joined the cluster and serves; a non-nil error
	// makes /readyz answer 503 with its text. nil = always ready.
	Ready func(ctx context.Context) error
	Clock func() time.Time // nil = time.Now; issues and checks tokens
	// InFlight, if set, counts the requests being served (for draining).
	InFlight *InFlight
	// Requests, if set, keeps the recent rate and latencies of the requests served, which
	// the cluster view shows per member (see RequestStats).
	Requests *RequestStats
	// Cluster serves the cluster view and drain endpoints; nil = a node that is not
	// clustered, whose cluster endpoints answer 503.
	Cluster Cluster
	// Keys sign and verify access tokens and key the listing cursors (see OpenKeyRing).
	// Exactly one of Keys and Config.JWTSecret must be set.
	Keys *KeyRing
	// Live is the node's live push hub; nil = no /ws.
	Live *live.Hub
	// Stock executes commands on the stock grains and reads their views: the inventory
	// endpoints and the catalog's "available". nil = a node without inventory: the
	// inventory endpoints answer 503 (50300) and the catalog omits "available".
	Stock stock.Service
	// Payments submits payment intents after a pay and holds the webhook secrets: nil = a
	// node without a payment provider, whose webhook answers 503 (50300) and whose pay
	// sends no Payment-Submission header (see payments.go).
	Payments Payments
	// Fulfilment lists, retries and cancels the fulfilment tasks: nil = the fulfilment
	// endpoints answer 503 (50300) (see fulfilment.go).
	Fulfilment Fulfilment
	// Simulation reads and changes this node's simulated provider and warehouse: nil =
	// the simulation endpoints answer 503 (50300) (see simulation.go).
	Simulation Simulation
}

// server holds what the handlers share. It is built once by New and read-only afterwards.
type server struct {
	cfg      Config
	orders   order.Service
	store    Store
	catalog  *Catalog
	log      *slog.Logger
	ready    func(ctx context.Context) error
	cluster  Cluster       // may be nil
	stock    stock.Service // may be nil
	payments Payments      // may be nil
	fulfil   Fulfilment    // may be nil
	sim      Simulation    // may be nil
	now      func() time.Time
	metrics  *metrics
	registry *prometheus.Registry // served at /metrics
	tokens   *tokenIssuer
	inflight *InFlight
	cursors  cursorSigner
	ws       *wsServer // nil = no /ws
	limits   *limiting
	guard    *guardMetrics
	versions clientVersions
	webhooks *webhookMetrics
	web      *webFiles     // nil = no web app
	requests *RequestStats // may be nil
}

// New builds the Fiber app of one node. It fails on configuration errors (a weak secret,
// missing dependencies) so that they surface at start-up rather than on the first request.
func New(cfg Config, deps Deps) (*fiber.App, error) {
	cfg = cfg.withDefaults()
	if cfg.AccessTTL > MaxAccessTTL {
		return nil, fmt.Errorf("edge: access token lifetime %v is over the maximum %v", cfg.AccessTTL, MaxAccessTTL)
	}
	switch {
	case deps.Keys != nil && cfg.JWTSecret != nil:
		return nil, errors.New("edge: both Config.JWTSecret and Deps.Keys are set; give one")
	case deps.Keys == nil:
		keys, err := StaticKeyRing(cfg.JWTSecret)
		if err != nil {
			return nil, err
		}
		deps.Keys = keys
	}
	if deps.Orders == nil || deps.Store == nil {
		return nil, errors.New("edge: Deps.Orders and Deps.Store are required")
	}
	if deps.Catalog == nil {
		deps.Catalog = DemoCatalog()
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Metrics == nil {
		deps.Metrics = prometheus.NewRegistry()
	}
	if deps.Ready == nil {
		deps.Ready = func(context.Context) error { return nil }
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("edge: registering metrics: %w", err)
	}
	if err := checkOrigins(cfg.CORSOrigins); err != nil {
		return nil, err
	}
	limits, err := newLimiting(cfg.Limits)
	if err != nil {
		return nil, err
	}
	guard, err := newGuardMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("edge: registering metrics: %w", err)
	}
	webhooks, err := newWebhookMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("edge: registering metrics: %w", err)
	}
	s := &server{
		cfg: cfg, orders: deps.Orders, store: deps.Store, catalog: deps.Catalog,
		log: deps.Logger, ready: deps.Ready, cluster: deps.Cluster, stock: deps.Stock, now: deps.Clock, metrics: m, registry: deps.Metrics, inflight: deps.InFlight,
		tokens:  &tokenIssuer{keys: deps.Keys, issuer: cfg.Issuer, audience: cfg.Audience, ttl: cfg.AccessTTL, now: deps.Clock},
		cursors: cursorSigner{key: deps.Keys.cursorKey()},
		limits:  limits, guard: guard,
		payments: deps.Payments, fulfil: deps.Fulfilment, sim: deps.Simulation, webhooks: webhooks,
		web: newWebFiles(cfg.WebDir), requests: deps.Requests,
	}
	if deps.Live != nil {
		wm, err := newWSMetrics(deps.Metrics)
		if err != nil {
			return nil, fmt.Errorf("edge: registering metrics: %w", err)
		}
		s.ws = newWSServer(cfg.WS, deps.Live, wm)
	}

	app := fiber.New(fiber.Config{
		AppName:   "ordermesh",
		BodyLimit: cfg.BodyLimit,
		// fasthttp reads the request line and headers into this buffer; what does not fit
		// is ErrSmallBuffer, which handleError answers with 431.
		ReadBufferSize:        cfg.HeaderLimit,
		ErrorHandler:          s.handleError,
		DisableStartupMessage: true,
		// Handlers hand strings from the request (ids, keys, reasons) to grains that keep
		// them; fasthttp would otherwise reuse their bytes for the next request.
		Immutable:     true,
		CaseSensitive: true,
		ReadTimeout:   30 * time.Second,
		WriteTimeout:  30 * time.Second,
		IdleTimeout:   2 * time.Minute,
	})
	s.routes(app)
	s.refuseUnknownMethods(app)
	s.logWebDir()
	return app, nil
}
