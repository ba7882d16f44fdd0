package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/payment"
	"github.com/ordermesh/ordermesh/actors/payment/client"
)

var (
	secret = []byte("whsec_test")
	t0     = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
)

// hook is a webhook target that records what it gets and answers status.
type hook struct {
	mu     sync.Mutex
	status int
	events []payment.Event
	sigs   []string
	bodies [][]byte
	srv    *httptest.Server
}

func newHook(t *testing.T, status int) *hook {
	h := &hook{status: status}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev payment.Event
		_ = json.Unmarshal(body, &ev)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.events = append(h.events, ev)
		h.sigs = append(h.sigs, r.Header.Get(payment.SignatureHeader))
		h.bodies = append(h.bodies, body)
		w.WriteHeader(h.status)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) got() []payment.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]payment.Event(nil), h.events...)
}

// clock is a fake clock that moves a second on every reading.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// start serves a provider configured by cfg (secret, key and clock filled in) and
// returns it with a client for it.
func start(t *testing.T, cfg Config, targets ...*hook) (*Provider, payment.Provider, string) {
	t.Helper()
	cfg.Secret, cfg.APIKey = secret, "sk_sim"
	if cfg.Now == nil {
		cfg.Now = (&clock{t: t0}).Now
	}
	cfg.Targets = func() []string {
		urls := make([]string, len(targets))
		for i, h := range targets {
			urls[i] = h.srv.URL
		}
		return urls
	}
	p := New(cfg)
	url, err := p.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p, client.New(client.Config{BaseURL: url, APIKey: "sk_sim"}), url
}

func newIntent(n int) payment.Intent {
	o := "o" + strconv.Itoa(n)
	return payment.Intent{ID: payment.IntentID(o, 2), OrderID: o, Customer: "c", Amount: 1000 + int64(n), Currency: "eur"}
}

func closeNow(t *testing.T, p *Provider) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestIdempotentIntentHasOneSignedOutcome(t *testing.T) {
	h := newHook(t, http.StatusOK)
	c := &clock{t: t0}
	p, cl, _ := start(t, Config{Now: c.Now}, h)
	in := newIntent(1)
	r1, err := cl.CreateIntent(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := cl.CreateIntent(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if r1.ProviderID == "" || r1.ProviderID != r2.ProviderID {
		t.Fatalf("receipts %+v and %+v", r1, r2)
	}
	closeNow(t, p)
	evs := h.got()
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1", len(evs))
	}
	ev := evs[0]
	obj := ev.Data.Object
	if ev.Type != payment.EventSucceeded || obj.ID != r1.ProviderID || obj.Amount != in.Amount || obj.Currency != "eur" ||
		obj.Status != StatusSucceeded || obj.Metadata[payment.MetadataOrderID] != in.OrderID ||
		obj.Metadata[payment.MetadataIntentID] != in.ID {
		t.Fatalf("event %+v", ev)
	}
	if err := payment.Verify(h.sigs[0], h.bodies[0], [][]byte{secret}, c.Now(), payment.DefaultTolerance); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if err := payment.Verify(h.sigs[0], h.bodies[0], [][]byte{[]byte("other")}, c.Now(), payment.DefaultTolerance); !errors.Is(err, payment.ErrBadSignature) {
		t.Fatalf("other secret: %v", err)
	}
	if s := p.Stats(); s != (Stats{Intents: 1, Delivered: 1}) {
		t.Fatalf("stats %+v", s)
	}
}

func TestRejections(t *testing.T) {
	_, cl, url := start(t, Config{})
	if _, err := cl.CreateIntent(context.Background(), newIntent(1)); err != nil {
		t.Fatal(err)
	}
	other := newIntent(1)
	other.Amount++
	for name, call := range map[string]func() error{
		"key reused with another amount": func() error { _, err := cl.CreateIntent(context.Background(), other); return err },
		"wrong API key": func() error {
			_, err := client.New(client.Config{BaseURL: url, APIKey: "nope"}).CreateIntent(context.Background(), newIntent(2))
			return err
		},
		"no amount": func() error {
			in := newIntent(3)
			in.Amount = 0
			_, err := cl.CreateIntent(context.Background(), in)
			return err
		},
	} {
		if err := call(); !errors.Is(err, payment.ErrRejected) {
			t.Errorf("%s: %v, want ErrRejected", name, err)
		}
	}
}

// outcomes creates n intents at a provider seeded with seed and failing at rate, and
// returns their event types in order of the intents.
func outcomes(t *testing.T, seed uint64, rate float64, n int) []string {
	h := newHook(t, http.StatusOK)
	p, cl, _ := start(t, Config{Seed: seed, Mode: Mode{DelayMS: 3_600_000, FailureRate: rate}}, h)
	byID := map[string]int{}
	for i := range n {
		r, err := cl.CreateIntent(context.Background(), newIntent(i))
		if err != nil {
			t.Fatal(err)
		}
		byID[r.ProviderID] = i
	}
	closeNow(t, p)
	types := make([]string, n)
	for _, ev := range h.got() {
		types[byID[ev.Data.Object.ID]] = ev.Type
		if ev.Type == payment.EventFailed && (ev.Data.Object.LastPaymentError == nil || ev.Data.Object.Status != StatusFailed) {
			t.Fatalf("failed event without its error: %+v", ev.Data.Object)
		}
	}
	return types
}

func TestFailureRateIsSeeded(t *testing.T) {
	a, b := outcomes(t, 7, 0.5, 40), outcomes(t, 7, 0.5, 40)
	failed := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, outcome %d differs: %s vs %s", i, a[i], b[i])
		}
		if a[i] == payment.EventFailed {
			failed++
		}
	}
	if failed == 0 || failed == len(a) {
		t.Fatalf("%d of %d failed at rate 0.5", failed, len(a))
	}
	for _, ty := range outcomes(t, 7, 1, 5) {
		if ty != payment.EventFailed {
			t.Fatalf("rate 1: %s", ty)
		}
	}
}

