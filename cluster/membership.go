package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrMembershipClosed is returned by the methods of a Membership after Leave.
var ErrMembershipClosed = errors.New("membership closed")

// ErrMetaTooLarge is returned by NewMembership and SetState when the encoded MemberInfo
// does not fit in memberlist's node metadata (memberlist.MetaMaxSize bytes).
var ErrMetaTooLarge = errors.New("member info too large for memberlist metadata")

// MembershipConfig configures a Membership.
type MembershipConfig struct {
	// Bind is the host:port memberlist listens on (UDP and TCP). Port 0 is refused: the
	// gossip address is published in the metadata before the sockets exist.
	Bind string
	// Advertise is the host peers use to reach this node; "" means Bind's host, which
	// must then be a concrete address (not 0.0.0.0 or ::).
	Advertise string
	// Self describes this node. The caller fills ID (unique per process: a restarted
	// process is a new member), Remote, HTTP, Kinds, Started and the initial State
	// (joining when empty); Gossip is filled from the advertised address.
	Self MemberInfo
	// Logger receives membership events; memberlist's own log goes to it at debug.
	// nil means slog.Default().
	Logger *slog.Logger
	// Fast uses tighter failure-detection timings, for tests and local clusters on
	// loopback. Production keeps it off: it trades false suspicion under load for speed.
	Fast bool
	// OnChange receives every view: when the membership changes, and at least every
	// second even when it does not (a re-push, so consumers that missed or rejected a
	// view converge). It is called on the Membership's own goroutine, one call at a
	// time and never under memberlist's lock, so it may call View, Self and SetState.
	// It must not call Leave (Leave waits for that goroutine) and should return quickly:
	// the next view waits for it.
	OnChange func(View)
	// Keyring encrypts and authenticates all gossip (UDP packets and TCP streams) and
	// refuses gossip that is not sealed with one of its keys. nil gossips in the clear.
	Keyring *memberlist.Keyring
	// Label is sent with every packet and stream; gossip with another label is dropped.
	Label string
}

// timing is memberlist's failure detection and this package's own periods.
type timing struct {
	probeInterval, probeTimeout time.Duration
	suspicionMult               int
	gossipInterval              time.Duration
	pushPull, gossipToDead      time.Duration
	tcpTimeout                  time.Duration
	repush                      time.Duration // how often the view is rebuilt and re-pushed
	update                      time.Duration // how long SetState waits for its broadcast
	join                        time.Duration // how long Join keeps retrying the seeds
}

// With fewer than 10 members memberlist suspects a node after a failed probe (at most
// one probe interval, indirect pings and TCP fallback included) and declares it dead
// after SuspicionMult × ProbeInterval (no confirmations are awaited when
// SuspicionMult is 2). Each survivor probes every peer in turn, so in a small cluster
// a crash is found within about 2 × ProbeInterval + ProbeInterval + suspicion:
// ~2.5 s for lanTiming, ~1 s for fastTiming.
var (
	lanTiming = timing{
		probeInterval: 500 * time.Millisecond, probeTimeout: 250 * time.Millisecond,
		suspicionMult: 2, gossipInterval: 100 * time.Millisecond,
		pushPull: 5 * time.Second, gossipToDead: 10 * time.Second, tcpTimeout: 3 * time.Second,
		repush: time.Second, update: 2 * time.Second, join: 10 * time.Second,
	}
	fastTiming = timing{
		probeInterval: 200 * time.Millisecond, probeTimeout: 150 * time.Millisecond,
		suspicionMult: 2, gossipInterval: 50 * time.Millisecond,
		pushPull: 2 * time.Second, gossipToDead: 3 * time.Second, tcpTimeout: time.Second,
		repush: time.Second, update: time.Second, join: 5 * time.Second,
	}
)

