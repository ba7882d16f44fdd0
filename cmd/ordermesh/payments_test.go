package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/payment"
	"github.com/ordermesh/ordermesh/bench"
)

// These tests put the payment provider and the fulfilment pool in the loop: orders are
// paid by webhook and shipped by the nodes themselves, through crashes, forgeries, an
// outage of the provider and a warehouse that fails.

type payable struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Version  uint64 `json:"version"`
	Total    int64  `json:"total"`
	Currency string `json:"currency"`
}

// placeOrder creates an order of one sencha for c's user and returns it (CREATED).
func placeOrder(t testing.TB, c *client, key string) payable {
	t.Helper()
	status, env, err := c.do("POST", "/api/v1/orders", key, map[string]any{"items": []map[string]any{{"sku": "tea-sencha", "qty": 1}}})
	if err != nil || status != 201 {
		t.Fatalf("create: %d %+v %v", status, env, err)
	}
	var o payable
	if err := json.Unmarshal(env.Data, &o); err != nil {
		t.Fatal(err)
	}
	return o
}

// payOrder pays for an order and returns it (PAYING) and how the payment was handed to
// the provider (the Payment-Submission header).
func payOrder(t testing.TB, c *client, id, key string) (payable, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), "POST", c.base+"/api/v1/orders/"+id+"/pay", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Idempotency-Key", key)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env envelope
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || resp.StatusCode != 200 {
		t.Fatalf("pay %s: %d %+v %v", id, resp.StatusCode, env, err)
	}
	var o payable
	if err := json.Unmarshal(env.Data, &o); err != nil {
		t.Fatal(err)
	}
	return o, resp.Header.Get("Payment-Submission")
}

// act runs an operator action on an order and requires a 200.
func act(t testing.TB, c *client, id, action, key string) {
	t.Helper()
	if status, env, err := c.do("POST", "/api/v1/orders/"+id+"/"+action, key, nil); err != nil || status != 200 {
		t.Fatalf("%s %s: %d %+v %v", action, id, status, env, err)
	}
}

type taskView struct {
	ID        string `json:"id"`
	OrderID   string `json:"order_id"`
	State     string `json:"state"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error"`
	Node      string `json:"node"`
}

// tasks lists fulfilment tasks; query is the URL query ("order_id=...", "state=...").
func tasks(t testing.TB, op *client, query string) []taskView {
	t.Helper()
	status, env, err := op.do("GET", "/api/v1/fulfilment?"+query, "", nil)
	if err != nil || status != 200 {
		t.Fatalf("GET /api/v1/fulfilment?%s: %d %+v %v", query, status, env, err)
	}
	var page struct {
		Tasks []taskView `json:"tasks"`
	}
	if err := json.Unmarshal(env.Data, &page); err != nil {
		t.Fatal(err)
	}
	return page.Tasks
}

