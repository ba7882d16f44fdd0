package edge

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/ordermesh/ordermesh/actors/order"
)

// withLimits sets the abuse limits of a harness (which has none by default).
func withLimits(l Limits) option {
	return func(c *Config, _ *Deps) { c.Limits = l }
}

func loginBody(user, password string) string {
	return `{"username":"` + user + `","password":"` + password + `"}`
}

// TestWrongPasswordsAreLimited is the acceptance test: 30 wrong passwords for one user
// from one address meet a 429 with Retry-After well before the 30th; once the wait is
// over (on the fake clock) one more attempt is let through.
func TestWrongPasswordsAreLimited(t *testing.T) {
	h := newHarness(t, withLimits(DefaultLimits()))
	limitedAt := 0
	var limited response
	for i := 1; i <= 30; i++ {
		r := h.do(req{method: "POST", path: "/auth/login", body: loginBody("alice", "wrong")})
		if r.Status == 429 {
			limited = r.expect(t, 429, order.CodeRateLimited)
			limitedAt = i
			break
		}
		r.expect(t, 401, order.CodeUnauthenticated)
	}
	if limitedAt == 0 || limitedAt >= 30 {
		t.Fatalf("30 wrong passwords were not limited (first 429 at %d)", limitedAt)
	}
	if limitedAt != DefaultLimits().AuthBurst+1 {
		t.Errorf("first 429 at attempt %d, want %d (the burst, then refused)", limitedAt, DefaultLimits().AuthBurst+1)
	}
	wait, err := strconv.Atoi(limited.Header.Get("Retry-After"))
	if err != nil || wait < 1 || wait > 6 {
		t.Fatalf("Retry-After %q, want 1..6 seconds", limited.Header.Get("Retry-After"))
	}
	// The right password does not help while the limit holds.
	h.do(req{method: "POST", path: "/auth/login", body: loginBody("alice", DemoPassword)}).expect(t, 429, order.CodeRateLimited)

	h.clock.Advance(time.Duration(wait) * time.Second)
	h.do(req{method: "POST", path: "/auth/login", body: loginBody("alice", DemoPassword)}).expect(t, 200, order.CodeOK)
	h.do(req{method: "POST", path: "/auth/login", body: loginBody("alice", DemoPassword)}).expect(t, 429, order.CodeRateLimited)

	metrics := string(h.do(req{method: "GET", path: "/metrics"}).Raw)
	if !strings.Contains(metrics, `ordermesh_ratelimit_refused_total{limit="auth_address"} 3`) {
		t.Errorf("refusals not counted by limit:\n%s", grepLines(metrics, "ordermesh_ratelimit"))
	}
	if n := len(h.logs.lines(t, "msg", "rate limited")); n != 3 {
		t.Errorf("%d rate limited log lines, want 3", n)
	}
}

// TestLoginLimitPerAddressSpansUsers: one address trying many users is limited by its
// address, whatever the names.
func TestLoginLimitPerAddressSpansUsers(t *testing.T) {
	h := newHarness(t, withLimits(Limits{AuthRate: rate.Every(time.Minute), AuthBurst: 3}))
	for i := range 3 {
		h.do(req{method: "POST", path: "/auth/login", body: loginBody(fmt.Sprintf("user%d", i), "x")}).expect(t, 401, order.CodeUnauthenticated)
	}
	r := h.do(req{method: "POST", path: "/auth/login", body: loginBody("user9", "x")}).expect(t, 429, order.CodeRateLimited)
	if r.Header.Get("Retry-After") != "60" {
		t.Errorf("Retry-After %q, want 60", r.Header.Get("Retry-After"))
	}
}

// TestLoginLimitPerUserSpansAddresses: one user's password tried from many addresses
// (127.0.0.x on loopback) is limited by the username, in any letter case.
func TestLoginLimitPerUserSpansAddresses(t *testing.T) {
	h := newHarness(t, withLimits(Limits{AuthRate: rate.Every(time.Minute), AuthBurst: 3}))
	addr := strings.TrimPrefix(h.serve(), "http://")
	post := func(from int, user string) int {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(from))}}
		c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
		res, err := c.Post("http://"+addr+"/auth/login", "application/json", strings.NewReader(loginBody(user, "x")))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		_, _ = io.Copy(io.Discard, res.Body)
		return res.StatusCode
	}
	for i, user := range []string{"alice", "Alice", "ALICE"} {
		if got := post(10+i, user); got != 401 {
			t.Fatalf("attempt %d: %d, want 401", i, got)
		}
	}
	if got := post(20, "alice"); got != 429 {
		t.Fatalf("fourth attempt for alice from a fresh address: %d, want 429", got)
	}
	if got := post(20, "bob"); got != 401 {
		t.Fatalf("bob from that address: %d, want 401 (the address has attempts left)", got)
	}
}

// TestOrderAPILimitPerUser: the order API is limited per user, not for everyone.
func TestOrderAPILimitPerUser(t *testing.T) {
	h := newHarness(t, withLimits(Limits{APIRate: 1, APIBurst: 3}))
	list := func(user string) response {
		return h.do(req{method: "GET", path: "/api/v1/orders", token: h.token(user)})
	}
	for range 3 {
		list("alice").expect(t, 200, order.CodeOK)
	}
	r := list("alice").expect(t, 429, order.CodeRateLimited)
	if r.Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q, want 1", r.Header.Get("Retry-After"))
	}
	list("bob").expect(t, 200, order.CodeOK)
	// The catalog is not the order API.
	h.do(req{method: "GET", path: "/api/v1/catalog"}).expect(t, 200, order.CodeOK)
	h.clock.Advance(time.Second)
	list("alice").expect(t, 200, order.CodeOK)
	list("alice").expect(t, 429, order.CodeRateLimited)
}

