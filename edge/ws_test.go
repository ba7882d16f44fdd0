package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	fws "github.com/fasthttp/websocket"

	"github.com/ordermesh/ordermesh/actors/live"
	"github.com/ordermesh/ordermesh/persistence"
)

// gatedStore is the hub's store; while gate is set, reading events waits for it.
type gatedStore struct {
	persistence.Orders
	mu   sync.Mutex
	gate chan struct{}
}

func (g *gatedStore) OrderEventsAfter(ctx context.Context, id string, after int64) ([]persistence.Event, error) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return g.Orders.OrderEventsAfter(ctx, id, after)
}

// hold makes the hub's store reads wait until the returned func is called.
func (g *gatedStore) hold() (release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gate = make(chan struct{})
	gate := g.gate
	return func() {
		g.mu.Lock()
		g.gate = nil
		g.mu.Unlock()
		close(gate)
	}
}

// withLive gives the edge a live push hub over its store.
func withLive(hub **live.Hub, store **gatedStore, ws WSConfig) option {
	return func(cfg *Config, d *Deps) {
		*store = &gatedStore{Orders: d.Store}
		*hub = live.NewHub(live.HubConfig{Store: *store})
		d.Live = *hub
		cfg.WS = ws
	}
}

// wsHarness is an edge with /ws served on a loopback port.
type wsHarness struct {
	*harness
	hub      *live.Hub
	hubStore *gatedStore
	base     string // ws://host:port
}

func newWSHarness(t *testing.T, ws WSConfig) *wsHarness {
	t.Helper()
	w := &wsHarness{}
	w.harness = newHarness(t, withLive(&w.hub, &w.hubStore, ws))
	w.base = "ws" + strings.TrimPrefix(w.serve(), "http")
	return w
}

// publish hands the hub the latest change of order id, as the grain would.
func (w *wsHarness) publish(id string) {
	w.t.Helper()
	w.hub.Publish(w.latest(id))
}

// latest is the latest change of order id.
func (w *wsHarness) latest(id string) live.Change {
	w.t.Helper()
	events, err := w.store.OrderEvents(context.Background(), id)
	if err != nil {
		w.t.Fatal(err)
	}
	changes, err := live.History(order.Order{}, events)
	if err != nil {
		w.t.Fatal(err)
	}
	c := changes[len(changes)-1]
	c.Committed = time.Now()
	return c
}

type wsClient struct {
	t *testing.T
	c *fws.Conn
}

func (w *wsHarness) dial(subprotocols ...string) (*wsClient, *http.Response) {
	w.t.Helper()
	d := fws.Dialer{Subprotocols: subprotocols, HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial(w.base+"/ws", nil)
	if err != nil {
		w.t.Fatalf("dialing /ws: %v", err)
	}
	t := w.t.(*testing.T)
	t.Cleanup(func() { c.Close() })
	return &wsClient{t: t, c: c}, resp
}

// login dials and authenticates as user with the first frame.
func (w *wsHarness) login(user string) *wsClient {
	w.t.Helper()
	c, _ := w.dial()
	c.send(`{"type":"auth","token":"` + w.token(user) + `"}`)
	c.expect("ready")
	return c
}

func (c *wsClient) send(frame string) {
	c.t.Helper()
	if err := c.c.WriteMessage(fws.TextMessage, []byte(frame)); err != nil {
		c.t.Fatalf("sending %s: %v", frame, err)
	}
}

// frame is any server frame, decoded loosely.
type frame struct {
	Type    string          `json:"type"`
	Code    int             `json:"code"`
	Message string          `json:"message"`
	OrderID string          `json:"order_id"`
	Version uint64          `json:"version"`
	Source  string          `json:"source"`
	Event   eventResponse   `json:"event"`
	Order   order.View      `json:"order"`
	Orders  json.RawMessage `json:"orders"`
	Subject string          `json:"subject"`
	Raw     string          `json:"-"`
}

// next reads the next frame; the deadline only keeps a broken test from hanging.
func (c *wsClient) next() (frame, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := c.c.ReadMessage()
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		c.t.Fatalf("frame is not JSON: %s", data)
	}
	f.Raw = string(data)
	return f, nil
}

