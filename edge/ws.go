package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
	"golang.org/x/time/rate"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/ordermesh/ordermesh/actors/live"
	"github.com/ordermesh/ordermesh/persistence"
)

// Live push: GET /ws upgrades to a WebSocket on which a client follows orders as they
// change. Frames are JSON text; see README "Live push" for the protocol. A browser cannot
// set headers on a WebSocket, so the access token comes in the first frame
// ({"type":"auth","token":...}) or as the subprotocol "bearer.<token>" next to
// WSSubprotocol; never in the URL, which ends up in access logs.
//
// A socket lives no longer than its access token: it is closed with 4401 once the token
// has expired, found at the next ping (every WSConfig.PingInterval) or the next frame
// from the client, whichever comes first. To keep it open, a client sends
// {"type":"auth","token":...} with a fresh token of the same user before then; the
// socket then lasts until that token expires.

// Close codes of /ws besides the standard ones.
const (
	CloseNotAuthenticated = 4401 // no valid token in time, a bad one, or the token expired
	CloseForbidden        = 4403 // the principal may not do what it asked (a shopper subscribing to all orders)
	CloseTooSlow          = 4408 // the client's send buffer overflowed: it did not read fast enough
	CloseTooManyFrames    = 4429 // the client sent frames faster than WSConfig.FrameRate allows
	CloseDraining         = websocket.CloseGoingAway
	CloseTryAgainLater    = websocket.CloseTryAgainLater // the node has its maximum of connections
	closeInternal         = websocket.CloseInternalServerErr
)

// WSSubprotocol is the subprotocol /ws speaks; a client that authenticates with the
// Sec-WebSocket-Protocol header offers it next to "bearer.<token>".
const WSSubprotocol = "ordermesh.v1"

// wsBearerPrefix marks the access token among the offered subprotocols.
const wsBearerPrefix = "bearer."

// Defaults for zero WSConfig fields.
const (
	DefaultWSMaxConnections   = 10_000
	DefaultWSSendBuffer       = live.DefaultBuffer
	DefaultWSPingInterval     = 25 * time.Second
	DefaultWSWriteTimeout     = 10 * time.Second
	DefaultWSAuthTimeout      = 10 * time.Second
	DefaultWSMaxSubscriptions = 1000
	// A client sends a frame to subscribe, unsubscribe or re-authenticate: a handful a
	// minute. Each may cost a grain call per order and store reads, so a socket that
	// floods frames is closed rather than served.
	DefaultWSFrameRate  = 10 // frames per second, sustained
	DefaultWSFrameBurst = 50
)

// WSConfig tunes /ws. Zero values take the defaults above.
type WSConfig struct {
	MaxConnections   int           // sockets open on this node at once; one more is closed with 1013
	SendBuffer       int           // changes waiting for one client; one more closes it with 4408
	PingInterval     time.Duration // a ping this often; no pong for two intervals drops the client
	WriteTimeout     time.Duration // for writing one frame
	AuthTimeout      time.Duration // for the auth frame after the upgrade
	MaxSubscriptions int           // orders one socket may follow by id
	FrameRate        rate.Limit    // frames per second a client may send, sustained; more closes it with 4429
	FrameBurst       int           // frames a client may send at once above FrameRate
}

func (c WSConfig) withDefaults() WSConfig {
	if c.MaxConnections <= 0 {
		c.MaxConnections = DefaultWSMaxConnections
	}
	if c.SendBuffer <= 0 {
		c.SendBuffer = DefaultWSSendBuffer
	}
	if c.PingInterval <= 0 {
		c.PingInterval = DefaultWSPingInterval
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWSWriteTimeout
	}
	if c.AuthTimeout <= 0 {
		c.AuthTimeout = DefaultWSAuthTimeout
	}
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = DefaultWSMaxSubscriptions
	}
	if c.FrameRate <= 0 {
		c.FrameRate = DefaultWSFrameRate
	}
	if c.FrameBurst <= 0 {
		c.FrameBurst = DefaultWSFrameBurst
	}
	return c
}

// wsServer is the /ws side of the server.
type wsServer struct {
	cfg     WSConfig
	hub     *live.Hub
	clients atomic.Int64
	metrics *wsMetrics
}

const localWSToken = "edge.ws_token"

