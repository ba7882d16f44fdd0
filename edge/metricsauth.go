package edge

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ordermesh/ordermesh/actors/order"
)

// Access to /metrics: open by default, like the rest of a node's operational endpoints
// on a private network. Config.MetricsToken requires "Authorization: Bearer <token>";
// Config.NoMetricsRoute leaves /metrics off the API port, for a node that serves it on a
// separate address with MetricsHandler.

// bearerMatches reports whether an Authorization header carries token, in constant time.
func bearerMatches(header, token string) bool {
	scheme, got, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) == 1
}

// metricsAccess guards /metrics on the API port when a token is configured.
func (s *server) metricsAccess(c *fiber.Ctx) error {
	if s.cfg.MetricsToken != "" && !bearerMatches(c.Get(fiber.HeaderAuthorization), s.cfg.MetricsToken) {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="metrics"`)
		return order.Errorf(order.CodeUnauthenticated, "a bearer token is required for /metrics")
	}
	return c.Next()
}

// MetricsHandler serves g for a separate metrics listener (--metrics-listen); a non-empty
// token is required as a bearer token there too.
func MetricsHandler(g prometheus.Gatherer, token string) http.Handler {
	h := promhttp.HandlerFor(g, promhttp.HandlerOpts{})
	if token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !bearerMatches(r.Header.Get("Authorization"), token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			http.Error(w, "a bearer token is required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