// versions are the "orders" of a subscribed frame.
func (f frame) versions(t *testing.T) map[string]uint64 {
	t.Helper()
	var m map[string]uint64
	if err := json.Unmarshal(f.Orders, &m); err != nil {
		t.Fatalf("orders of %s: %v", f.Raw, err)
	}
	return m
}

func (c *wsClient) expect(typ string) frame {
	c.t.Helper()
	f, err := c.next()
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", typ, err)
	}
	if f.Type != typ {
		c.t.Fatalf("got %s, want a %s frame", f.Raw, typ)
	}
	return f
}

func (c *wsClient) expectEvent(id string, version uint64, source string) frame {
	c.t.Helper()
	f := c.expect("event")
	if f.OrderID != id || f.Version != version || f.Source != source || f.Order.Version != version || f.Event.Version != int64(version) {
		c.t.Fatalf("got %s, want %s@%d from %s", f.Raw, id, version, source)
	}
	return f
}

func (c *wsClient) expectError(code order.Code) frame {
	c.t.Helper()
	f := c.expect("error")
	if f.Code != int(code) {
		c.t.Fatalf("got %s, want error code %d", f.Raw, code)
	}
	return f
}

// expectClose reads until the server closes the socket and checks its close code.
func (c *wsClient) expectClose(code int) {
	c.t.Helper()
	for {
		f, err := c.next()
		if err == nil {
			c.t.Logf("before the close: %s", f.Raw)
			continue
		}
		var ce *fws.CloseError
		if !errors.As(err, &ce) || ce.Code != code {
			c.t.Fatalf("socket ended with %v, want close code %d", err, code)
		}
		return
	}
}

func TestWSAuthFirstFrame(t *testing.T) {
	w := newWSHarness(t, WSConfig{})
	c := w.login("alice")
	_ = c
	t.Run("bad token", func(t *testing.T) {
		c, _ := w.dial()
		c.t = t
		c.send(`{"type":"auth","token":"not-a-token"}`)
		c.expectClose(CloseNotAuthenticated)
	})
	t.Run("subscribe before auth", func(t *testing.T) {
		c, _ := w.dial()
		c.t = t
		c.send(`{"type":"subscribe","all":true}`)
		c.expectClose(CloseNotAuthenticated)
	})
	t.Run("not JSON before auth", func(t *testing.T) {
		c, _ := w.dial()
		c.t = t
		c.send(`hello`)
		c.expectClose(CloseNotAuthenticated)
	})
}

func TestWSTokenInSubprotocol(t *testing.T) {
	w := newWSHarness(t, WSConfig{})
	c, resp := w.dial(WSSubprotocol, "bearer."+w.token("olga"))
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != WSSubprotocol {
		t.Fatalf("selected subprotocol %q, want %q", got, WSSubprotocol)
	}
	if f := c.expect("ready"); f.Subject != "olga" {
		t.Fatalf("ready for %q", f.Subject)
	}
	bad, _ := w.dial(WSSubprotocol, "bearer.forged")
	bad.expectClose(CloseNotAuthenticated)
}

func TestWSPlainGETIsRefused(t *testing.T) {
	w := newWSHarness(t, WSConfig{})
	w.do(req{method: "GET", path: "/ws"}).expect(t, 400, order.CodeInvalidRequest)
}