// wsHandler is the handler of GET /ws (behind wsUpgrade); nil, so no route, when the
// node has no live push hub.
func (s *server) wsHandler() fiber.Handler {
	if s.ws == nil {
		return nil
	}
	return websocket.New(s.serveWS, websocket.Config{
		Subprotocols: []string{WSSubprotocol}, HandshakeTimeout: s.ws.cfg.AuthTimeout,
		ReadBufferSize: 4 << 10, WriteBufferSize: 4 << 10,
	})
}

// newWSServer builds the /ws side; nil when there is no hub.
func newWSServer(cfg WSConfig, hub *live.Hub, m *wsMetrics) *wsServer {
	if hub == nil {
		return nil
	}
	return &wsServer{cfg: cfg.withDefaults(), hub: hub, metrics: m}
}

// wsUpgrade refuses plain HTTP on /ws and picks the token out of the offered
// subprotocols, if it is there.
func (s *server) wsUpgrade(c *fiber.Ctx) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return order.Errorf(order.CodeInvalidRequest, "/ws is a WebSocket endpoint: send an upgrade request")
	}
	for _, p := range strings.Split(c.Get(fiber.HeaderSecWebSocketProtocol), ",") {
		if tok, ok := strings.CutPrefix(strings.TrimSpace(p), wsBearerPrefix); ok && tok != "" {
			c.Locals(localWSToken, tok)
		}
	}
	return c.Next()
}

// Frames of the protocol.
type (
	// wsInbound is any frame a client sends; which fields count depends on Type.
	wsInbound struct {
		Type   string          `json:"type"`
		Token  string          `json:"token,omitempty"`
		Orders json.RawMessage `json:"orders,omitempty"` // {"id": last version} to subscribe, ["id"] to unsubscribe
		All    bool            `json:"all,omitempty"`
	}
	wsReady struct {
		Type    string `json:"type"` // "ready"
		Node    string `json:"node,omitempty"`
		Subject string `json:"subject"`
		Role    string `json:"role"`
	}
	wsSubscribed struct {
		Type   string            `json:"type"` // "subscribed"
		Orders map[string]uint64 `json:"orders,omitempty"`
		All    bool              `json:"all,omitempty"`
	}
	wsUnsubscribed struct {
		Type   string   `json:"type"` // "unsubscribed"
		Orders []string `json:"orders,omitempty"`
		All    bool     `json:"all,omitempty"`
	}
	wsEvent struct {
		Type        string        `json:"type"` // "event"
		OrderID     string        `json:"order_id"`
		Version     uint64        `json:"version"`
		Event       eventResponse `json:"event"`
		Order       order.View    `json:"order"`
		Source      string        `json:"source"`                // "live", or "store" when replayed or filled
		CommittedAt time.Time     `json:"committed_at,omitzero"` // live only: when the grain committed it
	}
	wsError struct {
		Type    string     `json:"type"` // "error"
		Code    order.Code `json:"code"`
		Message string     `json:"message"`
		OrderID string     `json:"order_id,omitempty"`
	}
)

// wsConn is one client's socket. Data frames are written under mu (the session's
// events and the reader's answers); control frames (ping, close) may be written from
// any goroutine.
type wsConn struct {
	s    *server
	conn *websocket.Conn
	log  *slog.Logger
	p    order.Principal
	// expires is when the latest access token the socket presented expires (Unix
	// nanoseconds): set at auth, extended by a re-auth, checked on pings and frames.
	expires atomic.Int64

	mu        sync.Mutex
	closeOnce sync.Once
	// dmu orders deadline changes against close: fasthttp's hijacked connection ignores
	// Close until the handler returns, so close ends blocked reads and writes by setting
	// a deadline in the past, which the reader must not push back afterwards.
	dmu    sync.Mutex
	closed bool
}

