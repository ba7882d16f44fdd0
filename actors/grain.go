package actors

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/ordermesh/ordermesh/actors/orderpb"
	"github.com/ordermesh/ordermesh/persistence"
)

// KindOrder is the cluster kind of order grains.
const KindOrder = "order"

// GrainConfig is what every order grain on a node shares.
type GrainConfig struct {
	Store          persistence.Orders
	Node           string           // this node's id, recorded on every event
	Now            func() time.Time // the clock; time.Now in production
	PaymentTimeout time.Duration    // how long a PAYING order waits for its payment
	IdleTimeout    time.Duration    // an idle grain passivates after this long
	WriteTimeout   time.Duration    // how long a store write may take before the grain gives up
	Logger         *slog.Logger
	// Owns, if set, says whether this node owns an order in its current view of the
	// cluster. A grain whose order moved away answers "retry" and stops, so a stale
	// activation never serves a command after its node has seen the move.
	Owns func(orderID string) bool
	// Committed, if set, is called after every durable transition (for live updates and
	// metrics). It runs on the grain's goroutine: it must not block.
	Committed func(v View, e Event)
	// Outcome, if set, is called once per command with its type and result code.
	Outcome func(c CommandType, code Code)
}

// NewGrainProps returns the props of the order kind. The grain learns its identity from
// protoactor's ClusterInit.
func NewGrainProps(cfg *GrainConfig) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &grain{cfg: cfg} })
}

// expireTick is the in-memory payment timer firing. Version says which PAYING it was
// armed for, so a stale tick (the order moved on) is ignored.
type expireTick struct{ version uint64 }

// grain hosts one order. protoactor delivers its messages one at a time, so it holds no
// locks: the order field is only touched from Receive.
type grain struct {
	cfg    *GrainConfig
	id     string
	order  Order
	loaded bool
	// stale is set when the store says another activation moved the order on (or a write
	// ended in an unknown state). The grain then refuses everything until it stops, so
	// callers retry against a fresh activation that reloads from the store.
	stale bool
	timer *time.Timer
}

// Receive handles one message.
func (g *grain) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *cluster.ClusterInit:
		g.id = msg.Identity.Identity
		ctx.SetReceiveTimeout(g.cfg.IdleTimeout)
	case *orderpb.CommandRequest:
		ctx.Respond(g.command(ctx, msg))
	case *orderpb.GetRequest:
		ctx.Respond(g.get(ctx, msg))
	case *expireTick:
		g.expire(ctx, msg)
	case *actor.ReceiveTimeout:
		// Poison, not Stop: messages already queued are still answered before it stops.
		ctx.Poison(ctx.Self())
	case *actor.Stopping:
		g.disarm()
	}
}

// load reads the order from the store once per activation.
func (g *grain) load() error {
	if g.loaded {
		return nil
	}
	rctx, cancel := context.WithTimeout(context.Background(), g.cfg.WriteTimeout)
	defer cancel()
	rec, err := g.cfg.Store.LoadOrder(rctx, g.id)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		g.order = Order{ID: g.id}
	case err != nil:
		return err
	default:
		o, err := DecodeSnapshot(rec.Snapshot)
		if err != nil {
			return err
		}
		if o.Version != uint64(rec.Version) {
			return errors.New("snapshot version " + strconv.FormatUint(o.Version, 10) + " does not match row version")
		}
		g.order = o
	}
	g.loaded = true
	return nil
}

func (g *grain) unavailable(ctx actor.Context, why string) *orderpb.Reply {
	if !g.stale {
		g.stale = true
		ctx.Poison(ctx.Self())
	}
	return ReplyError(Errorf(CodeUnavailable, "%s; retry with the same Idempotency-Key", why))
}

func (g *grain) get(ctx actor.Context, req *orderpb.GetRequest) *orderpb.Reply {
	if g.stale {
		return ReplyError(Errorf(CodeUnavailable, "order %s is moving; retry", g.id))
	}
	if g.cfg.Owns != nil && !g.cfg.Owns(g.id) {
		return g.unavailable(ctx, "order moved to another node")
	}
	if err := g.load(); err != nil {
		g.cfg.Logger.Error("loading order", "order_id", g.id, "request_id", req.RequestId, "err", err)
		return ReplyError(Errorf(CodeUnavailable, "order %s could not be loaded; retry", g.id))
	}
	by := principalFromPB(req.By)
	if !g.order.Exists() || !CanView(by, &g.order) {
		return ReplyError(Errorf(CodeNotFound, "order %s not found", g.id))
	}
	return ReplyOK(g.order.View(), false)
}

func (g *grain) command(ctx actor.Context, req *orderpb.CommandRequest) *orderpb.Reply {
	c := CommandFromPB(req)
	reply, code := g.apply(ctx, c, req.RequestId)
	if g.cfg.Outcome != nil {
		g.cfg.Outcome(c.Type, code)
	}
	return reply
}

