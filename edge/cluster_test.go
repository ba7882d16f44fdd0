package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/golang-jwt/jwt/v5"
)

// fakeCluster is a cluster of fixed members. Drain marks a member leaving, as a node does
// when it accepts the request.
type fakeCluster struct {
	mu      sync.Mutex
	status  ClusterStatus
	drained []string
	fail    error // returned by every call when set
	owner   func(orderID string) string
}

func newFakeCluster() *fakeCluster {
	started := time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC)
	return &fakeCluster{status: ClusterStatus{
		Self: "node-a", TopologyVersion: 7, TopologyHash: FormatTopologyHash(0xbeef),
		Members: []MemberStatus{
			{ID: "node-a", Gossip: "10.0.0.1:7946", Remote: "10.0.0.1:8090", HTTP: "10.0.0.1:8080", State: "active",
				Activations: 12, UptimeSeconds: 3600, Started: started, PaymentBreaker: "half-open",
				RequestsPerSecond: 41.5, LatencyP50Ms: 1.25, LatencyP99Ms: 18},
			{ID: "node-b", Gossip: "10.0.0.2:7946", Remote: "10.0.0.2:8090", HTTP: "10.0.0.2:8080", State: "joining",
				Activations: -1, UptimeSeconds: 5, Started: started.Add(time.Hour)},
		},
	}}
}

func (f *fakeCluster) Status(context.Context) (ClusterStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return ClusterStatus{}, f.fail
	}
	st := f.status
	st.Members = append([]MemberStatus(nil), f.status.Members...)
	return st, nil
}

func (f *fakeCluster) Drain(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	for i, m := range f.status.Members {
		if m.ID == id {
			f.status.Members[i].State = "leaving"
			f.drained = append(f.drained, id)
			return nil
		}
	}
	return order.Errorf(order.CodeNotFound, "no member %s", id)
}

func (f *fakeCluster) OwnerHTTP(orderID string) string {
	if f.owner == nil {
		return ""
	}
	return f.owner(orderID)
}

func (f *fakeCluster) failWith(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

func (f *fakeCluster) drainedIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.drained...)
}

func withCluster(c Cluster) option { return func(_ *Config, d *Deps) { d.Cluster = c } }

func TestClusterStatus(t *testing.T) {
	h := newHarness(t, withCluster(newFakeCluster()))
	r := h.do(req{method: "GET", path: "/api/v1/cluster", token: h.token("olga")}).expect(t, 200, order.CodeOK)
	// The exact wire shape: the Vue app and the bench read these names.
	want := `{"self":"node-a","topology_version":7,"topology_hash":"000000000000beef","members":[` +
		`{"id":"node-a","gossip":"10.0.0.1:7946","remote":"10.0.0.1:8090","http":"10.0.0.1:8080","state":"active",` +
		`"activations":12,"uptime_seconds":3600,"started":"2026-11-26T11:00:00Z","payment_breaker":"half-open",` +
		`"requests_per_second":41.5,"latency_p50_ms":1.25,"latency_p99_ms":18},` +
		`{"id":"node-b","gossip":"10.0.0.2:7946","remote":"10.0.0.2:8090","http":"10.0.0.2:8080","state":"joining",` +
		`"activations":-1,"uptime_seconds":5,"started":"2026-11-26T12:00:00Z","payment_breaker":"",` +
		`"requests_per_second":0,"latency_p50_ms":0,"latency_p99_ms":0}]}`
	if string(r.Data) != want {
		t.Errorf("status\n got %s\nwant %s", r.Data, want)
	}
}

func TestClusterStatusMembersNeverNull(t *testing.T) {
	f := &fakeCluster{status: ClusterStatus{Self: "solo", TopologyHash: FormatTopologyHash(1)}}
	h := newHarness(t, withCluster(f))
	r := h.do(req{method: "GET", path: "/api/v1/cluster", token: h.token("ada")}).expect(t, 200, order.CodeOK)
	var st map[string]any
	if err := json.Unmarshal(r.Data, &st); err != nil {
		t.Fatal(err)
	}
	if m, ok := st["members"].([]any); !ok || len(m) != 0 {
		t.Errorf("members = %#v, want []", st["members"])
	}
}