func (s *server) serveWS(c *websocket.Conn) {
	log, _ := c.Locals(localLogger).(*slog.Logger)
	if log == nil {
		log = s.log
	}
	w := &wsConn{s: s, conn: c, log: log}
	n := s.ws.clients.Add(1)
	s.ws.metrics.clients.Inc()
	defer func() {
		s.ws.clients.Add(-1)
		s.ws.metrics.clients.Dec()
	}()
	if n > int64(s.ws.cfg.MaxConnections) {
		w.close(CloseTryAgainLater, "too many connections on this node; try another")
		return
	}
	if s.ws.hub.Draining() {
		w.close(CloseDraining, "node draining; reconnect to another node")
		return
	}
	c.SetReadLimit(int64(s.cfg.BodyLimit))
	token, _ := c.Locals(localWSToken).(string)
	p, exp, ok := w.authenticate(token)
	if !ok {
		return
	}
	w.expires.Store(exp.UnixNano())
	w.p = p
	w.log = w.log.With(slog.String("user", p.Subject))
	sess, err := s.ws.hub.NewSession(live.SessionConfig{Buffer: s.ws.cfg.SendBuffer, Deliver: w.deliver, Subscribed: w.subscribed})
	if err != nil {
		w.closeFor(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	runDone := make(chan struct{})
	wg.Add(3)
	go func() {
		defer wg.Done()
		defer close(runDone)
		w.closeFor(sess.Run(ctx))
	}()
	go func() {
		// The session may end (too slow, draining) while Run is blocked writing to this
		// very client: close the socket from here, which also unblocks that write.
		defer wg.Done()
		select {
		case <-sess.Done():
			w.closeFor(sess.Err())
		case <-runDone:
		}
	}()
	go func() { defer wg.Done(); w.ping(ctx) }()
	// Ready only now that Run goes (an open session is removed from the hub when Run
	// returns); nothing is delivered before the client subscribes, which it does after.
	if w.write(wsReady{Type: "ready", Node: s.cfg.NodeID, Subject: p.Subject, Role: string(p.Role)}) == nil {
		w.read(ctx, sess)
	}
	cancel()
	sess.Close()
	wg.Wait()
}

// authenticate takes the token from the subprotocol, or else from the first frame, and
// returns its principal and expiry.
func (w *wsConn) authenticate(token string) (order.Principal, time.Time, bool) {
	if token == "" {
		_ = w.conn.SetReadDeadline(time.Now().Add(w.s.ws.cfg.AuthTimeout))
		_, data, err := w.conn.ReadMessage()
		if err != nil {
			w.close(CloseNotAuthenticated, "authenticate first: {\"type\":\"auth\",\"token\":\"...\"}")
			return order.Principal{}, time.Time{}, false
		}
		var f wsInbound
		if json.Unmarshal(data, &f) != nil || f.Type != "auth" || f.Token == "" {
			w.close(CloseNotAuthenticated, "the first frame must be {\"type\":\"auth\",\"token\":\"...\"}")
			return order.Principal{}, time.Time{}, false
		}
		token = f.Token
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.s.cfg.RequestTimeout)
	defer cancel()
	p, exp, err := w.s.tokens.verifyUntil(ctx, token)
	if err != nil {
		w.log.Info("rejected access token on /ws", slog.Any("error", err))
		w.close(CloseNotAuthenticated, "the access token is invalid or expired")
		return order.Principal{}, time.Time{}, false
	}
	return p, exp, true
}

// read handles the client's frames until the socket fails or closes.
func (w *wsConn) read(ctx context.Context, sess *live.Session) {
	keepAlive := 2 * w.s.ws.cfg.PingInterval
	if !w.extendRead(keepAlive) {
		return
	}
	w.conn.SetPongHandler(func(string) error {
		if !w.extendRead(keepAlive) {
			return live.ErrClosed
		}
		return nil
	})
	frames := rate.NewLimiter(w.s.ws.cfg.FrameRate, w.s.ws.cfg.FrameBurst)
	for {
		_, data, err := w.conn.ReadMessage()
		if err != nil || !w.extendRead(keepAlive) {
			return
		}
		if !frames.Allow() {
			w.close(CloseTooManyFrames, "too many frames; reconnect and resubscribe with your last versions")
			return
		}
		var f wsInbound
		if err := json.Unmarshal(data, &f); err != nil {
			w.fail(order.CodeInvalidRequest, "", "malformed frame: "+truncate(err.Error(), 200))
			continue
		}
		if f.Type != "auth" && w.closeIfExpired() {
			return
		}
		var ok bool
		switch f.Type {
		case "auth":
			ok = w.reauth(f.Token)
		case "subscribe":
			ok = w.subscribe(ctx, sess, f)
		case "unsubscribe":
			ok = w.unsubscribe(ctx, sess, f)
		default:
			w.fail(order.CodeInvalidRequest, "", fmt.Sprintf("unknown frame type %q; want subscribe, unsubscribe or auth", truncate(f.Type, 32)))
			ok = true
		}
		if !ok {
			return
		}
	}
}

// extendRead moves the read deadline d ahead, unless the socket is closed.
func (w *wsConn) extendRead(d time.Duration) bool {
	w.dmu.Lock()
	defer w.dmu.Unlock()
	if w.closed {
		return false
	}
	_ = w.conn.SetReadDeadline(time.Now().Add(d))
	return true
}

// reauth accepts a fresh token for the same user (so a client can present a renewed
// token on a long-lived socket), which extends the socket's life to the token's expiry;
// anything else is refused.
func (w *wsConn) reauth(token string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), w.s.cfg.RequestTimeout)
	defer cancel()
	p, exp, err := w.s.tokens.verifyUntil(ctx, token)
	switch {
	case err != nil:
		w.close(CloseNotAuthenticated, "the access token is invalid or expired")
		return false
	case p != w.p:
		w.close(CloseForbidden, "a socket stays with the user it was opened for")
		return false
	}
	w.extendExpiry(exp)
	return w.write(wsReady{Type: "ready", Node: w.s.cfg.NodeID, Subject: p.Subject, Role: string(p.Role)}) == nil
}