// countEvents counts the events of type typ in an order's history.
func countEvents(events []eventView, typ string) int {
	n := 0
	for _, e := range events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// wantShippedOnce checks, from the store, that an order shipped exactly once and has
// exactly one fulfilment task, which is done.
func wantShippedOnce(t testing.TB, op *client, id string) {
	t.Helper()
	events := op.events(t, id)
	checkHistory(t, id, events)
	if n := countEvents(events, "OrderShipped"); n != 1 {
		t.Errorf("order %s shipped %d times: %+v", id, n, events)
	}
	if ts := tasks(t, op, "order_id="+id); len(ts) != 1 || ts[0].State != "done" {
		t.Errorf("order %s has fulfilment tasks %+v, want one, done", id, ts)
	}
}

// simulate changes the simulated services of the node behind admin.
func simulate(t testing.TB, admin *client, body map[string]any) {
	t.Helper()
	if status, env, err := admin.do("PUT", "/api/v1/simulation", "", body); err != nil || status != 200 {
		t.Fatalf("PUT /api/v1/simulation: %d %+v %v", status, env, err)
	}
}

// fastWork is the provider and the pool in the loop, quick and reliable.
var fastWork = []string{"--payments", "sim", "--auto-ship", "--sim-payment-delay", "200ms", "--sim-payment-failure-rate", "0",
	"--warehouse-latency", "50ms", "--warehouse-failure-rate", "0"}

func TestPaidAndShippedWithoutAnOperator(t *testing.T) {
	c := startCluster(t, t.TempDir()+"/ordermesh.db", 3, fastWork...)
	c.waitConverged(10*time.Second, 3, c.nodes...)
	var ids []string
	for i, n := range c.nodes {
		shopper := login(t, n.base, "alice")
		o := placeOrder(t, shopper, "auto-create-"+strconv.Itoa(i))
		// "submitted" when the pay's own attempt reached the provider, "queued" when the
		// node's pool claimed the job first (actors.Payments.Submit): both are the system
		// paying by itself, and which one wins is a race a loaded machine decides.
		if _, how := payOrder(t, shopper, o.ID, "auto-pay-"+strconv.Itoa(i)); how != "submitted" && how != "queued" {
			t.Errorf("Payment-Submission %q, want submitted or queued", how)
		}
		ids = append(ids, o.ID)
	}
	op := login(t, c.nodes[0].base, "olga")
	for _, id := range ids {
		waitFor(t, 30*time.Second, "order "+id+" to ship", func() bool { return op.order(t, id).Status == "SHIPPED" })
		wantShippedOnce(t, op, id)
	}
}

// webhook posts a signed (or not) webhook event to base and returns the HTTP status.
func webhook(t testing.TB, base string, body []byte, signature string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), "POST", base+"/api/v1/payments/webhook", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if signature != "" {
		req.Header.Set(payment.SignatureHeader, signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// succeeded is the provider's event that the payment of o (PAYING) went through.
func succeeded(t testing.TB, eventID string, o payable) []byte {
	var e payment.Event
	e.ID, e.Type, e.Created = eventID, payment.EventSucceeded, time.Now().Unix()
	e.Data.Object = payment.IntentObject{ID: "pi_" + eventID, Amount: o.Total, Currency: o.Currency, Status: "succeeded",
		Metadata: map[string]string{payment.MetadataOrderID: o.ID, payment.MetadataIntentID: payment.IntentID(o.ID, o.Version)}}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWebhookAppliesOnceAndRefusesForgeries(t *testing.T) {
	secret := []byte("whsec_test_0123456789abcdef0123456789")
	// The simulated provider is there but slow to call back: the test is the provider.
	c := startCluster(t, postgresURL(t), 3, "--webhook-secret", string(secret), "--payments", "sim", "--sim-payment-delay", "1h")
	c.waitConverged(10*time.Second, 3, c.nodes...)
	shopper := login(t, c.nodes[0].base, "alice")
	o := placeOrder(t, shopper, "hook-create")
	o, _ = payOrder(t, shopper, o.ID, "hook-pay")
	body := succeeded(t, "evt_hook_1", o)

	other := succeeded(t, "evt_hook_1", payable{ID: o.ID, Version: o.Version, Total: o.Total + 1, Currency: o.Currency})
	for name, sig := range map[string]string{
		"unsigned":      "",
		"forged":        payment.Sign([]byte("not the secret"), time.Now(), body),
		"stale":         payment.Sign(secret, time.Now().Add(-10*time.Minute), body),
		"tampered body": payment.Sign(secret, time.Now(), other),
		"garbage":       "t=abc,v1=zz",
	} {
		if status := webhook(t, c.nodes[1].base, body, sig); status != 401 {
			t.Errorf("%s webhook: %d, want 401", name, status)
		}
	}
	if got := shopper.order(t, o.ID).Status; got != "PAYING" {
		t.Fatalf("after refused webhooks the order is %s, want PAYING", got)
	}

	for i := range 5 { // the provider delivers it again and again, to every node
		n := c.nodes[i%len(c.nodes)]
		if status := webhook(t, n.base, body, payment.Sign(secret, time.Now(), body)); status != 200 {
			t.Fatalf("delivery %d to %s: %d, want 200", i+1, n.base, status)
		}
	}
	events := login(t, c.nodes[2].base, "olga").events(t, o.ID)
	checkHistory(t, o.ID, events)
	if n := countEvents(events, "PaymentConfirmed"); n != 1 || events[len(events)-1].IdempotencyKey != "evt_hook_1" {
		t.Fatalf("history %+v, want one PaymentConfirmed keyed by the event id", events)
	}
}

func TestPaymentsWaitOutAProviderOutage(t *testing.T) {
	node := startFresh(t, t.TempDir()+"/ordermesh.db", "--payments", "sim", "--sim-payment-delay", "100ms",
		"--sim-payment-failure-rate", "0", "--provider-timeout", "1s")
	admin, shopper := login(t, node.base, "ada"), login(t, node.base, "alice")
	simulate(t, admin, map[string]any{"provider": map[string]any{"down": true, "latency_ms": 0, "delay_ms": 100, "failure_rate": 0}})

	var ids []string
	for i := range 8 {
		o := placeOrder(t, shopper, fmt.Sprintf("outage-create-%d", i))
		o, how := payOrder(t, shopper, o.ID, fmt.Sprintf("outage-pay-%d", i))
		if o.Status != "PAYING" || how != "queued" {
			t.Fatalf("pay during the outage: %s, Payment-Submission %q; want PAYING, queued", o.Status, how)
		}
		ids = append(ids, o.ID)
	}
	if got := metric(t, node.base, "ordermesh_payment_breaker_state"); got != 2 {
		t.Errorf("breaker state metric %v, want 2 (open)", got)
	}
	if st := breakerStates(t, admin); st[0] != "open" {
		t.Errorf("cluster view: payment_breaker %v, want open", st)
	}

	simulate(t, admin, map[string]any{"provider": map[string]any{"down": false, "latency_ms": 0, "delay_ms": 100, "failure_rate": 0}})
	for _, id := range ids {
		waitFor(t, 45*time.Second, "order "+id+" to be paid", func() bool { return shopper.order(t, id).Status == "PAID" })
	}
	if got := metric(t, node.base, "ordermesh_payment_breaker_state"); got != 0 {
		t.Errorf("breaker state metric %v after the outage, want 0 (closed)", got)
	}
}

// breakerStates returns the payment_breaker of every member in the cluster view.
func breakerStates(t testing.TB, c *client) []string {
	t.Helper()
	status, env, err := c.do("GET", "/api/v1/cluster", "", nil)
	if err != nil || status != 200 {
		t.Fatalf("GET /api/v1/cluster: %d %v", status, err)
	}
	var st struct {
		Members []struct {
			PaymentBreaker string `json:"payment_breaker"`
		} `json:"members"`
	}
	if err := json.Unmarshal(env.Data, &st); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range st.Members {
		out = append(out, m.PaymentBreaker)
	}
	return out
}

func TestFulfilmentSurvivesSIGKILL(t *testing.T) {
	c := startCluster(t, postgresURL(t), 3, "--auto-ship", "--warehouse-latency", "1500ms", "--warehouse-failure-rate", "0",
		"--fulfilment-workers", "3", "--fulfilment-lease", "4s")
	c.waitConverged(10*time.Second, 3, c.nodes...)
	shopper, op := login(t, c.nodes[0].base, "alice"), login(t, c.nodes[0].base, "olga")
	var ids []string
	for i := range 24 {
		o := placeOrder(t, shopper, fmt.Sprintf("ship-create-%d", i))
		payOrder(t, shopper, o.ID, fmt.Sprintf("ship-pay-%d", i))
		act(t, op, o.ID, "confirm-payment", fmt.Sprintf("ship-confirm-%d", i))
		ids = append(ids, o.ID)
	}
	victim := c.nodes[2]
	victimID := nodeID(t, victim)
	waitFor(t, 20*time.Second, "the victim to run fulfilment tasks", func() bool {
		for _, task := range tasks(t, op, "state=running") {
			if task.Node == victimID {
				return true
			}
		}
		return false
	})
	victim.kill()
	for _, id := range ids {
		waitFor(t, 60*time.Second, "order "+id+" to ship", func() bool { return op.order(t, id).Status == "SHIPPED" })
		wantShippedOnce(t, op, id)
	}
}

func TestDeadLetteredTaskShipsAfterAnOperatorRetry(t *testing.T) {
	node := startFresh(t, t.TempDir()+"/ordermesh.db", "--auto-ship", "--warehouse-latency", "0s", "--warehouse-failure-rate", "1",
		"--fulfilment-attempts", "3", "--fulfilment-backoff", "50ms")
	shopper, op, admin := login(t, node.base, "alice"), login(t, node.base, "olga"), login(t, node.base, "ada")
	o := placeOrder(t, shopper, "dead-create")
	payOrder(t, shopper, o.ID, "dead-pay")
	act(t, op, o.ID, "confirm-payment", "dead-confirm")

	var dead taskView
	waitFor(t, 30*time.Second, "the task to be dead-lettered", func() bool {
		ts := tasks(t, op, "order_id="+o.ID)
		if len(ts) == 1 && ts[0].State == "dead" {
			dead = ts[0]
			return true
		}
		return false
	})
	if dead.Attempts != 3 || dead.LastError == "" {
		t.Errorf("dead task %+v, want 3 attempts and the last error", dead)
	}
	if got := op.order(t, o.ID).Status; got != "PAID" {
		t.Fatalf("order %s with a dead task, want PAID", got)
	}

	simulate(t, admin, map[string]any{"warehouse": map[string]any{"latency_ms": 0, "failure_rate": 0}})
	if status, env, err := op.do("POST", "/api/v1/fulfilment/"+dead.ID+"/retry", "", nil); err != nil || status != 200 {
		t.Fatalf("retry: %d %+v %v", status, env, err)
	}
	waitFor(t, 30*time.Second, "the order to ship", func() bool { return op.order(t, o.ID).Status == "SHIPPED" })
	wantShippedOnce(t, op, o.ID)
}

// TestLifecycleWithTheProviderPassesTheChecker runs the bench's lifecycle with the
// simulated provider and the fulfilment pool in the loop, against three nodes and against
// the baseline, and requires the checker to pass: every paid order has exactly one
// fulfilment task and shipped at most once.
func TestLifecycleWithTheProviderPassesTheChecker(t *testing.T) {
	for _, system := range []string{"ordermesh", "baseline"} {
		t.Run(system, func(t *testing.T) {
			dir := t.TempDir()
			l, err := newLauncher(postgresURL(t), dir, "--payments", "sim", "--auto-ship", "--sim-payment-delay", "200ms",
				"--sim-payment-failure-rate", "0.1", "--warehouse-latency", "50ms", "--warehouse-failure-rate", "0.05")
			if err != nil {
				t.Fatal(err)
			}
			l.bin = binary
			t.Cleanup(l.stop)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var targets []string
			if system == "baseline" {
				base, err := l.startBaseline(ctx)
				if err != nil {
					t.Fatal(err)
				}
				targets = []string{base}
			} else if targets, err = l.startCluster(ctx, 3); err != nil {
				t.Fatal(err)
			}
			cfg := bench.DefaultConfig()
			cfg.Targets, cfg.Scenario, cfg.Rate, cfg.Provider = targets, "lifecycle", 30, true
			cfg.Warmup, cfg.Duration, cfg.ProviderWait = time.Second, 8*time.Second, 30*time.Second
			cfg.Out = dir
			rep, err := bench.Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			f := rep.Check.Fulfilment
			if f == nil {
				t.Fatalf("no fulfilment check in the report: %+v", rep.Check)
			}
			t.Logf("%s: %.0f req/s, %d errors; check: %s; fulfilment: %d paid, %d confirmed and %d declined by the provider, %d shipped by the pool, tasks %v",
				system, rep.Total.Throughput, rep.Total.Errors, rep.Check.Summary(), f.Paid, f.ProviderConfirms, f.ProviderFails, f.PoolShips, f.TasksByState)
			if !rep.Check.Pass || !f.Pass {
				t.Fatalf("the checker failed: %+v", f.Violations)
			}
			if f.Paid == 0 || f.ProviderConfirms == 0 || f.PoolShips == 0 {
				t.Fatalf("nothing went through the provider and the pool: %+v", f)
			}
		})
	}
}
