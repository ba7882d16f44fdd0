package edge

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/payment"
)

var (
	webhookSecret    = []byte("whsec_current-secret-of-the-cluster")
	oldWebhookSecret = []byte("whsec_previous-secret-of-the-cluster")
)

// fakePayments records the submissions of pays and answers them with result or err.
type fakePayments struct {
	mu        sync.Mutex
	result    string
	err       error
	submitted []string // "order@version"
}

func (p *fakePayments) Submit(_ context.Context, orderID string, version uint64) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.submitted = append(p.submitted, orderID+"@"+itoa(version))
	return p.result, p.err
}

func (p *fakePayments) WebhookSecrets() [][]byte { return [][]byte{webhookSecret, oldWebhookSecret} }

func (p *fakePayments) submissions() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.submitted...)
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// getOrder reads an order as user.
func (h *harness) getOrder(user, id string) order.View {
	h.t.Helper()
	return h.do(req{method: "GET", path: "/api/v1/orders/" + id, token: h.token(user)}).expect(h.t, 200, order.CodeOK).view(h.t)
}

// metricsText is what /metrics shows.
func (h *harness) metricsText() string {
	h.t.Helper()
	return string(h.do(req{method: "GET", path: "/metrics"}).Raw)
}

func withPayments(p Payments) option { return func(_ *Config, d *Deps) { d.Payments = p } }

// event is a webhook event about an order.
type event struct {
	id, typ, orderID, intentID string
	amount                     int64
	currency, failure          string
}

func (e event) body() []byte {
	obj := map[string]any{
		"id": "pi_" + e.orderID, "amount": e.amount, "currency": e.currency, "status": "succeeded",
		"metadata": map[string]string{payment.MetadataOrderID: e.orderID, payment.MetadataIntentID: e.intentID},
	}
	if e.failure != "" {
		obj["status"] = "requires_payment_method"
		obj["last_payment_error"] = map[string]string{"message": e.failure, "code": "card_declined"}
	}
	b, _ := json.Marshal(map[string]any{"id": e.id, "object": "event", "type": e.typ, "created": 1, "livemode": false,
		"data": map[string]any{"object": obj}})
	return b
}

// webhook posts body with the given Stripe-Signature header ("" = none).
func (h *harness) webhook(body []byte, signature string) response {
	h.t.Helper()
	r := req{method: "POST", path: "/api/v1/payments/webhook", body: string(body)}
	if signature != "" {
		r.header = map[string]string{payment.SignatureHeader: signature}
	}
	return h.do(r)
}

// signed posts body signed now with the cluster's secret.
func (h *harness) signed(body []byte) response {
	h.t.Helper()
	return h.webhook(body, payment.Sign(webhookSecret, h.clock.Now(), body))
}

type webhookAck struct {
	Received bool         `json:"received"`
	Applied  bool         `json:"applied"`
	OrderID  string       `json:"order_id"`
	Status   order.Status `json:"status"`
	Version  uint64       `json:"version"`
	Reason   string       `json:"reason"`
}

func (r response) ack(t testing.TB) webhookAck {
	t.Helper()
	var a webhookAck
	if err := json.Unmarshal(r.Data, &a); err != nil || !a.Received {
		t.Fatalf("decoding the ack: %v: %s", err, r.Data)
	}
	return a
}

// payingOrder creates an order for alice and pays it; it returns the view after the pay.
func payingOrder(h *harness, key string) order.View {
	h.t.Helper()
	id := h.createOrder("alice", key, twoTeas).ID
	return h.act("alice", id, "pay", key+"-pay").expect(h.t, 200, order.CodeOK).view(h.t)
}

// succeeded is the provider's success event for the current attempt of v.
func succeeded(v order.View, eventID string) event {
	return event{id: eventID, typ: payment.EventSucceeded, orderID: v.ID, intentID: payment.IntentID(v.ID, v.Version),
		amount: v.Total, currency: strings.ToLower(v.Currency)}
}

func newPaymentsHarness(t *testing.T, opts ...option) (*harness, *fakePayments) {
	p := &fakePayments{result: "submitted"}
	return newHarness(t, append([]option{withPayments(p)}, opts...)...), p
}

