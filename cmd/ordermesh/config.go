package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ordermesh/ordermesh/edge"
)

// nodeConfig is everything `ordermesh node` can be told. Every flag has an ORDERMESH_*
// environment variable; a flag given on the command line wins over the variable.
type nodeConfig struct {
	HTTP           string
	Store          string
	Remote         string
	Gossip         string
	Advertise      string
	Join           string
	Fast           bool
	Insecure       bool
	Demo           bool
	DemoStock      int64
	JWTSecret      string
	Catalog        string
	PaymentTimeout time.Duration
	OrderTimeout   time.Duration
	IdleTimeout    time.Duration
	SweepInterval  time.Duration
	AccessTTL      time.Duration
	RefreshTTL     time.Duration
	RequestTimeout time.Duration
	DrainTimeout   time.Duration
	MaxGrains      int
	LogLevel       string
	Pprof          string
	ActorMetrics   bool
	LogFormat      string
	// Abuse limits, CORS and access to /metrics: see limits.go.
	AuthRate      float64 // per minute
	AuthBurst     int
	APIRate       float64 // per second
	APIBurst      int
	MaxConns      int
	CORSOrigins   string
	MetricsToken  string
	MetricsListen string
	WebDir        string // the built web app, served from /

	WS   wsFlags   // live push on /ws
	Work workFlags // payments and fulfilment
}

// wsFlags tune live push on /ws.
type wsFlags struct {
	MaxConnections int
	SendBuffer     int
	PingInterval   time.Duration
	Resync         time.Duration
}

