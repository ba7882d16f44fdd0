package main

import (
	"context"
	"time"

	"github.com/ordermesh/ordermesh/cluster"
	"github.com/ordermesh/ordermesh/edge"
)

// clusterOps adapts the node to what the edge's cluster endpoints need.
type clusterOps struct{ n *cluster.Node }

func (c clusterOps) Status(ctx context.Context) (edge.ClusterStatus, error) {
	st := c.n.Status(ctx)
	out := edge.ClusterStatus{
		Self: st.Self, TopologyVersion: st.View.Version, TopologyHash: edge.FormatTopologyHash(st.View.Hash),
		Members: make([]edge.MemberStatus, 0, len(st.View.Members)),
	}
	now := time.Now()
	for _, m := range st.View.Members {
		activations, ok := st.Activations[m.ID]
		if !ok {
			activations = -1
		}
		load := st.Load[m.ID]
		out.Members = append(out.Members, edge.MemberStatus{
			ID: m.ID, Gossip: m.Gossip, Remote: m.Remote, HTTP: m.HTTP, State: string(m.State),
			Activations: activations, PaymentBreaker: st.PaymentBreaker[m.ID], UptimeSeconds: now.Sub(m.Started).Seconds(), Started: m.Started,
			RequestsPerSecond: load.RequestsPerSecond, LatencyP50Ms: load.LatencyP50Ms, LatencyP99Ms: load.LatencyP99Ms,
		})
	}
	return out, nil
}

func (c clusterOps) Drain(ctx context.Context, nodeID string) error {
	return c.n.DrainMember(ctx, nodeID, "api")
}

func (c clusterOps) OwnerHTTP(orderID string) string { return c.n.OwnerHTTP(orderID) }
