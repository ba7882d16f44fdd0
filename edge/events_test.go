package edge

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/ordermesh/ordermesh/persistence"
)

// rawEvents returns an order's history as user sees it, as plain JSON objects, so that a
// test can tell a missing field from an empty one.
func (h *harness) rawEvents(t *testing.T, user, id string) ([]map[string]any, string) {
	t.Helper()
	r := h.do(req{method: "GET", path: "/api/v1/orders/" + id + "/events", token: h.token(user)}).expect(t, 200, order.CodeOK)
	var out struct {
		Events []map[string]any `json:"events"`
	}
	if err := json.Unmarshal(r.Data, &out); err != nil {
		t.Fatalf("decoding events: %v", err)
	}
	return out.Events, string(r.Data)
}

func TestEventsShopperAndStaffViews(t *testing.T) {
	h := newHarness(t)
	v := h.createOrder("alice", "create", twoTeas)
	id := v.ID
	withReason := func(user, action, key, reason string) {
		h.clock.Advance(time.Second)
		h.do(req{method: "POST", path: "/api/v1/orders/" + id + "/" + action, token: h.token(user), key: key,
			body: `{"reason":"` + reason + `"}`}).expect(t, 200, order.CodeOK)
	}
	withReason("alice", "pay", "alice-pay-1", "first try")
	withReason("olga", "fail-payment", "olga-fail", "issuer flagged: fraud score 97")
	withReason("alice", "pay", "alice-pay-2", "second try")
	withReason("ada", "cancel", "ada-cancel", "stock write-off")

	events, raw := h.rawEvents(t, "alice", id)
	if len(events) != 6 {
		t.Fatalf("%d events: %s", len(events), raw)
	}
	for _, secret := range []string{"olga", "ada", "node-test", "fingerprint", "fraud", "write-off", "olga-fail", "ada-cancel", "saga", "reserve-stock"} {
		if strings.Contains(raw, secret) {
			t.Errorf("the shopper's history shows %q: %s", secret, raw)
		}
	}
	want := []struct {
		typ, by, reason, key string
		payload              []string // members of the payload; nil = no payload
	}{
		{"OrderCreated", "alice", "", "create", []string{"items", "currency", "total"}},
		{"StockReserved", bySystem, "", "", nil}, // the node's, like an expired payment
		{"PaymentSubmitted", "alice", "first try", "alice-pay-1", []string{"payment_deadline"}},
		{"PaymentFailed", byStaff, "", "", nil},
		{"PaymentSubmitted", "alice", "second try", "alice-pay-2", []string{"payment_deadline"}},
		{"OrderCancelled", byStaff, "", "", nil},
	}
	for i, w := range want {
		e := events[i]
		if e["type"] != w.typ || e["by"] != w.by || str(e["reason"]) != w.reason || str(e["idempotency_key"]) != w.key {
			t.Errorf("event %d: %v, want %+v", i, e, w)
		}
		for _, f := range []string{"version", "from", "to", "at"} {
			if _, ok := e[f]; !ok {
				t.Errorf("event %d has no %q: %v", i, f, e)
			}
		}
		if _, ok := e["node"]; ok {
			t.Errorf("event %d shows the node: %v", i, e)
		}
		payload, _ := e["payload"].(map[string]any)
		if len(payload) != len(w.payload) {
			t.Errorf("event %d payload %v, want members %v", i, payload, w.payload)
		}
		for _, f := range w.payload {
			if _, ok := payload[f]; !ok {
				t.Errorf("event %d payload has no %q: %v", i, f, payload)
			}
		}
	}

	// Staff see everything, whoever acted.
	for _, staff := range []string{"olga", "ada"} {
		events := h.events(staff, id)
		created, reserved, failed, cancelled := events[0], events[1], events[3], events[5]
		var rp order.Payload
		if err := json.Unmarshal(reserved.Payload, &rp); err != nil || reserved.Type != string(order.EvtStockReserved) ||
			reserved.By != "saga" || reserved.IdempotencyKey != "reserve-stock" || reserved.Node != "node-test" ||
			rp.By != "saga" || rp.ExpiresAt.IsZero() || !rp.ExpiresAt.Equal(v.ExpiresAt) {
			t.Errorf("%s sees the reservation as %+v (%v)", staff, reserved, err)
		}
		if failed.By != "olga" || failed.Reason != "issuer flagged: fraud score 97" || failed.IdempotencyKey != "olga-fail" || failed.Node != "node-test" {
			t.Errorf("%s sees the failed payment as %+v", staff, failed)
		}
		if cancelled.By != "ada" || cancelled.Reason != "stock write-off" || cancelled.IdempotencyKey != "ada-cancel" {
			t.Errorf("%s sees the cancel as %+v", staff, cancelled)
		}
		var p order.Payload
		if err := json.Unmarshal(created.Payload, &p); err != nil || p.Fingerprint == 0 || p.By != "alice" || created.By != "alice" {
			t.Errorf("%s sees the create as %+v (%v)", staff, created, err)
		}
	}
}

func TestEventForSystemAndUnreadableEvents(t *testing.T) {
	alice := order.Principal{Subject: "alice", Role: order.RoleShopper}
	olga := order.Principal{Subject: "olga", Role: order.RoleOperator}
	log := slog.New(slog.DiscardHandler)
	expired := persistence.Event{
		Version: 3, Type: string(order.EvtPaymentExpired), From: "PAYING", To: "CLOSED",
		IdempotencyKey: "expire:1", Node: "node-1", Payload: []byte(`{"by":"timer","fingerprint":"42"}`),
	}
	if e := eventFor(expired, alice, log); e.By != bySystem || e.IdempotencyKey != "" || e.Node != "" || e.Payload != nil {
		t.Errorf("shopper sees the expiry as %+v", e)
	}
	if e := eventFor(expired, olga, log); e.By != "timer" || e.IdempotencyKey != "expire:1" || e.Node != "node-1" || string(e.Payload) != string(expired.Payload) {
		t.Errorf("operator sees the expiry as %+v", e)
	}
	// An unreadable payload hides who acted from the shopper, and breaks no one's history.
	broken := persistence.Event{Version: 2, Type: string(order.EvtCancelled), IdempotencyKey: "k", Payload: []byte("{")}
	if e := eventFor(broken, alice, log); e.By != byStaff || e.IdempotencyKey != "" || e.Payload != nil {
		t.Errorf("shopper sees an unreadable event as %+v", e)
	}
	if e := eventFor(broken, olga, log); e.IdempotencyKey != "k" || e.Payload != nil {
		t.Errorf("operator sees an unreadable event as %+v", e)
	}
}

// str returns v if it is a string, "" otherwise (a missing member).
func str(v any) string {
	s, _ := v.(string)
	return s
}
