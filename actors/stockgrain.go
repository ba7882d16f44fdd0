package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/orderpb"
	"github.com/ordermesh/ordermesh/actors/stock"
	"github.com/ordermesh/ordermesh/persistence"
)

// KindStock is the cluster kind of stock grains, one per sku. Their identities are
// StockIdentity(sku), so that they never meet an order's id.
const KindStock = "stock"

// StockIdentity is the cluster identity of sku's grain.
func StockIdentity(sku string) string { return "stock/" + sku }

// liveHoldings are the holding states a stock grain always loads: their units count in
// the sku's reserved units.
var liveHoldings = []string{string(stock.HoldReserved), string(stock.HoldSold)}

// StockConfig is what every stock grain on a node shares.
type StockConfig struct {
	Store        persistence.Stocks
	Node         string           // this node's id, recorded on every event
	Now          func() time.Time // the clock; time.Now in production
	IdleTimeout  time.Duration    // an idle grain passivates after this long
	WriteTimeout time.Duration    // how long one store call may take before the grain gives up
	Logger       *slog.Logger
	// Owns and Draining are as for orders (GrainConfig), for the grain's identity.
	Owns     func(identity string) bool
	Draining func() bool
	// Batched, if set, is told the size of every batch the grain writes.
	Batched func(commands, events int, took time.Duration)
}

// NewStockProps returns the props of the stock kind.
func NewStockProps(cfg *StockConfig) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &stockGrain{cfg: cfg} })
}

// waiting is a command received and not yet answered: who asked, and what.
type waiting struct {
	cmd       stock.Command
	sender    *actor.PID
	requestID string
}

// flushNow asks the grain to decide the commands it has queued.
type flushNow struct{}

// written reports the end of a batch's store write to the grain.
type written struct {
	batch stock.Batch
	from  []waiting
	took  time.Duration
	err   error
}

// stockGrain owns the stock of one sku. It decides commands in batches: every command
// that arrives while the previous batch is being written waits in pending, and the next
// batch decides them all, one after the other, against the stock in memory
// (stock.DecideBatch), writes their events in one store write, and only then answers
// each of them. One write per batch, not per buyer: a hot sku's throughput is the store's
// write rate times the batch size. Nothing is answered before it is durable.
//
// It holds no locks: its fields are only touched from Receive, and the store write runs
// on its own goroutine, which reports back with a message.
type stockGrain struct {
	cfg     *StockConfig
	sku     string
	s       stock.Stock
	loaded  bool
	stale   bool
	pending []waiting
	writing bool // a batch's write is in flight
	queued  bool // a flushNow is in the mailbox
	pruneAt int  // prune final holdings once there are this many
}

// Receive handles one message.
func (g *stockGrain) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *cluster.ClusterInit:
		g.sku = strings.TrimPrefix(msg.Identity.Identity, "stock/")
		ctx.SetReceiveTimeout(g.cfg.IdleTimeout)
	case *orderpb.StockCommandRequest:
		g.enqueue(ctx, msg)
	case *orderpb.StockGetRequest:
		ctx.Respond(g.get(ctx))
	case *flushNow:
		g.queued = false
		g.flush(ctx)
	case *written:
		g.done(ctx, msg)
	case *actor.ReceiveTimeout:
		if !g.writing && len(g.pending) == 0 {
			ctx.Poison(ctx.Self())
		}
	}
}

func (g *stockGrain) refuse(ctx actor.Context) *orderpb.StockReply {
	if g.stale {
		return orderpb.StockReplyError(order.Unavailable(order.ReasonMoved, "the stock of sku %s is moving; retry", g.sku))
	}
	if g.cfg.Owns != nil && !g.cfg.Owns(StockIdentity(g.sku)) {
		reason, why := order.ReasonMoved, "the stock of sku %s moved to another node; retry"
		if g.cfg.Draining != nil && g.cfg.Draining() {
			reason, why = order.ReasonDraining, "the node hosting the stock of sku %s is draining; retry"
		}
		g.markStale(ctx)
		return orderpb.StockReplyError(order.Unavailable(reason, why, g.sku))
	}
	return nil
}

