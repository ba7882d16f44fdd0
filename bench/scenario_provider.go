package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The lifecycle with the payment provider and the fulfilment pool in the loop (--provider).
// The shopper creates and pays; the provider confirms or declines the payment by webhook
// and the pool ships the paid order; the shopper waits for each by polling its order
// (GET /api/v1/orders/{id}) with a growing pause, pays again (new key) after a decline,
// and delivers once the order is SHIPPED. The bench sends no confirm-payment, fail-payment
// or ship.
//
// Polls are not scenario requests: they are neither recorded in the per-op figures (count,
// throughput, latency) nor sent through the concurrency cap; the provider paragraph of the
// report counts them. The step after a wait is intended to start when the poll that saw
// the awaited state completed, as any step after the one before it.

// Poll pauses: the first after pollFirst, each next one pollGrowth times longer, up to pollMax.
const (
	pollFirst  = 100 * time.Millisecond
	pollMax    = time.Second
	pollGrowth = 1.5
)

// providerPlan is what one shopper does besides create, pay, (wait) and deliver.
type providerPlan struct {
	cancel string // "": no cancel; stateCreated: cancel instead of paying; statePaying: cancel right after pay
	refund string // "": no refund; statePaid: refund once PAID (racing the pool); stateDelivered: after deliver
}

// planProvider draws a plan from the shares: CancelShare and RefundShare as in the
// lifecycle without the provider; FailShare does not apply (the provider declines).
func planProvider(rng *mrand.Rand, cfg Config) providerPlan {
	var p providerPlan
	if rng.Float64() < cfg.CancelShare {
		p.cancel = stateCreated
		if rng.IntN(2) == 1 {
			p.cancel = statePaying
		}
		return p
	}
	if rng.Float64() < cfg.RefundShare {
		p.refund = statePaid
		if rng.IntN(2) == 1 {
			p.refund = stateDelivered
		}
	}
	return p
}

// requests is the number of scenario requests of p when every payment is accepted at
// once and no race is lost.
func (p providerPlan) requests() int {
	switch {
	case p.cancel == stateCreated:
		return 2 // create, cancel
	case p.cancel != "":
		return 3 // create, pay, cancel
	case p.refund == statePaid:
		return 3 // create, pay, refund
	case p.refund != "":
		return 4 // create, pay, deliver, refund
	default:
		return 3 // create, pay, deliver
	}
}

func meanProviderLength(cfg Config) float64 {
	const samples = 4000
	rng := mrand.New(mrand.NewPCG(1, 2))
	total := 0
	for range samples {
		total += planProvider(rng, cfg).requests()
	}
	return float64(total) / samples
}

