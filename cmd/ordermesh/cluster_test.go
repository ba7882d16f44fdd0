package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/edge"
)

// These tests start real node processes on 127.0.0.1 sharing one real PostgreSQL, and
// check that topology changes (scale up, drain, crash, restart) are invisible to clients
// and lose nothing.

type memberStatus struct {
	ID          string `json:"id"`
	HTTP        string `json:"http"`
	State       string `json:"state"`
	Activations int64  `json:"activations"`
}

type clusterStatus struct {
	Self         string         `json:"self"`
	TopologyHash string         `json:"topology_hash"`
	Members      []memberStatus `json:"members"`
}

func (c *client) cluster(t testing.TB) (clusterStatus, error) {
	status, env, err := c.do("GET", "/api/v1/cluster", "", nil)
	if err != nil {
		return clusterStatus{}, err
	}
	if status != 200 {
		return clusterStatus{}, fmt.Errorf("GET /api/v1/cluster: %d %s", status, env.Message)
	}
	var st clusterStatus
	err = json.Unmarshal(env.Data, &st)
	return st, err
}

// testCluster is a set of node processes sharing one store.
type testCluster struct {
	t     testing.TB
	dsn   string
	nodes []*proc
	extra []string
}

func startCluster(t testing.TB, dsn string, n int, extra ...string) *testCluster {
	c := &testCluster{t: t, dsn: dsn, extra: extra}
	for range n {
		c.add()
	}
	return c
}

// add starts one more node that joins through the first node.
func (c *testCluster) add() *proc {
	c.t.Helper()
	args := append([]string{}, c.extra...)
	if len(c.nodes) > 0 {
		args = append(args, "--join", c.nodes[0].addrs.gossip)
	}
	p := startFresh(c.t, c.dsn, args...)
	c.nodes = append(c.nodes, p)
	return p
}

// waitConverged waits until every listed node sees want active members and they agree.
func (c *testCluster) waitConverged(within time.Duration, want int, nodes ...*proc) {
	c.t.Helper()
	ops := make([]*client, len(nodes))
	for i, p := range nodes {
		ops[i] = login(c.t, p.base, "olga")
	}
	waitFor(c.t, within, fmt.Sprintf("%d nodes to agree on %d active members", len(nodes), want), func() bool {
		hash := ""
		for _, op := range ops {
			st, err := op.cluster(c.t)
			if err != nil {
				return false
			}
			active := 0
			for _, m := range st.Members {
				if m.State == "active" {
					active++
				}
			}
			if active != want || (hash != "" && st.TopologyHash != hash) {
				return false
			}
			hash = st.TopologyHash
		}
		return true
	})
}

func TestThreeNodesFormAClusterAndShareOrders(t *testing.T) {
	c := startCluster(t, postgresURL(t), 3)
	c.waitConverged(5*time.Second, 3, c.nodes...)

	const orders = 3000
	shopper := login(t, c.nodes[0].base, "alice")
	var wg sync.WaitGroup
	next := make(chan int)
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := *shopper
			cl.base = c.nodes[w%len(c.nodes)].base
			for i := range next {
				status, env, err := cl.do("POST", "/api/v1/orders", fmt.Sprintf("spread-%d", i), orderBody)
				if err != nil || status != 201 {
					t.Errorf("create %d: %d %+v %v", i, status, env, err)
				}
			}
		}()
	}
	for i := range orders {
		next <- i
	}
	close(next)
	wg.Wait()

	st, err := login(t, c.nodes[1].base, "olga").cluster(t)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, m := range st.Members {
		total += m.Activations
		share := float64(m.Activations) / (orders / 3.0)
		t.Logf("node %s: %d orders (%.1f%% of a third)", m.ID, m.Activations, share*100)
		if math.Abs(share-1) > 0.15 {
			t.Errorf("node %s holds %d orders, more than 15%% off a third of %d", m.ID, m.Activations, orders)
		}
	}
	// Every order has a grain, and so has the stock of every catalog sku (--demo stocks
	// them all at start).
	if skus := int64(len(edge.DemoCatalog().Products())); total != orders+skus {
		t.Errorf("%d activations in all, want %d orders and %d skus", total, orders, skus)
	}
}

var orderBody = map[string]any{"items": []map[string]any{{"sku": "tea-sencha", "qty": 1}}}