func (g *stockGrain) markStale(ctx actor.Context) {
	if !g.stale {
		g.stale = true
		ctx.Poison(ctx.Self())
	}
}

func (g *stockGrain) get(ctx actor.Context) *orderpb.StockReply {
	if r := g.refuse(ctx); r != nil {
		return r
	}
	if err := g.load(); err != nil {
		g.cfg.Logger.Error("loading stock", "sku", g.sku, "err", err)
		return orderpb.StockReplyError(order.Unavailable(order.ReasonStore, "the stock of sku %s could not be loaded; retry", g.sku))
	}
	return orderpb.StockReplyOK(g.s.View(), stock.Holding{}, false)
}

func (g *stockGrain) enqueue(ctx actor.Context, req *orderpb.StockCommandRequest) {
	if r := g.refuse(ctx); r != nil {
		ctx.Respond(r)
		return
	}
	c := orderpb.StockCommandFromPB(req)
	if c.SKU != g.sku {
		ctx.Respond(orderpb.StockReplyError(order.Errorf(order.CodeInvalidRequest, "a command for sku %q sent to sku %q", c.SKU, g.sku)))
		return
	}
	g.pending = append(g.pending, waiting{cmd: c, sender: ctx.Sender(), requestID: req.RequestId})
	// The flush goes behind whatever is in the mailbox now, so everything that arrived
	// meanwhile joins this batch; while a write is in flight its end starts the next.
	if !g.writing && !g.queued {
		g.queued = true
		ctx.Send(ctx.Self(), &flushNow{})
	}
}

// load reads the sku's counters and its live and recent holdings once per activation.
func (g *stockGrain) load() error {
	if g.loaded {
		return nil
	}
	rctx, cancel := context.WithTimeout(context.Background(), g.cfg.WriteTimeout)
	defer cancel()
	since := g.cfg.Now().Add(-order.KeyWindow)
	rec, holdings, err := g.cfg.Store.LoadStock(rctx, g.sku, liveHoldings, since)
	s := stock.New(g.sku)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
	case err != nil:
		return err
	default:
		if err := decodeStockSnapshot(rec.Snapshot, &s); err != nil {
			return err
		}
		s.OnHand, s.Reserved, s.Version, s.UpdatedAt = rec.OnHand, rec.Reserved, uint64(rec.Version), rec.UpdatedAt
		s.Holdings = make(map[string]stock.Holding, len(holdings))
		for _, h := range holdings {
			s.Holdings[h.OrderID] = stock.Holding{Qty: h.Qty, State: stock.HoldingState(h.State), Version: uint64(h.Version)}
		}
	}
	g.s, g.loaded = s, true
	g.pruneAt = max(2*len(s.Holdings), minPrune)
	return nil
}

// minPrune is the fewest holdings a grain keeps before it prunes old final ones.
const minPrune = 200_000

