package cluster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var testLogger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))

var memberSeq atomic.Int64

// newMemberID returns an id unique in the test binary, like an actor system id.
func newMemberID() string {
	return fmt.Sprintf("m%03d-%x", memberSeq.Add(1), time.Now().UnixNano()&0xffffff)
}

// freePort returns a port that was free for both TCP and UDP on 127.0.0.1 a moment ago.
// Another process may take it before memberlist binds: callers retry on bind errors.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return port
	}
	t.Fatal("finding a free TCP+UDP port: none after 20 tries")
	return 0
}

// startMembership starts a member on 127.0.0.1 (on bind, or a free port when bind is
// "") with fast timings and leaves it at the end of the test.
func startMembership(t *testing.T, bind string, tweak func(*MembershipConfig)) *Membership {
	t.Helper()
	for attempt := 0; ; attempt++ {
		addr := bind
		if addr == "" {
			addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
		}
		cfg := MembershipConfig{
			Bind: addr,
			Self: MemberInfo{
				ID: newMemberID(), Remote: "127.0.0.1:9" + strconv.Itoa(attempt%10) + "00",
				HTTP: "127.0.0.1:8080", Kinds: []string{"order"}, Started: time.Now(),
			},
			Logger: testLogger,
			Fast:   true,
		}
		if tweak != nil {
			tweak(&cfg)
		}
		m, err := NewMembership(cfg)
		if err != nil {
			if attempt < 10 && strings.Contains(err.Error(), "address already in use") {
				continue
			}
			t.Fatalf("NewMembership: %v", err)
		}
		t.Cleanup(func() { _ = m.Leave(time.Second) })
		return m
	}
}