// balancer plays the load balancer in front of the nodes: it sends each request to a
// ready node (per /readyz), and when a node cannot be reached (connection refused or
// reset before an answer) it sends the same request, with the same idempotency key, to
// another one.
type balancer struct {
	mu    sync.Mutex
	bases []string
	down  map[string]bool
	next  atomic.Uint64
	stop  chan struct{}
	done  chan struct{}
	moves atomic.Int64 // requests re-sent to another node
}

func newBalancer(bases ...string) *balancer {
	b := &balancer{bases: bases, down: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go b.watch()
	return b
}

func (b *balancer) add(base string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bases = append(b.bases, base)
}

func (b *balancer) watch() {
	defer close(b.done)
	hc := &http.Client{Timeout: 500 * time.Millisecond}
	for {
		select {
		case <-b.stop:
			return
		case <-time.After(50 * time.Millisecond):
		}
		b.mu.Lock()
		bases := append([]string{}, b.bases...)
		b.mu.Unlock()
		for _, base := range bases {
			resp, err := hc.Get(base + "/readyz")
			ok := err == nil && resp.StatusCode == 200
			if err == nil {
				resp.Body.Close()
			}
			b.mu.Lock()
			b.down[base] = !ok
			b.mu.Unlock()
		}
	}
}

func (b *balancer) close() { close(b.stop); <-b.done }

func (b *balancer) pick() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for range len(b.bases) {
		base := b.bases[int(b.next.Add(1))%len(b.bases)]
		if !b.down[base] {
			return base
		}
	}
	return b.bases[0]
}

func (b *balancer) markDown(base string) {
	b.mu.Lock()
	b.down[base] = true
	b.mu.Unlock()
}

// do sends one request through the balancer.
func (b *balancer) do(c *client, method, path, key string, body any) (int, envelope, error) {
	var lastErr error
	for range 20 {
		cl := *c
		cl.base = b.pick()
		status, env, err := cl.do(method, path, key, body)
		if err == nil {
			return status, env, nil
		}
		lastErr = err
		if !unreachable(err) {
			return status, env, err
		}
		b.markDown(cl.base)
		b.moves.Add(1)
		time.Sleep(20 * time.Millisecond)
	}
	return 0, envelope{}, lastErr
}

func unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// load drives the order lifecycle through a balancer at a steady rate and records what
// was acknowledged and what failed.
type load struct {
	t                  *testing.T
	lb                 *balancer
	shopper, operator  *client
	mu                 sync.Mutex
	acks               []ack
	failures           []failure
	provoked, commands int
	stop               chan struct{}
	wg                 sync.WaitGroup
	started            time.Time
}

type failure struct {
	path, key string
	by        *client
	status    int
	message   string
}

// startLoad starts workers that each send one command every interval.
func startLoad(t *testing.T, lb *balancer, shopper, operator *client, workers int, interval time.Duration) *load {
	l := &load{t: t, lb: lb, shopper: shopper, operator: operator, stop: make(chan struct{}), started: time.Now()}
	for w := range workers {
		l.wg.Add(1)
		go l.worker(w, interval)
	}
	return l
}

func (l *load) worker(w int, interval time.Duration) {
	defer l.wg.Done()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	wait := func() bool {
		select {
		case <-l.stop:
			return false
		case <-tick.C:
			return true
		}
	}
	for n := 0; ; n++ {
		key := fmt.Sprintf("w%d-o%d", w, n)
		id, delivered := "", false
		for i, s := range steps {
			if !wait() {
				return
			}
			c, path, body := l.shopper, "/api/v1/orders", any(orderBody)
			if s.by == "operator" {
				c = l.operator
			}
			if s.action != "" {
				path, body = "/api/v1/orders/"+id+"/"+s.action, nil
			}
			stepKey := key + "-" + s.event
			status, env, err := l.lb.do(c, "POST", path, stepKey, body)
			l.mu.Lock()
			l.commands++
			if err != nil || status/100 != 2 {
				msg := env.Message
				if err != nil {
					msg = err.Error()
				}
				l.failures = append(l.failures, failure{path: path, key: stepKey, by: c, status: status, message: msg})
				l.mu.Unlock()
				break // this order's next steps would be illegal; start another
			}
			var v orderView
			_ = json.Unmarshal(env.Data, &v)
			id, delivered = v.ID, i == len(steps)-1
			l.acks = append(l.acks, ack{v.ID, v.Version, s.event})
			l.mu.Unlock()
		}
		// Only a delivered order: one whose lifecycle broke off may still be payable, and
		// its failed step is retried with its own key at the end.
		if delivered && n%5 == 0 {
			// Provoke an illegal transition on purpose: pay for a delivered order.
			if !wait() {
				return
			}
			status, env, err := l.lb.do(l.shopper, "POST", "/api/v1/orders/"+id+"/pay", key+"-again", nil)
			l.mu.Lock()
			l.commands++
			if err == nil && status == 409 && env.Code == 40900 {
				l.provoked++
			} else {
				l.failures = append(l.failures, failure{path: "pay again", key: key + "-again", status: status, message: fmt.Sprint(env.Message, err)})
			}
			l.mu.Unlock()
		}
	}
}