// TestLimiterMemoryIsBounded: a flood of addresses keeps at most Keys limiters.
func TestLimiterMemoryIsBounded(t *testing.T) {
	l, err := newLimiters(rate.Every(time.Minute), 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(0, 0)
	for i := range 10_000 {
		if _, wait := l.reserve(fmt.Sprintf("10.0.%d.%d", i/256, i%256), now); wait > 0 {
			t.Fatalf("a fresh address was refused")
		}
	}
	if n := l.len(); n != 100 {
		t.Fatalf("%d limiters kept, want 100", n)
	}
	// The most recent keys are the ones remembered.
	if _, wait := l.reserve("10.0.39.15", now); wait == 0 {
		t.Errorf("the last address was forgotten")
	}
}

// TestLimitsOffByDefault: the zero Limits refuse nothing.
func TestLimitsOffByDefault(t *testing.T) {
	h := newHarness(t)
	for range 50 {
		h.do(req{method: "POST", path: "/auth/login", body: loginBody("alice", "wrong")}).expect(t, 401, order.CodeUnauthenticated)
	}
}

func TestLimitsConfigErrors(t *testing.T) {
	if _, err := newLimiting(Limits{AuthRate: 1}); err == nil {
		t.Error("a rate without burst was accepted")
	}
	if _, err := newLimiting(Limits{ConnsPerAddress: -1}); err == nil {
		t.Error("a negative connection cap was accepted")
	}
}

// TestConnectionCapPerAddress: the third connection from one address, while two are
// open, is answered with a 429 envelope and closed; another address is unaffected.
func TestConnectionCapPerAddress(t *testing.T) {
	h := newHarness(t)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := LimitConnections(inner, 2, h.reg)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = h.app.Listener(ln) }()
	t.Cleanup(func() { _ = h.app.Shutdown() })
	addr := inner.Addr().String()

	dial := func(from byte) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, from)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		// A bound on a broken server, not a timed assertion.
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		return c
	}
	get := func(c net.Conn) *http.Response {
		t.Helper()
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// Two connections that have each been served are surely counted.
	for range 2 {
		if res := get(dial(2)); res.StatusCode != 200 {
			t.Fatalf("connection within the cap: %d", res.StatusCode)
		}
	}
	c := dial(2)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil || res.StatusCode != 429 || env.Code != order.CodeRateLimited {
		t.Fatalf("over the cap: %d %q (%v)", res.StatusCode, body, err)
	}
	if !saneRequestID(res.Header.Get(HeaderRequestID)) {
		t.Errorf("no request id: %v", res.Header)
	}
	checkSecurityHeaders(t, res.Header)
	if res := get(dial(3)); res.StatusCode != 200 {
		t.Fatalf("another address: %d", res.StatusCode)
	}
	metrics := string(h.do(req{method: "GET", path: "/metrics"}).Raw)
	if !strings.Contains(metrics, "ordermesh_http_connections_refused_total 1") {
		t.Errorf("refusal not counted:\n%s", grepLines(metrics, "connections_refused"))
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestLimitsForRefresh: how /auth/refresh is meant to use the limits. Its body has no
// username, so limitAuth counts it against the address only; the handler, once it knows
// the token's owner, counts it against the user with limitUsername.
func TestLimitsForRefresh(t *testing.T) {
	h := newHarness(t) // for the registry and the clock
	lim, err := newLimiting(Limits{AuthRate: rate.Every(time.Minute), AuthBurst: 2})
	if err != nil {
		t.Fatal(err)
	}
	guard, err := newGuardMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s := &server{now: h.clock.Now, limits: lim, guard: guard, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	// Not Immutable, unlike the edge's app: the limits must copy the keys they keep.
	app := fiber.New(fiber.Config{ErrorHandler: func(c *fiber.Ctx, err error) error {
		return c.Status(httpStatus(toAppError(err).Code)).SendString(err.Error())
	}})
	app.Post("/refresh", s.limitAuth, func(c *fiber.Ctx) error {
		// The owner of the refresh token in the body, as a lookup would find it.
		if err := s.limitUsername(c, c.Query("owner")); err != nil {
			return err
		}
		return c.SendStatus(200)
	})
	refresh := func(owner string) int {
		t.Helper()
		r := httptest.NewRequest("POST", "/refresh?owner="+owner, strings.NewReader(`{"refresh_token":"x"}`))
		res, err := app.Test(r, -1)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode
	}
	// All from the test connection's one address: two attempts, then the address is done.
	if refresh("alice") != 200 || refresh("bob") != 200 {
		t.Fatal("refreshes within the burst were refused")
	}
	if got := refresh("carol"); got != 429 {
		t.Fatalf("third refresh from one address: %d, want 429", got)
	}
	// The user limit, on its own: alice has one attempt left of her two.
	if _, wait := lim.authUser.reserve("alice", h.clock.Now()); wait > 0 {
		t.Fatal("alice's second attempt was refused")
	}
	if _, wait := lim.authUser.reserve("alice", h.clock.Now()); wait == 0 {
		t.Fatal("alice's third attempt was let through")
	}
}
