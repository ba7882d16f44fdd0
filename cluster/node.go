// Package cluster runs the grains of a node: the protoactor actor system, remoting,
// membership (hashicorp/memberlist), placement of identities on members, and the node's
// lifecycle (join, drain, leave). Its Node is the order.Service the edge talks to.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/hashicorp/memberlist"

	"github.com/ordermesh/ordermesh/actors"
	"github.com/ordermesh/ordermesh/actors/orderpb"
	"github.com/ordermesh/ordermesh/cluster/clusterpb"
)

// Config configures a node.
type Config struct {
	Name      string   // cluster name; nodes of one cluster share it
	Remote    string   // host:port to bind actor remoting ("127.0.0.1:0" picks a port)
	Gossip    string   // host:port to bind memberlist; "" runs the node alone
	Advertise string   // host peers use to reach this node; "" = the bind hosts
	Join      []string // gossip addresses of running nodes; none = start a new cluster
	HTTP      string   // the edge's address, published in the cluster view
	// Fast uses tight failure-detection timings (local clusters and tests).
	Fast bool
	// RequestTimeout bounds one attempt of one call to a grain (default 2s). It is short
	// on purpose: a call to a node that just died waits for it, and the edge retries
	// with the same idempotency key once the view has moved the order elsewhere. It must
	// exceed three times Grain.WriteTimeout (which defaults to WriteTimeoutFor of it): see
	// Timeouts.
	RequestTimeout time.Duration
	// MaxGrains bounds the grains (orders and skus) active on this node (0 = no bound). Activating
	// one more passivates the least recently used first; it reactivates from the store
	// on its next message.
	MaxGrains int
	Grain     *actors.GrainConfig
	// Stock configures the stock grains (one per sku); nil = no stock grains, and the
	// order grains do not track stock. The order grains reach the stock grains through
	// the node (Node.Stock) unless Grain.Stock is set.
	Stock *actors.StockConfig
	Push  *Push // live push; nil = none
	// PaymentBreaker, if set, reports the state of the node's payment provider circuit
	// breaker, for the cluster view.
	PaymentBreaker func() string
	// Load, if set, reports the node's recent HTTP requests (the edge measures them), for
	// the cluster view.
	Load    func() Load
	Logger  *slog.Logger
	Metrics *Metrics // optional
	// OTel, if set, switches on protoactor-go's own metrics, exported through it (see
	// NewOTelMetrics).
	OTel *OTelMetrics
	// Security secures remoting (mutual TLS) and gossip (keyring). nil runs both in the
	// clear: only for experiments (--insecure), and such a node cannot meet secure ones.
	Security *Security
}

// DefaultOrderTimeout is how long an unpaid order stays open when GrainConfig.OrderTimeout
// is not set: 30 minutes, then it closes and its stock is released.
const DefaultOrderTimeout = 30 * time.Minute

// Node is one running ordermesh member.
type Node struct {
	cfg      Config
	system   *actor.ActorSystem
	cluster  *pcluster.Cluster
	members  membership
	provider *memberlistProvider // nil when alone
	lookup   *lookup
	started  time.Time

	topology  chan struct{} // signals a view change to the disown loop
	lastView  atomic.Uint64 // version of the last view handed to the disown loop
	done      chan struct{} // closed by Stop
	drainReq  chan struct{} // closed when a drain is requested (API, peer, signal)
	drainOnce sync.Once
	stopOnce  sync.Once
}

var _ order.Service = (*Node)(nil)