// finish stops the load and returns the command rate it achieved.
func (l *load) finish() float64 {
	close(l.stop)
	l.wg.Wait()
	rate := float64(l.commands) / time.Since(l.started).Seconds()
	l.t.Logf("load: %d commands (%.0f/s), %d acknowledged, %d provoked 409s, %d failed, %d requests moved to another node",
		l.commands, rate, len(l.acks), l.provoked, len(l.failures), l.lb.moves.Load())
	return rate
}

// verify checks every acknowledged command against the store's history through the API.
func (l *load) verify(t *testing.T) {
	byOrder := map[string][]ack{}
	for _, a := range l.acks {
		byOrder[a.order] = append(byOrder[a.order], a)
	}
	ids := make([]string, 0, len(byOrder))
	for id := range byOrder {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		cl := *l.operator
		cl.base = l.lb.pick()
		events := cl.events(t, id)
		checkHistory(t, id, events)
		for _, a := range byOrder[id] {
			if a.version == 0 || a.version > uint64(len(events)) || events[a.version-1].Type != a.event {
				t.Errorf("order %s: acknowledged %s at version %d is not in its history", id, a.event, a.version)
			}
		}
		keys := map[string]bool{}
		for _, e := range events {
			if keys[e.IdempotencyKey] {
				t.Errorf("order %s: key %s applied twice", id, e.IdempotencyKey)
			}
			keys[e.IdempotencyKey] = true
		}
	}
}

func (l *load) waitAcks(n int) {
	waitFor(l.t, 60*time.Second, fmt.Sprintf("%d more acknowledged commands", n), func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.acks) >= n
	})
}

func (l *load) ackCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acks)
}

func TestScaleUpAndDrainUnderLoadFailNothing(t *testing.T) {
	c := startCluster(t, postgresURL(t), 3)
	c.waitConverged(10*time.Second, 3, c.nodes...)
	lb := newBalancer(c.nodes[0].base, c.nodes[1].base, c.nodes[2].base)
	defer lb.close()
	shopper, operator := login(t, c.nodes[0].base, "alice"), login(t, c.nodes[0].base, "olga")
	// 12 workers × 25 commands/s = 300 commands/s offered.
	l := startLoad(t, lb, shopper, operator, 12, 40*time.Millisecond)
	l.waitAcks(l.ackCount() + 600)

	// Scale 3 -> 4.
	fourth := c.add()
	lb.add(fourth.base)
	c.waitConverged(10*time.Second, 4, c.nodes...)
	l.waitAcks(l.ackCount() + 600)

	// Scale 4 -> 3: drain the second node through the API of the first.
	victim := c.nodes[1]
	op0 := *operator
	op0.base = c.nodes[0].base
	id := nodeID(t, victim)
	if status, env, err := op0.do("POST", "/api/v1/cluster/nodes/"+id+"/drain", "", nil); err != nil || status != 202 {
		t.Fatalf("drain: %d %+v %v", status, env, err)
	}
	select {
	case <-victim.done:
		if code := victim.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("drained node exited %d", code)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("drained node did not exit")
	}
	c.waitConverged(10*time.Second, 3, c.nodes[0], c.nodes[2], fourth)
	l.waitAcks(l.ackCount() + 600)

	// The offered rate is a target, not an assertion: this machine is shared. What must
	// hold is that the load ran through the scale-up and the drain (waitAcks above) and
	// that nothing failed.
	t.Logf("load ran at %.0f commands/s (300 offered)", l.finish())
	for _, f := range l.failures {
		t.Errorf("failed request: %s (key %s): %d %s", f.path, f.key, f.status, f.message)
	}
	l.verify(t)
}

