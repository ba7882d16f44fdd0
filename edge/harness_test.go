package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/sqlite"
)

var testSecret = []byte("test-secret-that-is-long-enough-for-hs256!")

// demoHash is computed once: bcrypt is slow on purpose, and every harness needs users.
var demoHash = sync.OnceValues(func() (string, error) { return HashPassword(DemoPassword) })

// harness is one edge app over a fresh SQLite store and a localService.
type harness struct {
	t     testing.TB
	app   *fiber.App
	clock *fakeClock
	svc   *localService
	store *sqlite.Store
	reg   *prometheus.Registry
	logs  *syncBuffer
	ready atomic.Bool
	keys  *KeyRing // nil: the edge signs with testSecret
}

type option func(*Config, *Deps)

func newHarness(t testing.TB, opts ...option) *harness {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "edge.db"))
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	hash, err := demoHash()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range demoUsers {
		if err := store.PutUser(ctx, persistence.User{Username: d.name, PasswordHash: hash, Role: string(d.role)}); err != nil {
			t.Fatalf("putting user: %v", err)
		}
	}
	h := &harness{
		t: t, store: store, reg: prometheus.NewRegistry(), logs: &syncBuffer{},
		clock: &fakeClock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)},
	}
	h.svc = newLocalService(store, h.clock.Now)
	cfg := Config{JWTSecret: testSecret, NodeID: "node-test", RetryFor: time.Second}
	deps := Deps{
		Orders: h.svc, Store: store, Metrics: h.reg, Clock: h.clock.Now,
		Logger: slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Ready: func(context.Context) error {
			if !h.ready.Load() {
				return errString("joining the cluster")
			}
			return nil
		},
	}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	h.keys = deps.Keys
	h.app, err = New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

// serve runs the app on a loopback port until the test ends and returns its base URL.
func (h *harness) serve() string {
	h.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	go func() { _ = h.app.Listener(ln) }()
	h.t.Cleanup(func() { _ = h.app.Shutdown() })
	return "http://" + ln.Addr().String()
}

type errString string

func (e errString) Error() string { return string(e) }

// response is a decoded envelope plus what the tests look at besides it.
type response struct {
	Status  int
	Header  http.Header
	Code    order.Code      `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
	Raw     []byte
}

// req describes one request; zero fields are left out.
type req struct {
	method, path string
	body         string
	token        string
	key          string // Idempotency-Key
	header       map[string]string
}

func (h *harness) do(r req) response {
	h.t.Helper()
	res, err := h.try(r)
	if err != nil {
		h.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	return res
}

// try sends r and decodes the envelope; it fails only if the request cannot be sent or
// the answer is not an envelope.
func (h *harness) try(r req) (response, error) {
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr := httptest.NewRequest(r.method, r.path, body)
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.key != "" {
		hr.Header.Set(HeaderIdempotencyKey, r.key)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	res, err := h.app.Test(hr, -1)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	out := response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	if r.path == "/metrics" {
		return out, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		return out, errString("response is not an envelope: " + err.Error() + ": " + string(raw))
	}
	return out, nil
}

// expect checks status and code of a response.
func (r response) expect(t testing.TB, status int, code order.Code) response {
	t.Helper()
	if r.Status != status || r.Code != code {
		t.Fatalf("got %d code %d (%s), want %d code %d; body %s", r.Status, r.Code, r.Message, status, code, r.Raw)
	}
	if code != order.CodeOK && r.Status != httpStatus(code) {
		t.Fatalf("status %d does not match code %d", r.Status, r.Code)
	}
	return r
}

func (r response) view(t testing.TB) order.View {
	t.Helper()
	var v order.View
	if err := json.Unmarshal(r.Data, &v); err != nil {
		t.Fatalf("decoding view: %v: %s", err, r.Data)
	}
	return v
}

// token mints an access token for a demo user the way login would.
func (h *harness) token(user string) string {
	h.t.Helper()
	for _, d := range demoUsers {
		if d.name != user {
			continue
		}
		if h.keys != nil {
			kid, key := h.keys.Current()
			return mintKID(h.t, kid, key, h.claims(user, string(d.role)))
		}
		return mint(h.t, jwt.SigningMethodHS256, testSecret, h.claims(user, string(d.role)))
	}
	h.t.Fatalf("no demo user %s", user)
	return ""
}

func (h *harness) claims(sub, role string) jwt.MapClaims {
	now := h.clock.Now()
	return jwt.MapClaims{
		"iss": DefaultIssuer, "sub": sub, "role": role, "jti": "test",
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
	}
}

func mint(t testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	return s
}

// mintKID signs an HS256 token whose header names its key.
func mintKID(t testing.TB, kid string, key []byte, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	return s
}

// createOrder creates an order for user with the given key and items JSON.
func (h *harness) createOrder(user, key, items string) order.View {
	h.t.Helper()
	return h.do(req{method: "POST", path: "/api/v1/orders", token: h.token(user), key: key, body: `{"items":` + items + `}`}).
		expect(h.t, 201, order.CodeOK).view(h.t)
}

// act runs an action on an order and returns the response.
func (h *harness) act(user, id, action, key string) response {
	h.t.Helper()
	return h.do(req{method: "POST", path: "/api/v1/orders/" + id + "/" + action, token: h.token(user), key: key})
}

func (h *harness) events(user, id string) []eventResponse {
	h.t.Helper()
	r := h.do(req{method: "GET", path: "/api/v1/orders/" + id + "/events", token: h.token(user)}).expect(h.t, 200, order.CodeOK)
	var out eventListResponse
	if err := json.Unmarshal(r.Data, &out); err != nil {
		h.t.Fatalf("decoding events: %v", err)
	}
	return out.Events
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// lines returns the JSON log lines that have attribute key = value.
func (b *syncBuffer) lines(t *testing.T, key, value string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		if m[key] == value {
			out = append(out, m)
		}
	}
	return out
}
