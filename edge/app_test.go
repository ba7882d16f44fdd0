package edge

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/ordermesh/ordermesh/actors/order"
)

func TestHealthAndReadiness(t *testing.T) {
	h := newHarness(t)
	h.do(req{method: "GET", path: "/healthz"}).expect(t, 200, order.CodeOK)
	r := h.do(req{method: "GET", path: "/readyz"}).expect(t, 503, order.CodeUnavailable)
	if !strings.Contains(r.Message, "joining the cluster") {
		t.Errorf("message %q does not say why", r.Message)
	}
	h.ready.Store(true)
	h.do(req{method: "GET", path: "/readyz"}).expect(t, 200, order.CodeOK)
}

func TestRequestID(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name, sent string
		kept       bool
	}{
		{"sane id is echoed", "abc-123_XYZ:42", true},
		{"128 characters", strings.Repeat("a", 128), true},
		{"missing", "", false},
		{"too long", strings.Repeat("a", 129), false},
		{"space", "a b", false},
		{"non-ASCII", "naïve", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.sent != "" {
				hdr[HeaderRequestID] = tt.sent
			}
			r := h.do(req{method: "GET", path: "/api/v1/catalog", header: hdr})
			got := r.Header.Get(HeaderRequestID)
			if tt.kept && got != tt.sent {
				t.Fatalf("echoed %q, want %q", got, tt.sent)
			}
			if !tt.kept && (got == tt.sent || !saneRequestID(got)) {
				t.Fatalf("generated %q", got)
			}
		})
	}
	// The id reaches the service, the error responses and every log line of the request.
	id := "trace-me-1"
	h.do(req{method: "POST", path: "/api/v1/orders", token: h.token("alice"), key: "k", body: `{"items":` + twoTeas + `}`,
		header: map[string]string{HeaderRequestID: id}}).expect(t, 201, order.CodeOK)
	if got := h.svc.lastRequestID(); got != id {
		t.Errorf("service got request id %q", got)
	}
	lines := h.logs.lines(t, "request_id", id)
	if len(lines) == 0 {
		t.Fatal("no log line carries the request id")
	}
	access := lines[len(lines)-1]
	if access["msg"] != "http request" || access["order_id"] != order.OrderIDFor("alice", "k") ||
		access["route"] != "/api/v1/orders" || access["status"] != float64(201) {
		t.Errorf("access log line %v", access)
	}
	r := h.do(req{method: "GET", path: "/nowhere", header: map[string]string{HeaderRequestID: "lost-1"}}).expect(t, 404, order.CodeRouteNotFound)
	if r.Header.Get(HeaderRequestID) != "lost-1" {
		t.Error("request id not echoed on a 404")
	}
}

func TestRoutingErrors(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		method, path string
		status       int
		code         order.Code
	}{
		{"GET", "/nowhere", 404, order.CodeRouteNotFound},
		{"GET", "/api/v2/orders", 404, order.CodeRouteNotFound},
		{"DELETE", "/api/v1/catalog", 405, order.CodeMethodNotAllowed},
		{"PUT", "/auth/login", 405, order.CodeMethodNotAllowed},
		{"GET", "/api/v1/orders/a/b/c", 404, order.CodeRouteNotFound},
		{"POST", "/api/v1/orders/o_1", 405, order.CodeMethodNotAllowed},
		{"DELETE", "/api/v1/orders/o_1", 405, order.CodeMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			h.do(req{method: tt.method, path: tt.path}).expect(t, tt.status, tt.code)
		})
	}
}