// envName is the environment variable behind a flag: --payment-timeout → ORDERMESH_PAYMENT_TIMEOUT.
func envName(flagName string) string {
	return "ORDERMESH_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func parseNodeConfig(args []string) (nodeConfig, error) {
	var c nodeConfig
	fs := flag.NewFlagSet("ordermesh node", flag.ContinueOnError)
	fs.StringVar(&c.HTTP, "http", "127.0.0.1:8080", "HTTP listen address of the edge (REST API, /metrics, /healthz, /readyz)")
	fs.StringVar(&c.Store, "store", "data/ordermesh.db", "a postgres:// URL, or a file path for the embedded store")
	fs.StringVar(&c.Remote, "remote", "127.0.0.1:0", "host:port for actor remoting between nodes (port 0 picks a free port)")
	fs.StringVar(&c.Gossip, "gossip", "127.0.0.1:7946", "host:port for cluster membership (memberlist, TCP and UDP)")
	fs.StringVar(&c.Advertise, "advertise", "", "host that other nodes should use to reach this one, when it differs from the bind addresses")
	fs.StringVar(&c.Join, "join", "", "comma-separated gossip addresses (host:port) of running nodes; empty starts a new cluster")
	fs.BoolVar(&c.Fast, "fast-failure-detection", false, "detect dead nodes within about a second (for local clusters and tests; more gossip traffic)")
	fs.BoolVar(&c.Insecure, "insecure", false, "run actor remoting and gossip without TLS or encryption: anyone reaching those ports controls the node (experiments only; secure nodes refuse it)")
	fs.BoolVar(&c.Demo, "demo", false, "seed the demo users alice and bob (shoppers), olga (operator), ada (admin); password \"ordermesh\"; and stock the catalog (see --demo-stock)")
	fs.Int64Var(&c.DemoStock, "demo-stock", 100, "with --demo: units of each catalog sku a new cluster starts with (a sku whose stock was ever set is left alone)")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "HS256 secret for access tokens, at least 32 bytes, overriding the signing keys in the store; every node must then get the same one (default: the store's keys, see ordermesh keys)")
	fs.StringVar(&c.Catalog, "catalog", "", "product catalog JSON file (default: the built-in demo catalog)")
	fs.DurationVar(&c.PaymentTimeout, "payment-timeout", 15*time.Minute, "how long a PAYING order waits for its payment before it is closed")
	fs.DurationVar(&c.OrderTimeout, "order-timeout", 30*time.Minute, "how long after its creation an unpaid (CREATED) order is closed and its stock released")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 5*time.Minute, "an order grain with no messages for this long is passivated")
	fs.IntVar(&c.MaxGrains, "max-grains", 1_000_000, "most grains (orders and skus) active on this node at once; past it the least recently used is passivated (about 3 KiB of heap each; 0 = no bound)")
	fs.DurationVar(&c.SweepInterval, "sweep-interval", time.Second, "how often the store is searched for payment deadlines that passed")
	fs.DurationVar(&c.AccessTTL, "access-ttl", 15*time.Minute, "lifetime of an access token (at most 1h)")
	fs.DurationVar(&c.RefreshTTL, "refresh-ttl", 7*24*time.Hour, "lifetime of a refresh token; each refresh hands out a new one with a new lifetime")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 10*time.Second, "how long one API request may take, retries included; half of it is spent retrying, in attempts of at most 2s each, and a grain gives each store call three tenths of an attempt")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 30*time.Second, "how long shutdown waits for in-flight requests and grains")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.Pprof, "pprof", "", "serve Go's net/http/pprof profiles on this address (off by default; never expose it)")
	fs.BoolVar(&c.ActorMetrics, "actor-metrics", false, "export protoactor-go's own metrics (protoactor_*: message latency per actor, futures, spawns) on /metrics; they cost about a tenth of a busy node's CPU (every message and request is timed and labelled), so they are off unless asked for")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.IntVar(&c.WS.MaxConnections, "ws-max-connections", edge.DefaultWSMaxConnections, "most WebSocket clients (/ws) connected to this node at once; one more is closed with 1013")
	fs.IntVar(&c.WS.SendBuffer, "ws-send-buffer", edge.DefaultWSSendBuffer, "order changes that may wait for one WebSocket client; one more closes it with 4408 (too slow)")
	fs.DurationVar(&c.WS.PingInterval, "ws-ping-interval", edge.DefaultWSPingInterval, "WebSocket ping interval; a client that answers none for two intervals is dropped")
	fs.DurationVar(&c.WS.Resync, "ws-resync-interval", 30*time.Second, "how often WebSocket subscriptions re-check their orders against the store for changes whose live copy was lost (0 = only when the cluster changes)")
	addEdgeFlags(fs, &c)
	addWorkFlags(fs, &c.Work)
	if err := parseWithEnv(fs, args, "Usage: ordermesh node [flags]\n\nStarts one ordermesh node: order grains, the HTTP edge and the payment sweeper.\n"); err != nil {
		return c, err
	}
	if err := c.checkEdgeFlags(); err != nil {
		return c, err
	}
	if c.WS.MaxConnections < 1 || c.WS.SendBuffer < 1 || c.WS.PingInterval <= 0 || c.WS.Resync < 0 {
		return c, fmt.Errorf("--ws-max-connections, --ws-send-buffer and --ws-ping-interval must be positive, --ws-resync-interval not negative")
	}
	if err := c.Work.check(c.Demo, fs); err != nil {
		return c, err
	}
	if c.MaxGrains < 0 {
		return c, fmt.Errorf("--max-grains must be 0 (no bound) or more, not %d", c.MaxGrains)
	}
	return c, nil
}

// parseWithEnv parses args into fs after applying each flag's ORDERMESH_* environment
// variable, so the command line wins; its usage lists every flag with its variable.
func parseWithEnv(fs *flag.FlagSet, args []string, intro string) error {
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "%s\nFlags (each also read from the environment variable shown):\n", intro)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" && f.DefValue != "false" {
				def = fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(out, "  --%s\n    \t%s%s [%s]\n", f.Name, f.Usage, def, envName(f.Name))
		})
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := os.LookupEnv(envName(f.Name)); ok && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return nil
}