func TestWebhookRefusesWhatIsNotSignedRight(t *testing.T) {
	h, _ := newPaymentsHarness(t)
	v := payingOrder(h, "refused")
	body := succeeded(v, "evt_1").body()
	before := len(h.svc.executed())
	now := h.clock.Now()
	tampered := []byte(strings.Replace(string(body), `"amount":`, `"amount":1`, 1))
	tests := []struct {
		name, signature, want string
		body                  []byte
	}{
		{"unsigned", "", "not signed", body},
		{"no v1", "t=" + itoa(uint64(now.Unix())), "not signed", body},
		{"forged", payment.Sign([]byte("whsec_guessed"), now, body), "does not match", body},
		{"stale", payment.Sign(webhookSecret, now.Add(-10*time.Minute), body), "tolerance", body},
		{"from the future", payment.Sign(webhookSecret, now.Add(10*time.Minute), body), "tolerance", body},
		{"tampered body", payment.Sign(webhookSecret, now, body), "does not match", tampered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.webhook(tt.body, tt.signature).expect(t, 401, order.CodeUnauthenticated)
			if !strings.Contains(r.Message, tt.want) {
				t.Errorf("message %q does not say %q", r.Message, tt.want)
			}
		})
	}
	if got := h.svc.executed(); len(got) != before {
		t.Fatalf("refused webhooks reached the order service: %+v", got[before:])
	}
	if got := h.getOrder("olga", v.ID); got.Status != order.StatusPaying || got.Version != v.Version {
		t.Fatalf("order changed: %+v", got)
	}
	// The old secret is still accepted while it rotates.
	h.webhook(body, payment.Sign(oldWebhookSecret, now, body)).expect(t, 200, order.CodeOK)
	if !strings.Contains(h.metricsText(), `ordermesh_payment_webhooks_total{outcome="unauthorized"} 6`) {
		t.Errorf("unauthorized webhooks not counted:\n%s", h.metricsText())
	}
}