// startCluster starts n members and joins them through the first.
func startCluster(t *testing.T, n int, tweak func(*MembershipConfig)) []*Membership {
	t.Helper()
	ms := make([]*Membership, n)
	for i := range ms {
		ms[i] = startMembership(t, "", tweak)
	}
	for _, m := range ms[1:] {
		if _, err := m.Join([]string{ms[0].Self().Gossip}); err != nil {
			t.Fatalf("Join: %v", err)
		}
	}
	waitFor(t, 5*time.Second, "all members see all members", func() bool {
		for _, m := range ms {
			if len(m.View().Members) != n {
				return false
			}
		}
		return true
	})
	return ms
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func stateOf(m *Membership, id string) MemberState {
	if mi, ok := m.View().Member(id); ok {
		return mi.State
	}
	return ""
}

func TestMembershipFormsCluster(t *testing.T) {
	ms := startCluster(t, 3, nil)
	waitFor(t, 5*time.Second, "views agree", func() bool {
		return ms[0].View().Hash == ms[1].View().Hash && ms[1].View().Hash == ms[2].View().Hash
	})
	v := ms[2].View()
	for i := 1; i < len(v.Members); i++ {
		if v.Members[i-1].ID >= v.Members[i].ID {
			t.Errorf("members not sorted by id: %v", v.Members)
		}
	}
	for _, m := range ms {
		self := m.Self()
		got, ok := ms[0].View().Member(self.ID)
		if !ok {
			t.Fatalf("%s missing from the view", self.ID)
		}
		if got.Gossip != self.Gossip || got.Remote != self.Remote || got.HTTP != self.HTTP ||
			got.State != StateJoining || len(got.Kinds) != 1 || !got.Started.Equal(self.Started) {
			t.Errorf("gossiped member info = %+v, want %+v", got, self)
		}
	}
	if !strings.HasPrefix(ms[0].Self().Gossip, "127.0.0.1:") {
		t.Errorf("Gossip = %q, want the advertised 127.0.0.1:port", ms[0].Self().Gossip)
	}
}

func TestMembershipJoinWithoutSeedsOrOnlySelf(t *testing.T) {
	m := startMembership(t, "", nil)
	for _, seeds := range [][]string{nil, {m.Self().Gossip}} {
		if n, err := m.Join(seeds); n != 0 || err != nil {
			t.Errorf("Join(%v) = %d, %v; want 0, nil", seeds, n, err)
		}
	}
	if v := m.View(); len(v.Members) != 1 || v.Members[0].ID != m.Self().ID || v.Version != 1 {
		t.Errorf("lone view = %+v", v)
	}
}

func TestMembershipJoinRetriesSeedsThatAreStarting(t *testing.T) {
	seed := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	m := startMembership(t, "", nil)
	started := make(chan *Membership, 1)
	go func() {
		time.Sleep(500 * time.Millisecond) // the seed comes up while Join is retrying
		s, err := NewMembership(MembershipConfig{
			Bind: seed, Self: MemberInfo{ID: newMemberID(), Remote: "127.0.0.1:9000"}, Logger: testLogger, Fast: true,
		})
		if err != nil {
			t.Errorf("starting the late seed: %v", err)
		}
		started <- s
	}()
	n, err := m.Join([]string{seed})
	if s := <-started; s != nil {
		defer s.Leave(time.Second)
	}
	if err != nil || n != 1 {
		t.Fatalf("Join = %d, %v; want 1, nil", n, err)
	}
	waitFor(t, 5*time.Second, "the seed is seen", func() bool { return len(m.View().Members) == 2 })
}

func TestMembershipSetState(t *testing.T) {
	ms := startCluster(t, 3, nil)
	a, c := ms[0], ms[2]
	before := c.View().Version

	if err := c.SetState(StateActive); err != nil {
		t.Fatalf("SetState(active): %v", err)
	}
	// The local view changes before SetState returns: draining relies on it.
	if got := stateOf(c, c.Self().ID); got != StateActive {
		t.Fatalf("own state right after SetState = %q, want active", got)
	}
	if v := c.View(); v.Version <= before {
		t.Errorf("Version %d did not grow from %d on a state change", v.Version, before)
	}
	if n := len(c.View().Active()); n != 1 {
		t.Errorf("Active() has %d members, want 1", n)
	}

	if err := c.SetState(StateLeaving); err != nil {
		t.Fatalf("SetState(leaving): %v", err)
	}
	took := waitFor(t, 3*time.Second, "peers see leaving", func() bool {
		return stateOf(a, c.Self().ID) == StateLeaving && stateOf(ms[1], c.Self().ID) == StateLeaving
	})
	t.Logf("state reached the peers in %s", took)

	if err := c.SetState("sleeping"); err == nil {
		t.Error("SetState(unknown) = nil, want an error")
	}
}

func TestMembershipVersionAndHash(t *testing.T) {
	ms := startCluster(t, 2, nil)
	a := ms[0]
	v1 := a.View()
	time.Sleep(1500 * time.Millisecond) // at least one re-push with nothing new
	if v2 := a.View(); v2.Version != v1.Version || v2.Hash != v1.Hash {
		t.Errorf("view changed without a membership change: %+v -> %+v", v1, v2)
	}
	if err := ms[1].SetState(StateActive); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "state change seen", func() bool { return stateOf(a, ms[1].Self().ID) == StateActive })
	if v3 := a.View(); v3.Version <= v1.Version || v3.Hash == v1.Hash {
		t.Errorf("state change kept Version/Hash: %+v -> %+v", v1, v3)
	}
	// A lone member hashes like the solo membership.
	self := MemberInfo{ID: "x", State: StateActive}
	if viewHash([]MemberInfo{self}) != newSolo(self).View().Hash {
		t.Error("viewHash of one member differs from the solo membership's")
	}
}

func TestMembershipLeave(t *testing.T) {
	ms := startCluster(t, 3, nil)
	gone := ms[2]
	id := gone.Self().ID
	if err := gone.Leave(time.Second); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	took := waitFor(t, 3*time.Second, "peers drop the member that left", func() bool {
		_, in0 := ms[0].View().Member(id)
		_, in1 := ms[1].View().Member(id)
		return !in0 && !in1
	})
	t.Logf("leave seen in %s", took)

	if err := gone.Leave(time.Second); err != nil {
		t.Errorf("second Leave = %v, want the first's result (nil)", err)
	}
	if err := gone.SetState(StateActive); !errors.Is(err, ErrMembershipClosed) {
		t.Errorf("SetState after Leave = %v, want ErrMembershipClosed", err)
	}
	if _, err := gone.Join([]string{ms[0].Self().Gossip}); !errors.Is(err, ErrMembershipClosed) {
		t.Errorf("Join after Leave = %v, want ErrMembershipClosed", err)
	}
}

