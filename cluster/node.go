// Package cluster runs the grains of a node: the protoactor actor system, remoting,
// membership, placement of identities on members, and the node's lifecycle. Its Node is
// the actors.Service the edge talks to.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/ordermesh/ordermesh/actors"
	"github.com/ordermesh/ordermesh/actors/orderpb"
)

// Config configures a node.
type Config struct {
	Name           string        // cluster name; nodes of one cluster share it
	Remote         string        // host:port for actor remoting ("127.0.0.1:0" picks a port)
	RequestTimeout time.Duration // one attempt of one call to a grain
	Grain          *actors.GrainConfig
	Logger         *slog.Logger
}

// Node is one running ordermesh member.
type Node struct {
	cfg      Config
	system   *actor.ActorSystem
	cluster  *pcluster.Cluster
	lookup   *lookup
	started  time.Time
	stopOnce sync.Once
}

var _ actors.Service = (*Node)(nil)

// Start starts the actor system and joins the cluster. Grain config's Node is set to the
// member id, which is new for every process.
func Start(cfg Config) (*Node, error) {
	host, portStr, err := net.SplitHostPort(cfg.Remote)
	if err != nil {
		return nil, fmt.Errorf("parsing remote address %q: %w", cfg.Remote, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("parsing remote port %q: %w", portStr, err)
	}
	if cfg.Name == "" {
		cfg.Name = "ordermesh"
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	// protoactor logs every activation and retry at info; keep only its warnings.
	libLogger := slog.New(minLevel{cfg.Logger.Handler(), slog.LevelWarn}).With("lib", "protoactor")
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return libLogger }))
	n := &Node{cfg: cfg, system: system, lookup: newLookup(), started: time.Now()}
	cfg.Grain.Node = system.ID

	props := actors.NewGrainProps(cfg.Grain).Configure(actor.WithReceiverMiddleware(n.forgetOnStop))
	kind := pcluster.NewKind(actors.KindOrder, props)
	remoteCfg := remote.Configure(host, port)
	clusterCfg := pcluster.Configure(cfg.Name, soloProvider{}, n.lookup, remoteCfg,
		pcluster.WithKinds(kind), pcluster.WithRequestTimeout(cfg.RequestTimeout))
	n.cluster = pcluster.New(system, clusterCfg)
	if err := startMember(n.cluster); err != nil {
		return nil, err
	}
	return n, nil
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

// forgetOnStop removes a grain from the lookup when it stops, so the next call activates
// a fresh one.
func (n *Node) forgetOnStop(next actor.ReceiverFunc) actor.ReceiverFunc {
	return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
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

// Activations is the number of order grains active on this node.
func (n *Node) Activations() int64 { return n.lookup.Activations() }

// Started is when the node started.
func (n *Node) Started() time.Time { return n.started }

// Execute delivers a command to its order's grain.
func (n *Node) Execute(ctx context.Context, c actors.Command, requestID string) (actors.Result, error) {
	reply, err := n.call(ctx, c.OrderID, actors.CommandToPB(c, requestID))
	if err != nil {
		return actors.Result{}, err
	}
	return actors.ResultFromReply(reply)
}

// Get asks an order's grain for its view.
func (n *Node) Get(ctx context.Context, id string, by actors.Principal, requestID string) (actors.View, error) {
	reply, err := n.call(ctx, id, &orderpb.GetRequest{OrderId: id, By: actors.PrincipalToPB(by), RequestId: requestID})
	if err != nil {
		return actors.View{}, err
	}
	res, err := actors.ResultFromReply(reply)
	return res.View, err
}

// call makes one attempt to reach the grain of order id. Failures that a retry may cure
// (no activation now, timeout, dead letter) come back as CodeUnavailable.
func (n *Node) call(ctx context.Context, id string, msg any) (*orderpb.Reply, error) {
	pid := n.lookup.Get(pcluster.NewClusterIdentity(id, actors.KindOrder))
	if pid == nil {
		return nil, actors.Errorf(actors.CodeUnavailable, "order %s cannot be activated right now; retry", id)
	}
	timeout := n.cfg.RequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return nil, actors.Errorf(actors.CodeUnavailable, "request deadline passed")
	}
	res, err := n.system.Root.RequestFuture(pid, msg, timeout).Result()
	if err != nil {
		if errors.Is(err, actor.ErrTimeout) {
			return nil, actors.Errorf(actors.CodeUnavailable, "order %s did not answer in %s; retry", id, timeout)
		}
		return nil, actors.Errorf(actors.CodeUnavailable, "order %s is not reachable (%v); retry", id, err)
	}
	reply, ok := res.(*orderpb.Reply)
	if !ok {
		return nil, actors.Errorf(actors.CodeUnavailable, "order %s answered %T; retry", id, res)
	}
	return reply, nil
}

// Stop stops every grain (each finishes the command it is on), then the actor system.
// Calls after the first do nothing.
func (n *Node) Stop(ctx context.Context) {
	n.stopOnce.Do(func() { n.stop(ctx) })
}

func (n *Node) stop(ctx context.Context) {
	n.lookup.draining.Store(true)
	futures := make([]*actor.Future, 0)
	for _, pid := range n.lookup.snapshot() {
		futures = append(futures, n.system.Root.PoisonFuture(pid))
	}
	for _, f := range futures {
		if ctx.Err() != nil {
			break
		}
		_ = f.Wait()
	}
	n.cluster.Shutdown(true)
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