// Membership is this node's membership of the cluster, gossiped by hashicorp/memberlist.
// Each node publishes its MemberInfo as memberlist metadata; the Membership turns what
// memberlist knows into a View and hands every view to OnChange.
//
// memberlist calls its EventDelegate under its own node lock, and the *Node values that
// Members returns are rewritten under that lock after Members has returned. So the
// callbacks do the minimum that is safe and useful there, copying the node's metadata
// into a map of our own and signalling; decoding, sorting and OnChange happen on the
// Membership's goroutine, which never touches memberlist's state.
type Membership struct {
	log    *slog.Logger
	timing timing
	ml     *memberlist.Memberlist

	// lifeMu keeps memberlist calls and Shutdown apart: Join and SetState hold it for
	// reading, Leave for writing, and nothing reaches memberlist after Shutdown (its
	// Leave panics then, and a late Join would resurrect the node at a seed).
	lifeMu sync.RWMutex
	closed bool // under lifeMu
	// selfMu serializes SetState, so that the metadata memberlist broadcasts follows
	// the order of the state changes. Join does not take it: a slow seed must not hold
	// up a drain.
	selfMu sync.Mutex
	self   atomic.Pointer[MemberInfo] // read without selfMu by rebuilds and Self
	meta   atomic.Pointer[[]byte]     // self, encoded; what NodeMeta hands to memberlist

	// nodes holds the metadata of every live node by name, copied by the event
	// callbacks while memberlist holds its lock.
	nodesMu sync.Mutex
	nodes   map[string][]byte

	// buildMu serializes rebuilds so that Version only grows and views are stored in
	// the order they were built.
	buildMu sync.Mutex
	warned  map[string]bool // nodes whose undecodable metadata was logged; under buildMu
	view    atomic.Pointer[View]

	listenersMu sync.Mutex
	listeners   []func(View)

	changed   chan struct{} // capacity 1: a pending rebuild, coalesced
	stop      chan struct{} // closed by Leave
	done      chan struct{} // closed when the goroutine has returned
	closeOnce sync.Once
	closeErr  error
}