func (w *wsConn) subscribe(ctx context.Context, sess *live.Session, f wsInbound) bool {
	if f.All {
		if !w.p.SeesAllOrders() {
			w.close(CloseForbidden, "only operators and admins may subscribe to all orders")
			return false
		}
		return sess.SubscribeAll(ctx) == nil
	}
	var want map[string]uint64
	if err := json.Unmarshal(f.Orders, &want); err != nil || len(want) == 0 {
		w.fail(order.CodeInvalidRequest, "", `subscribe needs "orders": {"<order id>": <last version seen, 0 for all>} or "all": true`)
		return true
	}
	if len(want) > w.s.ws.cfg.MaxSubscriptions {
		w.fail(order.CodeInvalidRequest, "", fmt.Sprintf("at most %d orders per subscribe", w.s.ws.cfg.MaxSubscriptions))
		return true
	}
	allowed := make(map[string]uint64, len(want))
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if code, msg := w.mayFollow(ctx, id); code != order.CodeOK {
			w.fail(code, truncate(id, 64), msg)
			continue
		}
		allowed[id] = want[id]
	}
	if len(allowed) == 0 {
		return true
	}
	return sess.Subscribe(ctx, allowed) == nil
}

// mayFollow checks that the principal may see order id: staff any (also one not created
// yet), a shopper only its own, existing ones. Like GET /orders/{id}, an order a shopper
// may not see is "not found".
func (w *wsConn) mayFollow(ctx context.Context, id string) (order.Code, string) {
	if !validOrderID(id) {
		return order.CodeNotFound, fmt.Sprintf("order %s not found", truncate(id, 64))
	}
	if w.p.SeesAllOrders() {
		return order.CodeOK, ""
	}
	rctx, cancel := context.WithTimeout(ctx, w.s.cfg.RequestTimeout)
	defer cancel()
	row, err := w.s.store.LoadOrder(rctx, id)
	switch {
	case errors.Is(err, persistence.ErrNotFound) || (err == nil && row.Customer != w.p.Subject):
		return order.CodeNotFound, fmt.Sprintf("order %s not found", id)
	case err != nil:
		w.log.Warn("checking a subscription", "order_id", id, "err", err)
		return order.CodeUnavailable, "the order could not be checked; subscribe again"
	}
	return order.CodeOK, ""
}

func (w *wsConn) unsubscribe(ctx context.Context, sess *live.Session, f wsInbound) bool {
	var ids []string
	if len(f.Orders) > 0 {
		if err := json.Unmarshal(f.Orders, &ids); err != nil {
			w.fail(order.CodeInvalidRequest, "", `unsubscribe needs "orders": ["<order id>", ...] or "all": true`)
			return true
		}
	}
	if len(ids) == 0 && !f.All {
		w.fail(order.CodeInvalidRequest, "", `unsubscribe needs "orders": ["<order id>", ...] or "all": true`)
		return true
	}
	if len(ids) > 0 && sess.Unsubscribe(ctx, ids) != nil {
		return false
	}
	if f.All && sess.UnsubscribeAll(ctx) != nil {
		return false
	}
	return w.write(wsUnsubscribed{Type: "unsubscribed", Orders: ids, All: f.All}) == nil
}

