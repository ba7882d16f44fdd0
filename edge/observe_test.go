package edge

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/ordermesh/ordermesh/actors/order"
)

// withCORS allows the given origins.
func withCORS(origins ...string) option {
	return func(c *Config, _ *Deps) { c.CORSOrigins = origins }
}

// TestCORSPreflight: a preflight from a listed origin is allowed with the API's methods
// and headers; one from another origin gets no Access-Control-Allow-Origin. Both are 204
// without a body but with the headers every answer carries.
func TestCORSPreflight(t *testing.T) {
	h := newHarness(t, withCORS("https://shop.example.com"))
	preflight := func(origin string) response {
		r, err := h.try(req{method: "OPTIONS", path: "/api/v1/orders", header: map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "authorization,content-type,idempotency-key",
		}})
		if r.Status != 204 || len(r.Raw) != 0 {
			t.Fatalf("preflight from %s: %d %q (%v)", origin, r.Status, r.Raw, err)
		}
		if !saneRequestID(r.Header.Get(HeaderRequestID)) {
			t.Errorf("preflight without request id")
		}
		checkSecurityHeaders(t, r.Header)
		return r
	}
	ok := preflight("https://shop.example.com")
	if got := ok.Header.Get("Access-Control-Allow-Origin"); got != "https://shop.example.com" {
		t.Errorf("Access-Control-Allow-Origin %q", got)
	}
	if got := ok.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(got, "POST") {
		t.Errorf("Access-Control-Allow-Methods %q", got)
	}
	for _, want := range []string{"Authorization", "Idempotency-Key", "Content-Type"} {
		if got := ok.Header.Get("Access-Control-Allow-Headers"); !strings.Contains(got, want) {
			t.Errorf("Access-Control-Allow-Headers %q lacks %s", got, want)
		}
	}
	if got := ok.Header.Get("Access-Control-Allow-Credentials"); got != "" {
		t.Errorf("credentials allowed: %q", got)
	}
	bad := preflight("https://evil.example.net")
	if got := bad.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("a foreign origin was allowed: %q", got)
	}

	// An actual request from the listed origin may read the request id.
	r := h.do(req{method: "GET", path: "/api/v1/catalog", header: map[string]string{"Origin": "https://shop.example.com"}}).expect(t, 200, order.CodeOK)
	if got := r.Header.Get("Access-Control-Allow-Origin"); got != "https://shop.example.com" {
		t.Errorf("simple request: Access-Control-Allow-Origin %q", got)
	}
	if got := r.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(got, HeaderRequestID) {
		t.Errorf("Access-Control-Expose-Headers %q", got)
	}
	metrics := string(h.do(req{method: "GET", path: "/metrics"}).Raw)
	if !strings.Contains(metrics, `route="preflight"`) {
		t.Errorf("preflights not counted under their own route:\n%s", grepLines(metrics, "requests_total"))
	}
}

// TestCORSOffByDefault: without origins there is no CORS, and a preflight is just an
// OPTIONS request the API does not route: a 405 envelope without CORS headers.
func TestCORSOffByDefault(t *testing.T) {
	h := newHarness(t)
	r := h.do(req{method: "OPTIONS", path: "/api/v1/orders", header: map[string]string{
		"Origin": "https://shop.example.com", "Access-Control-Request-Method": "POST",
	}}).expect(t, 405, order.CodeMethodNotAllowed)
	if got := r.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("Access-Control-Allow-Origin %q with CORS off", got)
	}
}

func TestCORSOriginsAreChecked(t *testing.T) {
	for _, o := range []string{"*", "shop.example.com", "https://shop.example.com/", "ftp://x", "https://user@shop.example.com"} {
		if err := checkOrigins([]string{o}); err == nil {
			t.Errorf("origin %q accepted", o)
		}
	}
	if err := checkOrigins([]string{"https://shop.example.com", "http://localhost:5173", "https://*.example.com"}); err != nil {
		t.Error(err)
	}
}

