package cluster

import (
	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/ordermesh/ordermesh/cluster/clusterpb"
)

// placement is the actor every node runs under placementName. Peers ask it to activate
// identities this node owns, for its live figures, and to drain.
type placement struct{ n *Node }

// Receive handles one message.
func (p placement) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *pcluster.ActivationRequest:
		ctx.Respond(p.n.lookup.handleActivation(msg))
	case *clusterpb.StatsRequest:
		ctx.Respond(p.n.stats())
	case *clusterpb.DrainRequest:
		p.n.cfg.Logger.Info("drain requested", "by", msg.RequestedBy)
		p.n.requestDrain()
		ctx.Respond(&clusterpb.DrainReply{Accepted: true, State: string(StateLeaving)})
	}
}
