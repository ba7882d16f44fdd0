package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/payment"
)

var intent = payment.Intent{ID: "pay_o1_2", OrderID: "o1", Customer: "c1", Amount: 1250, Currency: "eur"}

// server answers every intent with status and body, and remembers the last request.
func server(t *testing.T, status int, body string) (*httptest.Server, func() *http.Request, func() IntentRequest) {
	t.Helper()
	var mu sync.Mutex
	var last *http.Request
	var req IntentRequest
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		last = r
		_ = json.NewDecoder(r.Body).Decode(&req)
		mu.Unlock()
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s, func() *http.Request { mu.Lock(); defer mu.Unlock(); return last }, func() IntentRequest { mu.Lock(); defer mu.Unlock(); return req }
}

func TestCreateIntentOK(t *testing.T) {
	s, last, body := server(t, http.StatusOK, `{"id":"pi_1","status":"processing"}`)
	p := New(Config{BaseURL: s.URL + "/", APIKey: "sk_test"})
	r, err := p.CreateIntent(context.Background(), intent)
	if err != nil {
		t.Fatal(err)
	}
	if r != (payment.Receipt{ProviderID: "pi_1", Status: "processing"}) {
		t.Fatalf("receipt %+v", r)
	}
	req := last()
	if req.Method != http.MethodPost || req.URL.Path != IntentsPath {
		t.Fatalf("request %s %s", req.Method, req.URL.Path)
	}
	if got := req.Header.Get("Authorization"); got != "Bearer sk_test" {
		t.Fatalf("Authorization %q", got)
	}
	if got := req.Header.Get(IdempotencyHeader); got != intent.ID {
		t.Fatalf("Idempotency-Key %q", got)
	}
	b := body()
	if b.Amount != 1250 || b.Currency != "eur" || b.Metadata[payment.MetadataOrderID] != "o1" ||
		b.Metadata[payment.MetadataIntentID] != intent.ID || b.Metadata[MetadataCustomer] != "c1" {
		t.Fatalf("body %+v", b)
	}
}

func TestCreateIntentErrors(t *testing.T) {
	for _, tc := range []struct {
		status   int
		body     string
		rejected bool
	}{
		{http.StatusBadRequest, `{"error":{"message":"amount must be positive"}}`, true},
		{http.StatusUnauthorized, `{}`, true},
		{http.StatusInternalServerError, `oops`, false},
		{http.StatusServiceUnavailable, ``, false},
		{http.StatusOK, `not json`, false},
	} {
		s, _, _ := server(t, tc.status, tc.body)
		_, err := New(Config{BaseURL: s.URL}).CreateIntent(context.Background(), intent)
		if err == nil || errors.Is(err, payment.ErrRejected) != tc.rejected {
			t.Errorf("%d: err %v, want rejected=%v", tc.status, err, tc.rejected)
		}
	}
}

// fake is a provider that answers every call with err (a receipt when nil), or blocks
// until the call's context ends when block is set.
type fake struct {
	mu    sync.Mutex
	err   error
	block bool
	calls int
}

func (f *fake) set(err error) { f.mu.Lock(); f.err = err; f.mu.Unlock() }

func (f *fake) CreateIntent(ctx context.Context, in payment.Intent) (payment.Receipt, error) {
	f.mu.Lock()
	f.calls++
	err, block := f.err, f.block
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return payment.Receipt{}, ctx.Err()
	}
	if err != nil {
		return payment.Receipt{}, err
	}
	return payment.Receipt{ProviderID: "pi_" + in.ID, Status: "processing"}, nil
}

func (f *fake) count() int { f.mu.Lock(); defer f.mu.Unlock(); return f.calls }

func TestGuardTimeout(t *testing.T) {
	f := &fake{block: true}
	g := NewGuard(f, GuardConfig{Timeout: 20 * time.Millisecond})
	_, err := g.CreateIntent(context.Background(), intent)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want deadline exceeded", err)
	}
}