// arriveProvider is one shopper's order with the provider and the pool in the loop.
func (s *lifecycleScenario) arriveProvider(ctx context.Context, r *runner, i int, intended time.Time) {
	rng := r.sessionRand(i)
	shopper := r.shopper(i)
	plan := planProvider(rng, r.cfg)
	v, t, ok := r.create(shopper, i, rng, intended)
	if !ok {
		return
	}
	var resp Response
	step := func(op, key string, expect409 bool) (Response, bool) {
		if ctx.Err() != nil {
			return Response{}, false // the run is over: in-flight steps finish, new ones do not start
		}
		as := shopper
		if op == OpDeliver || op == OpRefund {
			as = r.operator // as in the lifecycle without the provider
		}
		c := command(op, v.ID, as, r.key(i, key))
		if op == OpCancel || op == OpRefund {
			c.body = map[string]string{"reason": "bench"}
		}
		c.expect409 = expect409
		resp, t = r.exec(c, t)
		return resp, true
	}
	if plan.cancel == stateCreated {
		step(OpCancel, "cancel", false)
		return
	}
	ps := r.provider
	// tooLate sends op racing the system, and reports whether the system won (a 409):
	// then the order goes on as if op had not been sent.
	tooLate := func(op string, lost *int64) bool {
		resp, ok := step(op, op, true)
		if !ok || resp.OK() || resp.HTTP != http.StatusConflict {
			return false
		}
		ps.add(lost)
		return true
	}
	measured := !intended.Before(r.rec.warmupEnd)
	payDone := time.Time{}
	for try := 1; ; try++ {
		resp, ok := step(OpPay, fmt.Sprint("pay-", try), false)
		if !ok || !resp.OK() {
			return
		}
		if payDone.IsZero() {
			payDone = t
		}
		if plan.cancel == statePaying && try == 1 && !tooLate(OpCancel, &ps.cancelLost) {
			return // cancelled (unless the provider had confirmed)
		}
		got, ok := r.await(ctx, v.ID, shopper, &t, statePaying)
		switch {
		case !ok:
			ps.timedOut(ctx, &ps.payTimeouts)
			return
		case got == stateCreated: // declined: pay again, with a new key
			ps.add(&ps.declined)
			if try >= r.cfg.PayTries {
				ps.add(&ps.gaveUp)
				return
			}
			continue
		case got == statePaid || got == stateShipped || got == stateDelivered:
			ps.record(ps.payment, t.Sub(payDone), measured)
		default: // CLOSED (expired or cancelled) or anything else: the shopper stops here
			ps.add(&ps.closed)
			return
		}
		break
	}
	paidAt := t
	if plan.refund == statePaid && !tooLate(OpRefund, &ps.refundLost) {
		return // refunded (unless the pool had shipped)
	}
	got, ok := r.await(ctx, v.ID, shopper, &t, statePaid)
	switch {
	case !ok:
		ps.timedOut(ctx, &ps.shipTimeouts)
		return
	case got != stateShipped && got != stateDelivered:
		return
	}
	ps.record(ps.fulfilment, t.Sub(paidAt), measured)
	if resp, ok := step(OpDeliver, "deliver", false); !ok || !resp.OK() {
		return
	}
	if plan.refund == stateDelivered {
		step(OpRefund, "refund", false)
	}
}

// await polls order id as `as` while its status is `while`, pausing pollFirst and then
// longer each time, for at most ProviderWait after *t; it returns the first other
// status, and moves *t to the completion of the poll that saw it. ok is false when the
// wait ran out or the run ended first.
func (r *runner) await(ctx context.Context, id string, as *Account, t *time.Time, while string) (string, bool) {
	deadline := t.Add(r.cfg.ProviderWait)
	pause := pollFirst
	at := *t
	for {
		at = at.Add(pause)
		if at.After(deadline) || r.clock.SleepUntil(ctx, at) != nil {
			return "", false
		}
		pause = min(time.Duration(float64(pause)*pollGrowth), pollMax)
		v, ok := r.poll(id, as)
		at = r.clock.Now()
		if ok && v.Status != while {
			*t = at
			return v.Status, true
		}
	}
}

// poll reads order id once as `as` (logging in again once on a 401).
func (r *runner) poll(id string, as *Account) (orderView, bool) {
	req := Request{Method: http.MethodGet, Path: "/api/v1/orders/" + url.PathEscape(id), Token: as.Token()}
	resp := r.lb.Do(r.reqCtx, req)
	if resp.HTTP == http.StatusUnauthorized && r.reqCtx.Err() == nil && as.login(r.reqCtx, r.lb) == nil {
		req.Token = as.Token()
		resp = r.lb.Do(r.reqCtx, req)
	}
	var v orderView
	ok := resp.OK() && json.Unmarshal(resp.Data, &v) == nil
	r.provider.add(&r.provider.polls)
	if !ok {
		r.provider.add(&r.provider.pollErrors)
	}
	return v, ok
}

// providerStats accumulates the waits of a --provider run.
type providerStats struct {
	mu         sync.Mutex
	payment    *hdrhistogram.Histogram // acknowledged first pay -> PAID seen
	fulfilment *hdrhistogram.Histogram // PAID seen -> SHIPPED seen
	declined, gaveUp, closed, payTimeouts, shipTimeouts,
	cancelLost, refundLost, polls, pollErrors int64
}

func newProviderStats() *providerStats {
	return &providerStats{payment: newHistogram(), fulfilment: newHistogram()}
}