// A shopper follows its own order: what it missed is replayed from the store, then
// changes come live, filtered like its GET /events; another shopper's order is "not
// found" and the socket stays usable.
func TestWSShopperFollowsOwnOrder(t *testing.T) {
	w := newWSHarness(t, WSConfig{})
	v := w.createOrder("alice", "ws-1", `[{"sku":"tea-sencha","qty":1}]`)
	c := w.login("alice")
	c.send(fmt.Sprintf(`{"type":"subscribe","orders":{%q:0}}`, v.ID))
	first := c.expectEvent(v.ID, 1, "store")
	if first.Event.By != "alice" || first.Event.Node != "" || first.Order.Customer != "alice" {
		t.Fatalf("replayed event as a shopper sees it: %s", first.Raw)
	}
	// The reservation is the node's: "system" to the shopper, its key and node hidden,
	// and the order as the create answered it (CREATED, with its expiry).
	reserved := c.expectEvent(v.ID, 2, "store")
	if reserved.Event.Type != string(order.EvtStockReserved) || reserved.Event.By != bySystem || reserved.Event.IdempotencyKey != "" ||
		reserved.Event.Node != "" || reserved.Order.Status != order.StatusCreated || reserved.Order.ExpiresAt.IsZero() ||
		!reserved.Order.ExpiresAt.Equal(v.ExpiresAt) {
		t.Fatalf("replayed reservation as a shopper sees it: %s", reserved.Raw)
	}
	if f := c.expect("subscribed"); f.versions(t)[v.ID] != v.Version {
		t.Fatalf("subscribed frame %s, want %s at the created version %d", f.Raw, v.ID, v.Version)
	}
	w.act("alice", v.ID, "pay", "ws-2").expect(t, 200, order.CodeOK)
	w.publish(v.ID)
	w.publish(v.ID) // a duplicate from the fan-out: not sent twice
	w.act("olga", v.ID, "fail-payment", "ws-3").expect(t, 200, order.CodeOK)
	w.publish(v.ID)
	c.expectEvent(v.ID, 3, "live")
	staff := c.expectEvent(v.ID, 4, "live")
	if staff.Event.By != byStaff || staff.Event.IdempotencyKey != "" || staff.Order.Status != order.StatusCreated ||
		!staff.Order.ExpiresAt.Equal(v.ExpiresAt) {
		t.Fatalf("an operator's event as the shopper sees it: %s", staff.Raw)
	}
	// A gap after a PAYING view is filled from the store: the failed payment's CREATED
	// view shows the order's expiry again, as the grain's does.
	w.act("alice", v.ID, "pay", "ws-4").expect(t, 200, order.CodeOK)
	w.publish(v.ID)
	c.expectEvent(v.ID, 5, "live")
	w.act("olga", v.ID, "fail-payment", "ws-5").expect(t, 200, order.CodeOK)
	w.act("alice", v.ID, "pay", "ws-6").expect(t, 200, order.CodeOK)
	w.publish(v.ID) // version 7 after 5
	if f := c.expectEvent(v.ID, 6, "store"); f.Order.Status != order.StatusCreated || !f.Order.ExpiresAt.Equal(v.ExpiresAt) {
		t.Fatalf("a failed payment read back from the store: %s", f.Raw)
	}
	c.expectEvent(v.ID, 7, "store")

	bob := w.login("bob")
	bob.send(fmt.Sprintf(`{"type":"subscribe","orders":{%q:0,"no-such-order":0}}`, v.ID))
	if f := bob.expectError(order.CodeNotFound); f.OrderID != "no-such-order" {
		t.Fatalf("first refusal %s", f.Raw)
	}
	if f := bob.expectError(order.CodeNotFound); f.OrderID != v.ID {
		t.Fatalf("second refusal %s", f.Raw)
	}
	own := w.createOrder("bob", "ws-bob", `[{"sku":"tea-sencha","qty":1}]`)
	bob.send(fmt.Sprintf(`{"type":"subscribe","orders":{%q:%d}}`, own.ID, own.Version))
	if f := bob.expect("subscribed"); f.versions(t)[own.ID] != own.Version {
		t.Fatalf("subscribed frame %s", f.Raw)
	}
}

func TestWSShopperMayNotSubscribeToAll(t *testing.T) {
	w := newWSHarness(t, WSConfig{})
	c := w.login("alice")
	c.send(`{"type":"subscribe","all":true}`)
	c.expectClose(CloseForbidden)
}

