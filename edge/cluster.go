package edge

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/gofiber/fiber/v2"
)

// The edge does not import package cluster, although it may use its member types: that
// package links protoactor and memberlist, and the edge, its tests and the API contract
// should build and run without them. The few values shared are repeated here, and the
// node's adapter (cmd/ordermesh) converts a cluster.View with FormatTopologyHash and
// string(MemberState).

// Cluster is what the edge needs of the node's cluster membership. Any node answers for
// the whole cluster, so an implementation reaches other members itself.
type Cluster interface {
	// Status returns every member as this node sees it, with live figures. A member that
	// does not answer in time is still listed, with Activations -1.
	Status(ctx context.Context) (ClusterStatus, error)
	// Drain asks the node with the given member id to drain and exit; unknown id ->
	// *order.Error CodeNotFound. It returns once the node has accepted the request, not
	// when it has left: the node may be this one, and the answer must still get out.
	// Draining a node that is already leaving is not an error.
	Drain(ctx context.Context, nodeID string) error
	// OwnerHTTP returns the edge address (host:port) of the member that owns the order
	// now, or "" when none is known: the edge names it in the Ordermesh-Owner header.
	OwnerHTTP(orderID string) string
}

// HeaderOwner is on every answer about one order (its create, view, history and
// commands) from a clustered node: the edge address (host:port, the "http" of the member
// in the cluster view) of the node that owns the order now. A client or balancer that
// sends the order's next requests there spares them the hop from a node that does not
// own it to the one that does. It is a hint: ownership moves when members join or leave,
// and any node answers any request.
const HeaderOwner = "Ordermesh-Owner"

// ClusterStatus is the answer of GET /api/v1/cluster.
type ClusterStatus struct {
	Self            string         `json:"self"`             // id of the node that answered
	TopologyVersion uint64         `json:"topology_version"` // local change counter
	TopologyHash    string         `json:"topology_hash"`    // same on every node that agrees (hex)
	Members         []MemberStatus `json:"members"`
}

// MemberStatus is one member of the cluster with its live figures.
type MemberStatus struct {
	ID            string    `json:"id"`
	Gossip        string    `json:"gossip"`
	Remote        string    `json:"remote"`
	HTTP          string    `json:"http"`
	State         string    `json:"state"`          // cluster.MemberState: joining, active, leaving
	Activations   int64     `json:"activations"`    // -1 if the member did not answer
	UptimeSeconds float64   `json:"uptime_seconds"` // since Started
	Started       time.Time `json:"started"`
	// PaymentBreaker is the state of the member's circuit breaker to the payment
	// provider: "closed", "open", "half-open", or "" when it has no provider or did not
	// answer.
	PaymentBreaker string `json:"payment_breaker"`
	// The member's requests over the last StatsWindow (see RequestStats): the rate and
	// the median and 99th percentile latency; 0 when it served none or did not answer.
	RequestsPerSecond float64 `json:"requests_per_second"`
	LatencyP50Ms      float64 `json:"latency_p50_ms"`
	LatencyP99Ms      float64 `json:"latency_p99_ms"`
}

// FormatTopologyHash is how ClusterStatus.TopologyHash shows cluster.View.Hash: 16
// lowercase hex digits, so that equal views print equally on every node.
func FormatTopologyHash(h uint64) string { return fmt.Sprintf("%016x", h) }

// stateLeaving is cluster.StateLeaving: what a drained node becomes.
const stateLeaving = "leaving"

type drainResponse struct {
	Node  string `json:"node"`
	State string `json:"state"`
}

var errNotClustered = order.Errorf(order.CodeUnavailable, "not clustered")

// clusterStatus handles GET /api/v1/cluster.
func (s *server) clusterStatus(c *fiber.Ctx) error {
	if s.cluster == nil {
		return errNotClustered
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	st, err := s.cluster.Status(ctx)
	if err != nil {
		return fmt.Errorf("reading cluster status: %w", err)
	}
	if st.Members == nil {
		st.Members = []MemberStatus{} // a list, never null, for the clients
	}
	return respond(c, fiber.StatusOK, st)
}

// drainNode handles POST /api/v1/cluster/nodes/{id}/drain: 202, because the node leaves
// later, after it has handed its orders over.
func (s *server) drainNode(c *fiber.Ctx) error {
	id := c.Params("id")
	// Member ids are actor system ids; anything else cannot name a node.
	if !validNodeID(id) {
		return nodeNotFound(truncate(id, 64))
	}
	if s.cluster == nil {
		return errNotClustered
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	if err := s.cluster.Drain(ctx, id); err != nil {
		if order.ErrorCode(err) == order.CodeNotFound {
			return nodeNotFound(id)
		}
		return fmt.Errorf("draining node %s: %w", id, err)
	}
	s.logger(c).Info("drain requested", slog.String("target", id), slog.String("by", principal(c).Subject))
	return respond(c, fiber.StatusAccepted, drainResponse{Node: id, State: stateLeaving})
}

// maxNodeIDLen bounds a member id in a path; actor system ids are far shorter.
const maxNodeIDLen = 64

// validNodeID accepts ^[A-Za-z0-9_-]{1,64}$.
func validNodeID(id string) bool { return len(id) <= maxNodeIDLen && validOrderID(id) }

func nodeNotFound(id string) error {
	return order.Errorf(order.CodeNotFound, "node %s not found", id)
}