// Start starts the actor system, joins the cluster and becomes active.
func Start(cfg Config) (*Node, error) {
	if cfg.Name == "" {
		cfg.Name = "ordermesh"
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Grain.OrderTimeout <= 0 {
		cfg.Grain.OrderTimeout = DefaultOrderTimeout
	}
	if cfg.Grain.WriteTimeout <= 0 {
		cfg.Grain.WriteTimeout = WriteTimeoutFor(cfg.RequestTimeout)
	}
	if err := (Timeouts{Attempt: cfg.RequestTimeout, Write: cfg.Grain.WriteTimeout}).Check(); err != nil {
		return nil, err
	}
	host, port, err := splitHostPort(cfg.Remote)
	if err != nil {
		return nil, fmt.Errorf("remote address: %w", err)
	}
	remoteOpts := []remote.ConfigOption{}
	if cfg.Advertise != "" {
		if port == 0 {
			return nil, errors.New("--advertise needs an explicit --remote port: peers must be told which port to use")
		}
		remoteOpts = append(remoteOpts, remote.WithAdvertisedHost(net.JoinHostPort(cfg.Advertise, strconv.Itoa(port))))
	}
	if cfg.Security != nil {
		if err := cfg.Security.check(); err != nil {
			return nil, err
		}
		remoteOpts = append(remoteOpts, cfg.Security.remoteOptions()...)
	}
	// protoactor logs every activation and retry at info; keep only its warnings.
	libLogger := slog.New(minLevel{cfg.Logger.Handler(), slog.LevelWarn}).With("lib", "protoactor")
	sysOpts := []actor.ConfigOption{actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return libLogger })}
	if cfg.OTel != nil {
		sysOpts = append(sysOpts, actor.WithMetricProviders(cfg.OTel.MeterProvider()))
	}
	system := actor.NewActorSystem(sysOpts...)
	n := &Node{
		cfg: cfg, system: system, started: time.Now(),
		topology: make(chan struct{}, 1), done: make(chan struct{}), drainReq: make(chan struct{}),
	}
	n.lookup = newLookup(min(time.Second, cfg.RequestTimeout), max(cfg.MaxGrains, 0))
	cfg.Grain.Node = system.ID
	cfg.Grain.Owns = n.lookup.owns
	cfg.Grain.Draining = n.lookup.draining.Load
	n.wirePush()

	kinds := []*pcluster.Kind{pcluster.NewKind(actors.KindOrder, actors.NewGrainProps(cfg.Grain).Configure(actor.WithReceiverMiddleware(n.forgetOnStop)))}
	if sc := cfg.Stock; sc != nil {
		sc.Node, sc.Owns, sc.Draining = system.ID, n.lookup.owns, n.lookup.draining.Load
		if sc.WriteTimeout <= 0 {
			sc.WriteTimeout = cfg.Grain.WriteTimeout
		}
		if sc.IdleTimeout <= 0 {
			sc.IdleTimeout = cfg.Grain.IdleTimeout
		}
		if sc.Now == nil {
			sc.Now = cfg.Grain.Now
		}
		if sc.Logger == nil {
			sc.Logger = cfg.Grain.Logger
		}
		if cfg.Grain.Stock == nil {
			cfg.Grain.Stock = StockService{n}
		}
		kinds = append(kinds, pcluster.NewKind(actors.KindStock, actors.NewStockProps(sc).Configure(actor.WithReceiverMiddleware(n.forgetOnStop))))
	}
	clusterCfg := pcluster.Configure(cfg.Name, joiner{n}, n.lookup, remote.Configure(host, port, remoteOpts...),
		pcluster.WithKinds(kinds...), pcluster.WithRequestTimeout(cfg.RequestTimeout))
	n.cluster = pcluster.New(system, clusterCfg)
	if err := startMember(n.cluster); err != nil {
		if n.members != nil {
			_ = n.members.Leave(time.Second)
		}
		return nil, err
	}
	if _, err := system.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return placement{n} }), placementName); err != nil {
		n.shutdown()
		return nil, fmt.Errorf("starting the placement actor: %w", err)
	}
	if err := n.startPush(); err != nil {
		n.shutdown()
		return nil, fmt.Errorf("starting the push actor: %w", err)
	}
	go n.disownLoop()
	if m, ok := n.members.(*Membership); ok && len(cfg.Join) > 0 {
		if _, err := m.Join(cfg.Join); err != nil {
			n.shutdown()
			return nil, fmt.Errorf("joining %v: %w", cfg.Join, err)
		}
	}
	if err := n.members.SetState(StateActive); err != nil {
		n.shutdown()
		return nil, fmt.Errorf("becoming active: %w", err)
	}
	return n, nil
}

