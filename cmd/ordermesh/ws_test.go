package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
)

// These tests follow orders over /ws on real node processes: the socket's node, the
// node that takes the commands and the node hosting the order's grain are different
// processes, and the grain's node is drained, then (another one) killed.

// wsFrame is a server frame, decoded as far as the tests look.
type wsFrame struct {
	Type        string    `json:"type"`
	Code        int       `json:"code"`
	Message     string    `json:"message"`
	OrderID     string    `json:"order_id"`
	Version     uint64    `json:"version"`
	Source      string    `json:"source"`
	CommittedAt time.Time `json:"committed_at"`
	Order       struct {
		Version uint64 `json:"version"`
		Status  string `json:"status"`
	} `json:"order"`
	received time.Time
}

// wsReader is a socket whose frames a goroutine reads into a channel.
type wsReader struct {
	t      testing.TB
	conn   *fws.Conn
	frames chan wsFrame
	err    chan error // why reading stopped
}

// dialWS connects to base's /ws and authenticates with the first frame. rcvbuf > 0
// shrinks the client's socket receive buffer (for a client that stops reading).
func dialWS(t testing.TB, base, token string, rcvbuf int) *fws.Conn {
	t.Helper()
	d := fws.Dialer{HandshakeTimeout: 10 * time.Second}
	if rcvbuf > 0 {
		d.NetDial = func(network, addr string) (net.Conn, error) {
			nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
				var serr error
				if err := rc.Control(func(fd uintptr) {
					serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
				}); err != nil {
					return err
				}
				return serr
			}}
			return nd.Dial(network, addr)
		}
	}
	conn, _, err := d.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
	if err != nil {
		t.Fatalf("dialing %s/ws: %v", base, err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.WriteMessage(fws.TextMessage, []byte(`{"type":"auth","token":"`+token+`"}`)); err != nil {
		t.Fatal(err)
	}
	var f wsFrame
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := conn.ReadJSON(&f); err != nil || f.Type != "ready" {
		t.Fatalf("waiting for ready: %+v %v", f, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn
}

func followWS(t testing.TB, base, token string) *wsReader {
	r := &wsReader{t: t, conn: dialWS(t, base, token, 0), frames: make(chan wsFrame, 4096), err: make(chan error, 1)}
	go func() {
		for {
			_, data, err := r.conn.ReadMessage()
			if err != nil {
				r.err <- err
				close(r.frames)
				return
			}
			f := wsFrame{received: time.Now()}
			if err := json.Unmarshal(data, &f); err != nil {
				r.err <- fmt.Errorf("frame %s: %w", data, err)
				close(r.frames)
				return
			}
			r.frames <- f
		}
	}()
	return r
}

func (r *wsReader) send(frame string) {
	r.t.Helper()
	if err := r.conn.WriteMessage(fws.TextMessage, []byte(frame)); err != nil {
		r.t.Fatal(err)
	}
}

// next returns the next frame; the timeout only keeps a broken test from hanging.
func (r *wsReader) next() wsFrame {
	r.t.Helper()
	select {
	case f, ok := <-r.frames:
		if !ok {
			r.t.Fatalf("socket closed: %v", <-r.err)
		}
		if f.Type == "error" {
			r.t.Fatalf("error frame: %+v", f)
		}
		return f
	case <-time.After(60 * time.Second):
		r.t.Fatal("no frame for 60s")
	}
	return wsFrame{}
}

// subscribe subscribes to one order with the last version the client has.
func (r *wsReader) subscribe(id string, last uint64) {
	r.t.Helper()
	r.send(fmt.Sprintf(`{"type":"subscribe","orders":{%q:%d}}`, id, last))
}

// expectVersions reads the events of order id up to version to and checks that they
// are exactly from..to in order (other frames are skipped).
func (r *wsReader) expectVersions(id string, from, to uint64) []wsFrame {
	r.t.Helper()
	var out []wsFrame
	want := from
	for want <= to {
		f := r.next()
		if f.Type != "event" || f.OrderID != id {
			continue
		}
		if f.Version != want || f.Order.Version != want {
			r.t.Fatalf("order %s: got version %d (view %d), want %d", id, f.Version, f.Order.Version, want)
		}
		out = append(out, f)
		want++
	}
	return out
}

// actUntilDone runs the action that takes order id to version v (pay or fail-payment in
// turn), through the given nodes in turn until one acknowledges it: a node that is
// leaving or dead is skipped, and the same key makes the retries safe.
func actUntilDone(t testing.TB, shopper, operator *client, bases []string, id string, v uint64) {
	t.Helper()
	// A new order is CREATED at version 2: odd versions pay, even ones fail the payment.
	action, by := "fail-payment", operator
	if v%2 == 1 {
		action, by = "pay", shopper
	}
	key := fmt.Sprintf("%s-v%d", id, v)
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; ; i++ {
		cl := *by
		cl.base = bases[i%len(bases)]
		status, env, err := cl.do("POST", "/api/v1/orders/"+id+"/"+action, key, nil)
		if err == nil && status == 200 {
			var got orderView
			if err := json.Unmarshal(env.Data, &got); err != nil || got.Version != v {
				t.Fatalf("%s %s: version %d, want %d (%v)", action, id, got.Version, v, err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s (version %d): %d %+v %v", action, id, v, status, env, err)
		}
		if err != nil || status == 503 {
			time.Sleep(20 * time.Millisecond) // let the topology settle; not a correctness wait
			continue
		}
		t.Fatalf("%s %s: %d %+v", action, id, status, env)
	}
}

// orderOn creates orders through base until one is hosted on the node with id host.
func orderOn(t testing.TB, shopper, operator *client, host string) string {
	t.Helper()
	for i := range 200 {
		status, env, err := shopper.do("POST", "/api/v1/orders", fmt.Sprintf("ws-find-%s-%d", host, i), orderBody)
		if err != nil || status != 201 {
			t.Fatalf("create: %d %+v %v", status, env, err)
		}
		var v orderView
		_ = json.Unmarshal(env.Data, &v)
		if hostOf(t, operator, v.ID) == host {
			return v.ID
		}
	}
	t.Fatalf("no order landed on %s in 200 tries", host)
	return ""
}

// hostOf is the node that recorded the latest event of order id (staff see it).
func hostOf(t testing.TB, operator *client, id string) string {
	t.Helper()
	status, env, err := operator.do("GET", "/api/v1/orders/"+id+"/events", "", nil)
	if err != nil || status != 200 {
		t.Fatalf("events of %s: %d %v", id, status, err)
	}
	var data struct {
		Events []struct {
			Node string `json:"node"`
		} `json:"events"`
	}
	if err := json.Unmarshal(env.Data, &data); err != nil || len(data.Events) == 0 {
		t.Fatalf("events of %s: %v", id, err)
	}
	return data.Events[len(data.Events)-1].Node
}

// metric reads one series (name and labels) of a node's /metrics.
func metric(t testing.TB, base, series string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var n float64
			fmt.Sscan(v, &n)
			return n
		}
	}
	t.Fatalf("no %s in %s/metrics", series, base)
	return 0
}

func TestLivePushAcrossThreeNodes(t *testing.T) {
	for name, store := range storeTargets(t) {
		t.Run(name, func(t *testing.T) { testLivePush(t, store(t)) })
	}
}

func testLivePush(t *testing.T, dsn string) {
	c := startCluster(t, dsn, 3, "--ws-send-buffer", "64", "--ws-resync-interval", "2s")
	c.waitConverged(10*time.Second, 3, c.nodes...)
	a, b, host := c.nodes[0], c.nodes[1], c.nodes[2]
	shopper, operator := login(t, a.base, "alice"), login(t, a.base, "olga")
	id := orderOn(t, shopper, operator, nodeID(t, host))

	// On B: the shopper follows the order, an operator the stream of all changes, and a
	// client that never reads (with a tiny receive buffer) follows it all too.
	sock := followWS(t, b.base, login(t, b.base, "alice").token)
	sock.subscribe(id, 2)
	if f := sock.next(); f.Type != "subscribed" {
		t.Fatalf("got %+v, want subscribed", f)
	}
	all := followWS(t, b.base, login(t, b.base, "olga").token)
	all.send(`{"type":"subscribe","all":true}`)
	if f := all.next(); f.Type != "subscribed" {
		t.Fatalf("got %+v, want subscribed", f)
	}
	stalled := dialWS(t, b.base, login(t, b.base, "olga").token, 4096)
	if err := stalled.WriteMessage(fws.TextMessage, []byte(`{"type":"subscribe","all":true}`)); err != nil {
		t.Fatal(err)
	}

	// 1,000 changes through A, of an order hosted on C, arrive on B once each, in order.
	const changes = 1000
	sent := make(map[uint64]time.Time, changes)
	start := time.Now()
	for v := uint64(3); v <= changes+2; v++ {
		sent[v] = time.Now()
		actUntilDone(t, shopper, operator, []string{a.base}, id, v)
	}
	took := time.Since(start)
	got := sock.expectVersions(id, 3, changes+2)
	all.expectVersions(id, 3, changes+2)
	var fromCommit, fromRequest []time.Duration
	live := 0
	for _, f := range got {
		fromRequest = append(fromRequest, f.received.Sub(sent[f.Version]))
		if f.Source == "live" {
			live++
			fromCommit = append(fromCommit, f.received.Sub(f.CommittedAt))
		}
	}
	slices.Sort(fromCommit)
	slices.Sort(fromRequest)
	t.Logf("%d changes in %s (%.0f/s); %d pushed live, %d filled from the store", changes, took.Round(time.Millisecond),
		changes/took.Seconds(), live, len(got)-live)
	t.Logf("push latency, commit on C -> frame read on B's socket: p50 %s p99 %s max %s",
		percentile(fromCommit, .5), percentile(fromCommit, .99), fromCommit[len(fromCommit)-1])
	t.Logf("request sent to A -> frame read on B's socket: p50 %s p99 %s", percentile(fromRequest, .5), percentile(fromRequest, .99))

	// The client that stopped reading is dropped as too slow (more changes until its
	// buffers overflow, if 1,000 were not enough); the others were never held up.
	v := uint64(changes + 2)
	for metric(t, b.base, "ordermesh_ws_slow_closed_total") < 1 {
		if v > 10*changes {
			t.Fatal("the client that stopped reading was never closed")
		}
		v++
		actUntilDone(t, shopper, operator, []string{a.base}, id, v)
	}
	_ = stalled.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		if _, _, err := stalled.ReadMessage(); err != nil {
			var ce *fws.CloseError
			if errors.As(err, &ce) && ce.Code != 4408 {
				t.Fatalf("stalled client closed with %d, want 4408", ce.Code)
			}
			t.Logf("the stalled client was closed: %v", err)
			break
		}
	}
	sock.expectVersions(id, changes+3, v)
	all.expectVersions(id, changes+3, v)

	// A client that resubscribes with its last version gets exactly what it missed.
	missedFrom := v + 1
	for range 10 {
		v++
		actUntilDone(t, shopper, operator, []string{a.base}, id, v)
	}
	again := followWS(t, a.base, shopper.token)
	again.subscribe(id, missedFrom-1)
	replayed := again.expectVersions(id, missedFrom, v)
	for _, f := range replayed {
		if f.Source != "store" {
			t.Errorf("version %d came %s, want it replayed from the store", f.Version, f.Source)
		}
	}
	if f := again.next(); f.Type != "subscribed" {
		t.Fatalf("got %+v after the replay, want subscribed", f)
	}
	sock.expectVersions(id, missedFrom, v)
	all.expectVersions(id, missedFrom, v)

	// The grain's node drains (SIGTERM): the order moves, the subscription on B goes on.
	for range 5 {
		v++
		actUntilDone(t, shopper, operator, []string{a.base}, id, v)
	}
	drained := make(chan struct{})
	go func() { defer close(drained); host.stop() }()
	for range 20 {
		v++
		actUntilDone(t, shopper, operator, []string{a.base}, id, v)
	}
	<-drained
	sock.expectVersions(id, v-24, v)
	all.expectVersions(id, v-24, v)
	t.Logf("after the drain the order is on %s", hostOf(t, operator, id))

	// Scale up, then SIGKILL the node hosting a followed order while it changes.
	d := c.add()
	c.waitConverged(10*time.Second, 3, a, b, d)
	victim := orderOn(t, shopper, operator, nodeID(t, d))
	sock.subscribe(victim, 2)
	for f := sock.next(); f.Type != "subscribed"; f = sock.next() {
	}
	vv := uint64(2)
	for range 10 {
		vv++
		actUntilDone(t, shopper, operator, []string{a.base}, victim, vv)
	}
	d.kill()
	for range 10 {
		vv++
		actUntilDone(t, shopper, operator, []string{a.base, b.base}, victim, vv)
	}
	sock.expectVersions(victim, 3, vv)
	t.Logf("after the kill the order is on %s", hostOf(t, operator, victim))
}