func TestDownAndSlowModes(t *testing.T) {
	p, cl, url := start(t, Config{})
	put := func(m Mode) int {
		b, _ := json.Marshal(m)
		req, _ := http.NewRequest(http.MethodPut, url+SimulatorPath, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer sk_sim")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := put(Mode{Down: true}); code != http.StatusOK {
		t.Fatalf("PUT down: %d", code)
	}
	_, err := cl.CreateIntent(context.Background(), newIntent(1))
	if err == nil || errors.Is(err, payment.ErrRejected) {
		t.Fatalf("down: %v, want a retryable error", err)
	}
	if code := put(Mode{FailureRate: 2}); code != http.StatusBadRequest {
		t.Fatalf("PUT invalid: %d", code)
	}
	if p.Mode() != (Mode{Down: true}) {
		t.Fatalf("mode %+v", p.Mode())
	}
	if err := p.SetMode(Mode{LatencyMS: 60_000}); err != nil {
		t.Fatal(err)
	}
	g := client.NewGuard(cl, client.GuardConfig{Timeout: 20 * time.Millisecond})
	if _, err := g.CreateIntent(context.Background(), newIntent(1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow: %v, want a timeout", err)
	}
	if put(Mode{}) != http.StatusOK {
		t.Fatal("PUT up")
	}
	if _, err := g.CreateIntent(context.Background(), newIntent(1)); err != nil {
		t.Fatalf("up again: %v", err)
	}
	if s := p.Stats(); s.Intents != 1 {
		t.Fatalf("stats %+v: only the last call was accepted", s)
	}
}

func TestDeliveryRetriesOnTheNextTarget(t *testing.T) {
	bad, good := newHook(t, http.StatusServiceUnavailable), newHook(t, http.StatusOK)
	c := &clock{t: t0}
	p, cl, _ := start(t, Config{Now: c.Now, RetryBase: time.Millisecond}, bad, good)
	if _, err := cl.CreateIntent(context.Background(), newIntent(1)); err != nil {
		t.Fatal(err)
	}
	closeNow(t, p)
	b, g := bad.got(), good.got()
	if len(b) != 1 || len(g) != 1 || b[0].ID != g[0].ID {
		t.Fatalf("bad got %v, good got %v: want the same event once each", b, g)
	}
	if bad.sigs[0] == good.sigs[0] {
		t.Fatal("the retry was not signed anew")
	}
	for _, h := range []*hook{bad, good} {
		if err := payment.Verify(h.sigs[0], h.bodies[0], [][]byte{secret}, c.Now(), payment.DefaultTolerance); err != nil {
			t.Fatal(err)
		}
	}
	if s := p.Stats(); s != (Stats{Intents: 1, Delivered: 1, Failed: 1}) {
		t.Fatalf("stats %+v", s)
	}
}

func TestDeliveryGivesUpAfterRetries(t *testing.T) {
	bad := newHook(t, http.StatusInternalServerError)
	p, cl, _ := start(t, Config{Retries: 3, RetryBase: time.Hour}, bad)
	if _, err := cl.CreateIntent(context.Background(), newIntent(1)); err != nil {
		t.Fatal(err)
	}
	closeNow(t, p)
	if s := p.Stats(); s != (Stats{Intents: 1, Failed: 3, Dropped: 1}) {
		t.Fatalf("stats %+v", s)
	}
}

func TestCloseFlushesPendingOutcomes(t *testing.T) {
	h := newHook(t, http.StatusOK)
	p, cl, _ := start(t, Config{Mode: Mode{DelayMS: 3_600_000}}, h)
	for i := range 3 {
		if _, err := cl.CreateIntent(context.Background(), newIntent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if s := p.Stats(); s.Pending != 3 || s.Delivered != 0 {
		t.Fatalf("before Close: %+v", s)
	}
	closeNow(t, p)
	if s := p.Stats(); s.Pending != 0 || s.Delivered != 3 || len(h.got()) != 3 {
		t.Fatalf("after Close: %+v", s)
	}
	if _, err := cl.CreateIntent(context.Background(), newIntent(9)); err == nil {
		t.Fatal("an intent accepted after Close")
	}
}

func TestDeliveryAfterDelay(t *testing.T) {
	h := newHook(t, http.StatusOK)
	p, cl, _ := start(t, Config{Mode: Mode{DelayMS: 1}}, h)
	if _, err := cl.CreateIntent(context.Background(), newIntent(1)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); p.Stats().Delivered == 0; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not delivered: %+v", p.Stats())
		}
	}
}