func TestClusterEndpointRoles(t *testing.T) {
	h := newHarness(t, withCluster(newFakeCluster()))
	tests := []struct {
		user   string // "" = no token
		status int
		code   order.Code
	}{
		{"", 401, order.CodeUnauthenticated},
		{"alice", 403, order.CodeForbidden},
		{"olga", 200, order.CodeOK},
		{"ada", 200, order.CodeOK},
	}
	for _, tt := range tests {
		t.Run("status as "+tt.user, func(t *testing.T) {
			r := req{method: "GET", path: "/api/v1/cluster"}
			if tt.user != "" {
				r.token = h.token(tt.user)
			}
			h.do(r).expect(t, tt.status, tt.code)
		})
		t.Run("drain as "+tt.user, func(t *testing.T) {
			r := req{method: "POST", path: "/api/v1/cluster/nodes/node-b/drain"}
			if tt.user != "" {
				r.token = h.token(tt.user)
			}
			status := tt.status
			if status == 200 {
				status = 202
			}
			h.do(r).expect(t, status, tt.code)
		})
	}
	// A forged token is no better than none, and a shopper never reached the cluster.
	forged := mint(t, jwt.SigningMethodHS256, []byte("another-secret-that-is-long-enough-too!"), h.claims("olga", "operator"))
	h.do(req{method: "GET", path: "/api/v1/cluster", token: forged}).expect(t, 401, order.CodeUnauthenticated)
}

func TestDrainNode(t *testing.T) {
	f := newFakeCluster()
	h := newHarness(t, withCluster(f))
	tests := []struct {
		name, id string
		status   int
		code     order.Code
	}{
		{"member", "node-b", 202, order.CodeOK},
		{"again", "node-b", 202, order.CodeOK},
		{"unknown", "node-z", 404, order.CodeNotFound},
		{"64 characters, unknown", strings.Repeat("n", 64), 404, order.CodeNotFound},
		{"65 characters", strings.Repeat("n", 65), 404, order.CodeNotFound},
		{"dot", "node.b", 404, order.CodeNotFound},
		{"escaped space", "node%20b", 404, order.CodeNotFound},
		{"non-ASCII", "n%C3%B6de", 404, order.CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(req{method: "POST", path: "/api/v1/cluster/nodes/" + tt.id + "/drain", token: h.token("olga")}).expect(t, tt.status, tt.code)
			if tt.status == 202 {
				if string(r.Data) != `{"node":"`+tt.id+`","state":"leaving"}` {
					t.Errorf("data %s", r.Data)
				}
			}
		})
	}
	// Only well-formed ids reach the cluster.
	if got := fmt.Sprint(f.drainedIDs()); got != "[node-b node-b]" {
		t.Errorf("drained %s", got)
	}
	st, _ := f.Status(context.Background())
	if st.Members[1].State != "leaving" {
		t.Errorf("node-b is %s after drain", st.Members[1].State)
	}
	h.do(req{method: "POST", path: "/api/v1/cluster/nodes//drain", token: h.token("olga")}).expect(t, 404, order.CodeRouteNotFound)
	h.do(req{method: "GET", path: "/api/v1/cluster/nodes/node-b/drain", token: h.token("olga")}).expect(t, 405, order.CodeMethodNotAllowed)
}

func TestClusterErrors(t *testing.T) {
	f := newFakeCluster()
	h := newHarness(t, withCluster(f))
	f.failWith(order.Errorf(order.CodeUnavailable, "membership is settling"))
	h.do(req{method: "GET", path: "/api/v1/cluster", token: h.token("olga")}).expect(t, 503, order.CodeUnavailable)
	f.failWith(errors.New("gossip socket closed at /run/secret"))
	r := h.do(req{method: "POST", path: "/api/v1/cluster/nodes/node-a/drain", token: h.token("olga")}).expect(t, 500, order.CodeInternal)
	if r.Message != "internal error" {
		t.Errorf("message %q leaks detail", r.Message)
	}
}

