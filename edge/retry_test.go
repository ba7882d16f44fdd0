package edge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
)

func TestRetryReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{order.Unavailable(order.ReasonDraining, "node is draining"), "draining"},
		{order.Unavailable(order.ReasonMoved, "order moved to another node"), "moved"},
		// The reason crosses the wire and survives wrapping; the message is never read.
		{fmt.Errorf("executing Pay on order o_1: %w", order.Unavailable(order.ReasonStore, "order moved")), "store"},
		{order.Errorf(order.CodeUnavailable, "node n_1 is draining"), "other"}, // no reason given: text is not trusted
		{context.DeadlineExceeded, "timeout"},
		{fmt.Errorf("calling: %w", context.DeadlineExceeded), "timeout"},
		{errors.New("order moved"), "other"},
		{nil, "other"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.err), func(t *testing.T) {
			if got := RetryReason(tt.err); got != tt.want {
				t.Errorf("RetryReason(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestRetryMetrics(t *testing.T) {
	h := newHarness(t)
	h.svc.failNext(3) // "grain is moving", three times, then the command goes through
	v := h.createOrder("alice", "k", twoTeas)
	h.svc.failNext(2)
	h.do(req{method: "GET", path: "/api/v1/orders/" + v.ID, token: h.token("alice")}).expect(t, 200, order.CodeOK)

	body := string(h.do(req{method: "GET", path: "/metrics"}).Raw)
	for _, want := range []string{
		`ordermesh_edge_retries_total{reason="moved"} 5`,
		`ordermesh_edge_retries_total{reason="draining"} 0`, // every reason is there from the start
		`ordermesh_edge_retries_total{reason="other"} 0`,
		`ordermesh_edge_retry_exhausted_total 0`,
		`ordermesh_edge_commands_total{code="0",type="Create"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestRetryExhausted(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Deps) { c.RetryFor = 50 * time.Millisecond })
	h.svc.failNext(1 << 20) // the grain never comes back
	r := h.do(req{method: "POST", path: "/api/v1/orders", token: h.token("alice"), key: "k", body: `{"items":` + twoTeas + `}`}).
		expect(t, 503, order.CodeUnavailable)
	if r.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After on the final 503")
	}
	body := string(h.do(req{method: "GET", path: "/metrics"}).Raw)
	for _, want := range []string{
		`ordermesh_edge_retry_exhausted_total 1`,
		`ordermesh_edge_commands_total{code="50300",type="Create"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Some retries were made before giving up, all for the same reason.
	if strings.Contains(body, `ordermesh_edge_retries_total{reason="moved"} 0`) {
		t.Error("no retry counted before giving up")
	}
}
