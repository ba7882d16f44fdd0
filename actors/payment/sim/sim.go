// Package sim is a simulated payment provider that speaks the same HTTP API as the one
// package actors/payment/client talks to (Stripe's shape): it accepts payment intents,
// idempotently by Idempotency-Key, and after a delay decides each one's outcome (success,
// or failure at a configurable rate) and posts it as a signed webhook event, retrying a
// delivery that fails on the next target with backoff, as a real provider does. It can be
// told, while it runs, to be slow or down. It uses net/http only, so a node, the baseline
// and tests can all host one.
package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ordermesh/ordermesh/actors/payment"
	"github.com/ordermesh/ordermesh/actors/payment/client"
)

// Mode is how the simulated provider behaves. The zero Mode answers at once and never
// fails; DefaultMode is the demo's.
type Mode struct {
	// Down makes every API call to payment intents answer 503 (the /v1/simulator control
	// endpoints keep working, so the provider can be brought back). Outcomes already due
	// are still delivered.
	Down bool `json:"down"`
	// LatencyMS makes every API call to payment intents wait this long before answering.
	LatencyMS int64 `json:"latency_ms"`
	// DelayMS is how long after an intent is accepted its outcome is posted.
	DelayMS int64 `json:"delay_ms"`
	// FailureRate is the share of intents whose payment fails (0..1).
	FailureRate float64 `json:"failure_rate"`
}

// DefaultMode is the demo's provider: outcomes two seconds after the intent, one payment
// in ten fails.
var DefaultMode = Mode{DelayMS: 2000, FailureRate: 0.1}

func (m Mode) validate() error {
	if m.LatencyMS < 0 || m.DelayMS < 0 || m.FailureRate < 0 || m.FailureRate > 1 {
		return errors.New("provider mode: latency_ms and delay_ms must be >= 0 and failure_rate within 0..1")
	}
	return nil
}

// Config configures a Provider.
type Config struct {
	// Secret signs the webhooks (payment.Sign).
	Secret []byte
	// APIKey, when set, must come as "Authorization: Bearer <APIKey>" with every API call;
	// other calls get 401.
	APIKey string
	// Mode is the initial mode (see Mode: the zero Mode is instant and never fails).
	Mode Mode
	// Targets returns the webhook URLs; each delivery attempt of an event goes to the next
	// one in turn, the first one first. It is asked again for every attempt.
	Targets func() []string
	// HTTP delivers the webhooks (default: a client with a 10s timeout).
	HTTP *http.Client
	// Now is the clock of event timestamps and signatures (default time.Now).
	Now func() time.Time
	// Seed makes ids and outcomes repeatable for the same sequence of calls; 0 picks a
	// random one. Providers that post to the same shop need different seeds: their event
	// ids are idempotency keys there.
	Seed uint64
	// Logger (default: discard).
	Logger *slog.Logger
	// Retries is how many delivery attempts an event gets before it is dropped (default 10).
	Retries int
	// RetryBase is the wait after the first failed attempt, doubling after each further
	// one, capped at 30s (default 500ms).
	RetryBase time.Duration
}

// Stats counts what a Provider did.
type Stats struct {
	Intents   int `json:"intents"`   // intents accepted (one per idempotency key)
	Pending   int `json:"pending"`   // outcomes not yet delivered nor dropped
	Delivered int `json:"delivered"` // events a target acknowledged with a 2xx
	Failed    int `json:"failed"`    // delivery attempts that did not get a 2xx
	Dropped   int `json:"dropped"`   // events given up after Retries attempts
}

// Paths of the simulator's API besides client.IntentsPath.
const (
	// SimulatorPath: GET answers the Mode, PUT replaces it (a full Mode).
	SimulatorPath = "/v1/simulator"
)

// Statuses of an intent, Stripe's words.
const (
	StatusProcessing = "processing"
	StatusSucceeded  = "succeeded"
	StatusFailed     = "requires_payment_method"
)

// DeclineMessage is the last_payment_error of a failed payment.
const DeclineMessage = "Your card was declined."

const (
	maxRetryWait = 30 * time.Second
	maxBody      = 64 << 10
)

// intent is an accepted intent; obj changes (under Provider.mu) when its outcome is due.
type intent struct {
	key string
	obj payment.IntentObject
}

// Provider is a simulated payment provider. It is an http.Handler; Listen serves it.
type Provider struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	httpc   *http.Client
	mux     *http.ServeMux
	retries int
	base    time.Duration

	mu      sync.Mutex
	mode    Mode
	rng     *rand.Rand
	byKey   map[string]*intent
	byID    map[string]*intent
	stats   Stats
	closing bool
	srv     *http.Server

	flush    chan struct{} // closed by Close: pending outcomes are due now
	abortCtx context.Context
	abort    context.CancelFunc // ends deliveries when Close's context ends
	wg       sync.WaitGroup     // one per pending outcome
}

