package bench

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Balancer spreads requests over the targets, skipping those whose /readyz is not 200,
// and resends a request that got no response to another target. Resending is safe because
// every command carries its Idempotency-Key: the cluster applies it at most once.
//
// It routes by owner as a cluster-aware load balancer would: an answer about an order
// names the node that owns it (the Ordermesh-Owner header), and the order's next requests
// go straight to that node while it is ready, sparing them the hop from a node that does
// not own it. A create, or an order it has not heard of, goes round robin.
type Balancer struct {
	hc      *fasthttp.Client
	probe   *http.Client
	every   time.Duration
	retries int // extra sends after a 503 (the API's "try again with the same key")

	mu      sync.Mutex
	targets []string
	ready   map[string]bool
	next    int
	byAddr  map[string]string // host:port of a target -> the target
	owners  map[string]string // order id -> target that owns it, from HeaderOwner; nil = routing by owner off

	resent, sent, toOwner int64 // guarded by mu
}

// maxOwners bounds the orders whose owner the balancer remembers; when it is full it
// forgets them all and learns again (an owner is one answer away).
const maxOwners = 1 << 17

// HeaderOwner is the node's answer naming the order's owner (edge.HeaderOwner).
const HeaderOwner = "Ordermesh-Owner"

// NewBalancer returns a balancer over targets with connections for concurrency requests
// in flight, each bounded by timeout; call Watch to keep readiness current.
func NewBalancer(concurrency int, timeout time.Duration, targets []string) *Balancer {
	b := &Balancer{
		hc: newHTTPClient(concurrency, timeout), probe: &http.Client{Timeout: time.Second}, every: 250 * time.Millisecond, retries: 3,
		ready: map[string]bool{}, byAddr: map[string]string{}, owners: map[string]string{},
	}
	for _, t := range targets {
		b.Add(t)
	}
	return b
}

// Add adds a target (a node started by a chaos driver, say); it is used once it is ready.
func (b *Balancer) Add(target string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range b.targets {
		if t == target {
			return
		}
	}
	b.targets = append(b.targets, target)
	b.ready[target] = true // optimistic until the first probe says otherwise
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		b.byAddr[u.Host] = target
	}
}

// RouteByOwner turns routing by owner on or off (on by default); off, every request goes
// round robin, which is what a balancer that knows nothing of the cluster does.
func (b *Balancer) RouteByOwner(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !on:
		b.owners = nil
	case b.owners == nil:
		b.owners = map[string]string{}
	}
}

// Close releases idle connections, so a finished run leaves no keep-alive goroutines.
func (b *Balancer) Close() {
	b.hc.CloseIdleConnections()
	b.probe.CloseIdleConnections()
}

// Targets returns the targets in the order they were added.
func (b *Balancer) Targets() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.targets...)
}

// Resent returns how many sends were repeated on another target after a transport error.
func (b *Balancer) Resent() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.resent
}

// Sends returns how many requests were sent and how many of them went to the order's
// owner as the cluster had named it.
func (b *Balancer) Sends() (sent, toOwner int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sent, b.toOwner
}

// Probe checks every target's /readyz once.
func (b *Balancer) Probe(ctx context.Context) {
	for _, t := range b.Targets() {
		ok := false
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t+"/readyz", nil)
		if err == nil {
			if resp, err := b.probe.Do(req); err == nil {
				ok = resp.StatusCode == http.StatusOK
				resp.Body.Close()
			}
		}
		if ctx.Err() != nil {
			return
		}
		b.mu.Lock()
		b.ready[t] = ok
		b.mu.Unlock()
	}
}

// Watch probes the targets until ctx is done.
func (b *Balancer) Watch(ctx context.Context) {
	t := time.NewTicker(b.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.Probe(ctx)
		}
	}
}

// pick returns the owner of the order, if it is known and ready and not skip; else the
// next ready target after skip (round robin), or any target when none is ready: the
// request then fails visibly instead of the harness stalling.
func (b *Balancer) pick(orderID, skip string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent++
	if orderID != "" {
		if t, ok := b.owners[orderID]; ok && b.ready[t] && t != skip {
			b.toOwner++
			return t
		}
	}
	n := len(b.targets)
	for range n {
		t := b.targets[b.next%n]
		b.next++
		if b.ready[t] && t != skip {
			return t
		}
	}
	t := b.targets[b.next%n]
	b.next++
	return t
}

func (b *Balancer) markDown(t string) {
	b.mu.Lock()
	b.ready[t] = false
	b.resent++
	b.mu.Unlock()
}

// Do sends req through the balancer: to a ready target; again to another target with the
// same key if no response arrived; again after a short pause on a 503.
func (b *Balancer) Do(ctx context.Context, req Request) Response {
	attempts := len(b.Targets()) + 1
	var resp Response
	last := ""
	unavailable := 0
	orderID := orderOfPath(req.Path)
	for try := 0; try < attempts+b.retries; try++ {
		target := b.pick(orderID, last)
		resp = send(ctx, b.hc, target, req)
		last = target
		b.learnOwner(orderID, resp)
		switch {
		case ctx.Err() != nil:
			return resp
		case errNoResponse(resp):
			if try >= attempts {
				return resp
			}
			b.markDown(target)
		case resp.HTTP == http.StatusServiceUnavailable && unavailable < b.retries:
			unavailable++
			if sleepCtx(ctx, time.Duration(unavailable)*20*time.Millisecond) != nil {
				return resp
			}
		default:
			return resp
		}
	}
	return resp
}

// learnOwner remembers the owner an answer named for its order: the order of the path,
// or for a create the one its Location names.
func (b *Balancer) learnOwner(orderID string, resp Response) {
	if resp.Owner == "" {
		return
	}
	if orderID == "" {
		orderID = orderOfPath(resp.Location)
	}
	if orderID == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.byAddr[resp.Owner]
	if !ok || b.owners == nil {
		return // a node the harness was not given, or routing by owner is off
	}
	if len(b.owners) >= maxOwners {
		clear(b.owners)
	}
	b.owners[orderID] = t
}

// orderOfPath returns the {id} of /api/v1/orders/{id}[/...], or "".
func orderOfPath(path string) string {
	rest, ok := strings.CutPrefix(path, "/api/v1/orders/")
	if !ok {
		return ""
	}
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	return rest[:end]
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