func (g *grain) apply(ctx actor.Context, c Command, requestID string) (*orderpb.Reply, Code) {
	if g.stale {
		return ReplyError(Errorf(CodeUnavailable, "order %s is moving; retry", g.id)), CodeUnavailable
	}
	if g.cfg.Owns != nil && !g.cfg.Owns(g.id) {
		return g.unavailable(ctx, "order moved to another node"), CodeUnavailable
	}
	if c.OrderID != g.id {
		err := Errorf(CodeInvalidRequest, "command for order %q sent to order %q", c.OrderID, g.id)
		return ReplyError(err), err.Code
	}
	if err := g.load(); err != nil {
		g.cfg.Logger.Error("loading order", "order_id", g.id, "request_id", requestID, "err", err)
		return g.unavailable(ctx, "order could not be loaded"), CodeUnavailable
	}
	// Microseconds: what both stores keep, so a reloaded order equals the one in memory.
	c.At = g.cfg.Now().UTC().Truncate(time.Microsecond)
	c.PaymentTimeout = g.cfg.PaymentTimeout
	if c.Type == CmdExpirePayment && c.By.Role == RoleSystem {
		// Every timer (in memory or the store sweeper) expires one deadline with one key,
		// so however many fire, the expiry happens once.
		c.Key = ExpiryKey(g.order.PaymentDeadline)
	}
	d, err := Decide(&g.order, c)
	if err != nil {
		return ReplyError(err), ErrorCode(err)
	}
	if d.Replay != nil {
		return ReplyOK(g.order.ViewAt(*d.Replay), true), CodeOK
	}
	next := g.order
	for _, e := range d.Events {
		next = Evolve(next, e)
	}
	if err := g.persist(next, d.Events); err != nil {
		if errors.Is(err, persistence.ErrConflict) {
			g.cfg.Logger.Warn("stale activation: order moved on elsewhere", "order_id", g.id, "request_id", requestID, "version", g.order.Version)
			return g.unavailable(ctx, "order moved to another activation"), CodeUnavailable
		}
		// The write may or may not have committed: forget what we think we know.
		g.cfg.Logger.Error("writing order", "order_id", g.id, "request_id", requestID, "err", err)
		return g.unavailable(ctx, "order could not be saved"), CodeUnavailable
	}
	g.order = next
	g.arm(ctx)
	if g.cfg.Committed != nil {
		for _, e := range d.Events {
			g.cfg.Committed(next.View(), e)
		}
	}
	return ReplyOK(next.View(), false), CodeOK
}

// persist writes next and its events, conditional on the version this activation loaded.
func (g *grain) persist(next Order, events []Event) error {
	snap, err := EncodeSnapshot(&next)
	if err != nil {
		return err
	}
	w := persistence.Write{
		Order: persistence.Order{
			ID: next.ID, Customer: next.Customer, Status: string(next.Status), Version: int64(next.Version),
			Snapshot: snap, PaymentDeadline: next.PaymentDeadline, CreatedAt: next.CreatedAt, UpdatedAt: next.UpdatedAt,
		},
		ExpectedVersion: int64(g.order.Version),
		Events:          make([]persistence.Event, len(events)),
	}
	for i, e := range events {
		payload, err := json.Marshal(payloadOf(e))
		if err != nil {
			return err
		}
		w.Events[i] = persistence.Event{
			OrderID: e.OrderID, Version: int64(e.Version), Type: string(e.Type), From: string(e.From), To: string(e.To),
			IdempotencyKey: e.Key, Node: g.cfg.Node, At: e.At, Payload: payload,
		}
	}
	wctx, cancel := context.WithTimeout(context.Background(), g.cfg.WriteTimeout)
	defer cancel()
	return g.cfg.Store.WriteOrder(wctx, w)
}

// eventPayload is the JSON payload column of an event: what the event carries beyond the
// columns (type, version, from, to, at, key, node) of its row.
type eventPayload struct {
	By              string    `json:"by"`
	Fingerprint     uint64    `json:"fingerprint,string"`
	Customer        string    `json:"customer,omitempty"`
	Lines           []Line    `json:"items,omitempty"`
	Currency        string    `json:"currency,omitempty"`
	Total           int64     `json:"total,omitempty"`
	PaymentDeadline time.Time `json:"payment_deadline,omitzero"`
	Reason          string    `json:"reason,omitempty"`
}

func payloadOf(e Event) eventPayload {
	return eventPayload{
		By: e.By, Fingerprint: e.Fingerprint, Customer: e.Customer, Lines: e.Lines, Currency: e.Currency,
		Total: e.Total, PaymentDeadline: e.PaymentDeadline, Reason: e.Reason,
	}
}

// arm sets the in-memory payment timer while the order is PAYING. The store's sweeper
// covers the grains that are not active when the deadline passes.
func (g *grain) arm(ctx actor.Context) {
	g.disarm()
	if g.order.Status != StatusPaying {
		return
	}
	self, system, tick := ctx.Self(), ctx.ActorSystem(), &expireTick{version: g.order.Version}
	g.timer = time.AfterFunc(g.order.PaymentDeadline.Sub(g.cfg.Now()), func() {
		system.Root.Send(self, tick)
	})
}

func (g *grain) disarm() {
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
}

func (g *grain) expire(ctx actor.Context, t *expireTick) {
	if g.stale || !g.loaded || g.order.Version != t.version || g.order.Status != StatusPaying {
		return
	}
	c := Command{Type: CmdExpirePayment, OrderID: g.id, By: Principal{Subject: "timer", Role: RoleSystem}}
	reply, code := g.apply(ctx, c, "timer")
	if g.cfg.Outcome != nil {
		g.cfg.Outcome(c.Type, code)
	}
	if code != CodeOK {
		g.cfg.Logger.Warn("payment expiry failed", "order_id", g.id, "code", code, "message", reply.ErrorMessage)
	}
}

// ExpiryKey is the idempotency key of the ExpirePayment that ends the payment window
// closing at deadline.
func ExpiryKey(deadline time.Time) string {
	return "expire:" + strconv.FormatInt(deadline.UnixNano(), 10)
}