// joiner is the ClusterProvider protoactor starts once remoting listens: only then is
// the node's remote address known (a port 0 is bound by remoting itself, never picked
// and released, which another process could take in between), so only then can the node
// publish itself and join.
type joiner struct{ n *Node }

func (j joiner) StartMember(c *pcluster.Cluster) error {
	n := j.n
	self := MemberInfo{
		ID: n.system.ID, Remote: n.system.Address(), HTTP: n.cfg.HTTP,
		State: StateJoining, Kinds: n.kinds(), Started: n.started,
	}
	if n.cfg.Gossip == "" {
		n.members = newSolo(self)
		n.lookup.setMembers(n.members)
		return soloProvider{}.StartMember(c)
	}
	m, err := NewMembership(MembershipConfig{
		Bind: n.cfg.Gossip, Advertise: n.cfg.Advertise, Self: self, Logger: n.cfg.Logger, Fast: n.cfg.Fast,
		OnChange: n.onView, Keyring: n.gossipKeyring(), Label: memberlistLabel(n.cfg.Name),
	})
	if err != nil {
		return err
	}
	n.members = m
	n.lookup.setMembers(m)
	n.provider = newMemberlistProvider(m)
	return n.provider.StartMember(c)
}

// gossipKeyring is the keyring of cfg.Security, nil when insecure.
func (n *Node) gossipKeyring() *memberlist.Keyring {
	if n.cfg.Security == nil {
		return nil
	}
	return n.cfg.Security.GossipKeyring
}

func (j joiner) StartClient(*pcluster.Cluster) error {
	return errors.New("ordermesh processes are always members")
}

func (j joiner) Shutdown(graceful bool) error {
	if j.n.provider != nil {
		return j.n.provider.Shutdown(graceful)
	}
	return nil
}

// splitHostPort parses host:port.
func splitHostPort(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("parsing %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return "", 0, fmt.Errorf("parsing port of %q: %w", addr, err)
	}
	return host, port, nil
}

// startMember turns protoactor's panics on start (port in use, ...) into an error.
func startMember(c *pcluster.Cluster) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("starting cluster member: %v", r)
		}
	}()
	c.StartMember()
	return nil
}

// onView is called by the membership on its own goroutine for every view (changed or
// periodic): hand it to protoactor and stop grains that moved away.
func (n *Node) onView(v View) {
	if n.cfg.Metrics != nil {
		n.cfg.Metrics.observeView(v)
	}
	// The membership re-sends its view every second; only a change can move orders, and
	// checking every local grain holds the lookup's lock, so skip the unchanged ones.
	if v.Version == n.lastView.Swap(v.Version) {
		return
	}
	n.pushTopology()
	select {
	case n.topology <- struct{}{}:
	default:
	}
}

func (n *Node) disownLoop() {
	for {
		select {
		case <-n.done:
			return
		case <-n.topology:
			if moved := n.lookup.disown(); moved > 0 {
				n.cfg.Logger.Info("stopping grains this node no longer owns", "count", moved)
			}
		}
	}
}

// forgetOnStop removes a grain from the lookup when it stops, so the next call activates
// a fresh one, and marks it used on every call it receives (for the bound on grains).
func (n *Node) forgetOnStop(next actor.ReceiverFunc) actor.ReceiverFunc {
	return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
		switch env.Message.(type) {
		case *orderpb.CommandRequest, *orderpb.GetRequest, *orderpb.StockCommandRequest, *orderpb.StockGetRequest:
			if ci := pcluster.GetClusterIdentity(c); ci != nil {
				n.lookup.touch(ci.Identity, c.Self())
			}
		}
		next(c, env)
		if _, ok := env.Message.(*actor.Stopped); ok {
			if ci := pcluster.GetClusterIdentity(c); ci != nil {
				n.lookup.RemovePid(ci, c.Self())
			}
		}
	}
}

