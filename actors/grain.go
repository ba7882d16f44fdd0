// Package actors hosts the order domain (package actors/order) on protoactor-go: the
// grain that owns one order, loads its snapshot, decides each command, writes the result
// under the store's version fence and only then replies; and the sweeper that fires
// payment deadlines no active grain is watching.
package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/ordermesh/ordermesh/actors/orderpb"
	"github.com/ordermesh/ordermesh/actors/stock"
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
	OrderTimeout   time.Duration    // how long an unpaid (CREATED) order stays open after its creation
	// Stock is where orders reserve, sell, ship and release the units of their lines
	// (see the reservation saga in reserve). nil: stock is not tracked and an order's
	// reservation always succeeds (tests of other parts).
	Stock        stock.Service
	IdleTimeout  time.Duration // an idle grain passivates after this long
	WriteTimeout time.Duration // how long a store write may take before the grain gives up
	Logger       *slog.Logger
	// Owns, if set, says whether this node owns an order in its current view of the
	// cluster. A grain whose order moved away answers "retry" and stops, so a stale
	// activation never serves a command after its node has seen the move.
	Owns func(orderID string) bool
	// Draining, if set, reports whether this node is leaving; a grain that lost its order
	// because of it says so (retry reason "draining").
	Draining func() bool
	// Committed, if set, is called after every durable transition (for live updates and
	// metrics). It runs on the grain's goroutine: it must not block.
	Committed func(v order.View, e order.Event)
	// Queued, if set, is told the kind of every job a transition wrote (see outbox), after
	// the write, so that the node's pool of that kind looks for it at once.
	Queued func(kind string)
	// Outcome, if set, is called once per command with its type and result code.
	Outcome func(c order.CommandType, code order.Code)
	// AfterFunc, if set, replaces time.AfterFunc for the payment timer, whose delay is
	// measured with Now (tests pass their fake clock's); it returns what stops the timer.
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
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
	order  order.Order
	loaded bool
	// stale is set when the store says another activation moved the order on (or a write
	// ended in an unknown state). The grain then refuses everything until it stops, so
	// callers retry against a fresh activation that reloads from the store.
	stale bool
	// absent is set once the grain has asked to stop because its order does not exist.
	absent bool
	// stopTimer stops the armed payment timer; nil when none is armed.
	stopTimer func() bool
}

// Receive handles one message.
func (g *grain) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *cluster.ClusterInit:
		g.id = msg.Identity.Identity
		ctx.SetReceiveTimeout(g.cfg.IdleTimeout)
	case *orderpb.CommandRequest:
		ctx.Respond(g.command(ctx, msg))
		g.stopIfAbsent(ctx)
	case *orderpb.GetRequest:
		ctx.Respond(g.get(ctx, msg))
		g.stopIfAbsent(ctx)
	case *expireTick:
		g.expire(ctx, msg)
	case *actor.ReceiveTimeout:
		// Poison, not Stop: messages already queued are still answered before it stops.
		ctx.Poison(ctx.Self())
	case *actor.Stopping:
		g.disarm()
	}
}

// stopIfAbsent stops a grain whose order does not exist after the message it just
// answered, so reads (or refused commands) of made-up ids do not keep a grain each for
// the idle timeout. Poison, not Stop: a Create already queued behind this message is
// still applied (and the grain then stops anyway; its next message reactivates it).
func (g *grain) stopIfAbsent(ctx actor.Context) {
	if g.loaded && !g.stale && !g.absent && !g.order.Exists() {
		g.absent = true
		ctx.Poison(ctx.Self())
	}
}

// load reads the order from the store once per activation and, if it is PAYING, arms
// its payment timer: the grain that watched the deadline may have passivated, and the
// sweeper is only the fallback for orders no grain holds.
func (g *grain) load(ctx actor.Context) error {
	if g.loaded {
		return nil
	}
	rctx, cancel := context.WithTimeout(context.Background(), g.cfg.WriteTimeout)
	defer cancel()
	rec, err := g.cfg.Store.LoadOrder(rctx, g.id)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		g.order = order.Order{ID: g.id}
	case err != nil:
		return err
	default:
		o, err := orderpb.DecodeSnapshot(rec.Snapshot)
		if err != nil {
			return err
		}
		if o.Version != uint64(rec.Version) {
			return errors.New("snapshot version " + strconv.FormatUint(o.Version, 10) + " does not match row version")
		}
		g.order = o
	}
	g.loaded = true
	g.arm(ctx)
	return nil
}

