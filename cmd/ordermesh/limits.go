package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/ordermesh/ordermesh/edge"
)

// DefaultWebDir is where `go tool task web` builds the app, from the repository's root.
const DefaultWebDir = "vue-app/dist"

// addEdgeFlags defines the flags of the abuse limits, CORS, access to /metrics and the
// web app.
func addEdgeFlags(fs *flag.FlagSet, c *nodeConfig) {
	d := edge.DefaultLimits()
	fs.Float64Var(&c.AuthRate, "auth-rate", float64(d.AuthRate)*60, "authentication attempts (login, register, refresh) allowed per minute, separately per client address and per username; over it is 429 with Retry-After (0 = no limit)")
	fs.IntVar(&c.AuthBurst, "auth-burst", d.AuthBurst, "authentication attempts allowed at once before --auth-rate applies")
	fs.Float64Var(&c.APIRate, "api-rate", float64(d.APIRate), "order API requests allowed per second per user; over it is 429 with Retry-After (0 = no limit)")
	fs.IntVar(&c.APIBurst, "api-burst", d.APIBurst, "order API requests allowed at once per user before --api-rate applies")
	fs.IntVar(&c.MaxConns, "max-conns-per-address", d.ConnsPerAddress, "connections one client address (IPv6: one /64) may hold open; more are answered 429 and closed (0 = no cap). Behind a proxy every client has the proxy's address")
	fs.StringVar(&c.CORSOrigins, "cors-origins", "", "comma-separated origins (https://shop.example.com) whose web apps may call the API from a browser; empty = CORS off")
	fs.StringVar(&c.MetricsToken, "metrics-token", "", "bearer token that GET /metrics requires (default: /metrics is open, like /healthz)")
	fs.StringVar(&c.WebDir, "web-dir", DefaultWebDir, "directory of the built web app (go tool task web), served from / with index.html for the app's routes; relative to the working directory; empty = no app")
	fs.StringVar(&c.MetricsListen, "metrics-listen", "", "serve /metrics on this address instead of the --http one (with --metrics-token, there too)")
}

// checkEdgeFlags refuses values that would be silently wrong.
func (c nodeConfig) checkEdgeFlags() error {
	switch {
	case c.AuthRate < 0 || c.APIRate < 0:
		return errors.New("--auth-rate and --api-rate must be 0 (no limit) or more")
	case c.AuthRate > 0 && c.AuthBurst < 1, c.APIRate > 0 && c.APIBurst < 1:
		return errors.New("--auth-burst and --api-burst must be at least 1 when their rate is set")
	case c.MaxConns < 0:
		return fmt.Errorf("--max-conns-per-address must be 0 (no cap) or more, not %d", c.MaxConns)
	}
	return nil
}

// limits are the edge.Limits of the flags.
func (c nodeConfig) limits() edge.Limits {
	l := edge.Limits{AuthBurst: c.AuthBurst, APIRate: rate.Limit(c.APIRate), APIBurst: c.APIBurst, ConnsPerAddress: c.MaxConns}
	if c.AuthRate > 0 {
		l.AuthRate = rate.Every(time.Duration(float64(time.Minute) / c.AuthRate))
	}
	return l
}

// corsOrigins splits --cors-origins.
func (c nodeConfig) corsOrigins() []string {
	var out []string
	for _, o := range strings.Split(c.CORSOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// listenHTTP binds the edge's address, with the per-address connection cap.
func listenHTTP(addr string, perAddress int, reg prometheus.Registerer) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serving HTTP on %s: %w", addr, err)
	}
	limited, err := edge.LimitConnections(ln, perAddress, reg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return limited, nil
}

// serveMetrics serves h at /metrics on addr (--metrics-listen) until the returned stop is
// called; a failure to serve is sent to errs.
func serveMetrics(addr string, h http.Handler, errs chan<- error) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serving metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			select {
			case errs <- fmt.Errorf("serving metrics on %s: %w", addr, err):
			default:
			}
		}
	}()
	return func() { _ = srv.Close() }, nil
}
