package edge

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/warehouse"
)

// fakeSimulation is a node's simulated provider and warehouse; a nil part is one the node
// does not simulate, and changing it is refused as the node's adapter refuses it.
type fakeSimulation struct {
	mu   sync.Mutex
	st   SimulationState
	sets int
}

func (f *fakeSimulation) Simulation() SimulationState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeSimulation) SetSimulation(st SimulationState) (SimulationState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st.Provider != nil {
		if f.st.Provider == nil {
			return f.st, errors.New("this node has no simulated payment provider")
		}
		p := *st.Provider
		f.st.Provider = &p
	}
	if st.Warehouse != nil {
		if f.st.Warehouse == nil {
			return f.st, errors.New("this node has no simulated warehouse")
		}
		w := *st.Warehouse
		f.st.Warehouse = &w
	}
	f.sets++
	return f.st, nil
}

func withSimulation(s Simulation) option { return func(_ *Config, d *Deps) { d.Simulation = s } }

func (r response) simulation(t testing.TB) SimulationState {
	t.Helper()
	var st SimulationState
	if err := json.Unmarshal(r.Data, &st); err != nil {
		t.Fatalf("decoding simulation: %v: %s", err, r.Data)
	}
	return st
}

func TestSimulation(t *testing.T) {
	f := &fakeSimulation{st: SimulationState{Node: "node-test",
		Provider:  &ProviderSimMode{DelayMS: 2000, FailureRate: 0.1},
		Warehouse: &warehouse.Mode{LatencyMS: 500, FailureRate: 0.05}}}
	h := newHarness(t, withSimulation(f))
	get := func(user string) response {
		return h.do(req{method: "GET", path: "/api/v1/simulation", token: h.token(user)})
	}
	put := func(user, body string) response {
		return h.do(req{method: "PUT", path: "/api/v1/simulation", token: h.token(user), body: body})
	}
	r := get("ada").expect(t, 200, order.CodeOK)
	want := `{"node":"node-test","provider":{"down":false,"latency_ms":0,"delay_ms":2000,"failure_rate":0.1},` +
		`"warehouse":{"latency_ms":500,"failure_rate":0.05}}`
	if string(r.Data) != want {
		t.Fatalf("simulation\n got %s\nwant %s", r.Data, want)
	}
	// The provider goes down; the warehouse is left as it is.
	st := put("ada", `{"provider":{"down":true,"latency_ms":100,"delay_ms":0,"failure_rate":1}}`).expect(t, 200, order.CodeOK).simulation(t)
	if p := st.Provider; p == nil || !p.Down || p.LatencyMS != 100 || p.DelayMS != 0 || p.FailureRate != 1 ||
		*st.Warehouse != (warehouse.Mode{LatencyMS: 500, FailureRate: 0.05}) {
		t.Fatalf("after the change: %+v %+v", st.Provider, st.Warehouse)
	}
	// A GET's answer may be sent back as it is.
	put("ada", string(get("ada").Data)).expect(t, 200, order.CodeOK)
	sets := f.sets

	for name, body := range map[string]string{
		"nothing named":          `{}`,
		"only the node":          `{"node":"node-test"}`,
		"another node":           `{"node":"node-b","warehouse":{"latency_ms":1,"failure_rate":0}}`,
		"failure rate over 1":    `{"warehouse":{"latency_ms":1,"failure_rate":1.5}}`,
		"negative failure rate":  `{"provider":{"down":false,"latency_ms":0,"delay_ms":0,"failure_rate":-0.1}}`,
		"negative latency":       `{"warehouse":{"latency_ms":-1,"failure_rate":0}}`,
		"negative provider ms":   `{"provider":{"down":false,"latency_ms":0,"delay_ms":-5,"failure_rate":0}}`,
		"negative provider wait": `{"provider":{"down":false,"latency_ms":-5,"delay_ms":0,"failure_rate":0}}`,
	} {
		t.Run(name, func(t *testing.T) { put("ada", body).expect(t, 422, order.CodeValidation) })
	}
	for name, body := range map[string]string{
		"malformed":        `{"provider":`,
		"unknown field":    `{"warehouse":{"latency_ms":1,"failure_rate":0,"chaos":true}}`,
		"fractional ms":    `{"warehouse":{"latency_ms":1.5,"failure_rate":0}}`,
		"rate as a string": `{"warehouse":{"latency_ms":1,"failure_rate":"0.5"}}`,
		"no body":          ``,
	} {
		t.Run(name, func(t *testing.T) { put("ada", body).expect(t, 400, order.CodeInvalidRequest) })
	}
	if f.sets != sets {
		t.Fatalf("refused changes reached the simulation")
	}
	for _, user := range []string{"alice", "olga"} {
		get(user).expect(t, 403, order.CodeForbidden)
		put(user, `{"warehouse":{"latency_ms":1,"failure_rate":0}}`).expect(t, 403, order.CodeForbidden)
	}
	h.do(req{method: "GET", path: "/api/v1/simulation"}).expect(t, 401, order.CodeUnauthenticated)
	h.do(req{method: "PUT", path: "/api/v1/simulation", body: `{}`}).expect(t, 401, order.CodeUnauthenticated)
}

func TestSimulationOfAPartTheNodeLacks(t *testing.T) {
	f := &fakeSimulation{st: SimulationState{Node: "node-test", Warehouse: &warehouse.Mode{LatencyMS: 500}}}
	h := newHarness(t, withSimulation(f))
	r := h.do(req{method: "GET", path: "/api/v1/simulation", token: h.token("ada")}).expect(t, 200, order.CodeOK)
	if string(r.Data) != `{"node":"node-test","warehouse":{"latency_ms":500,"failure_rate":0}}` {
		t.Fatalf("simulation %s", r.Data)
	}
	r = h.do(req{method: "PUT", path: "/api/v1/simulation", token: h.token("ada"),
		body: `{"provider":{"down":true,"latency_ms":0,"delay_ms":0,"failure_rate":0}}`}).expect(t, 422, order.CodeValidation)
	if r.Message != "this node has no simulated payment provider" {
		t.Errorf("message %q", r.Message)
	}
	off := newHarness(t)
	off.do(req{method: "GET", path: "/api/v1/simulation", token: off.token("ada")}).expect(t, 503, order.CodeUnavailable)
	off.do(req{method: "PUT", path: "/api/v1/simulation", token: off.token("ada"),
		body: `{"warehouse":{"latency_ms":1,"failure_rate":0}}`}).expect(t, 503, order.CodeUnavailable)
}
