package cluster

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
)

// memberlistProvider is protoactor's ClusterProvider over a Membership: it hands every
// view to protoactor's member list, so remoting knows every live member's address.
//
// Every alive member is pushed, joining and leaving ones included: a leaving member
// still answers for the grains it is finishing, and a joining one is reachable. Which
// member owns an order is not protoactor's business: the lookup decides that from
// View.Active(). A member that is gone from a view is blocked by protoactor for good
// (by id); that is harmless because every process has a new id.
type memberlistProvider struct {
	m   *Membership
	log *slog.Logger

	// mu serializes UpdateClusterTopology: protoactor diffs each list against the
	// previous one, so lists must arrive one at a time and oldest first.
	mu      sync.Mutex
	c       *pcluster.Cluster // nil before StartMember
	stopped bool              // set by Shutdown; later views are dropped
	version uint64            // of the last view pushed
}

var _ pcluster.ClusterProvider = (*memberlistProvider)(nil)

// newMemberlistProvider returns a provider fed by m: it subscribes to m's views itself,
// so the caller does not need to forward OnChange to it. Views that arrive before
// StartMember are dropped; StartMember pushes the current one.
func newMemberlistProvider(m *Membership) *memberlistProvider {
	p := &memberlistProvider{m: m, log: m.log}
	m.watch(p.push)
	return p
}

// StartMember starts pushing views to c, beginning with the current one. It fails when
// the membership describes another actor system: protoactor knows members by actor
// system id, so a mismatch would make this node a stranger to itself.
func (p *memberlistProvider) StartMember(c *pcluster.Cluster) error {
	self := p.m.Self()
	if self.ID != c.ActorSystem.ID {
		return fmt.Errorf("starting the memberlist provider: member id %q is not the actor system id %q", self.ID, c.ActorSystem.ID)
	}
	if addr := c.ActorSystem.Address(); addr != self.Remote {
		// Not fatal: the same endpoint may be spelled two ways (a name and its IP).
		p.log.Warn("the published remote address differs from the actor system's", "published", self.Remote, "actor_system", addr)
	}
	p.mu.Lock()
	p.c = c
	p.mu.Unlock()
	p.push(p.m.View())
	return nil
}

// StartClient is refused: every ordermesh process is a full member.
func (p *memberlistProvider) StartClient(*pcluster.Cluster) error {
	return fmt.Errorf("starting the memberlist provider: ordermesh has no cluster clients, only members")
}

// Shutdown stops pushing views. protoactor calls it only for a graceful shutdown; then
// the node also leaves the membership (the node may have left already: Leave is
// idempotent).
func (p *memberlistProvider) Shutdown(graceful bool) error {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	if !graceful {
		return nil
	}
	if err := p.m.Leave(2 * time.Second); err != nil {
		return fmt.Errorf("shutting down the memberlist provider: %w", err)
	}
	return nil
}

// push hands v to protoactor. It is safe to call from any goroutine, before StartMember
// (the view is dropped) and after Shutdown (likewise). A view older than the last one
// pushed is dropped; the same version is pushed again, which is how the periodic
// re-push repairs a list protoactor did not take.
func (p *memberlistProvider) push(v View) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.c == nil || p.stopped || v.Version < p.version {
		return
	}
	p.version = v.Version
	p.c.MemberList.UpdateClusterTopology(topology(v))
}

// topology converts a view into protoactor's members. Members whose remote address does
// not parse are left out; the Membership already refuses such metadata.
func topology(v View) pcluster.Members {
	out := make(pcluster.Members, 0, len(v.Members))
	for _, mi := range v.Members {
		host, portStr, err := net.SplitHostPort(mi.Remote)
		if err != nil {
			continue
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			continue
		}
		out = append(out, &pcluster.Member{Id: mi.ID, Host: host, Port: int32(port), Kinds: mi.Kinds})
	}
	return out
}