func TestNotClustered(t *testing.T) {
	h := newHarness(t) // Deps.Cluster nil
	for _, r := range []req{
		{method: "GET", path: "/api/v1/cluster"},
		{method: "POST", path: "/api/v1/cluster/nodes/node-a/drain"},
	} {
		r.token = h.token("olga")
		res := h.do(r).expect(t, 503, order.CodeUnavailable)
		if res.Message != "not clustered" {
			t.Errorf("%s %s: message %q", r.method, r.path, res.Message)
		}
		r.token = h.token("alice") // who may not see the cluster learns nothing about it
		h.do(r).expect(t, 403, order.CodeForbidden)
	}
}

func TestReadinessWhileDraining(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"plain error", errors.New("draining"), "not ready: draining"},
		// An application error gives its message, without the code that Error() appends.
		{"application error", order.Errorf(order.CodeUnavailable, "node is leaving the cluster"), "not ready: node is leaving the cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(_ *Config, d *Deps) { d.Ready = func(context.Context) error { return tt.err } })
			r := h.do(req{method: "GET", path: "/readyz"}).expect(t, 503, order.CodeUnavailable)
			if r.Message != tt.want {
				t.Errorf("message %q, want %q", r.Message, tt.want)
			}
			if r.Header.Get("Retry-After") == "" {
				t.Error("no Retry-After on a 503")
			}
		})
	}
}

// Every answer about one order names the node that owns it, so that a client can send the
// order's next requests there; requests about no order, or to a node that knows no owner,
// carry no such header.
func TestOwnerHeader(t *testing.T) {
	f := newFakeCluster()
	f.owner = func(id string) string { return "10.0.0." + strconv.Itoa(len(id)%3) + ":8080" }
	h := newHarness(t, withCluster(f))
	v := h.createOrder("alice", "owner-1", `[{"sku":"tea-sencha","qty":1}]`)
	want := f.owner(v.ID)
	for _, r := range []req{
		{method: "POST", path: "/api/v1/orders", token: h.token("alice"), key: "owner-1", body: `{"items":[{"sku":"tea-sencha","qty":1}]}`},
		{method: "GET", path: "/api/v1/orders/" + v.ID, token: h.token("alice")},
		{method: "GET", path: "/api/v1/orders/" + v.ID + "/events", token: h.token("alice")},
		{method: "POST", path: "/api/v1/orders/" + v.ID + "/pay", token: h.token("alice"), key: "owner-2"},
		{method: "POST", path: "/api/v1/orders/" + v.ID + "/pay", token: h.token("alice"), key: "owner-3"}, // refused (already paying): still named
	} {
		if got := h.do(r).Header.Get(HeaderOwner); got != want {
			t.Errorf("%s %s: %s = %q, want %q", r.method, r.path, HeaderOwner, got, want)
		}
	}
	if got := h.do(req{method: "GET", path: "/api/v1/orders", token: h.token("alice")}).Header.Get(HeaderOwner); got != "" {
		t.Errorf("a listing names an owner: %q", got)
	}

	f.owner = nil // no active member known
	if got := h.do(req{method: "GET", path: "/api/v1/orders/" + v.ID, token: h.token("alice")}).Header.Get(HeaderOwner); got != "" {
		t.Errorf("no owner known, yet %s = %q", HeaderOwner, got)
	}
	solo := newHarness(t) // not clustered
	if got := solo.do(req{method: "GET", path: "/api/v1/orders/" + v.ID, token: solo.token("alice")}).Header.Get(HeaderOwner); got != "" {
		t.Errorf("a node without a cluster names an owner: %q", got)
	}
}