// An operator's stream of all changes starts at what arrives and shows staff fields.
func TestWSOperatorFollowsAll(t *testing.T) {
	w := newWSHarness(t, WSConfig{})
	v := w.createOrder("alice", "all-1", `[{"sku":"tea-sencha","qty":1}]`)
	c := w.login("olga")
	c.send(`{"type":"subscribe","all":true}`)
	c.expect("subscribed")
	w.act("alice", v.ID, "pay", "all-2").expect(t, 200, order.CodeOK)
	w.publish(v.ID)
	f := c.expectEvent(v.ID, v.Version+1, "live")
	if f.Event.IdempotencyKey != "all-2" || f.Event.Node == "" {
		t.Fatalf("staff see every field: %s", f.Raw)
	}
}

func TestWSUnsubscribe(t *testing.T) {
	w := newWSHarness(t, WSConfig{})
	a := w.createOrder("alice", "un-1", `[{"sku":"tea-sencha","qty":1}]`)
	b := w.createOrder("alice", "un-2", `[{"sku":"tea-sencha","qty":1}]`)
	c := w.login("alice")
	c.send(fmt.Sprintf(`{"type":"subscribe","orders":{%q:%d,%q:%d}}`, a.ID, a.Version, b.ID, b.Version))
	c.expect("subscribed")
	c.send(fmt.Sprintf(`{"type":"unsubscribe","orders":[%q]}`, a.ID))
	c.expect("unsubscribed")
	w.act("alice", a.ID, "pay", "un-3").expect(t, 200, order.CodeOK)
	w.publish(a.ID)
	w.act("alice", b.ID, "pay", "un-4").expect(t, 200, order.CodeOK)
	w.publish(b.ID)
	c.expectEvent(b.ID, b.Version+1, "live") // and nothing of a before it
}

func TestWSMalformedFramesGetErrors(t *testing.T) {
	w := newWSHarness(t, WSConfig{})
	c := w.login("olga")
	for _, bad := range []string{
		`{"type":`, `[]`, `{"type":"dance"}`, `{"type":"subscribe"}`, `{"type":"subscribe","orders":["x"]}`,
		`{"type":"subscribe","orders":{"x":-1}}`, `{"type":"unsubscribe"}`, `{"type":"unsubscribe","orders":{"x":1}}`,
	} {
		c.send(bad)
		if f := c.expectError(order.CodeInvalidRequest); f.Message == "" {
			t.Errorf("%s: error without a message", bad)
		}
	}
	c.send(`{"type":"subscribe","orders":{"not/an id":0}}`)
	c.expectError(order.CodeNotFound)
	c.send(`{"type":"subscribe","all":true}`) // still open and working
	c.expect("subscribed")
}

func TestWSConnectionLimit(t *testing.T) {
	w := newWSHarness(t, WSConfig{MaxConnections: 1})
	w.login("alice")
	c, _ := w.dial()
	c.expectClose(CloseTryAgainLater)
}

func TestWSDrainClosesWith1001(t *testing.T) {
	w := newWSHarness(t, WSConfig{})
	c := w.login("olga")
	c.send(`{"type":"subscribe","all":true}`)
	c.expect("subscribed")
	w.hub.Drain()
	c.expectClose(CloseDraining)
	late, _ := w.dial()
	late.expectClose(CloseDraining)
}

