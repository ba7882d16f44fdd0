package edge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors"
)

func TestRetryReason(t *testing.T) {
	unavailable := func(format string, args ...any) error { return actors.Errorf(actors.CodeUnavailable, format, args...) }
	tests := []struct {
		err  error
		want string
	}{
		// The messages actors/grain.go and cluster/node.go write today.
		{unavailable("order o_1 is moving; retry"), RetryMoved},
		{unavailable("order moved to another activation; retry with the same Idempotency-Key"), RetryMoved},
		{unavailable("order o_1 cannot be activated right now; retry"), RetryMoved},
		{unavailable("order moved to another node; retry with the same Idempotency-Key"), RetryMoved},
		{unavailable("order o_1 has no owner that accepts it right now (topology changing); retry"), RetryMoved},
		{unavailable("order o_1 did not answer in 5s; retry"), RetryTimeout},
		{unavailable("order o_1 did not answer in 5s (timeout); retry"), RetryTimeout},
		{unavailable("request deadline passed"), RetryTimeout},
		{unavailable("order o_1 is not reachable (future: dead letter); retry"), RetryUnreachable},
		{unavailable("order could not be loaded; retry with the same Idempotency-Key"), RetryStore},
		{unavailable("order could not be saved; retry with the same Idempotency-Key"), RetryStore},
		{unavailable("order o_1 answered *orderpb.Other; retry"), RetryOther},
		// What a draining node or a lookup that checks ownership may say.
		{unavailable("node n_1 is draining; retry"), RetryDraining},
		{unavailable("node n_1 is LEAVING the cluster"), RetryDraining},
		{unavailable("stale activation of o_1"), RetryMoved},
		{unavailable("this node is not the owner of o_1"), RetryMoved},
		{unavailable("dead letter"), RetryUnreachable},
		// Wrapping does not hide the application error; a bare deadline is a timeout.
		{fmt.Errorf("executing Pay on order o_1: %w", unavailable("grain is moving")), RetryMoved},
		{context.DeadlineExceeded, RetryTimeout},
		{fmt.Errorf("calling: %w", context.DeadlineExceeded), RetryTimeout},
		{errors.New("order moved"), RetryOther}, // not an application error: its text is not trusted
		{unavailable(""), RetryOther},
		{nil, RetryOther},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.err), func(t *testing.T) {
			got := RetryReason(tt.err)
			if got != tt.want {
				t.Errorf("RetryReason(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestRetryReasonsAreClosed(t *testing.T) {
	known := map[string]bool{}
	for _, r := range RetryReasons {
		known[r] = true
	}
	for _, c := range retryCauses {
		if !known[c.reason] {
			t.Errorf("retryCauses uses %q, which RetryReasons lacks", c.reason)
		}
	}
}

func TestRetryMetrics(t *testing.T) {
	h := newHarness(t)
	h.svc.failNext(3) // "grain is moving", three times, then the command goes through
	v := h.createOrder("alice", "k", twoTeas)
	h.svc.failNext(2)
	h.do(req{method: "GET", path: "/api/v1/orders/" + v.ID, token: h.token("alice")}).expect(t, 200, actors.CodeOK)

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
		expect(t, 503, actors.CodeUnavailable)
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