func TestGuardTimeoutOverHTTP(t *testing.T) {
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer s.Close()
	defer close(release)
	g := NewGuard(New(Config{BaseURL: s.URL}), GuardConfig{Timeout: 20 * time.Millisecond})
	if _, err := g.CreateIntent(context.Background(), intent); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want deadline exceeded", err)
	}
}

func TestGuardOpensAndFailsFast(t *testing.T) {
	f := &fake{err: errors.New("503")}
	var mu sync.Mutex
	var changes []string
	g := NewGuard(f, GuardConfig{Failures: 3, OpenFor: time.Hour, OnStateChange: func(from, to string) {
		mu.Lock()
		changes = append(changes, from+">"+to)
		mu.Unlock()
	}})
	for i := range 3 {
		if g.State() != "closed" {
			t.Fatalf("state %s after %d failures", g.State(), i)
		}
		if _, err := g.CreateIntent(context.Background(), intent); err == nil || errors.Is(err, ErrOpen) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if g.State() != "open" {
		t.Fatalf("state %s after 3 failures", g.State())
	}
	_, err := g.CreateIntent(context.Background(), intent)
	if !errors.Is(err, ErrOpen) {
		t.Fatalf("err %v, want ErrOpen", err)
	}
	if f.count() != 3 {
		t.Fatalf("provider called %d times, want 3 (not while open)", f.count())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 1 || changes[0] != "closed>open" {
		t.Fatalf("state changes %v", changes)
	}
}

func TestGuardRejectionsAndCancelsDoNotTrip(t *testing.T) {
	f := &fake{err: payment.ErrRejected}
	g := NewGuard(f, GuardConfig{Failures: 2, OpenFor: time.Hour})
	for range 5 {
		if _, err := g.CreateIntent(context.Background(), intent); !errors.Is(err, payment.ErrRejected) {
			t.Fatal(err)
		}
	}
	f.set(context.Canceled)
	for range 5 {
		if _, err := g.CreateIntent(context.Background(), intent); !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	}
	if g.State() != "closed" {
		t.Fatalf("state %s", g.State())
	}
	// A success in between resets the consecutive failures.
	f.set(errors.New("boom"))
	_, _ = g.CreateIntent(context.Background(), intent)
	f.set(nil)
	if _, err := g.CreateIntent(context.Background(), intent); err != nil {
		t.Fatal(err)
	}
	f.set(errors.New("boom"))
	_, _ = g.CreateIntent(context.Background(), intent)
	if g.State() != "closed" {
		t.Fatalf("state %s after non-consecutive failures", g.State())
	}
}

// gobreaker reads the wall clock, so recovery uses a short OpenFor and waits for the
// half-open state (bounded) rather than a fake clock.
func TestGuardHalfOpenRecovery(t *testing.T) {
	f := &fake{err: errors.New("down")}
	g := NewGuard(f, GuardConfig{Failures: 1, OpenFor: 30 * time.Millisecond})
	_, _ = g.CreateIntent(context.Background(), intent)
	if g.State() != "open" {
		t.Fatalf("state %s", g.State())
	}
	waitState(t, g, "half-open")
	// The trial call fails: open again.
	if _, err := g.CreateIntent(context.Background(), intent); err == nil || errors.Is(err, ErrOpen) {
		t.Fatalf("trial: %v", err)
	}
	if g.State() != "open" {
		t.Fatalf("state %s after a failed trial", g.State())
	}
	waitState(t, g, "half-open")
	f.set(nil)
	r, err := g.CreateIntent(context.Background(), intent)
	if err != nil || r.ProviderID != "pi_"+intent.ID {
		t.Fatalf("trial: %+v %v", r, err)
	}
	if g.State() != "closed" {
		t.Fatalf("state %s after a good trial", g.State())
	}
}

func waitState(t *testing.T, g *Guarded, want string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); g.State() != want; {
		if time.Now().After(deadline) {
			t.Fatalf("state %s, want %s", g.State(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