func nodeID(t testing.TB, p *proc) string {
	st, err := login(t, p.base, "olga").cluster(t)
	if err != nil {
		t.Fatal(err)
	}
	return st.Self
}

func TestSIGKILLOneOfThreeUnderLoad(t *testing.T) {
	c := startCluster(t, postgresURL(t), 3)
	c.waitConverged(10*time.Second, 3, c.nodes...)
	lb := newBalancer(c.nodes[0].base, c.nodes[1].base, c.nodes[2].base)
	defer lb.close()
	shopper, operator := login(t, c.nodes[0].base, "alice"), login(t, c.nodes[0].base, "olga")
	l := startLoad(t, lb, shopper, operator, 12, 40*time.Millisecond)
	l.waitAcks(600)

	c.nodes[2].kill()
	killed := time.Now()
	lb.markDown(c.nodes[2].base)
	// Every order acknowledged so far is served again (by the survivors) within 10 s.
	l.mu.Lock()
	orders := map[string]bool{}
	for _, a := range l.acks {
		orders[a.order] = true
	}
	l.mu.Unlock()
	op := *operator
	op.base = c.nodes[0].base
	waitFor(t, 10*time.Second, "every order to be served again after the kill", func() bool {
		for id := range orders {
			status, _, err := op.do("GET", "/api/v1/orders/"+id, "", nil)
			if err != nil || status != 200 {
				return false
			}
			delete(orders, id)
		}
		return true
	})
	t.Logf("all orders served again %.1fs after SIGKILL", time.Since(killed).Seconds())
	l.waitAcks(l.ackCount() + 600)
	l.finish()
	t.Logf("%d requests failed during the crash window", len(l.failures))

	// Each failed command, retried with its key, now takes effect exactly once.
	for _, f := range l.failures {
		if f.by == nil {
			continue
		}
		cl := *f.by
		cl.base = c.nodes[0].base
		status, env, err := cl.do("POST", f.path, f.key, orderBodyFor(f.path))
		if err != nil || status/100 != 2 {
			var history []eventView
			if id := strings.TrimPrefix(strings.TrimSuffix(f.path, "/"+path.Base(f.path)), "/api/v1/orders/"); id != f.path {
				history = op.events(t, id)
			}
			t.Errorf("retrying %s (key %s): %d %+v %v; history %+v", f.path, f.key, status, env, err, history)
			continue
		}
		var v orderView
		_ = json.Unmarshal(env.Data, &v)
		n := 0
		for _, e := range op.events(t, v.ID) {
			if e.IdempotencyKey == f.key {
				n++
			}
		}
		if n != 1 {
			t.Errorf("key %s applied %d times", f.key, n)
		}
	}
	l.verify(t)
}

func orderBodyFor(path string) any {
	if path == "/api/v1/orders" {
		return orderBody
	}
	return nil
}

func TestRestartedNodeRejoinsAndTakesItsShare(t *testing.T) {
	c := startCluster(t, postgresURL(t), 3)
	c.waitConverged(10*time.Second, 3, c.nodes...)
	old := c.nodes[1]
	old.stop()
	c.waitConverged(10*time.Second, 2, c.nodes[0], c.nodes[2])

	again := startMember(t, c.dsn, old.addrs, "--join", c.nodes[0].addrs.gossip)
	c.nodes[1] = again
	c.waitConverged(10*time.Second, 3, c.nodes...)
	shopper := login(t, again.base, "alice")
	for i := range 300 {
		if status, env, err := shopper.do("POST", "/api/v1/orders", fmt.Sprintf("rejoin-%d", i), orderBody); err != nil || status != 201 {
			t.Fatalf("create: %d %+v %v", status, env, err)
		}
	}
	st, err := login(t, c.nodes[0].base, "olga").cluster(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Members {
		t.Logf("node %s (%s): %d orders", m.ID, m.HTTP, m.Activations)
		if m.HTTP == old.addrs.http && m.Activations < 60 {
			t.Errorf("the restarted node holds %d of 300 orders, want about a third", m.Activations)
		}
	}
}