// New returns a provider configured by cfg. An invalid cfg.Mode is replaced by DefaultMode.
func New(cfg Config) *Provider {
	p := &Provider{
		cfg: cfg, log: cfg.Logger, now: cfg.Now, httpc: cfg.HTTP, retries: cfg.Retries, base: cfg.RetryBase,
		mode: cfg.Mode, byKey: map[string]*intent{}, byID: map[string]*intent{}, flush: make(chan struct{}),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.httpc == nil {
		p.httpc = &http.Client{Timeout: 10 * time.Second}
	}
	if p.retries <= 0 {
		p.retries = 10
	}
	if p.base <= 0 {
		p.base = 500 * time.Millisecond
	}
	if p.mode.validate() != nil {
		p.mode = DefaultMode
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	p.rng = rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	p.abortCtx, p.abort = context.WithCancel(context.Background())
	p.mux = http.NewServeMux()
	p.mux.HandleFunc("POST "+client.IntentsPath, p.api(p.createIntent))
	p.mux.HandleFunc("GET "+client.IntentsPath+"/{id}", p.api(p.getIntent))
	p.mux.HandleFunc("GET "+SimulatorPath, p.authorized(p.getMode))
	p.mux.HandleFunc("PUT "+SimulatorPath, p.authorized(p.putMode))
	return p
}

// ServeHTTP serves the provider's API: POST /v1/payment_intents (idempotent by
// Idempotency-Key: the same key answers the same intent, which has one outcome),
// GET /v1/payment_intents/{id}, GET and PUT /v1/simulator (the Mode as JSON).
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.mux.ServeHTTP(w, r) }

// Mode returns the current mode.
func (p *Provider) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// SetMode replaces the mode. Intents already accepted keep their delay and outcome.
func (p *Provider) SetMode(m Mode) error {
	if err := m.validate(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	return nil
}

// Stats returns the counts so far.
func (p *Provider) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Listen serves the provider on addr (e.g. "127.0.0.1:0") until Close, and returns its
// base URL, e.g. "http://127.0.0.1:40123".
func (p *Provider) Listen(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	p.mu.Lock()
	if p.closing || p.srv != nil {
		p.mu.Unlock()
		_ = ln.Close()
		return "", errors.New("payment simulator: already listening or closed")
	}
	p.srv = srv
	p.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("payment simulator stopped serving", "err", err)
		}
	}()
	return "http://" + ln.Addr().String(), nil
}

// Close stops taking intents, delivers every pending outcome now (without the remaining
// delay or retry waits, still signed, still retried on the next target), stops serving,
// and returns once all deliveries are done. When ctx ends first, deliveries still
// pending are abandoned and ctx's error is returned.
func (p *Provider) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return nil
	}
	p.closing = true
	srv := p.srv
	p.mu.Unlock()
	close(p.flush)
	defer p.abort()
	var err error
	if srv != nil {
		err = srv.Shutdown(ctx)
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		p.abort()
		<-done
		err = ctx.Err()
	}
	return err
}

// api guards the payment intents endpoints: the key, then the mode's latency and Down.
func (p *Provider) api(h http.HandlerFunc) http.HandlerFunc {
	return p.authorized(func(w http.ResponseWriter, r *http.Request) {
		m := p.Mode()
		if m.LatencyMS > 0 {
			t := time.NewTimer(time.Duration(m.LatencyMS) * time.Millisecond)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			case <-p.flush:
			}
		}
		if m.Down {
			apiError(w, http.StatusServiceUnavailable, "api_error", "the payment provider is down (simulated)")
			return
		}
		h(w, r)
	})
}

func (p *Provider) authorized(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if p.cfg.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+p.cfg.APIKey {
			apiError(w, http.StatusUnauthorized, "authentication_error", "invalid API key")
			return
		}
		h(w, r)
	}
}