// A process that dies says no goodbye; the others must find out by themselves, and a
// new process may come back on the same address with a new id.
func TestMembershipCrashAndRestartOnSameAddress(t *testing.T) {
	// Production timings: this is the detection time the design promises.
	lan := func(c *MembershipConfig) { c.Fast = false }
	ms := startCluster(t, 3, lan)
	crashed := ms[2]
	id, addr := crashed.Self().ID, crashed.Self().Gossip
	crashed.kill()

	took := waitFor(t, 5*time.Second, "peers drop the crashed member", func() bool {
		_, in0 := ms[0].View().Member(id)
		_, in1 := ms[1].View().Member(id)
		return !in0 && !in1
	})
	t.Logf("crash detected in %s", took)

	reborn := startMembership(t, addr, lan)
	if _, err := reborn.Join([]string{ms[0].Self().Gossip}); err != nil {
		t.Fatalf("Join of the restarted process: %v", err)
	}
	waitFor(t, 5*time.Second, "the restarted process is seen", func() bool {
		_, ok := ms[1].View().Member(reborn.Self().ID)
		_, old := ms[1].View().Member(id)
		return ok && !old && len(reborn.View().Members) == 3
	})
}

func TestMembershipOnChangeMayCallBack(t *testing.T) {
	var calls atomic.Int64
	var m *Membership
	ready := make(chan struct{})
	var promoted sync.Once
	m = startMembership(t, "", func(c *MembershipConfig) {
		c.OnChange = func(v View) {
			<-ready // m is assigned
			calls.Add(1)
			// A node that sees itself joining promotes itself from inside OnChange:
			// View and SetState must not deadlock with the goroutine calling us.
			if s, _ := m.View().Member(m.Self().ID); s.State == StateJoining {
				promoted.Do(func() {
					if err := m.SetState(StateActive); err != nil {
						t.Errorf("SetState from OnChange: %v", err)
					}
				})
			}
			if len(v.Members) == 0 {
				t.Error("OnChange got an empty view")
			}
		}
	})
	close(ready)
	waitFor(t, 3*time.Second, "OnChange promotes the member", func() bool { return stateOf(m, m.Self().ID) == StateActive })
	// Re-push: OnChange keeps coming although nothing changes.
	n := calls.Load()
	waitFor(t, 3*time.Second, "a re-push without changes", func() bool { return calls.Load() >= n+2 })
	if err := m.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	n = calls.Load()
	time.Sleep(1200 * time.Millisecond)
	if calls.Load() != n {
		t.Error("OnChange called after Leave returned")
	}
}

func TestMembershipConfigErrors(t *testing.T) {
	ok := MembershipConfig{Bind: "127.0.0.1:7946", Self: MemberInfo{ID: "a", Remote: "127.0.0.1:8090"}}
	long := make([]string, 40)
	for i := range long {
		long[i] = "kind-with-a-long-name"
	}
	tests := []struct {
		name   string
		tweak  func(*MembershipConfig)
		want   string
		wantIs error
	}{
		{"port 0", func(c *MembershipConfig) { c.Bind = "127.0.0.1:0" }, "port must be", nil},
		{"no port", func(c *MembershipConfig) { c.Bind = "127.0.0.1" }, "parsing gossip bind address", nil},
		{"all interfaces, no advertise", func(c *MembershipConfig) { c.Bind = "0.0.0.0:7946" }, "set Advertise", nil},
		{"advertise with port", func(c *MembershipConfig) { c.Advertise = "10.0.0.1:1" }, "without a port", nil},
		{"no id", func(c *MembershipConfig) { c.Self.ID = "" }, "Self.ID is empty", nil},
		{"no remote", func(c *MembershipConfig) { c.Self.Remote = "" }, "remote address", nil},
		{"bad state", func(c *MembershipConfig) { c.Self.State = "asleep" }, "unknown state", nil},
		{"meta over 512 bytes", func(c *MembershipConfig) { c.Self.Kinds = long }, "limit 512", ErrMetaTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.tweak(&cfg)
			m, err := NewMembership(cfg)
			if err == nil {
				_ = m.Leave(0)
				t.Fatal("NewMembership succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %v", err, tt.wantIs)
			}
		})
	}
}