// NewMembership starts gossiping on cfg.Bind as a cluster of one. Call Join to meet
// the others. The first view (this node alone) is ready when NewMembership returns.
func NewMembership(cfg MembershipConfig) (*Membership, error) {
	bindHost, port, err := splitGossipAddr(cfg.Bind)
	if err != nil {
		return nil, err
	}
	advHost := cfg.Advertise
	if advHost == "" {
		advHost = bindHost
	}
	if _, _, err := net.SplitHostPort(advHost); err == nil {
		return nil, fmt.Errorf("checking advertise address %q: want a host without a port (the port is Bind's)", advHost)
	}
	if ip := net.ParseIP(advHost); advHost == "" || (ip != nil && ip.IsUnspecified()) {
		return nil, fmt.Errorf("checking advertise address: bind host %q is not an address peers can reach; set Advertise", bindHost)
	}
	if cfg.Self.ID == "" {
		return nil, errors.New("checking member info: Self.ID is empty")
	}
	if err := checkHostPort(cfg.Self.Remote); err != nil {
		return nil, fmt.Errorf("checking member info: remote address: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bindIP, err := resolveIP(ctx, bindHost)
	if err != nil {
		return nil, fmt.Errorf("resolving bind host: %w", err)
	}
	advIP, err := resolveIP(ctx, advHost)
	if err != nil {
		return nil, fmt.Errorf("resolving advertise host: %w", err)
	}

	self := cfg.Self
	self.Kinds = slices.Clone(self.Kinds)
	self.Gossip = net.JoinHostPort(advHost, strconv.Itoa(port))
	if self.State == "" {
		self.State = StateJoining
	}
	if !validState(self.State) {
		return nil, fmt.Errorf("checking member info: unknown state %q", self.State)
	}
	meta, err := encodeMeta(self)
	if err != nil {
		return nil, err
	}

	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	m := &Membership{
		log:     logger.With("component", "membership", "member", self.ID),
		timing:  lanTiming,
		nodes:   make(map[string][]byte),
		warned:  make(map[string]bool),
		changed: make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if cfg.Fast {
		m.timing = fastTiming
	}
	m.self.Store(&self)
	m.meta.Store(&meta)
	m.view.Store(&View{})
	if cfg.OnChange != nil {
		m.listeners = append(m.listeners, cfg.OnChange)
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = self.ID
	mc.BindAddr, mc.BindPort = bindIP.String(), port
	mc.AdvertiseAddr, mc.AdvertisePort = advIP.String(), port
	mc.ProbeInterval, mc.ProbeTimeout = m.timing.probeInterval, m.timing.probeTimeout
	mc.SuspicionMult = m.timing.suspicionMult
	mc.GossipInterval = m.timing.gossipInterval
	mc.PushPullInterval = m.timing.pushPull
	mc.GossipToTheDeadTime = m.timing.gossipToDead
	mc.TCPTimeout = m.timing.tcpTimeout
	mc.Delegate = (*metaDelegate)(m)
	mc.Events = (*eventDelegate)(m)
	mc.Logger = log.New(memberlistLog{m.log.With("lib", "memberlist")}, "", 0)
	mc.Label = cfg.Label
	if cfg.Keyring != nil {
		mc.Keyring = cfg.Keyring
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}

	m.rebuild()
	// Create announces this node to itself, so NotifyJoin runs before it returns: the
	// delegates above only touch fields that are ready by now.
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("starting memberlist on %s: %w", cfg.Bind, err)
	}
	m.ml = ml
	go m.run()
	m.signal()
	return m, nil
}

// Join meets the cluster through any of seeds (gossip host:port addresses of running
// members) and returns how many answered. Seeds that are not up yet are retried for a
// few seconds; this node's own address is skipped, so every node of a cluster may be
// given the same seed list. Without other seeds the node stays a cluster of its own,
// which others may join.
func (m *Membership) Join(seeds []string) (int, error) {
	self := m.Self().Gossip
	others := make([]string, 0, len(seeds))
	for _, s := range seeds {
		if s != "" && s != self {
			others = append(others, s)
		}
	}
	if len(others) == 0 {
		return 0, nil
	}
	deadline := time.Now().Add(m.timing.join)
	wait := 100 * time.Millisecond
	for {
		n, err := m.join(others)
		if err == nil {
			m.signal()
			return n, nil
		}
		if errors.Is(err, ErrMembershipClosed) || time.Now().After(deadline) {
			return 0, fmt.Errorf("joining the cluster via %s: %w", strings.Join(others, ", "), err)
		}
		m.log.Debug("seeds not reachable yet; retrying", "seeds", others, "err", err)
		select {
		case <-m.stop:
			return 0, fmt.Errorf("joining the cluster: %w", ErrMembershipClosed)
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// join makes one attempt; it cannot overlap Leave.
func (m *Membership) join(seeds []string) (int, error) {
	m.lifeMu.RLock()
	defer m.lifeMu.RUnlock()
	if m.closed {
		return 0, ErrMembershipClosed
	}
	return m.ml.Join(seeds)
}

// SetState changes this node's state and announces it. The local view shows the new
// state before SetState returns (a draining node must stop owning orders at once);
// peers learn it by gossip, usually within a few gossip intervals. An error other than
// ErrMembershipClosed or ErrMetaTooLarge means the broadcast did not go out in time:
// the state is set all the same and gossip still carries it.
func (m *Membership) SetState(s MemberState) error {
	if !validState(s) {
		return fmt.Errorf("setting member state: unknown state %q", s)
	}
	m.lifeMu.RLock()
	defer m.lifeMu.RUnlock()
	if m.closed {
		return fmt.Errorf("setting member state %s: %w", s, ErrMembershipClosed)
	}
	m.selfMu.Lock()
	defer m.selfMu.Unlock()
	cur := m.self.Load()
	if cur.State == s {
		return nil
	}
	next := *cur
	next.State = s
	meta, err := encodeMeta(next)
	if err != nil {
		return err
	}
	m.self.Store(&next)
	m.meta.Store(&meta)
	m.rebuild()
	m.signal() // OnChange sees the new view without waiting for the re-push
	// UpdateNode re-reads NodeMeta, so it broadcasts the metadata stored above.
	if err := m.ml.UpdateNode(m.timing.update); err != nil {
		return fmt.Errorf("announcing member state %s: %w", s, err)
	}
	return nil
}

// View returns the latest view. It is cheap (one atomic load) and safe for concurrent
// use; the returned View must not be modified.
func (m *Membership) View() View { return *m.view.Load() }

// Self returns this node's member info as it is published.
func (m *Membership) Self() MemberInfo {
	s := *m.self.Load()
	s.Kinds = slices.Clone(s.Kinds)
	return s
}

// Leave tells the cluster this node is going (peers drop it at once instead of after
// failure detection), waits up to timeout for that broadcast, then stops memberlist
// and the Membership's goroutine. OnChange is not called after Leave returns. Calls
// after the first return the first one's result.
func (m *Membership) Leave(timeout time.Duration) error {
	return m.close(func() error {
		var errs []error
		if err := m.ml.Leave(timeout); err != nil {
			errs = append(errs, fmt.Errorf("announcing leave: %w", err))
		}
		if err := m.ml.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("stopping memberlist: %w", err))
		}
		return errors.Join(errs...)
	})
}

// kill stops gossiping without a goodbye, as a crashed process would: peers notice only
// by failure detection. For tests.
func (m *Membership) kill() {
	_ = m.close(func() error { return m.ml.Shutdown() })
}

func (m *Membership) close(stopMemberlist func() error) error {
	m.closeOnce.Do(func() {
		m.lifeMu.Lock()
		m.closed = true
		m.closeErr = stopMemberlist()
		m.lifeMu.Unlock()
		// lifeMu is released first: OnChange may be blocked in SetState, and the
		// goroutine must finish that call before it can see stop.
		close(m.stop)
		<-m.done
	})
	return m.closeErr
}

// watch adds a receiver of every view, called after OnChange on the same goroutine.
// It lets the protoactor provider subscribe to a Membership built before it.
func (m *Membership) watch(f func(View)) {
	m.listenersMu.Lock()
	m.listeners = append(m.listeners, f)
	m.listenersMu.Unlock()
}

// signal asks the goroutine for a rebuild without blocking: memberlist calls it under
// its lock, and one pending rebuild covers any number of changes.
func (m *Membership) signal() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// run rebuilds the view on every signal and every re-push period and hands it out.
func (m *Membership) run() {
	defer close(m.done)
	tick := time.NewTicker(m.timing.repush)
	defer tick.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-m.changed:
		case <-tick.C:
		}
		select {
		case <-m.stop: // a rebuild was pending when Leave came: views end here
			return
		default:
		}
		v := m.rebuild()
		m.listenersMu.Lock()
		ls := slices.Clone(m.listeners)
		m.listenersMu.Unlock()
		for _, f := range ls {
			f(v)
		}
	}
}

// rebuild makes a view from the copied metadata and stores it. This node's own entry
// comes from m.self, not from gossip, so a state change shows at once.
func (m *Membership) rebuild() View {
	m.buildMu.Lock()
	defer m.buildMu.Unlock()
	self := *m.self.Load()

	m.nodesMu.Lock()
	metas := make(map[string][]byte, len(m.nodes))
	for name, meta := range m.nodes {
		metas[name] = meta
	}
	m.nodesMu.Unlock()

	members := make([]MemberInfo, 0, len(metas)+1)
	members = append(members, self)
	for name, meta := range metas {
		if name == self.ID {
			continue
		}
		info, err := decodeMeta(name, meta)
		if err != nil {
			if !m.warned[name] {
				m.warned[name] = true
				m.log.Warn("ignoring a node with unreadable metadata", "node", name, "err", err)
			}
			continue
		}
		members = append(members, info)
	}
	for name := range m.warned {
		if _, ok := metas[name]; !ok {
			delete(m.warned, name)
		}
	}
	slices.SortFunc(members, func(a, b MemberInfo) int { return strings.Compare(a.ID, b.ID) })

	prev := m.view.Load()
	v := newView(members, prev.Version)
	if !sameMembers(prev.Members, members) {
		v.Version++
		m.log.Debug("membership changed", "version", v.Version, "members", len(members))
	}
	m.view.Store(&v)
	return v
}

// sameMembers reports whether a and b (sorted by ID) hold the same (id, state, remote)
// triples: the changes that move orders or addresses.
func sameMembers(a, b []MemberInfo) bool {
	return slices.EqualFunc(a, b, func(x, y MemberInfo) bool {
		return x.ID == y.ID && x.State == y.State && x.Remote == y.Remote
	})
}

// viewHash is FNV-1a 64 over "id\x00state" pairs joined by "\x00", in ID order.
func viewHash(members []MemberInfo) uint64 {
	h := fnv.New64a()
	for i, mi := range members {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(mi.ID))
		h.Write([]byte{0})
		h.Write([]byte(mi.State))
	}
	return h.Sum64()
}

func encodeMeta(self MemberInfo) ([]byte, error) {
	b, err := json.Marshal(self)
	if err != nil {
		return nil, fmt.Errorf("encoding member info: %w", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("encoding member info: %d bytes, limit %d (shorten the kinds, addresses or id): %w",
			len(b), memberlist.MetaMaxSize, ErrMetaTooLarge)
	}
	return b, nil
}

// decodeMeta reads a peer's MemberInfo and checks what the rest of the node relies on.
func decodeMeta(name string, meta []byte) (MemberInfo, error) {
	var info MemberInfo
	if err := json.Unmarshal(meta, &info); err != nil {
		return MemberInfo{}, fmt.Errorf("decoding member info: %w", err)
	}
	if info.ID != name {
		return MemberInfo{}, fmt.Errorf("member info names %q, memberlist node is %q", info.ID, name)
	}
	if !validState(info.State) {
		return MemberInfo{}, fmt.Errorf("unknown member state %q", info.State)
	}
	if err := checkHostPort(info.Remote); err != nil {
		return MemberInfo{}, fmt.Errorf("remote address: %w", err)
	}
	return info, nil
}

func validState(s MemberState) bool {
	return s == StateJoining || s == StateActive || s == StateLeaving
}

// splitGossipAddr parses Bind; port 0 is refused because peers learn the gossip
// address from the metadata, which is built before memberlist binds.
func splitGossipAddr(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("parsing gossip bind address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("parsing gossip bind address %q: port must be 1-65535", addr)
	}
	return host, port, nil
}

func checkHostPort(addr string) error {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("parsing %q: %w", addr, err)
	}
	if port, err := strconv.Atoi(portStr); err != nil || port <= 0 || port > 65535 {
		return fmt.Errorf("parsing %q: port must be 1-65535", addr)
	}
	return nil
}

// resolveIP turns a host into the IP memberlist needs (it accepts only IP literals);
// "" means all interfaces. IPv4 is preferred, as memberlist's own defaults do.
func resolveIP(ctx context.Context, host string) (net.IP, error) {
	if host == "" {
		return net.IPv4zero, nil
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip, nil
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("looking up %q: %w", host, err)
	}
	for _, a := range addrs {
		if a.IP.To4() != nil {
			return a.IP, nil
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("looking up %q: no addresses", host)
	}
	return addrs[0].IP, nil
}

// metaDelegate is memberlist.Delegate: it publishes this node's MemberInfo. It carries
// no user messages or state: membership is all ordermesh gossips.
type metaDelegate Membership

// NodeMeta returns the encoded MemberInfo, which NewMembership and SetState have
// already checked against the limit (memberlist panics on oversized metadata).
func (d *metaDelegate) NodeMeta(limit int) []byte {
	meta := *d.meta.Load()
	if len(meta) > limit {
		return nil
	}
	return meta
}

// NotifyMsg ignores user messages: ordermesh sends none.
func (*metaDelegate) NotifyMsg([]byte) {}

// GetBroadcasts has nothing to broadcast.
func (*metaDelegate) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState has no state to push beyond the metadata.
func (*metaDelegate) LocalState(bool) []byte { return nil }

// MergeRemoteState has nothing to merge.
func (*metaDelegate) MergeRemoteState([]byte, bool) {}

// eventDelegate is memberlist.EventDelegate. memberlist calls it with its node lock
// held, so it must neither block nor call back into memberlist: it copies the metadata
// (the *Node is memberlist's and changes after the call) and signals the goroutine.
type eventDelegate Membership

// NotifyJoin records a node that became alive (again).
func (d *eventDelegate) NotifyJoin(n *memberlist.Node) { d.put(n) }

// NotifyUpdate records a node's new metadata (a state change).
func (d *eventDelegate) NotifyUpdate(n *memberlist.Node) { d.put(n) }

// NotifyLeave forgets a node that left or was declared dead.
func (d *eventDelegate) NotifyLeave(n *memberlist.Node) {
	d.nodesMu.Lock()
	delete(d.nodes, n.Name)
	d.nodesMu.Unlock()
	(*Membership)(d).signal()
}

func (d *eventDelegate) put(n *memberlist.Node) {
	meta := bytes.Clone(n.Meta)
	d.nodesMu.Lock()
	d.nodes[n.Name] = meta
	d.nodesMu.Unlock()
	(*Membership)(d).signal()
}

// memberlistLog adapts memberlist's *log.Logger output ("[LEVEL] memberlist: text") to
// slog. Everything goes to debug: memberlist reports routine events of a gossip
// protocol (a peer that stopped answering, a refuted suspicion) as warnings and errors,
// and what matters to operators reaches them as membership changes. Its level is
// kept as an attribute.
type memberlistLog struct{ log *slog.Logger }

func (w memberlistLog) Write(p []byte) (int, error) {
	if !w.log.Enabled(context.Background(), slog.LevelDebug) {
		return len(p), nil
	}
	msg := strings.TrimSpace(string(p))
	level := ""
	if strings.HasPrefix(msg, "[") {
		if i := strings.IndexByte(msg, ']'); i > 0 {
			level, msg = msg[1:i], strings.TrimSpace(msg[i+1:])
		}
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	w.log.Debug(msg, "level_memberlist", level)
	return len(p), nil
}