// ID is this node's member id (new for every process).
func (n *Node) ID() string { return n.system.ID }

// Address is the remoting address of this node.
func (n *Node) Address() string { return n.system.Address() }

// Activations is the number of grains (orders and skus) active on this node.
func (n *Node) Activations() int64 { return n.lookup.Activations() }

// MaxGrains is the bound on Activations (0 = none).
func (n *Node) MaxGrains() int { return n.lookup.max }

// Evictions is how many grains this node passivated to stay within MaxGrains.
func (n *Node) Evictions() int64 { return n.lookup.Evicted() }

// Started is when the node started.
func (n *Node) Started() time.Time { return n.started }

// View is this node's current picture of the cluster.
func (n *Node) View() View { return n.members.View() }

// Owns reports whether this node owns the order now; the payment sweeper uses it so
// that each due order is swept by one node.
func (n *Node) Owns(orderID string) bool { return n.lookup.owns(orderID) }

// OwnerHTTP returns the edge address (host:port, as the member advertises it) of the
// member that owns the order in this node's view of the cluster, or "" when no member is
// active. A client that sends the order's next requests there saves the hop from a node
// that does not own it; any node still answers any order.
func (n *Node) OwnerHTTP(orderID string) string {
	o, ok := n.lookup.owner(orderID)
	if !ok {
		return ""
	}
	return o.HTTP
}

// Execute delivers a command to its order's grain, wherever it lives.
func (n *Node) Execute(ctx context.Context, c order.Command, requestID string) (order.Result, error) {
	// The grain refuses it anyway; refusing it here keeps text protobuf cannot carry off
	// the wire, where it would be lost and look like a timeout worth retrying.
	if err := order.CheckCommand(c); err != nil {
		return order.Result{}, err
	}
	reply, err := callAs[*orderpb.Reply](n, ctx, pcluster.NewClusterIdentity(c.OrderID, actors.KindOrder), orderpb.CommandToPB(c, requestID))
	if err != nil {
		return order.Result{}, err
	}
	return orderpb.ResultFromReply(reply)
}

// Get asks an order's grain for its view.
func (n *Node) Get(ctx context.Context, id string, by order.Principal, requestID string) (order.View, error) {
	reply, err := callAs[*orderpb.Reply](n, ctx, pcluster.NewClusterIdentity(id, actors.KindOrder),
		&orderpb.GetRequest{OrderId: id, By: orderpb.PrincipalToPB(by), RequestId: requestID})
	if err != nil {
		return order.View{}, err
	}
	res, err := orderpb.ResultFromReply(reply)
	return res.View, err
}

// retryable is a grain's reply that may say "retry": its code.
type retryable interface{ GetErrorCode() int32 }

// callAs makes one attempt to reach the grain ci and expects a reply of type R. Failures
// that a retry may cure (no owner now, the owner refused, timeout, dead letter, a grain
// that moved) come back as CodeUnavailable, and the cached location is forgotten so the
// retry re-resolves.
func callAs[R retryable](n *Node, ctx context.Context, ci *pcluster.ClusterIdentity, msg any) (R, error) {
	var zero R
	reply, pid, err := n.call(ctx, ci, msg)
	if err != nil {
		return zero, err
	}
	r, ok := reply.(R)
	if !ok {
		n.lookup.Forget(ci, pid)
		return zero, order.Unavailable(order.ReasonOther, "%s answered %T; retry", ci.Identity, reply)
	}
	if order.Code(r.GetErrorCode()).Retryable() {
		n.lookup.Forget(ci, pid)
	}
	return r, nil
}

