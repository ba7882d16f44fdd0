package cluster

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/ordermesh/ordermesh/actors"
)

// placementName is the name of every node's placement actor, which activates identities
// on behalf of other nodes and answers the control messages (stats, drain).
const placementName = "ordermesh-placement"

// maxRemoteCache bounds the cache of remote activations; past it the cache starts over.
const maxRemoteCache = 200_000

// lookup is ordermesh's IdentityLookup. An identity lives on its owner: the winner of
// rendezvous hashing over the active members of this node's view. This node activates
// an identity only if it owns it in its current view and is not draining; otherwise it
// asks the owner's placement actor, which applies the same rule. Views differ briefly
// during a topology change, so a refusal is answered with nil (retryable), never with a
// second activation; the store's version fence covers what slips through.
type lookup struct {
	c        *pcluster.Cluster
	members  membership
	self     string        // this node's member id (members.Self().ID, which never changes)
	timeout  time.Duration // one activation request to a peer
	draining atomic.Bool

	// max bounds the local activations (0 = no bound): activating one more first
	// passivates the least recently used, so the count never exceeds it.
	max     int
	evicted atomic.Int64 // activations passivated to stay within max

	mu     sync.Mutex
	active map[string]*activation // identity -> local activation
	lru    activation             // sentinel of the ring of local activations, most recently used first
	remote map[string]*actor.PID  // identity -> activation on a peer (its Address says which)
	count  atomic.Int64
}

// activation is one local grain, linked into the lookup's recency ring. Touching it is a
// map lookup and four pointer writes under the lock every call already takes, so the
// bound costs the hot path next to nothing (BenchmarkLookupTouch).
type activation struct {
	identity   string
	pid        *actor.PID
	prev, next *activation
}

func (a *activation) unlink() {
	a.prev.next, a.next.prev = a.next, a.prev
	a.prev, a.next = nil, nil
}

var _ pcluster.IdentityLookup = (*lookup)(nil)

// newLookup returns a lookup that keeps at most maxActive local activations (0 = no
// bound); its members are set when the node has joined, before any call to Get.
func newLookup(timeout time.Duration, maxActive int) *lookup {
	l := &lookup{
		timeout: timeout, max: maxActive,
		active: make(map[string]*activation), remote: make(map[string]*actor.PID),
	}
	l.lru.prev, l.lru.next = &l.lru, &l.lru
	return l
}

// Setup is called by protoactor when the member starts.
func (l *lookup) Setup(c *pcluster.Cluster, _ []string, _ bool) { l.c = c }

// Shutdown stops nothing: grains are stopped by Node.Stop.
func (l *lookup) Shutdown() {}

// owner returns the member that owns identity in this node's current view.
func (l *lookup) owner(identity string) (MemberInfo, bool) {
	return Owner(l.members.View().Active(), identity)
}

// owns reports whether this node owns identity now (and is not draining).
func (l *lookup) owns(identity string) bool {
	if l.draining.Load() {
		return false
	}
	o, ok := l.owner(identity)
	return ok && o.ID == l.self
}

// setMembers gives the lookup the node's membership, once it has joined.
func (l *lookup) setMembers(m membership) {
	l.members, l.self = m, m.Self().ID
}

// Get returns the PID of the identity's activation on its owner, activating it if needed.
// nil means "not now": no owner in view, this node is draining, or the owner refused or
// did not answer. Callers retry.
func (l *lookup) Get(ci *pcluster.ClusterIdentity) *actor.PID {
	owner, ok := l.owner(ci.Identity)
	if !ok {
		return nil
	}
	if owner.ID == l.self {
		if l.draining.Load() {
			return nil
		}
		return l.activateLocal(ci)
	}
	l.mu.Lock()
	pid, ok := l.remote[ci.Identity]
	l.mu.Unlock()
	if ok && pid.Address == owner.Remote {
		return pid
	}
	return l.activateRemote(ci, owner)
}

func (l *lookup) activateLocal(ci *pcluster.ClusterIdentity) *actor.PID {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a, ok := l.active[ci.Identity]; ok {
		return a.pid
	}
	kind, ok := l.c.TryGetClusterKind(ci.Kind)
	if !ok {
		return nil
	}
	// Make room first, so the count never exceeds the bound, not even for a moment.
	for l.max > 0 && len(l.active) >= l.max {
		l.evictOldest()
	}
	pid := l.c.ActorSystem.Root.SpawnPrefix(pcluster.WithClusterIdentity(kind.Props, ci), ci.Kind+"/"+ci.Identity)
	a := &activation{identity: ci.Identity, pid: pid}
	l.active[ci.Identity] = a
	l.pushFront(a)
	l.count.Add(1)
	kind.Inc()
	return pid
}

func (l *lookup) pushFront(a *activation) {
	a.prev, a.next = &l.lru, l.lru.next
	l.lru.next.prev = a
	l.lru.next = a
}