func (p *providerStats) add(n *int64) {
	p.mu.Lock()
	*n++
	p.mu.Unlock()
}

// timedOut counts a wait that ran out, unless the run ended first (ctx done).
func (p *providerStats) timedOut(ctx context.Context, n *int64) {
	if ctx.Err() == nil {
		p.add(n)
	}
}

// record adds a wait of an order whose lifecycle started after the warm-up.
func (p *providerStats) record(h *hdrhistogram.Histogram, d time.Duration, measured bool) {
	if !measured {
		return
	}
	p.mu.Lock()
	recordLatency(h, d)
	p.mu.Unlock()
}

// WaitReport is how long the shoppers waited for the system, in milliseconds, measured at
// the resolution of the polls (pollFirst, growing to pollMax).
type WaitReport struct {
	Count    int64   `json:"count"`
	P50Ms    float64 `json:"p50_ms"`
	P90Ms    float64 `json:"p90_ms"`
	P99Ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	TimedOut int64   `json:"timed_out"` // waits that ran out (--provider-wait) before the run ended, warm-up included
}

// ProviderReport is the provider paragraph of a --provider run. Payment is from the
// acknowledged first pay to the poll that saw PAID (declined payments paid again
// included), Fulfilment from there to the poll that saw SHIPPED; both only for
// lifecycles started after the warm-up. Polls are not in the per-op figures.
type ProviderReport struct {
	Payment    WaitReport `json:"payment"`
	Fulfilment WaitReport `json:"fulfilment"`
	Declined   int64      `json:"declined"`    // payments the provider declined (the order came back CREATED)
	GaveUp     int64      `json:"gave_up"`     // orders left unpaid after --pay-tries declines
	Closed     int64      `json:"closed"`      // orders found CLOSED while waiting for PAID (expired)
	CancelLost int64      `json:"cancel_lost"` // cancels after pay refused: the provider had confirmed
	RefundLost int64      `json:"refund_lost"` // refunds once PAID refused: the pool had shipped
	Polls      int64      `json:"polls"`
	PollErrors int64      `json:"poll_errors"`
}

func waitReport(h *hdrhistogram.Histogram, timedOut int64) WaitReport {
	w := WaitReport{Count: h.TotalCount(), TimedOut: timedOut}
	if w.Count > 0 {
		w.P50Ms, w.P90Ms = millis(h.ValueAtQuantile(50)), millis(h.ValueAtQuantile(90))
		w.P99Ms, w.MaxMs = millis(h.ValueAtQuantile(99)), millis(h.Max())
	}
	return w
}

func (p *providerStats) report() *ProviderReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	return &ProviderReport{
		Payment: waitReport(p.payment, p.payTimeouts), Fulfilment: waitReport(p.fulfilment, p.shipTimeouts),
		Declined: p.declined, GaveUp: p.gaveUp, Closed: p.closed, CancelLost: p.cancelLost, RefundLost: p.refundLost,
		Polls: p.polls, PollErrors: p.pollErrors,
	}
}

// WriteText writes the provider paragraph of the text report.
func (p *ProviderReport) WriteText(w io.Writer) {
	wait := func(name string, x WaitReport) {
		fmt.Fprintf(w, "%-10s %6d waits  p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  max %.1f ms  timed out %d\n",
			name, x.Count, x.P50Ms, x.P90Ms, x.P99Ms, x.MaxMs, x.TimedOut)
	}
	fmt.Fprintln(w, "waits for the system (from polls; payment: first pay acknowledged -> PAID, fulfilment: PAID -> SHIPPED):")
	wait("payment", p.Payment)
	wait("fulfilment", p.Fulfilment)
	fmt.Fprintf(w, "payments declined %d (paid again), given up %d, closed while paying %d; cancels after pay too late %d, refunds of PAID too late %d\n",
		p.Declined, p.GaveUp, p.Closed, p.CancelLost, p.RefundLost)
	fmt.Fprintf(w, "polls %d (not in the per-op figures), failed %d\n", p.Polls, p.PollErrors)
}
