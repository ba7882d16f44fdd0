package cluster

import (
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
)

// lookup is ordermesh's IdentityLookup. It places an identity on its owner by rendezvous
// hashing over the members and activates it there only if this node owns it in its
// current view. Local activations are kept in a map (not an actor) so that resolving an
// active grain costs one map read.
type lookup struct {
	c        *pcluster.Cluster
	mu       sync.Mutex
	active   map[string]*actor.PID // identity -> local activation
	count    atomic.Int64
	draining atomic.Bool
}

var _ pcluster.IdentityLookup = (*lookup)(nil)

func newLookup() *lookup { return &lookup{active: make(map[string]*actor.PID)} }

// Setup is called by protoactor when the member starts.
func (l *lookup) Setup(c *pcluster.Cluster, _ []string, _ bool) { l.c = c }

// Shutdown stops nothing: grains are stopped by the actor system.
func (l *lookup) Shutdown() {}

// Get returns the PID of the identity's activation, activating it here if needed. It
// returns nil when the identity cannot be served now (draining, or unknown kind); the
// caller treats nil as retryable.
func (l *lookup) Get(ci *pcluster.ClusterIdentity) *actor.PID {
	l.mu.Lock()
	pid, ok := l.active[ci.Identity]
	l.mu.Unlock()
	if ok {
		return pid
	}
	if l.draining.Load() {
		return nil
	}
	return l.activate(ci)
}

func (l *lookup) activate(ci *pcluster.ClusterIdentity) *actor.PID {
	kind, ok := l.c.TryGetClusterKind(ci.Kind)
	if !ok {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if pid, ok := l.active[ci.Identity]; ok { // another caller won the race
		return pid
	}
	props := pcluster.WithClusterIdentity(kind.Props, ci)
	pid := l.c.ActorSystem.Root.SpawnPrefix(props, ci.Kind+"/"+ci.Identity)
	l.active[ci.Identity] = pid
	l.count.Add(1)
	kind.Inc()
	return pid
}

// RemovePid forgets an activation that stopped (called from the grain's middleware).
func (l *lookup) RemovePid(ci *pcluster.ClusterIdentity, pid *actor.PID) {
	l.mu.Lock()
	cur, ok := l.active[ci.Identity]
	if ok && cur.Equal(pid) {
		delete(l.active, ci.Identity)
		l.count.Add(-1)
		if kind, ok := l.c.TryGetClusterKind(ci.Kind); ok {
			kind.Dec()
		}
	}
	l.mu.Unlock()
}

// Activations is the number of live local activations.
func (l *lookup) Activations() int64 { return l.count.Load() }

// snapshot returns the PIDs of every local activation.
func (l *lookup) snapshot() []*actor.PID {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*actor.PID, 0, len(l.active))
	for _, pid := range l.active {
		out = append(out, pid)
	}
	return out
}
