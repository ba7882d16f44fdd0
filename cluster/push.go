package cluster

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/ordermesh/ordermesh/actors/live"
	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/orderpb"
	"github.com/ordermesh/ordermesh/cluster/clusterpb"
	"github.com/ordermesh/ordermesh/persistence"
)

// pushName is the actor every node runs to take its peers' committed changes.
const pushName = "ordermesh-push"

// Push connects a node to live push (package live). Every committed change of a grain
// of this node goes to Publish and, as a clusterpb.Change, to the push actor of every
// other member in the node's view; the changes peers send come to Publish too. That
// fan-out is best effort (a node that dies takes the changes it had not sent with it);
// live sessions fill what they miss from the store.
type Push struct {
	// Publish takes every committed change of the cluster. For this node's grains it is
	// called on the grain's goroutine, so it must not block.
	Publish func(live.Change)
	// Topology, if set, is called (on the membership's goroutine) when the node's view
	// of the cluster changed: sessions then re-check their orders against the store.
	Topology func()
}

// wirePush makes the grains of this node publish what they commit, after whatever
// Committed hook they had.
func (n *Node) wirePush() {
	if n.cfg.Push == nil || n.cfg.Push.Publish == nil {
		return
	}
	prev := n.cfg.Grain.Committed
	n.cfg.Grain.Committed = func(v order.View, e order.Event) {
		if prev != nil {
			prev(v, e)
		}
		n.publish(v, e)
	}
}

// startPush spawns the actor that takes the peers' changes.
func (n *Node) startPush() error {
	if n.cfg.Push == nil || n.cfg.Push.Publish == nil {
		return nil
	}
	publish := n.cfg.Push.Publish
	_, err := n.system.Root.SpawnNamed(actor.PropsFromFunc(func(ctx actor.Context) {
		if msg, ok := ctx.Message().(*clusterpb.Change); ok {
			publish(changeFromPB(msg))
		}
	}), pushName)
	return err
}

// pushTopology tells live push that the view changed.
func (n *Node) pushTopology() {
	if n.cfg.Push != nil && n.cfg.Push.Topology != nil {
		n.cfg.Push.Topology()
	}
}

// publish hands a change a grain of this node committed to this node's sessions and to
// every peer. It runs on the grain's goroutine: Send only queues the message for the
// peer's remoting endpoint.
func (n *Node) publish(v order.View, e order.Event) {
	c, err := live.ChangeOf(v, e, n.system.ID, time.Now())
	if err != nil {
		n.cfg.Logger.Error("live push: encoding a committed change", "order_id", e.OrderID, "err", err)
		return
	}
	n.cfg.Push.Publish(c)
	if n.members == nil {
		return
	}
	var msg *clusterpb.Change
	self := n.system.Address()
	for _, m := range n.members.View().Members {
		if m.Remote == self || m.Remote == "" {
			continue
		}
		if msg == nil {
			msg = changeToPB(c)
		}
		n.system.Root.Send(actor.NewPID(m.Remote, pushName), msg)
	}
}

func changeToPB(c live.Change) *clusterpb.Change {
	e := c.Event
	return &clusterpb.Change{
		OrderId: e.OrderID, Version: e.Version, Type: e.Type, From: e.From, To: e.To,
		IdempotencyKey: e.IdempotencyKey, Node: e.Node, AtUnixNano: e.At.UnixNano(), Payload: e.Payload,
		View: orderpb.ViewToPB(c.View), CommittedUnixNano: c.Committed.UnixNano(),
	}
}

func changeFromPB(pb *clusterpb.Change) live.Change {
	return live.Change{
		Event: persistence.Event{
			OrderID: pb.OrderId, Version: pb.Version, Type: pb.Type, From: pb.From, To: pb.To,
			IdempotencyKey: pb.IdempotencyKey, Node: pb.Node, At: time.Unix(0, pb.AtUnixNano).UTC(), Payload: pb.Payload,
		},
		View:      orderpb.ViewFromPB(pb.View),
		Committed: time.Unix(0, pb.CommittedUnixNano),
	}
}