// unavailable marks the activation stale, stops it, and answers "retry" with reason.
func (g *grain) unavailable(ctx actor.Context, reason order.Reason, why string) *orderpb.Reply {
	if !g.stale {
		g.stale = true
		ctx.Poison(ctx.Self())
	}
	return orderpb.ReplyError(order.Unavailable(reason, "%s; retry with the same Idempotency-Key", why))
}

// moved answers for an order this node no longer owns: it moved, or this node is leaving.
func (g *grain) moved(ctx actor.Context) *orderpb.Reply {
	if g.cfg.Draining != nil && g.cfg.Draining() {
		return g.unavailable(ctx, order.ReasonDraining, "the node hosting the order is draining")
	}
	return g.unavailable(ctx, order.ReasonMoved, "order moved to another node")
}

func (g *grain) get(ctx actor.Context, req *orderpb.GetRequest) *orderpb.Reply {
	if g.stale {
		return orderpb.ReplyError(order.Unavailable(order.ReasonMoved, "order %s is moving; retry", g.id))
	}
	if g.cfg.Owns != nil && !g.cfg.Owns(g.id) {
		return g.moved(ctx)
	}
	if err := g.load(ctx); err != nil {
		g.cfg.Logger.Error("loading order", "order_id", g.id, "request_id", req.RequestId, "err", err)
		return orderpb.ReplyError(order.Unavailable(order.ReasonStore, "order %s could not be loaded; retry", g.id))
	}
	by := orderpb.PrincipalFromPB(req.By)
	if !g.order.Exists() || !order.CanView(by, &g.order) {
		return orderpb.ReplyError(order.Errorf(order.CodeNotFound, "order %s not found", g.id))
	}
	return orderpb.ReplyOK(g.order.View(), false)
}

func (g *grain) command(ctx actor.Context, req *orderpb.CommandRequest) *orderpb.Reply {
	c := orderpb.CommandFromPB(req)
	reply, code := g.apply(ctx, c, req.RequestId)
	if g.cfg.Outcome != nil {
		g.cfg.Outcome(c.Type, code)
	}
	return reply
}

func (g *grain) apply(ctx actor.Context, c order.Command, requestID string) (*orderpb.Reply, order.Code) {
	if g.stale {
		return orderpb.ReplyError(order.Unavailable(order.ReasonMoved, "order %s is moving; retry", g.id)), order.CodeUnavailable
	}
	if g.cfg.Owns != nil && !g.cfg.Owns(g.id) {
		return g.moved(ctx), order.CodeUnavailable
	}
	if c.OrderID != g.id {
		err := order.Errorf(order.CodeInvalidRequest, "command for order %q sent to order %q", c.OrderID, g.id)
		return orderpb.ReplyError(err), err.Code
	}
	if err := g.load(ctx); err != nil {
		g.cfg.Logger.Error("loading order", "order_id", g.id, "request_id", requestID, "err", err)
		return g.unavailable(ctx, order.ReasonStore, "order could not be loaded"), order.CodeUnavailable
	}
	if err := g.settle(ctx, requestID); err != nil {
		// The order is fine, its stock could not be moved: answer "retry" and keep serving.
		// Nothing may happen to the order before its stock follows it: a refund after
		// delivery must not meet units that were never shipped.
		g.cfg.Logger.Warn("moving the stock of an order", "order_id", g.id, "request_id", requestID, "err", err)
		return orderpb.ReplyError(retryStock(err, g.id)), order.CodeUnavailable
	}
	if c.Type == order.CmdExpirePayment && c.By.Role == order.RoleSystem {
		// The timers (in memory or the store sweeper) say "the order's deadline passed":
		// the payment's while PAYING, the unpaid order's while CREATED. Every timer
		// expires one deadline with one key, so however many fire, it happens once.
		c.Key = order.ExpiryKey(g.order.PaymentDeadline)
		if g.order.Status == order.StatusCreated {
			c.Type, c.Key = order.CmdExpire, order.ExpiryKey(g.order.ExpiresAt)
		}
	}
	reply, code := g.transition(ctx, c, requestID)
	if code != order.CodeOK || reply.Replayed {
		return reply, code
	}
	if c.Type == order.CmdCreate {
		// The reservation saga: the order stands (CREATED) only once every line's stock is
		// reserved; out of stock, it is REJECTED and the create refused.
		crashAt("saga-recorded")
		if err := g.reserve(ctx, requestID); err != nil {
			g.cfg.Logger.Warn("reserving the stock of a new order", "order_id", g.id, "request_id", requestID, "err", err)
			return orderpb.ReplyError(retryStock(err, g.id)), order.CodeUnavailable
		}
		if g.order.Status == order.StatusRejected {
			err := order.Errorf(order.CodeOutOfStock, "%s", g.order.Rejection)
			return orderpb.ReplyError(err), err.Code
		}
		return orderpb.ReplyOK(g.order.View(), false), order.CodeOK
	}
	crashAt("stock-pending")
	if err := g.syncStock(ctx, requestID); err != nil {
		// The command is applied and durable; a sweeper moves the stock later.
		g.cfg.Logger.Warn("moving the stock of an order", "order_id", g.id, "request_id", requestID, "err", err)
	}
	return reply, code
}