func TestWebhookConfirmsOnce(t *testing.T) {
	h, _ := newPaymentsHarness(t)
	v := payingOrder(h, "confirm")
	body := succeeded(v, "evt_confirm").body()
	first := h.signed(body).expect(t, 200, order.CodeOK)
	a := first.ack(t)
	if !a.Applied || a.OrderID != v.ID || a.Status != order.StatusPaid || a.Version != v.Version+1 {
		t.Fatalf("ack %+v", a)
	}
	cmds := h.svc.executed()
	last := cmds[len(cmds)-1]
	if last.Type != order.CmdConfirmPayment || last.Key != "evt_confirm" || last.OrderID != v.ID ||
		last.By != (order.Principal{Subject: "payment-provider", Role: order.RoleSystem}) {
		t.Fatalf("command %+v", last)
	}
	// Delivered again (a lost answer, another node): the same answer, applied once.
	for range 4 {
		h.clock.Advance(time.Minute)
		r := h.signed(body).expect(t, 200, order.CodeOK)
		if a := r.ack(t); !a.Applied || a.Status != order.StatusPaid || a.Version != v.Version+1 || r.Header.Get(HeaderReplayed) != "true" {
			t.Fatalf("redelivery: %+v, replayed %q", a, r.Header.Get(HeaderReplayed))
		}
	}
	confirmed := 0
	for _, e := range h.events("olga", v.ID) {
		if e.Type == string(order.EvtPaymentConfirmed) {
			confirmed++
			if e.By != "payment-provider" || e.IdempotencyKey != "evt_confirm" {
				t.Errorf("event %+v", e)
			}
		}
	}
	if confirmed != 1 {
		t.Fatalf("%d PaymentConfirmed events", confirmed)
	}
	m := h.metricsText()
	for _, want := range []string{`ordermesh_payment_webhooks_total{outcome="applied"} 1`, `ordermesh_payment_webhooks_total{outcome="replayed"} 4`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestWebhookFailsThePayment(t *testing.T) {
	h, _ := newPaymentsHarness(t)
	v := payingOrder(h, "fail")
	e := succeeded(v, "evt_fail")
	e.typ, e.failure = payment.EventFailed, "Your card was declined.\n"
	a := h.signed(e.body()).expect(t, 200, order.CodeOK).ack(t)
	if !a.Applied || a.Status != order.StatusCreated {
		t.Fatalf("ack %+v", a)
	}
	cmds := h.svc.executed()
	if last := cmds[len(cmds)-1]; last.Type != order.CmdFailPayment || last.Reason != "Your card was declined." || last.Key != "evt_fail" {
		t.Fatalf("command %+v", last)
	}
	// Paid again, a new attempt: the old attempt's events no longer apply.
	again := h.act("alice", v.ID, "pay", "fail-pay-2").expect(t, 200, order.CodeOK).view(t)
	old := succeeded(v, "evt_old") // about attempt 1
	a = h.signed(old.body()).expect(t, 200, order.CodeOK).ack(t)
	if a.Applied || a.Status != order.StatusPaying || !strings.Contains(a.Reason, "earlier") {
		t.Fatalf("an earlier attempt's event: %+v", a)
	}
	if got := h.getOrder("olga", v.ID); got.Version != again.Version {
		t.Fatalf("order changed: %+v", got)
	}
}

func TestFailureReason(t *testing.T) {
	long := strings.Repeat("é", order.MaxReason) // two bytes each
	for in, want := range map[string]string{
		"":                     "the payment failed",
		" \t":                  "the payment failed",
		"declined\x00\x07 now": "declined   now",
		"bad \xff utf8":        "bad \uFFFD utf8",
		long:                   long[:order.MaxReason],
	} {
		got := failureReason(in)
		if got != want || !order.ValidText(got) || len(got) > order.MaxReason {
			t.Errorf("failureReason(%q) = %q, want %q", truncate(in, 20), truncate(got, 20), truncate(want, 20))
		}
	}
}

func TestWebhookAcknowledgesWhatItDoesNotApply(t *testing.T) {
	h, _ := newPaymentsHarness(t)
	v := payingOrder(h, "ack")
	before := len(h.svc.executed())

	other := succeeded(v, "evt_other")
	other.typ = "charge.refunded"
	if a := h.signed(other.body()).expect(t, 200, order.CodeOK).ack(t); a.Applied {
		t.Fatalf("another event type applied: %+v", a)
	}
	if got := len(h.svc.executed()); got != before {
		t.Fatalf("another event type reached the order service")
	}

	// A success for an order that is not PAYING: money to refund, logged as an error.
	created := h.createOrder("alice", "ack-created", twoTeas)
	e := succeeded(created, "evt_created")
	a := h.signed(e.body()).expect(t, 200, order.CodeOK).ack(t)
	if a.Applied || a.Status != order.StatusCreated || a.Reason == "" {
		t.Fatalf("ack for a CREATED order: %+v", a)
	}
	found := false
	for _, l := range h.logs.lines(t, "level", "ERROR") {
		if strings.Contains(l["msg"].(string), "refund") && l["order_id"] == created.ID {
			found = true
		}
	}
	if !found {
		t.Errorf("no error logged for the money to refund:\n%s", h.logs.String())
	}
}

func TestWebhookRefusesWhatCannotBeRight(t *testing.T) {
	h, _ := newPaymentsHarness(t)
	v := payingOrder(h, "wrong")
	before := len(h.svc.executed())

	cheap := succeeded(v, "evt_cheap")
	cheap.amount = 1
	h.signed(cheap.body()).expect(t, 422, order.CodeValidation)
	dollars := succeeded(v, "evt_usd")
	dollars.currency = "usd"
	if v.Currency == "USD" {
		dollars.currency = "eur"
	}
	h.signed(dollars.body()).expect(t, 422, order.CodeValidation)
	if len(h.logs.lines(t, "msg", "payment webhook amount does not match the order")) != 2 {
		t.Errorf("mismatches not logged as errors")
	}
	noOrder := succeeded(v, "evt_no_order")
	noOrder.orderID = ""
	h.signed(noOrder.body()).expect(t, 422, order.CodeValidation)
	noID := succeeded(v, "")
	h.signed(noID.body()).expect(t, 422, order.CodeValidation)
	unknown := succeeded(v, "evt_unknown")
	unknown.orderID = "no-such-order"
	h.signed(unknown.body()).expect(t, 404, order.CodeNotFound)
	h.signed([]byte(`{"id":"evt_x","type":`)).expect(t, 400, order.CodeInvalidRequest)
	if got := len(h.svc.executed()); got != before {
		t.Fatalf("refused webhooks reached the order service")
	}
	if !strings.Contains(h.metricsText(), `ordermesh_payment_webhooks_total{outcome="invalid"} 6`) {
		t.Errorf("invalid webhooks not counted")
	}
}

func TestWebhookUnavailable(t *testing.T) {
	h, _ := newPaymentsHarness(t, func(c *Config, _ *Deps) { c.RetryFor = 30 * time.Millisecond })
	v := payingOrder(h, "unavailable")
	h.svc.failNext(1 << 30)
	h.signed(succeeded(v, "evt_later").body()).expect(t, 503, order.CodeUnavailable)
	h.svc.failNext(0)
	// The provider delivers again later, and then it applies.
	if a := h.signed(succeeded(v, "evt_later").body()).expect(t, 200, order.CodeOK).ack(t); !a.Applied {
		t.Fatalf("ack %+v", a)
	}
	// A node without a payment provider takes no webhooks.
	bare := newHarness(t)
	bare.signed(succeeded(v, "evt_bare").body()).expect(t, 503, order.CodeUnavailable)
	if !strings.Contains(h.metricsText(), `ordermesh_payment_webhooks_total{outcome="unavailable"} 1`) {
		t.Errorf("unavailable webhook not counted")
	}
}

// TestWebhookLimitsFailedSignaturesOnly: an address that keeps failing the signature
// check is refused, while signed deliveries at any rate are not held back.
func TestWebhookLimitsFailedSignaturesOnly(t *testing.T) {
	h, _ := newPaymentsHarness(t, withLimits(DefaultLimits()))
	v := payingOrder(h, "limits")
	body := succeeded(v, "evt_many").body()
	for range 3 * DefaultLimits().WebhookBurst {
		h.signed(body).expect(t, 200, order.CodeOK)
	}
	for range DefaultLimits().WebhookBurst {
		h.webhook(body, "").expect(t, 401, order.CodeUnauthenticated)
	}
	r := h.webhook(body, "").expect(t, 429, order.CodeRateLimited)
	if r.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	h.signed(body).expect(t, 429, order.CodeRateLimited) // the address is refused until a token is due
	h.clock.Advance(time.Second)
	h.signed(body).expect(t, 200, order.CodeOK)
	if !strings.Contains(h.metricsText(), `ordermesh_ratelimit_refused_total{limit="webhook_address"} 2`) {
		t.Errorf("refusals not counted")
	}
}

func TestPaySubmitsThePayment(t *testing.T) {
	h, p := newPaymentsHarness(t)
	id := h.createOrder("alice", "submit", twoTeas).ID
	r := h.act("alice", id, "pay", "submit-pay").expect(t, 200, order.CodeOK)
	v := r.view(t)
	if got := r.Header.Get(HeaderPaymentSubmission); got != "submitted" {
		t.Errorf("%s: %q", HeaderPaymentSubmission, got)
	}
	if got := p.submissions(); len(got) != 1 || got[0] != id+"@"+itoa(v.Version) {
		t.Fatalf("submissions %v", got)
	}
	// A replayed pay submits nothing again.
	r = h.act("alice", id, "pay", "submit-pay").expect(t, 200, order.CodeOK)
	if r.Header.Get(HeaderPaymentSubmission) != "" || len(p.submissions()) != 1 {
		t.Errorf("a replay submitted: %q, %v", r.Header.Get(HeaderPaymentSubmission), p.submissions())
	}

	p.mu.Lock()
	p.result = "queued"
	p.mu.Unlock()
	id2 := h.createOrder("alice", "queued", twoTeas).ID
	if got := h.act("alice", id2, "pay", "queued-pay").expect(t, 200, order.CodeOK).Header.Get(HeaderPaymentSubmission); got != "queued" {
		t.Errorf("%s: %q", HeaderPaymentSubmission, got)
	}

	// A failed submission does not fail the pay: the intent waits in the queue.
	p.mu.Lock()
	p.result, p.err = "", errors.New("provider unreachable")
	p.mu.Unlock()
	id3 := h.createOrder("alice", "broken", twoTeas).ID
	r = h.act("alice", id3, "pay", "broken-pay").expect(t, 200, order.CodeOK)
	if r.view(t).Status != order.StatusPaying || r.Header.Get(HeaderPaymentSubmission) != "queued" {
		t.Errorf("pay with a failed submission: %s, %q", r.view(t).Status, r.Header.Get(HeaderPaymentSubmission))
	}
	if len(h.logs.lines(t, "msg", "submitting the payment intent failed; it stays queued")) != 1 {
		t.Error("the failed submission is not logged")
	}
	// Other actions submit nothing.
	h.act("olga", id3, "confirm-payment", "olga-confirm").expect(t, 200, order.CodeOK)
	if len(p.submissions()) != 3 {
		t.Errorf("submissions %v", p.submissions())
	}
}

// TestWebhookBodyLimit: a webhook body is at most MaxWebhookBody bytes, whatever the
// node's body limit.
func TestWebhookBodyLimit(t *testing.T) {
	h, _ := newPaymentsHarness(t, func(c *Config, _ *Deps) { c.BodyLimit = 4 * MaxWebhookBody })
	v := payingOrder(h, "big")
	e := succeeded(v, "evt_big")
	e.failure = strings.Repeat("x", MaxWebhookBody)
	e.typ = payment.EventFailed
	h.signed(e.body()).expect(t, 413, order.CodeTooLarge)
	if got := h.getOrder("olga", v.ID); got.Status != order.StatusPaying {
		t.Fatalf("order changed: %+v", got)
	}
}

// TestWebhookPassesTheAppMiddleware: with CORS on and the API's per-user limits, a
// signed delivery without token, origin or client version is taken like any other.
func TestWebhookPassesTheAppMiddleware(t *testing.T) {
	h, _ := newPaymentsHarness(t, withLimits(DefaultLimits()), func(c *Config, _ *Deps) {
		c.CORSOrigins = []string{"https://shop.example"}
	})
	v := payingOrder(h, "middleware")
	if a := h.signed(succeeded(v, "evt_mw").body()).expect(t, 200, order.CodeOK).ack(t); !a.Applied {
		t.Fatalf("ack %+v", a)
	}
}