// deliver sends one change (live.SessionConfig.Deliver), as the principal may see it.
func (w *wsConn) deliver(c live.Change, fromStore bool) error {
	ev := wsEvent{
		Type: "event", OrderID: c.OrderID(), Version: c.Version(), Event: eventFor(c.Event, w.p, w.log), Order: c.View,
		Source: "live", CommittedAt: c.Committed,
	}
	if fromStore {
		ev.Source, ev.CommittedAt = "store", time.Time{}
	}
	if err := w.write(ev); err != nil {
		return err
	}
	w.s.ws.metrics.events.WithLabelValues(ev.Source).Inc()
	if !fromStore && !c.Committed.IsZero() {
		w.s.ws.metrics.latency.Observe(time.Since(c.Committed).Seconds())
	}
	return nil
}

// subscribed confirms a subscription (live.SessionConfig.Subscribed), after its replay.
func (w *wsConn) subscribed(orders map[string]uint64, all bool) error {
	return w.write(wsSubscribed{Type: "subscribed", Orders: orders, All: all})
}

// fail sends an error frame; the socket stays open.
func (w *wsConn) fail(code order.Code, orderID, msg string) {
	_ = w.write(wsError{Type: "error", Code: code, Message: msg, OrderID: orderID})
}

// write sends one JSON text frame.
func (w *wsConn) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding a /ws frame: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dmu.Lock()
	if w.closed {
		w.dmu.Unlock()
		return live.ErrClosed
	}
	_ = w.conn.SetWriteDeadline(time.Now().Add(w.s.ws.cfg.WriteTimeout))
	w.dmu.Unlock()
	return w.conn.WriteMessage(websocket.TextMessage, b)
}

// extendExpiry moves the socket's expiry to exp, if that is later.
func (w *wsConn) extendExpiry(exp time.Time) {
	n := exp.UnixNano()
	for {
		old := w.expires.Load()
		if n <= old || w.expires.CompareAndSwap(old, n) {
			return
		}
	}
}

// closeIfExpired closes the socket with 4401 if its access token has expired (by the
// edge's clock), and reports whether it did.
func (w *wsConn) closeIfExpired() bool {
	if w.s.now().UnixNano() < w.expires.Load() {
		return false
	}
	w.close(CloseNotAuthenticated, "the access token expired: reconnect with a fresh one, or send {\"type\":\"auth\",\"token\":\"...\"} before it expires")
	return true
}

// ping keeps the connection alive (and finds dead peers) until ctx ends, and closes it
// once its access token has expired.
func (w *wsConn) ping(ctx context.Context) {
	t := time.NewTicker(w.s.ws.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if w.closeIfExpired() {
				return
			}
			if err := w.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(w.s.ws.cfg.WriteTimeout)); err != nil {
				return
			}
		}
	}
}

// closeFor closes the socket with the code that says why its session ended.
func (w *wsConn) closeFor(err error) {
	switch {
	case errors.Is(err, live.ErrTooSlow):
		w.close(CloseTooSlow, "too slow: the send buffer is full; reconnect and resubscribe with your last versions")
	case errors.Is(err, live.ErrDraining):
		w.close(CloseDraining, "node draining; reconnect to another node and resubscribe with your last versions")
	case err == nil || errors.Is(err, live.ErrClosed) || errors.Is(err, context.Canceled):
		w.close(websocket.CloseNormalClosure, "")
	default:
		w.log.Warn("/ws session failed", "err", err)
		w.close(closeInternal, "internal error; reconnect and resubscribe with your last versions")
	}
}

// close sends a close frame (if the socket can still take one in a moment) and ends the
// reader and any write in progress, after which the handler returns and fasthttp closes
// the connection. Only the first call counts.
func (w *wsConn) close(code int, text string) {
	w.closeOnce.Do(func() {
		w.s.ws.metrics.closes.WithLabelValues(fmt.Sprint(code)).Inc()
		if code == CloseTooSlow {
			w.s.ws.metrics.slowClosed.Inc()
		}
		err := w.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
		if err != nil {
			w.log.Debug("/ws close frame not sent", "code", code, "err", err)
		}
		w.dmu.Lock()
		w.closed = true
		_ = w.conn.NetConn().SetDeadline(time.Now())
		w.dmu.Unlock()
	})
}