func TestBodyLimit(t *testing.T) {
	h := newHarness(t)
	// fasthttp enforces the limit while reading, which app.Test reports as a failure of
	// the connection; a real listener shows what a client gets.
	base := h.serve()
	post := func(body string) response {
		t.Helper()
		hr, err := http.NewRequest("POST", base+"/api/v1/orders", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		hr.Header.Set("Authorization", "Bearer "+h.token("alice"))
		hr.Header.Set(HeaderIdempotencyKey, "big")
		hr.Header.Set(HeaderRequestID, "big-1")
		res, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var r response
		raw, _ := io.ReadAll(res.Body)
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("not an envelope: %s", raw)
		}
		r.Status, r.Header, r.Raw = res.StatusCode, res.Header, raw
		return r
	}
	// Over the limit: the server answers from Content-Length and closes, possibly while a
	// client is still writing (which then sees a reset, not the 413), so send the
	// headers and the start of the body on a raw connection and read the answer.
	res, raw := rawExchange(t, strings.TrimPrefix(base, "http://"), "POST /api/v1/orders HTTP/1.1\r\nHost: x\r\n"+
		"Authorization: Bearer "+h.token("alice")+"\r\n"+HeaderIdempotencyKey+": big\r\n"+HeaderRequestID+": big-1\r\n"+
		"Content-Type: application/json\r\nContent-Length: "+strconv.Itoa(DefaultBodyLimit+1)+"\r\n\r\n{\"items\":[")
	var r response
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("not an envelope: %s", raw)
	}
	r.Status, r.Header, r.Raw = res.StatusCode, res.Header, raw
	r.expect(t, 413, order.CodeTooLarge)
	if r.Header.Get(HeaderRequestID) != "big-1" {
		t.Errorf("request id %q on a 413", r.Header.Get(HeaderRequestID))
	}
	// At the limit is fine (and then fails on content, not size).
	exact := `{"items":[{"sku":"` + strings.Repeat("x", DefaultBodyLimit-32) + `","qty":1}]}`
	exact += strings.Repeat(" ", DefaultBodyLimit-len(exact))
	post(exact).expect(t, 422, order.CodeValidation)
}

// brokenService fails the way a bug would: a panic or an unexpected error.
type brokenService struct{ panics bool }

func (b brokenService) Execute(context.Context, order.Command, string) (order.Result, error) {
	if b.panics {
		panic("boom")
	}
	return order.Result{}, errors.New("disk on fire at /var/lib/secret")
}

func (b brokenService) Get(ctx context.Context, _ string, _ order.Principal, _ string) (order.View, error) {
	_, err := b.Execute(ctx, order.Command{}, "")
	return order.View{}, err
}

func TestInternalErrorsAreHidden(t *testing.T) {
	for _, panics := range []bool{false, true} {
		h := newHarness(t, func(_ *Config, d *Deps) { d.Orders = brokenService{panics: panics} })
		create := req{method: "POST", path: "/api/v1/orders", token: h.token("alice"), key: "k", body: `{"items":` + twoTeas + `}`,
			header: map[string]string{HeaderRequestID: "bug-1"}}
		r := h.do(create).expect(t, 500, order.CodeInternal)
		if r.Message != "internal error" || r.Header.Get(HeaderRequestID) != "bug-1" {
			t.Errorf("panics=%v: message %q, request id %q", panics, r.Message, r.Header.Get(HeaderRequestID))
		}
		h.do(req{method: "GET", path: "/api/v1/orders/o_1", token: h.token("alice")}).expect(t, 500, order.CodeInternal)
		logged := h.logs.lines(t, "request_id", "bug-1")
		want := "disk on fire"
		if panics {
			want = "panic: boom"
		}
		if len(logged) == 0 || !strings.Contains(logged[0]["error"].(string), want) {
			t.Errorf("panics=%v: the log does not have the detail: %v", panics, logged)
		}
	}
}

func TestMetrics(t *testing.T) {
	h := newHarness(t)
	h.createOrder("alice", "k", twoTeas)
	h.act("alice", order.OrderIDFor("alice", "k"), "ship", "s").expect(t, 403, order.CodeForbidden)
	h.act("olga", order.OrderIDFor("alice", "k"), "ship", "s").expect(t, 409, order.CodeIllegalTransition)
	h.do(req{method: "GET", path: "/no/such/route"})
	r := h.do(req{method: "GET", path: "/metrics"})
	if r.Status != 200 {
		t.Fatalf("/metrics: %d", r.Status)
	}
	body := string(r.Raw)
	for _, want := range []string{
		`ordermesh_http_requests_total{method="POST",route="/api/v1/orders",status="201"} 1`,
		`ordermesh_http_requests_total{method="POST",route="/api/v1/orders/:id/:action",status="409"} 1`,
		`ordermesh_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`ordermesh_http_request_duration_seconds_count{method="POST",route="/api/v1/orders"} 1`,
		`ordermesh_edge_commands_total{code="0",type="Create"} 1`,
		`ordermesh_edge_commands_total{code="40900",type="Ship"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestCatalogEndpoint(t *testing.T) {
	h := newHarness(t)
	r := h.do(req{method: "GET", path: "/api/v1/catalog"}).expect(t, 200, order.CodeOK)
	if !strings.Contains(string(r.Data), `{"sku":"tea-sencha","name":"Sencha green tea, 100 g","unit_price":1290,"currency":"EUR"}`) {
		t.Errorf("catalog %s", r.Data)
	}
}