// evictOldest passivates the least recently used local activation; l.mu must be held.
// It is unregistered at once (the next call for it activates a fresh grain that reloads
// from the store) and poisoned, so the messages already in its mailbox are still
// answered before it stops. Being the least recently used, it rarely has any.
func (l *lookup) evictOldest() {
	a := l.lru.prev
	if a == &l.lru {
		return
	}
	l.removeLocal(a.identity, actors.KindOrder, a.pid)
	l.evicted.Add(1)
	l.c.ActorSystem.Root.Poison(a.pid)
}

// touch marks identity's local activation pid as just used, so it is the last to be
// evicted. It is called for every message a grain receives, whoever sent it: calls from
// peers go straight to the grain's PID, not through this lookup.
func (l *lookup) touch(identity string, pid *actor.PID) {
	if l.max <= 0 {
		return
	}
	l.mu.Lock()
	if a, ok := l.active[identity]; ok && a.pid.Equal(pid) && l.lru.next != a {
		a.unlink()
		l.pushFront(a)
	}
	l.mu.Unlock()
}

func (l *lookup) activateRemote(ci *pcluster.ClusterIdentity, owner MemberInfo) *actor.PID {
	target := actor.NewPID(owner.Remote, placementName)
	res, err := l.c.ActorSystem.Root.RequestFuture(target, &pcluster.ActivationRequest{ClusterIdentity: ci}, l.timeout).Result()
	if err != nil {
		return nil
	}
	resp, ok := res.(*pcluster.ActivationResponse)
	if !ok || resp.Failed || resp.Pid == nil {
		return nil
	}
	l.mu.Lock()
	if len(l.remote) >= maxRemoteCache {
		l.remote = make(map[string]*actor.PID)
	}
	l.remote[ci.Identity] = resp.Pid
	l.mu.Unlock()
	return resp.Pid
}

// handleActivation answers a peer's ActivationRequest: activate if this node owns the
// identity in its own view, refuse otherwise.
func (l *lookup) handleActivation(req *pcluster.ActivationRequest) *pcluster.ActivationResponse {
	if req.ClusterIdentity == nil || !l.owns(req.ClusterIdentity.Identity) {
		return &pcluster.ActivationResponse{Failed: true}
	}
	pid := l.activateLocal(req.ClusterIdentity)
	if pid == nil {
		return &pcluster.ActivationResponse{Failed: true}
	}
	return &pcluster.ActivationResponse{Pid: pid}
}

// Forget drops an activation that failed to answer or answered "retry", so the next Get
// resolves the identity again. For a local activation that is stopping this matters: a
// message that reaches its mailbox after it stopped is dropped without an answer, so the
// retry must go to a fresh activation (the store fences the two), not to the old one.
func (l *lookup) Forget(ci *pcluster.ClusterIdentity, pid *actor.PID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.remote[ci.Identity]; ok && cur.Equal(pid) {
		delete(l.remote, ci.Identity)
	}
	l.removeLocal(ci.Identity, ci.Kind, pid)
}

// RemovePid forgets a local activation that stopped (called from the grain's middleware).
func (l *lookup) RemovePid(ci *pcluster.ClusterIdentity, pid *actor.PID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.removeLocal(ci.Identity, ci.Kind, pid)
}

// removeLocal drops identity's local activation if it is pid; l.mu must be held.
func (l *lookup) removeLocal(identity, kind string, pid *actor.PID) {
	if cur, ok := l.active[identity]; ok && cur.pid.Equal(pid) {
		delete(l.active, identity)
		cur.unlink()
		l.count.Add(-1)
		if k, ok := l.c.TryGetClusterKind(kind); ok {
			k.Dec()
		}
	}
}

// Activations is the number of live local activations.
func (l *lookup) Activations() int64 { return l.count.Load() }

// Evicted is how many local activations were passivated to stay within the bound.
func (l *lookup) Evicted() int64 { return l.evicted.Load() }

// disown stops the local activations this node no longer owns (after a topology change)
// and returns how many. Each finishes the message it is on; later ones are refused by
// the grain's own ownership check, so callers re-resolve.
func (l *lookup) disown() int {
	var moved []*actor.PID
	active, self, draining := l.members.View().Active(), l.self, l.draining.Load()
	l.mu.Lock()
	for id, a := range l.active {
		if o, ok := Owner(active, id); draining || !ok || o.ID != self {
			moved = append(moved, a.pid)
		}
	}
	l.mu.Unlock()
	for _, pid := range moved {
		l.c.ActorSystem.Root.Poison(pid)
	}
	return len(moved)
}

// snapshot returns the PIDs of every local activation.
func (l *lookup) snapshot() []*actor.PID {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*actor.PID, 0, len(l.active))
	for _, a := range l.active {
		out = append(out, a.pid)
	}
	return out
}