// transition decides c against the order and, if it changes it, persists the events
// and only then applies them.
func (g *grain) transition(ctx actor.Context, c order.Command, requestID string) (*orderpb.Reply, order.Code) {
	// Microseconds: what both stores keep, so a reloaded order equals the one in memory.
	c.At = g.cfg.Now().UTC().Truncate(time.Microsecond)
	c.PaymentTimeout = g.cfg.PaymentTimeout
	c.OrderTimeout = g.cfg.OrderTimeout
	if order.ValidKey(c.Key) && g.order.NeedsKeyLookup(c.Key) {
		// The order forgot keys older than its newest ones; this may be one of them.
		seen, err := g.lookupKey(c.Key)
		if err != nil {
			// Nothing is known to be wrong with the order: answer "retry", keep serving.
			g.cfg.Logger.Warn("looking up idempotency key", "order_id", g.id, "request_id", requestID, "err", err)
			return orderpb.ReplyError(order.Unavailable(order.ReasonStore, "order %s could not be read; retry", g.id)), order.CodeUnavailable
		}
		c.Seen = seen
	}
	d, err := order.Decide(&g.order, c)
	if err != nil {
		return orderpb.ReplyError(err), order.ErrorCode(err)
	}
	if d.Replay != nil {
		return orderpb.ReplyOK(g.order.ViewAt(*d.Replay), true), order.CodeOK
	}
	next := g.order
	for _, e := range d.Events {
		next = order.Evolve(next, e)
	}
	if err := g.persist(next, int64(g.order.Version), d.Events); err != nil {
		if errors.Is(err, persistence.ErrConflict) {
			g.cfg.Logger.Warn("stale activation: order moved on elsewhere", "order_id", g.id, "request_id", requestID, "version", g.order.Version)
			return g.unavailable(ctx, order.ReasonMoved, "order moved to another activation"), order.CodeUnavailable
		}
		if errors.Is(err, errUnstorable) || errors.Is(err, persistence.ErrInvalid) {
			// Nothing was written and retrying cannot help; the order in memory is still
			// the stored one, so the grain keeps serving it.
			g.cfg.Logger.Warn("command refused: cannot be stored", "order_id", g.id, "request_id", requestID, "err", err)
			rerr := order.Errorf(order.CodeInvalidRequest,
				"the command cannot be stored; text must be valid UTF-8 without control characters")
			return orderpb.ReplyError(rerr), rerr.Code
		}
		// The write may or may not have committed: forget what we think we know.
		g.cfg.Logger.Error("writing order", "order_id", g.id, "request_id", requestID, "err", err)
		return g.unavailable(ctx, order.ReasonStore, "order could not be saved"), order.CodeUnavailable
	}
	g.order = next
	g.arm(ctx)
	if g.cfg.Committed != nil {
		for _, e := range d.Events {
			g.cfg.Committed(next.View(), e)
		}
	}
	return orderpb.ReplyOK(next.View(), false), order.CodeOK
}