// TestClientVersion: X-Client-Version is logged as given and counted with a bounded set
// of labels.
func TestClientVersion(t *testing.T) {
	h := newHarness(t)
	catalog := func(version string) {
		t.Helper()
		hdr := map[string]string{}
		if version != "" {
			hdr[HeaderClientVersion] = version
		}
		h.do(req{method: "GET", path: "/api/v1/catalog", header: hdr}).expect(t, 200, order.CodeOK)
	}
	catalog("1.4.2")
	catalog("1.4.2")
	catalog("")
	catalog("<script>")
	for i := range 40 {
		catalog("2.0." + strconv.Itoa(i))
	}
	metrics := string(h.do(req{method: "GET", path: "/metrics"}).Raw)
	for _, want := range []string{
		`ordermesh_http_client_version_requests_total{version="1.4.2"} 2`,
		`ordermesh_http_client_version_requests_total{version="invalid"} 1`,
		`ordermesh_http_client_version_requests_total{version="other"} 9`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("missing %s in\n%s", want, grepLines(metrics, "client_version"))
		}
	}
	if n := strings.Count(metrics, "ordermesh_http_client_version_requests_total{"); n > maxClientVersions+3 {
		t.Errorf("%d client version series", n)
	}
	if got := len(h.logs.lines(t, "client_version", "1.4.2")); got != 2 {
		t.Errorf("%d log lines with client_version 1.4.2, want 2", got)
	}
}

// TestAccessLogCarriesUserAndOrder: every access log line has the request id, and the
// user and order id once they are known.
func TestAccessLogCarriesUserAndOrder(t *testing.T) {
	h := newHarness(t)
	id := h.createOrder("alice", "k1", twoTeas).ID
	h.do(req{method: "GET", path: "/api/v1/orders/" + id, token: h.token("alice")}).expect(t, 200, order.CodeOK)
	h.do(req{method: "POST", path: "/auth/login", body: loginBody("bob", "nope")}).expect(t, 401, order.CodeUnauthenticated)
	h.do(req{method: "GET", path: "/healthz"}).expect(t, 200, order.CodeOK)

	lines := h.logs.lines(t, "msg", "http request")
	if len(lines) != 4 {
		t.Fatalf("%d access log lines, want 4", len(lines))
	}
	for _, l := range lines {
		if id, _ := l["request_id"].(string); !saneRequestID(id) {
			t.Errorf("no request id: %v", l)
		}
	}
	for i, want := range []struct{ user, order string }{{"alice", id}, {"alice", id}, {"bob", ""}, {"", ""}} {
		if got, _ := lines[i]["user"].(string); got != want.user {
			t.Errorf("line %d: user %q, want %q", i, got, want.user)
		}
		if got, _ := lines[i]["order_id"].(string); got != want.order {
			t.Errorf("line %d: order_id %q, want %q", i, got, want.order)
		}
	}
	// Handler log lines of an authenticated request carry the user too.
	h.act("alice", id, "pay", "p1").expect(t, 200, order.CodeOK)
	for _, l := range h.logs.lines(t, "order_id", id) {
		if l["user"] != "alice" {
			t.Errorf("log line without the user: %v", l)
		}
	}
}

// TestMetricsToken: with a token, /metrics wants it as a bearer token.
func TestMetricsToken(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Deps) { c.MetricsToken = "scrape-secret" })
	r, _ := h.try(req{method: "GET", path: "/metrics"})
	if r.Status != http.StatusUnauthorized || !strings.Contains(string(r.Raw), `"code":40100`) {
		t.Fatalf("without token: %d %s", r.Status, r.Raw)
	}
	r, _ = h.try(req{method: "GET", path: "/metrics", token: "wrong"})
	if r.Status != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", r.Status)
	}
	r, _ = h.try(req{method: "GET", path: "/metrics", token: "scrape-secret"})
	if r.Status != 200 || !strings.Contains(string(r.Raw), "ordermesh_http_requests_total") {
		t.Fatalf("with token: %d", r.Status)
	}
}

// TestNoMetricsRoute: a node serving metrics elsewhere has no /metrics on the API port.
func TestNoMetricsRoute(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Deps) { c.NoMetricsRoute = true })
	r, _ := h.try(req{method: "GET", path: "/metrics"})
	if r.Status != 404 {
		t.Fatalf("/metrics: %d", r.Status)
	}
}

// TestMetricsHandlerToken: the separate metrics listener applies the token too.
func TestMetricsHandlerToken(t *testing.T) {
	h := newHarness(t)
	srv := MetricsHandler(h.reg, "s3cret")
	for _, tt := range []struct {
		auth string
		want int
	}{{"", 401}, {"Bearer nope", 401}, {"Bearer s3cret", 200}, {"bearer s3cret", 200}} {
		rec := httptest.NewRecorder()
		r, _ := http.NewRequest("GET", "/metrics", nil)
		if tt.auth != "" {
			r.Header.Set("Authorization", tt.auth)
		}
		srv.ServeHTTP(rec, r)
		if rec.Code != tt.want {
			t.Errorf("%q: %d, want %d", tt.auth, rec.Code, tt.want)
		}
	}
}
