package edge

import (
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/ordermesh/ordermesh/actors/order"
)

func TestDecodeStrict(t *testing.T) {
	tests := []struct {
		name, body string
		allowEmpty bool
		wantErr    string // substring of the client message; "" = no error
	}{
		{"valid", `{"items":[{"sku":"a","qty":1}]}`, false, ""},
		{"surrounding whitespace", " \n{\"items\":[]}\t", false, ""},
		{"empty allowed", "", true, ""},
		{"empty refused", "", false, "body is required"},
		{"whitespace only refused", "  \n", false, "body is required"},
		{"malformed", `{"items":[}`, false, "malformed JSON at byte"},
		{"truncated", `{"items":[`, false, "incomplete"},
		{"unknown field", `{"items":[],"coupon":"FREE"}`, false, `unknown field "coupon"`},
		{"unknown nested field", `{"items":[{"sku":"a","qty":1,"price":0}]}`, false, `unknown field "price"`},
		{"wrong type", `{"items":"all"}`, false, `field "items" must be an array, not string`},
		{"wrong nested type", `{"items":[{"sku":"a","qty":"1"}]}`, false, `field "items.qty" must be an integer, not string`},
		{"fraction", `{"items":[{"sku":"a","qty":1.5}]}`, false, `must be an integer`},
		{"overflow", `{"items":[{"sku":"a","qty":1e30}]}`, false, `must be an integer`},
		{"not an object", `[1,2]`, false, "must be a JSON object"},
		{"two values", `{"items":[]}{"items":[]}`, false, "unexpected data after"},
		{"trailing garbage", `{"items":[]} x`, false, "unexpected data after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v createOrderRequest
			err := decodeStrict([]byte(tt.body), &v, tt.allowEmpty)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if order.ErrorCode(err) != order.CodeInvalidRequest || !strings.Contains(order.ErrorMessage(err), tt.wantErr) {
				t.Fatalf("got %v, want code 40000 with %q", err, tt.wantErr)
			}
		})
	}
}

func TestBadBodiesAre400(t *testing.T) {
	h := newHarness(t)
	id := h.createOrder("alice", "k", twoTeas).ID
	tests := []struct {
		name, path, user, body string
	}{
		{"create: malformed", "/api/v1/orders", "alice", `{"items":`},
		{"create: unknown field", "/api/v1/orders", "alice", `{"items":[],"total":1}`},
		{"create: wrong type", "/api/v1/orders", "alice", `{"items":[{"sku":"tea-sencha","qty":"two"}]}`},
		{"create: trailing data", "/api/v1/orders", "alice", `{"items":[]}[]`},
		{"create: empty", "/api/v1/orders", "alice", ``},
		{"action: malformed", "/api/v1/orders/" + id + "/cancel", "alice", `{"reason":`},
		{"action: unknown field", "/api/v1/orders/" + id + "/cancel", "alice", `{"why":"x"}`},
		{"action: wrong type", "/api/v1/orders/" + id + "/cancel", "alice", `{"reason":42}`},
		{"login: wrong type", "/auth/login", "", `{"username":1,"password":"x"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req{method: "POST", path: tt.path, key: "bad", body: tt.body}
			if tt.user != "" {
				r.token = h.token(tt.user)
			}
			h.do(r).expect(t, 400, order.CodeInvalidRequest)
		})
	}
	// An action body is optional, and a reason is recorded.
	h.act("alice", id, "pay", "p").expect(t, 200, order.CodeOK)
	h.do(req{method: "POST", path: "/api/v1/orders/" + id + "/cancel", token: h.token("alice"), key: "c", body: `{"reason":"changed my mind"}`}).
		expect(t, 200, order.CodeOK)
	if ev := h.events("alice", id); len(ev) != 3 || !strings.Contains(string(ev[2].Payload), "changed my mind") {
		t.Fatalf("events %+v", ev)
	}
}

// FuzzDecodeHandlers throws arbitrary bodies, keys, request ids and action names at the
// order endpoints. Whatever comes in, the answer is an envelope whose code matches its
// status, and never a 500: bad input is the client's problem, not a bug.
func FuzzDecodeHandlers(f *testing.F) {
	seeds := []struct{ body, key, requestID, action string }{
		{`{"items":[{"sku":"tea-sencha","qty":1}]}`, "k1", "r1", ""},
		{`{"items":[{"sku":"tea-sencha","qty":1}]}{}`, "k2", "", "pay"},
		{`{"items":[{"sku":"nope","qty":-1}]}`, "", "\x01", "ship"},
		{`{"reason":"x"}`, "k3", "r", "cancel"},
		{`{"reason":5}`, "k4", "r", "refund"},
		{`{"items":[{"sku":"tea-sencha","qty":1e400}]}`, "k5", "", ""},
		{`[`, strings.Repeat("k", 201), strings.Repeat("r", 200), "teleport"},
		{"\xff\xfe", "k6", "r", "confirm-payment"},
		{`null`, "k7", "r", "deliver"},
		{`{"items":[{"sku":"tea-sencha","qty":1,"sku":"mug-stoneware"}]}`, "k8", "r", ""},
		{`"` + strings.Repeat("a", 1000) + `"`, "k9", "r", "fail-payment"},
	}
	for _, s := range seeds {
		f.Add(s.body, s.key, s.requestID, s.action)
	}
	// Millions of requests: their log lines would only fill memory.
	h := newHarness(f, func(_ *Config, d *Deps) { d.Logger = slog.New(slog.DiscardHandler) })
	id := h.createOrder("alice", "fuzz-base", twoTeas).ID
	tokens := []string{h.token("alice"), h.token("olga")}

	f.Fuzz(func(t *testing.T, body, key, requestID, action string) {
		path := "/api/v1/orders"
		if action != "" {
			path += "/" + id + "/" + url.PathEscape(action)
		}
		res, err := h.try(req{method: "POST", path: path, body: body, token: tokens[len(key)%2],
			header: map[string]string{HeaderIdempotencyKey: key, HeaderRequestID: requestID}})
		if err != nil {
			if strings.Contains(err.Error(), "not an envelope") {
				t.Fatalf("%v", err)
			}
			t.Skip("request could not be sent:", err) // e.g. a header value net/http refuses
		}
		if res.Status >= 500 && res.Code != order.CodeUnavailable {
			t.Fatalf("%d %d %s for body %q key %q action %q", res.Status, res.Code, res.Message, body, key, action)
		}
		if res.Code != order.CodeOK && httpStatus(res.Code) != res.Status {
			t.Fatalf("status %d with code %d", res.Status, res.Code)
		}
	})
}