// A client that cannot keep up is closed with 4408 once its buffer overflows; the others
// get every change. The metrics count both.
func TestWSSlowClientIsClosed(t *testing.T) {
	w := newWSHarness(t, WSConfig{SendBuffer: 1})
	v := w.createOrder("alice", "slow-1", `[{"sku":"tea-sencha","qty":1}]`)
	other := w.createOrder("bob", "slow-other", `[{"sku":"tea-sencha","qty":1}]`)
	fast := w.login("bob")
	fast.send(fmt.Sprintf(`{"type":"subscribe","orders":{%q:%d}}`, other.ID, other.Version))
	fast.expect("subscribed")
	slow := w.login("alice")
	slow.send(fmt.Sprintf(`{"type":"subscribe","orders":{%q:%d}}`, v.ID, v.Version))
	slow.expect("subscribed")

	// The slow session is kept busy filling a gap (its store read waits) while more
	// changes come: one fits in its buffer, the next overflows it.
	release := w.hubStore.hold()
	w.act("alice", v.ID, "pay", "slow-2").expect(t, 200, order.CodeOK)
	w.act("olga", v.ID, "fail-payment", "slow-3").expect(t, 200, order.CodeOK)
	c3 := w.latest(v.ID)
	w.hub.Publish(c3) // two versions on: a gap, filled from the (held) store
	w.hub.Publish(c3)
	w.hub.Publish(c3)
	slow.expectClose(CloseTooSlow)
	release()

	w.act("bob", other.ID, "pay", "slow-other-2").expect(t, 200, order.CodeOK)
	w.publish(other.ID)
	fast.expectEvent(other.ID, other.Version+1, "live")
	metrics := w.do(req{method: "GET", path: "/metrics"})
	for _, want := range []string{"ordermesh_ws_slow_closed_total 1", `ordermesh_ws_closes_total{code="4408"} 1`} {
		if !strings.Contains(string(metrics.Raw), want) {
			t.Errorf("metrics lack %q:\n%s", want, grep(string(metrics.Raw), "ordermesh_ws"))
		}
	}
}

func grep(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A client that goes away leaves nothing behind in the hub.
func TestWSClosedClientLeavesTheHub(t *testing.T) {
	w := newWSHarness(t, WSConfig{})
	c := w.login("alice")
	if n := w.hub.Sessions(); n != 1 {
		t.Fatalf("%d sessions with one client", n)
	}
	c.c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for w.hub.Sessions() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the session of a closed client is still in the hub")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A quiet socket is closed with 4401 at the first ping after its token expired (the
// edge's clock says when).
func TestWSExpiredTokenClosesTheSocket(t *testing.T) {
	w := newWSHarness(t, WSConfig{PingInterval: 200 * time.Millisecond})
	c := w.login("alice") // the harness's tokens live a minute
	w.clock.Advance(time.Minute)
	c.expectClose(CloseNotAuthenticated)
}

// A re-auth with a fresh token of the same user extends the socket to that token's
// expiry; a frame after it is answered with 4401.
func TestWSReauthExtendsTheSocket(t *testing.T) {
	w := newWSHarness(t, WSConfig{}) // pings far apart: frames find the expiry
	v := w.createOrder("alice", "ws-exp", `[{"sku":"tea-sencha","qty":1}]`)
	c := w.login("alice") // expires at +60s
	w.clock.Advance(30 * time.Second)
	c.send(`{"type":"auth","token":"` + w.token("alice") + `"}`) // expires at +90s
	c.expect("ready")
	w.clock.Advance(45 * time.Second) // past the first token's expiry
	c.send(fmt.Sprintf(`{"type":"subscribe","orders":{%q:%d}}`, v.ID, v.Version))
	c.expect("subscribed")
	w.clock.Advance(15 * time.Second) // at the second token's expiry
	c.send(`{"type":"unsubscribe","all":true}`)
	c.expectClose(CloseNotAuthenticated)
}

// A client that floods frames is closed with 4429 once it has used its burst; one that
// keeps to the rate is not.
func TestWSFrameFloodIsClosed(t *testing.T) {
	w := newWSHarness(t, WSConfig{FrameRate: 1, FrameBurst: 5})
	calm := w.login("olga")
	for range 3 {
		calm.send(`{"type":"subscribe","all":true}`)
		calm.expect("subscribed")
	}
	flood := w.login("olga")
	for range 6 { // the burst, and one more at once: nothing after it, which the closed socket would reset
		flood.send(`{"type":"subscribe","all":true}`)
	}
	flood.expectClose(CloseTooManyFrames)
	calm.send(`{"type":"subscribe","all":true}`) // still open and working
	calm.expect("subscribed")
	metrics := w.do(req{method: "GET", path: "/metrics"})
	if want := `ordermesh_ws_closes_total{code="4429"} 1`; !strings.Contains(string(metrics.Raw), want) {
		t.Errorf("metrics lack %q:\n%s", want, grep(string(metrics.Raw), "ordermesh_ws"))
	}
}