func TestMembershipSetStateOverLimit(t *testing.T) {
	// "active" is one byte shorter than "leaving": metadata that just fits as active
	// must be refused, not panic inside memberlist, when the node starts draining.
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	self := MemberInfo{ID: newMemberID(), Gossip: addr, Remote: "127.0.0.1:8090", State: StateActive}
	for b, _ := encodeMeta(self); len(b) < 512; b, _ = encodeMeta(self) {
		self.HTTP += "h"
	}
	m := startMembership(t, addr, func(c *MembershipConfig) { c.Self = self })
	if err := m.SetState(StateLeaving); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("SetState = %v, want ErrMetaTooLarge", err)
	}
	if got := stateOf(m, m.Self().ID); got != StateActive {
		t.Errorf("state after a refused SetState = %q, want active", got)
	}
}

func TestMembershipSkipsUnreadableMetadata(t *testing.T) {
	m := startMembership(t, "", nil)
	good := MemberInfo{ID: "peer-good", Remote: "127.0.0.1:1234", State: StateActive}
	goodMeta, _ := encodeMeta(good)
	m.nodesMu.Lock()
	m.nodes["peer-good"] = goodMeta
	m.nodes["peer-garbage"] = []byte("{not json")
	m.nodes["peer-impostor"] = goodMeta // metadata naming another node
	m.nodes["peer-noremote"] = []byte(`{"id":"peer-noremote","state":"active"}`)
	m.nodesMu.Unlock()

	v := m.rebuild()
	var ids []string
	for _, mi := range v.Members {
		ids = append(ids, mi.ID)
	}
	_, hasSelf := v.Member(m.Self().ID)
	_, hasGood := v.Member("peer-good")
	if len(ids) != 2 || !hasSelf || !hasGood {
		t.Errorf("view members = %v, want self and peer-good only", ids)
	}
}

func TestMembershipProviderTopology(t *testing.T) {
	v := View{Version: 3, Members: []MemberInfo{
		{ID: "a", Remote: "10.0.0.1:8090", State: StateJoining, Kinds: []string{"order"}},
		{ID: "b", Remote: "[::1]:8091", State: StateActive, Kinds: []string{"order"}},
		{ID: "c", Remote: "10.0.0.3:8092", State: StateLeaving},
	}}
	got := topology(v)
	if len(got) != 3 {
		t.Fatalf("topology has %d members, want every alive member (3)", len(got))
	}
	if b := got[1]; b.Id != "b" || b.Host != "::1" || b.Port != 8091 || len(b.Kinds) != 1 || b.Kinds[0] != "order" {
		t.Errorf("member b = %v", b)
	}

	// Views that arrive before StartMember are dropped, not pushed to a nil cluster.
	m := startMembership(t, "", nil)
	p := newMemberlistProvider(m)
	p.push(v)
	if p.version != 0 {
		t.Errorf("a view was taken before StartMember (version %d)", p.version)
	}
	if err := p.StartClient(nil); err == nil {
		t.Error("StartClient = nil, want an error")
	}
	if err := p.Shutdown(true); err != nil {
		t.Errorf("Shutdown(true): %v", err)
	}
	if err := m.SetState(StateActive); !errors.Is(err, ErrMembershipClosed) {
		t.Errorf("graceful provider shutdown did not leave the membership: SetState = %v", err)
	}
}

func TestMembershipLeaveStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	ms := make([]*Membership, 3)
	for i := range ms {
		ms[i] = startMembership(t, "", nil)
		if i > 0 {
			if _, err := ms[i].Join([]string{ms[0].Self().Gossip}); err != nil {
				t.Fatal(err)
			}
		}
	}
	ms[1].kill()
	for _, m := range ms {
		_ = m.Leave(500 * time.Millisecond)
	}
	waitFor(t, 5*time.Second, "goroutines return to their number before the test", func() bool {
		return runtime.NumGoroutine() <= before
	})
}