// lookupHoldings fills in the holdings, from the store, of the orders that commands other
// than Reserve are about and that the grain does not hold in memory: final holdings
// older than the key window are not loaded. A Reserve needs none: an order reserves once,
// right after it is created, so one the grain has not seen is new.
func (g *stockGrain) lookupHoldings(batch []waiting) error {
	for _, w := range batch {
		if w.cmd.Type == stock.CmdReserve || w.cmd.Type == stock.CmdAdjust || w.cmd.OrderID == "" {
			continue
		}
		if _, ok := g.s.Holdings[w.cmd.OrderID]; ok {
			continue
		}
		rctx, cancel := context.WithTimeout(context.Background(), g.cfg.WriteTimeout)
		h, err := g.cfg.Store.HoldingOf(rctx, g.sku, w.cmd.OrderID)
		cancel()
		if errors.Is(err, persistence.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if g.s.Holdings == nil {
			g.s.Holdings = map[string]stock.Holding{}
		}
		g.s.Holdings[w.cmd.OrderID] = stock.Holding{Qty: h.Qty, State: stock.HoldingState(h.State), Version: uint64(h.Version)}
	}
	return nil
}

// flush decides the queued commands as one batch and starts its write.
func (g *stockGrain) flush(ctx actor.Context) {
	if g.writing || len(g.pending) == 0 {
		return
	}
	batch := g.pending
	g.pending = nil
	if r := g.refuse(ctx); r != nil {
		g.answerAll(ctx, batch, r)
		return
	}
	if err := g.load(); err != nil {
		g.cfg.Logger.Error("loading stock", "sku", g.sku, "err", err)
		g.markStale(ctx)
		g.answerAll(ctx, batch, orderpb.StockReplyError(order.Unavailable(order.ReasonStore, "the stock of sku %s could not be loaded; retry", g.sku)))
		return
	}
	if err := g.lookupHoldings(batch); err != nil {
		g.cfg.Logger.Warn("looking up holdings", "sku", g.sku, "err", err)
		g.answerAll(ctx, batch, orderpb.StockReplyError(order.Unavailable(order.ReasonStore, "the stock of sku %s could not be read; retry", g.sku)))
		return
	}
	at := g.cfg.Now().UTC().Truncate(time.Microsecond)
	cmds := make([]stock.Command, len(batch))
	for i, w := range batch {
		cmds[i] = w.cmd
		cmds[i].At = at
	}
	b := stock.DecideBatch(g.s, cmds)
	if len(b.Events) == 0 {
		g.answer(ctx, batch, b)
		return
	}
	w, err := g.write(b)
	if err != nil {
		// Cannot be encoded: nothing is written, and the same batch never will be.
		g.cfg.Logger.Error("encoding a stock batch", "sku", g.sku, "err", err)
		g.answerAll(ctx, batch, orderpb.StockReplyError(order.Errorf(order.CodeInvalidRequest, "the command cannot be stored")))
		return
	}
	g.writing = true
	self, root, store, timeout := ctx.Self(), ctx.ActorSystem().Root, g.cfg.Store, g.cfg.WriteTimeout
	go func() {
		start := time.Now()
		wctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := store.WriteStock(wctx, w)
		cancel()
		root.Send(self, &written{batch: b, from: batch, took: time.Since(start), err: err})
	}()
}

// write builds the store write of batch b: the new counters, the holdings its events
// touched (the last state of each), and the events.
func (g *stockGrain) write(b stock.Batch) (persistence.StockWrite, error) {
	snap, err := encodeStockSnapshot(&b.State)
	if err != nil {
		return persistence.StockWrite{}, err
	}
	w := persistence.StockWrite{
		Stock: persistence.StockRecord{
			SKU: g.sku, OnHand: b.State.OnHand, Reserved: b.State.Reserved, Version: int64(b.State.Version),
			Snapshot: snap, UpdatedAt: b.State.UpdatedAt,
		},
		ExpectedVersion: int64(g.s.Version),
		Events:          make([]persistence.StockEvent, len(b.Events)),
	}
	touched := map[string]bool{}
	for i, e := range b.Events {
		payload, err := json.Marshal(stockPayload{By: e.By, Reason: e.Reason, Fingerprint: e.Fingerprint})
		if err != nil {
			return persistence.StockWrite{}, err
		}
		w.Events[i] = persistence.StockEvent{
			SKU: e.SKU, Version: int64(e.Version), Type: string(e.Type), OrderID: e.OrderID, Qty: e.Qty,
			From: string(e.From), To: string(e.To), Delta: e.Delta, IdempotencyKey: e.Key, Node: g.cfg.Node,
			At: e.At, Payload: payload,
		}
		if e.OrderID != "" {
			touched[e.OrderID] = true
		}
	}
	for id := range touched {
		h := b.State.Holdings[id]
		w.Holdings = append(w.Holdings, persistence.Holding{
			SKU: g.sku, OrderID: id, Qty: h.Qty, State: string(h.State), Version: int64(h.Version), UpdatedAt: b.State.UpdatedAt,
		})
	}
	return w, nil
}

// done ends a batch's write: on success the grain keeps the batch's state and answers
// every command; on failure it answers "retry", and, unless nothing can have been
// written, stops, so that the next activation reloads what the store holds.
func (g *stockGrain) done(ctx actor.Context, m *written) {
	g.writing = false
	if g.cfg.Batched != nil {
		g.cfg.Batched(len(m.from), len(m.batch.Events), m.took)
	}
	switch {
	case m.err == nil:
		if len(m.from) > 0 && m.from[0].cmd.Type == stock.CmdReserve {
			crashAt("stock-written")
		}
		m.batch.ApplyTo(&g.s)
		g.prune()
		g.answer(ctx, m.from, m.batch)
	case errors.Is(m.err, persistence.ErrInvalid):
		// Decide refuses what a store cannot keep, so this is a bug; nothing was written.
		g.cfg.Logger.Error("stock batch refused by the store", "sku", g.sku, "commands", len(m.from), "err", m.err)
		g.answerAll(ctx, m.from, orderpb.StockReplyError(order.Errorf(order.CodeInvalidRequest, "the command cannot be stored")))
	default:
		if errors.Is(m.err, persistence.ErrConflict) {
			g.cfg.Logger.Warn("stale stock activation: the sku moved on elsewhere", "sku", g.sku, "version", g.s.Version)
		} else {
			g.cfg.Logger.Error("writing stock", "sku", g.sku, "commands", len(m.from), "err", m.err)
		}
		g.markStale(ctx)
		g.answerAll(ctx, m.from, orderpb.StockReplyError(order.Unavailable(order.ReasonStore, "the stock of sku %s could not be saved; retry", g.sku)))
	}
	if len(g.pending) > 0 {
		g.flush(ctx)
	}
}

// answer replies to each command of a decided (and, if it had events, written) batch.
func (g *stockGrain) answer(ctx actor.Context, from []waiting, b stock.Batch) {
	v := b.State.View()
	for i, w := range from {
		r := b.Results[i]
		var reply *orderpb.StockReply
		if r.Err != nil {
			reply = orderpb.StockReplyError(r.Err)
		} else {
			reply = orderpb.StockReplyOK(v, b.State.Holding(w.cmd.OrderID), r.Replay)
			if r.Refused != nil {
				reply.ErrorCode, reply.ErrorMessage = int32(r.Refused.Code), r.Refused.Message
			}
		}
		if w.sender != nil {
			ctx.Send(w.sender, reply)
		}
	}
}

func (g *stockGrain) answerAll(ctx actor.Context, from []waiting, reply *orderpb.StockReply) {
	for _, w := range from {
		if w.sender != nil {
			ctx.Send(w.sender, reply)
		}
	}
}

// prune forgets the final holdings (shipped, released, refunded, refused) of all but the
// last keepFinal events once the grain holds many: the store still has them
// (lookupHoldings), and a hot sku's memory stays bounded by its live holdings plus a
// window of recent final ones. A Reserve is never looked up (see lookupHoldings); the
// only Reserve that can meet a final holding is a saga resumed after a failure, seconds
// later, well inside the window.
func (g *stockGrain) prune() {
	if len(g.s.Holdings) < g.pruneAt {
		return
	}
	for id, h := range g.s.Holdings {
		if !h.State.Live() && h.Version+keepFinal < g.s.Version {
			delete(g.s.Holdings, id)
		}
	}
	g.pruneAt = max(2*len(g.s.Holdings), minPrune)
}

// keepFinal is how many of a sku's latest events' final holdings a grain keeps in memory.
const keepFinal = 100_000

// stockPayload is the JSON payload of a stored stock event.
type stockPayload struct {
	By          string `json:"by"`
	Reason      string `json:"reason,omitempty"`
	Fingerprint uint64 `json:"fingerprint,string,omitempty"`
}

// stockSnapshot is what the stock table's snapshot column keeps beyond its counters: the
// adjustment keys the sku remembers.
type stockSnapshot struct {
	Keys []stock.AdjustKey `json:"keys,omitempty"`
}

func encodeStockSnapshot(s *stock.Stock) ([]byte, error) {
	return json.Marshal(stockSnapshot{Keys: s.Keys})
}

func decodeStockSnapshot(b []byte, s *stock.Stock) error {
	if len(b) == 0 {
		return nil
	}
	var snap stockSnapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return fmt.Errorf("decoding the stock snapshot of sku %s: %w", s.SKU, err)
	}
	s.Keys = snap.Keys
	return nil
}