// call makes one attempt to reach the grain ci; see callAs.
func (n *Node) call(ctx context.Context, ci *pcluster.ClusterIdentity, msg any) (any, *actor.PID, error) {
	id := ci.Identity
	pid := n.lookup.Get(ci)
	if pid == nil {
		if n.lookup.draining.Load() {
			return nil, nil, order.Unavailable(order.ReasonDraining, "this node is draining and %s has no other owner yet; retry", id)
		}
		return nil, nil, order.Unavailable(order.ReasonMoved, "%s has no owner that accepts it right now (topology changing); retry", id)
	}
	timeout := n.cfg.RequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return nil, nil, order.Unavailable(order.ReasonTimeout, "request deadline passed")
	}
	res, err := n.system.Root.RequestFuture(pid, msg, timeout).Result()
	if err != nil {
		if !errors.Is(err, actor.ErrTimeout) || !n.alive(pid) {
			// A local grain that is only slow (its store write outlived the attempt) stays:
			// the retry queues behind the write in the same grain, rather than a second
			// activation of the order beside it. One that stopped with the message in its
			// mailbox is forgotten, so the retry reaches a fresh one.
			n.lookup.Forget(ci, pid)
		}
		if errors.Is(err, actor.ErrTimeout) {
			return nil, nil, order.Unavailable(order.ReasonTimeout, "%s did not answer in %s (timeout); retry", id, timeout)
		}
		return nil, nil, order.Unavailable(order.ReasonUnreachable, "%s is not reachable (%v); retry", id, err)
	}
	return res, pid, nil
}

// alive reports whether pid is a grain of this node that has not stopped (a PID on a
// peer is never known to be alive here).
func (n *Node) alive(pid *actor.PID) bool {
	if pid.Address != n.system.Address() {
		return false
	}
	_, ok := n.system.ProcessRegistry.GetLocal(pid.Id)
	return ok
}

// Status is a node's answer to "what does the cluster look like".
type Status struct {
	Self        string
	View        View
	Activations map[string]int64 // by member id; -1 = the member did not answer
	// PaymentBreaker is the state of each member's payment provider circuit breaker, by
	// member id: "closed", "half-open", "open"; absent for a member that calls no provider
	// or did not answer.
	PaymentBreaker map[string]string
	// Load is each member's recent HTTP requests, by member id; absent for a member that
	// did not answer or measures none.
	Load map[string]Load
}

// Load is a node's HTTP requests over a recent window: the rate, and the median and 99th
// percentile latency in milliseconds.
type Load struct {
	RequestsPerSecond float64
	LatencyP50Ms      float64
	LatencyP99Ms      float64
}

func loadOf(r *clusterpb.StatsReply) Load {
	return Load{RequestsPerSecond: r.RequestsPerSecond, LatencyP50Ms: r.LatencyP50Ms, LatencyP99Ms: r.LatencyP99Ms}
}

// Status asks every member of the view for its live figures (in parallel, bounded by ctx).
func (n *Node) Status(ctx context.Context) Status {
	v := n.View()
	st := Status{Self: n.ID(), View: v, Activations: make(map[string]int64, len(v.Members)), PaymentBreaker: map[string]string{}, Load: map[string]Load{}}
	var mu sync.Mutex
	// record puts one member's answer (nil: none) into st; the answers of peers arrive
	// on their own goroutines, so every write to st's maps goes through it, under mu.
	record := func(id string, r *clusterpb.StatsReply) {
		mu.Lock()
		defer mu.Unlock()
		if r == nil {
			st.Activations[id] = -1
			return
		}
		st.Activations[id] = r.Activations
		if r.PaymentBreaker != "" {
			st.PaymentBreaker[id] = r.PaymentBreaker
		}
		st.Load[id] = loadOf(r)
	}
	var wg sync.WaitGroup
	timeout := min(time.Second, n.cfg.RequestTimeout)
	for _, m := range v.Members {
		if m.ID == n.ID() {
			record(m.ID, n.stats())
			continue
		}
		wg.Go(func() {
			res, err := n.system.Root.RequestFuture(actor.NewPID(m.Remote, placementName), &clusterpb.StatsRequest{}, timeout).Result()
			r, ok := res.(*clusterpb.StatsReply)
			if err != nil || !ok {
				r = nil
			}
			record(m.ID, r)
		})
	}
	wg.Wait()
	return st
}