func (p *Provider) createIntent(w http.ResponseWriter, r *http.Request) {
	var req client.IntentRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request_error", "malformed JSON body")
		return
	}
	if req.Amount <= 0 || len(req.Currency) != 3 {
		apiError(w, http.StatusBadRequest, "invalid_request_error", "amount must be positive and currency a 3-letter code")
		return
	}
	key := r.Header.Get(client.IdempotencyHeader)
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		apiError(w, http.StatusServiceUnavailable, "api_error", "the payment provider is shutting down")
		return
	}
	if in, ok := p.byKey[key]; ok && key != "" {
		obj := in.obj
		p.mu.Unlock()
		if obj.Amount != req.Amount || !strings.EqualFold(obj.Currency, req.Currency) ||
			obj.Metadata[payment.MetadataOrderID] != req.Metadata[payment.MetadataOrderID] {
			apiError(w, http.StatusBadRequest, "idempotency_error", "Idempotency-Key "+key+" was used with other parameters")
			return
		}
		writeJSON(w, http.StatusOK, obj)
		return
	}
	meta := make(map[string]string, len(req.Metadata))
	for k, v := range req.Metadata {
		meta[k] = v
	}
	in := &intent{key: key, obj: payment.IntentObject{
		ID: "pi_" + p.hexLocked(), Amount: req.Amount, Currency: strings.ToLower(req.Currency),
		Status: StatusProcessing, Metadata: meta,
	}}
	eventID := "evt_" + p.hexLocked()
	succeed := p.rng.Float64() >= p.mode.FailureRate
	delay := time.Duration(p.mode.DelayMS) * time.Millisecond
	if key != "" {
		p.byKey[key] = in
	}
	p.byID[in.obj.ID] = in
	p.stats.Intents++
	p.stats.Pending++
	p.wg.Add(1)
	obj := in.obj
	p.mu.Unlock()
	go p.settle(in, eventID, succeed, delay)
	writeJSON(w, http.StatusOK, obj)
}

func (p *Provider) getIntent(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	in, ok := p.byID[r.PathValue("id")]
	var obj payment.IntentObject
	if ok {
		obj = in.obj
	}
	p.mu.Unlock()
	if !ok {
		apiError(w, http.StatusNotFound, "invalid_request_error", "no such payment_intent")
		return
	}
	writeJSON(w, http.StatusOK, obj)
}

func (p *Provider) getMode(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, p.Mode())
}

func (p *Provider) putMode(w http.ResponseWriter, r *http.Request) {
	var m Mode
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request_error", "malformed mode: "+err.Error())
		return
	}
	if err := p.SetMode(m); err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// hexLocked is a fresh id from the seeded generator; p.mu must be held.
func (p *Provider) hexLocked() string { return fmt.Sprintf("%016x", p.rng.Uint64()) }

// settle waits for an intent's outcome to be due, decides it and delivers it.
func (p *Provider) settle(in *intent, eventID string, succeed bool, delay time.Duration) {
	defer p.wg.Done()
	ev := payment.Event{ID: eventID, Type: payment.EventFailed}
	if !p.wait(delay) {
		p.dropped(ev.ID, "closed before its outcome was due")
		return
	}
	p.mu.Lock()
	if succeed {
		ev.Type = payment.EventSucceeded
		in.obj.Status = StatusSucceeded
	} else {
		in.obj.Status = StatusFailed
		in.obj.LastPaymentError = &struct {
			Message string `json:"message"`
		}{Message: DeclineMessage}
	}
	ev.Data.Object = in.obj
	p.mu.Unlock()
	ev.Created = p.now().Unix()
	body, err := json.Marshal(ev)
	if err != nil {
		p.dropped(ev.ID, err.Error())
		return
	}
	wait := p.base
	for attempt := range p.retries {
		if attempt > 0 {
			if !p.wait(wait) {
				break
			}
			wait = min(2*wait, maxRetryWait)
		}
		if err := p.deliver(attempt, body); err != nil {
			p.log.Warn("payment simulator: webhook delivery failed", "event", ev.ID, "attempt", attempt+1, "err", err)
			p.mu.Lock()
			p.stats.Failed++
			p.mu.Unlock()
			continue
		}
		p.mu.Lock()
		p.stats.Delivered++
		p.stats.Pending--
		p.mu.Unlock()
		return
	}
	p.dropped(ev.ID, "no delivery succeeded")
}

func (p *Provider) dropped(eventID, why string) {
	p.log.Error("payment simulator: webhook event dropped", "event", eventID, "why", why)
	p.mu.Lock()
	p.stats.Dropped++
	p.stats.Pending--
	p.mu.Unlock()
}

// wait waits d, or less once Close flushes; false when Close gave up on deliveries.
func (p *Provider) wait(d time.Duration) bool {
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-p.flush:
		case <-p.abortCtx.Done():
		}
	}
	return p.abortCtx.Err() == nil
}

// deliver posts a signed event to the attempt's target.
func (p *Provider) deliver(attempt int, body []byte) error {
	var targets []string
	if p.cfg.Targets != nil {
		targets = p.cfg.Targets()
	}
	if len(targets) == 0 {
		return errors.New("no webhook target")
	}
	target := targets[attempt%len(targets)]
	req, err := http.NewRequestWithContext(p.abortCtx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(payment.SignatureHeader, payment.Sign(p.cfg.Secret, p.now(), body))
	res, err := p.httpc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxBody))
	if res.StatusCode < 200 || res.StatusCode >= 300 {
		return fmt.Errorf("%s answered %s", target, res.Status)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// apiError answers in Stripe's error shape.
func apiError(w http.ResponseWriter, status int, kind, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"type": kind, "message": message}})
}
