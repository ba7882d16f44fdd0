package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"reflect"
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
		{"not JSON whitespace", "\v", true, "malformed JSON"},
		{"malformed", `{"items":[}`, false, "malformed JSON at byte 10"},
		{"truncated", `{"items":[`, false, "incomplete"},
		{"unknown field", `{"items":[],"coupon":"FREE"}`, false, `unknown field "coupon"`},
		{"unknown nested field", `{"items":[{"sku":"a","qty":1,"price":0}]}`, false, `unknown field "items[0].price"`},
		{"wrong case", `{"ITEMS":[]}`, false, `unknown field "ITEMS"`},
		{"wrong nested case", `{"items":[{"sku":"a","Qty":1000}]}`, false, `unknown field "items[0].Qty"`},
		{"duplicate field", `{"items":[],"items":[{"sku":"a","qty":1}]}`, false, `duplicate field "items"`},
		{"duplicate nested field", `{"items":[{"sku":"a","qty":1,"qty":1000}]}`, false, `duplicate field "items[0].qty"`},
		{"duplicate by escape", `{"items":[{"sku":"a","qty":1,"q\u0074y":1000}]}`, false, `duplicate field "items[0].qty"`},
		{"wrong type", `{"items":"all"}`, false, `field "items" must be an array, not a string`},
		{"wrong nested type", `{"items":[{"sku":"a","qty":"1"}]}`, false, `field "items[0].qty" must be an integer, not a string`},
		{"fraction", `{"items":[{"sku":"a","qty":1.5}]}`, false, `field "items[0].qty" must be an integer, not 1.5`},
		{"overflow", `{"items":[{"sku":"a","qty":1e30}]}`, false, `must be an integer, not 1e30`},
		{"not an object", `[1,2]`, false, "the body must be an object, not an array"},
		{"two values", `{"items":[]}{"items":[]}`, false, "unexpected data after"},
		{"trailing garbage", `{"items":[]} x`, false, "unexpected data after"},
		{"invalid UTF-8", "{\"items\":[{\"sku\":\"\xff\",\"qty\":1}]}", false, "malformed JSON at byte"},
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
		{"create: qty twice", "/api/v1/orders", "alice", `{"items":[{"sku":"tea-sencha","qty":1,"qty":1000}]}`},
		{"create: Qty", "/api/v1/orders", "alice", `{"items":[{"sku":"tea-sencha","Qty":1}]}`},
		{"action: reason twice", "/api/v1/orders/" + id + "/cancel", "alice", `{"reason":"a","reason":"b"}`},
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
	if ev := h.events("alice", id); len(ev) != 4 || ev[3].Reason != "changed my mind" {
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
			if strings.Contains(err.Error(), "not an envelope") || strings.Contains(err.Error(), errContract) {
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

// FuzzDecodeStrict checks that decodeStrict accepts a body only if every object in it, at
// every level, has unique, exactly cased, known member names. The check is independent of
// the decoder under test: encoding/json's token stream, walked along the Go type.
func FuzzDecodeStrict(f *testing.F) {
	for _, s := range []string{
		`{"items":[{"sku":"tea-sencha","qty":1}]}`,
		`{"items":[{"sku":"a","qty":1,"qty":1000}]}`,
		`{"items":[{"sku":"a","Qty":1}]}`,
		`{"ITEMS":[]}`,
		`{"items":[{"sku":"a","q\u0074y":1,"qty":2}]}`,
		`{"username":"alice","password":"ordermesh"}`,
		`{"USERNAME":"alice","password":"ordermesh"}`,
		`{"username":"a","username":"b","password":"p"}`,
		`{"reason":"x"}`,
		`{"reason":"x","Reason":"y"}`,
		`[{"sku":"a","name":"A","unit_price":1,"currency":"EUR"}]`,
		`[{"sku":"a","name":"A","unit_price":1,"currency":"EUR","SKU":"b"}]`,
		`{"items":[null,{"sku":"\u0073"}]} `,
	} {
		f.Add(s)
	}
	targets := []func() any{
		func() any { return new(createOrderRequest) },
		func() any { return new(actionRequest) },
		func() any { return new(credentials) },
		func() any { return new([]Product) },
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, target := range targets {
			v := target()
			if decodeStrict([]byte(body), v, true) != nil {
				continue
			}
			dec := json.NewDecoder(strings.NewReader(body))
			if err := checkNames(dec, reflect.TypeOf(v).Elem()); err != nil && !errors.Is(err, io.EOF) {
				t.Fatalf("decodeStrict accepted %q into %T: %v", body, v, err)
			}
		}
	})
}

// checkNames reads one JSON value from dec and reports the first object member whose
// name is not exactly a json tag of the struct t expects there, or repeats in its object.
// It looks at names only: types are the decoder's business.
func checkNames(dec *json.Decoder, t reflect.Type) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		if t.Kind() != reflect.Struct {
			return fmt.Errorf("object where %s belongs", t)
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			fields[name] = t.Field(i).Type
		}
		seen := map[string]bool{}
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return err
			}
			name := key.(string)
			ft, known := fields[name]
			switch {
			case !known:
				return fmt.Errorf("unknown member %q in %s", name, t)
			case seen[name]:
				return fmt.Errorf("duplicate member %q in %s", name, t)
			}
			seen[name] = true
			if err := checkNames(dec, ft); err != nil {
				return err
			}
		}
	case json.Delim('['):
		if t.Kind() != reflect.Slice {
			return fmt.Errorf("array where %s belongs", t)
		}
		for dec.More() {
			if err := checkNames(dec, t.Elem()); err != nil {
				return err
			}
		}
	default:
		return nil // a scalar or null
	}
	_, err = dec.Token() // the closing delimiter
	return err
}
