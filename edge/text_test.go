package edge

import (
	"strings"
	"testing"

	"github.com/ordermesh/ordermesh/actors/order"
)

// calls is how many times the service was asked anything.
func (s *localService) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requestIDs)
}

// TestUnstorableTextRefusedAtOnce: an Idempotency-Key that is not printable ASCII, and a
// reason or sku with control characters or NUL, is 400 at once: the service is never
// asked (so nothing is retried), and nothing is logged at ERROR.
func TestUnstorableTextRefusedAtOnce(t *testing.T) {
	h := newHarness(t)
	id := h.createOrder("alice", "k", twoTeas).ID
	before := h.svc.calls()
	createBody := `{"items":` + twoTeas + `}`
	tests := []struct {
		name      string
		path, key string
		body      string
		want      string // in the message: the refusal names what is wrong
	}{
		{"NUL in key", "/api/v1/orders", "k\x00ey", createBody, "Idempotency-Key"},
		{"control character in key", "/api/v1/orders", "k\x01", createBody, "Idempotency-Key"},
		{"DEL in key", "/api/v1/orders/" + id + "/pay", "k\x7f", "", "Idempotency-Key"},
		{"invalid UTF-8 in key", "/api/v1/orders/" + id + "/pay", "k\xff\xfe", "", "Idempotency-Key"},
		{"non-ASCII key", "/api/v1/orders/" + id + "/cancel", "ключ", "", "Idempotency-Key"},
		{"tab in key", "/api/v1/orders/" + id + "/cancel", "a\tb", "", "Idempotency-Key"},
		{"NUL in reason", "/api/v1/orders/" + id + "/cancel", "c1", `{"reason":"a\u0000b"}`, "reason"},
		{"control character in reason", "/api/v1/orders/" + id + "/cancel", "c2", `{"reason":"bell\u0007"}`, "reason"},
		{"C1 control in reason", "/api/v1/orders/" + id + "/cancel", "c3", `{"reason":"next\u0085line"}`, "reason"},
		{"NUL in sku", "/api/v1/orders", "c4", `{"items":[{"sku":"tea-sencha\u0000","qty":1}]}`, "sku"},
		{"escape in sku", "/api/v1/orders", "c5", `{"items":[{"sku":"\u001b[31mtea","qty":1}]}`, "sku"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(req{method: "POST", path: tt.path, token: h.token("alice"), key: tt.key, body: tt.body}).
				expect(t, 400, order.CodeInvalidRequest)
			if !strings.Contains(r.Message, tt.want) {
				t.Errorf("message %q does not mention %s", r.Message, tt.want)
			}
		})
	}
	if n := h.svc.calls() - before; n != 0 {
		t.Errorf("the service was asked %d times; malformed commands must be refused at the edge", n)
	}
	if strings.Contains(h.logs.String(), `"level":"ERROR"`) {
		t.Errorf("ERROR logged:\n%s", h.logs.String())
	}
	// Printable ASCII keys, spaces included, and non-ASCII reasons are fine.
	h.do(req{method: "POST", path: "/api/v1/orders/" + id + "/cancel", token: h.token("alice"), key: "key with ~ spaces",
		body: `{"reason":"zu spät ☕"}`}).expect(t, 200, order.CodeOK)
}
