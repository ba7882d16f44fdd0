package edge

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
)

// rawExchange sends raw bytes to addr on a fresh connection and reads one HTTP response.
func rawExchange(t *testing.T, addr, raw string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A bound on a broken server, not a timed assertion: a healthy one answers at once.
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	// The server may answer and close before it has read everything (oversized headers);
	// the answer is what counts, so a failed write is not an error here.
	_, _ = io.WriteString(conn, raw)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return res, body
}

// TestEveryAnswerIsAnEnvelope sends what fasthttp, Fiber and the router refuse at
// different stages, over a real socket, and checks that each answer is the JSON envelope
// with a request id, the right status and the security headers.
func TestEveryAnswerIsAnEnvelope(t *testing.T) {
	h := newHarness(t)
	addr := strings.TrimPrefix(h.serve(), "http://")
	huge := strings.Repeat("a", 3*DefaultHeaderLimit)
	tests := []struct {
		name   string
		raw    string
		status int
		code   order.Code
	}{
		{"unknown method PURGE", "PURGE /api/v1/catalog HTTP/1.1\r\nHost: x\r\n\r\n", 405, order.CodeMethodNotAllowed},
		{"unknown method FOO", "FOO / HTTP/1.1\r\nHost: x\r\n\r\n", 405, order.CodeMethodNotAllowed},
		{"lower-case get", "get /api/v1/catalog HTTP/1.1\r\nHost: x\r\n\r\n", 405, order.CodeMethodNotAllowed},
		{"NUL in the method", "G\x00T /api/v1/catalog HTTP/1.1\r\nHost: x\r\n\r\n", 405, order.CodeMethodNotAllowed},
		{"known method, wrong route", "DELETE /api/v1/catalog HTTP/1.1\r\nHost: x\r\n\r\n", 405, order.CodeMethodNotAllowed},
		{"unknown path", "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, order.CodeRouteNotFound},
		{"garbage request line", "hello\r\n\r\n", 400, order.CodeInvalidRequest},
		// fasthttp took this as HTTP/1.0 up to v1.51; v1.52 (which gofiber/contrib/websocket
		// needs) refuses it.
		{"no HTTP version", "GET /api/v1/catalog\r\nHost: x\r\n\r\n", 400, order.CodeInvalidRequest},
		{"bad chunk size", "POST /auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, order.CodeInvalidRequest},
		{"bad content length", "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, order.CodeInvalidRequest},
		{"oversized header", "GET /api/v1/catalog HTTP/1.1\r\nHost: x\r\nX-Big: " + huge + "\r\n\r\n", 431, order.CodeHeadersTooLarge},
		{"oversized request line", "GET /" + huge + " HTTP/1.1\r\nHost: x\r\n\r\n", 431, order.CodeHeadersTooLarge},
		{"oversized body", "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
			strconv.Itoa(DefaultBodyLimit+1) + "\r\n\r\n{", 413, order.CodeTooLarge},
		{"HTTP/1.0 without host", "GET /api/v1/catalog HTTP/1.0\r\n\r\n", 200, order.CodeOK},
		{"HTTP/1.1 without host", "GET /api/v1/orders HTTP/1.1\r\n\r\n", 401, order.CodeUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := rawExchange(t, addr, tt.raw)
			var env struct {
				Code    order.Code      `json:"code"`
				Message string          `json:"message"`
				Data    json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(body, &env); err != nil || env.Message == "" {
				t.Fatalf("%d %q is not an envelope (%v)", res.StatusCode, body, err)
			}
			if res.StatusCode != tt.status || env.Code != tt.code {
				t.Errorf("got %d code %d (%s), want %d code %d", res.StatusCode, env.Code, env.Message, tt.status, tt.code)
			}
			if !saneRequestID(res.Header.Get(HeaderRequestID)) {
				t.Errorf("no request id: %v", res.Header)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			checkSecurityHeaders(t, res.Header)
		})
	}

	// Whatever was refused where, the latency histogram saw real durations.
	metrics := h.do(req{method: "GET", path: "/metrics"}).Raw
	for _, line := range strings.Split(string(metrics), "\n") {
		if !strings.HasPrefix(line, "ordermesh_http_request_duration_seconds_sum") {
			continue
		}
		fields := strings.Fields(line)
		sum, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil || sum < 0 || sum > 60 {
			t.Errorf("absurd latency: %s", line)
		}
	}
	// Methods nobody routes are one label value, not one per attempt.
	for _, bad := range []string{`method="PURGE"`, `method="FOO"`, `method="get"`, "\x00", `route="/nope"`} {
		if strings.Contains(string(metrics), bad) {
			t.Errorf("metrics are labelled with client input %q", bad)
		}
	}
	// Every access log line has a request id and a real duration.
	n := 0
	for _, l := range h.logs.lines(t, "msg", "http request") {
		n++
		d, _ := l["duration"].(float64) // nanoseconds
		if id, _ := l["request_id"].(string); !saneRequestID(id) || d < 0 || d > float64(60*time.Second) {
			t.Errorf("access log line %v", l)
		}
	}
	if n < len(tests) {
		t.Errorf("%d access log lines for %d requests", n, len(tests))
	}
}

// checkSecurityHeaders checks the headers every answer carries.
func checkSecurityHeaders(t *testing.T, h http.Header) {
	t.Helper()
	for name, want := range map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Content-Security-Policy": "frame-ancestors 'none'",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}

// TestCachePolicy: tokens and orders are never stored by a cache; the public catalog may be
// for a minute.
func TestCachePolicy(t *testing.T) {
	h := newHarness(t)
	id := h.createOrder("alice", "k", twoTeas).ID
	tests := []struct {
		name string
		r    req
		want string
	}{
		{"login", req{method: "POST", path: "/auth/login", body: `{"username":"alice","password":"` + DemoPassword + `"}`}, "no-store"},
		{"failed login", req{method: "POST", path: "/auth/login", body: `{"username":"alice","password":"x"}`}, "no-store"},
		{"order", req{method: "GET", path: "/api/v1/orders/" + id, token: h.token("alice")}, "no-store"},
		{"events", req{method: "GET", path: "/api/v1/orders/" + id + "/events", token: h.token("alice")}, "no-store"},
		{"listing", req{method: "GET", path: "/api/v1/orders", token: h.token("alice")}, "no-store"},
		{"action", req{method: "POST", path: "/api/v1/orders/" + id + "/pay", token: h.token("alice"), key: "p"}, "no-store"},
		{"unauthenticated", req{method: "GET", path: "/api/v1/orders"}, "no-store"},
		{"catalog", req{method: "GET", path: "/api/v1/catalog"}, "public, max-age=60"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := h.do(tt.r)
			if got := res.Header.Get("Cache-Control"); got != tt.want {
				t.Errorf("Cache-Control %q, want %q", got, tt.want)
			}
			checkSecurityHeaders(t, res.Header)
		})
	}
}