func (n *Node) stats() *clusterpb.StatsReply {
	r := &clusterpb.StatsReply{Id: n.ID(), Activations: n.Activations(), StartedUnixNano: n.started.UnixNano()}
	if f := n.cfg.PaymentBreaker; f != nil {
		r.PaymentBreaker = f()
	}
	if f := n.cfg.Load; f != nil {
		l := f()
		r.RequestsPerSecond, r.LatencyP50Ms, r.LatencyP99Ms = l.RequestsPerSecond, l.LatencyP50Ms, l.LatencyP99Ms
	}
	return r
}

// DrainMember asks the member with the given id to drain and exit: this node or a peer.
func (n *Node) DrainMember(ctx context.Context, id, requestedBy string) error {
	if id == n.ID() {
		n.requestDrain()
		return nil
	}
	m, ok := n.View().Member(id)
	if !ok {
		return order.Errorf(order.CodeNotFound, "node %s is not a member of the cluster", id)
	}
	timeout := n.cfg.RequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	res, err := n.system.Root.RequestFuture(actor.NewPID(m.Remote, placementName), &clusterpb.DrainRequest{RequestedBy: requestedBy}, timeout).Result()
	if err != nil {
		return order.Unavailable(order.ReasonUnreachable, "node %s did not take the drain request (%v); retry", id, err)
	}
	if r, ok := res.(*clusterpb.DrainReply); !ok || !r.Accepted {
		return order.Unavailable(order.ReasonOther, "node %s refused to drain; retry", id)
	}
	return nil
}

// requestDrain asks the process to drain; cmd/ordermesh waits on DrainRequested.
func (n *Node) requestDrain() { n.drainOnce.Do(func() { close(n.drainReq) }) }

// DrainRequested is closed when a drain of this node was requested through the API or
// by a peer.
func (n *Node) DrainRequested() <-chan struct{} { return n.drainReq }

// Drain makes the node leave gracefully, short of exiting: it announces that it is
// leaving (so peers stop routing new work to it), refuses new activations, and stops its
// grains, each after the message it is on. Requests that race the move are refused with
// a retryable error and land on the new owners.
func (n *Node) Drain(ctx context.Context) error {
	n.lookup.draining.Store(true)
	if err := n.members.SetState(StateLeaving); err != nil {
		return fmt.Errorf("announcing leave: %w", err)
	}
	futures := make([]*actor.Future, 0, n.Activations())
	for _, pid := range n.lookup.snapshot() {
		futures = append(futures, n.system.Root.PoisonFuture(pid))
	}
	for _, f := range futures {
		if ctx.Err() != nil {
			return fmt.Errorf("stopping grains: %w", ctx.Err())
		}
		_ = f.Wait()
	}
	return nil
}

// Stop drains (if not done yet), leaves the cluster and stops the actor system. Calls
// after the first do nothing.
func (n *Node) Stop(ctx context.Context) {
	n.stopOnce.Do(func() {
		if err := n.Drain(ctx); err != nil {
			n.cfg.Logger.Warn("drain incomplete", "err", err)
		}
		n.shutdown()
	})
}

func (n *Node) shutdown() {
	select {
	case <-n.done:
	default:
		close(n.done)
	}
	if err := n.members.Leave(2 * time.Second); err != nil {
		n.cfg.Logger.Warn("leaving the cluster", "err", err)
	}
	n.cluster.Shutdown(false)
}

// minLevel drops records below a level, whatever the wrapped handler accepts.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}

// kinds names the grain kinds this node hosts.
func (n *Node) kinds() []string {
	if n.cfg.Stock != nil {
		return []string{actors.KindOrder, actors.KindStock}
	}
	return []string{actors.KindOrder}
}