// lookupKey asks the store what key did to this order, for a key the order no longer
// remembers itself; nil if it did nothing.
func (g *grain) lookupKey(key string) (*order.KeyResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.WriteTimeout)
	defer cancel()
	e, err := g.cfg.Store.EventByKey(ctx, g.id, key)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r, err := order.KeyResultOf(e.IdempotencyKey, order.EventType(e.Type), uint64(e.Version), order.Status(e.To), e.At, e.Payload)
	if err != nil {
		return nil, fmt.Errorf("order %s: %w", g.id, err)
	}
	return &r, nil
}

// errUnstorable marks a transition that cannot be encoded for the store: nothing was
// written, and the same command will never succeed.
var errUnstorable = errors.New("cannot encode the order for the store")

// persist writes next and its events, conditional on the stored version being expected.
// With no events it rewrites the snapshot at the same version (stock bookkeeping).
func (g *grain) persist(next order.Order, expected int64, events []order.Event) error {
	snap, err := orderpb.EncodeSnapshot(&next)
	if err != nil {
		return fmt.Errorf("%w: snapshot: %w", errUnstorable, err)
	}
	w := persistence.Write{
		Order: persistence.Order{
			ID: next.ID, Customer: next.Customer, Status: string(next.Status), Version: int64(next.Version),
			Snapshot: snap, PaymentDeadline: next.Deadline(), CreatedAt: next.CreatedAt, UpdatedAt: next.UpdatedAt,
		},
		ExpectedVersion: expected,
		Events:          make([]persistence.Event, len(events)),
	}
	if len(events) > 0 {
		if w.Jobs, w.EndJobs, err = outbox(&g.order, &next, events[len(events)-1].At); err != nil {
			return err
		}
	}
	for i, e := range events {
		payload, err := json.Marshal(order.PayloadOf(e))
		if err != nil {
			return fmt.Errorf("%w: payload of event %d: %w", errUnstorable, e.Version, err)
		}
		w.Events[i] = persistence.Event{
			OrderID: e.OrderID, Version: int64(e.Version), Type: string(e.Type), From: string(e.From), To: string(e.To),
			IdempotencyKey: e.Key, Node: g.cfg.Node, At: e.At, Payload: payload,
		}
	}
	wctx, cancel := context.WithTimeout(context.Background(), g.cfg.WriteTimeout)
	defer cancel()
	if err := g.cfg.Store.WriteOrder(wctx, w); err != nil {
		return err
	}
	if g.cfg.Queued != nil {
		for _, j := range w.Jobs {
			g.cfg.Queued(j.Kind)
		}
	}
	return nil
}

// arm sets the in-memory timer for the order's deadline (Order.Deadline: the payment
// window while PAYING, the expiry of an unpaid order while CREATED, a retry of its stock
// while that lags). The store's sweeper covers the grains that are not active when the
// deadline passes.
func (g *grain) arm(ctx actor.Context) {
	g.disarm()
	deadline := g.order.Deadline()
	if deadline.IsZero() {
		return
	}
	self, system, tick := ctx.Self(), ctx.ActorSystem(), &expireTick{version: g.order.Version}
	fire := func() { system.Root.Send(self, tick) }
	d := deadline.Sub(g.cfg.Now())
	if !g.order.StockSynced() {
		d = max(d, time.Second) // a stock that stays unreachable is retried once a second
	}
	if g.cfg.AfterFunc != nil {
		g.stopTimer = g.cfg.AfterFunc(d, fire)
		return
	}
	g.stopTimer = time.AfterFunc(d, fire).Stop
}

func (g *grain) disarm() {
	if g.stopTimer != nil {
		g.stopTimer()
		g.stopTimer = nil
	}
}

func (g *grain) expire(ctx actor.Context, t *expireTick) {
	if g.stale || !g.loaded || g.order.Version != t.version || g.order.Deadline().IsZero() {
		return
	}
	c := order.Command{Type: order.CmdExpirePayment, OrderID: g.id, By: order.Principal{Subject: "timer", Role: order.RoleSystem}}
	reply, code := g.apply(ctx, c, "timer")
	if g.cfg.Outcome != nil {
		g.cfg.Outcome(c.Type, code)
	}
	if code != order.CodeOK && code != order.CodeIllegalTransition {
		g.cfg.Logger.Warn("order deadline: expiry failed", "order_id", g.id, "code", code, "message", reply.ErrorMessage)
	}
	g.arm(ctx) // a stock retry that failed again is tried again
}
