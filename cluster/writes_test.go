package cluster

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/orderpb"

	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/ordermesh/ordermesh/actors"
	"github.com/ordermesh/ordermesh/persistence"
)

// logBuffer collects a node's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func logTo(b *logBuffer) func(*actors.GrainConfig) {
	return func(g *actors.GrainConfig) { g.Logger = slog.New(slog.NewTextHandler(b, nil)) }
}

// toGrain sends c to its grain directly, past Node.Execute's own check, as a command
// from another path (another node, a future caller) would arrive.
func toGrain(n *Node, c order.Command) (order.Result, error) {
	reply, err := callAs[*orderpb.Reply](n, context.Background(), pcluster.NewClusterIdentity(c.OrderID, actors.KindOrder), orderpb.CommandToPB(c, "test"))
	if err != nil {
		return order.Result{}, err
	}
	return orderpb.ResultFromReply(reply)
}

// wantRefused requires a permanent CodeInvalidRequest.
func wantRefused(t *testing.T, what string, err error) {
	t.Helper()
	if order.ErrorCode(err) != order.CodeInvalidRequest || order.ErrorCode(err).Retryable() {
		t.Errorf("%s: err = %v, want a permanent %d", what, err, order.CodeInvalidRequest)
	}
}

// TestUnstorableTextRefusedAtOnce: keys, reasons and skus with NUL, control characters or
// invalid UTF-8 are refused with 400 at once, by the node and by the grain itself when
// they reach it directly; the grain keeps serving the order, and nothing is logged at
// ERROR.
func TestUnstorableTextRefusedAtOnce(t *testing.T) {
	var logs logBuffer
	store := openStore(t, filepath.Join(t.TempDir(), "om.db"))
	n := startNode(t, store, logTo(&logs))
	o := create(t, n, "k1")
	if n.Activations() != 1 {
		t.Fatalf("%d activations", n.Activations())
	}
	for _, s := range []string{"nul\x00", "bad\xff", "bell\a", "esc\x1b[31m"} {
		cmds := map[string]order.Command{
			"key":    {Type: order.CmdSubmitPayment, OrderID: o.ID, Key: s, By: alice},
			"reason": {Type: order.CmdCancel, OrderID: o.ID, Key: "cancel", By: alice, Reason: s},
		}
		create := order.Command{Type: order.CmdCreate, OrderID: order.OrderIDFor(alice.Subject, "k2"), Key: "k2", By: alice,
			Lines: []order.Line{{SKU: s, Name: "Tea", Qty: 1, UnitPrice: 450}}, Currency: "EUR"}
		cmds["sku"] = create
		for field, c := range cmds {
			_, err := n.Execute(context.Background(), c, "test")
			wantRefused(t, fmt.Sprintf("%q in %s, through the node", s, field), err)
			_, err = toGrain(n, c)
			wantRefused(t, fmt.Sprintf("%q in %s, at the grain", s, field), err)
		}
	}
	// The same grain serves the next good command.
	v := mustExec(t, n, o.ID, order.CmdSubmitPayment, "pay", alice)
	if v.Status != order.StatusPaying || v.Version != 3 {
		t.Fatalf("after the refusals: %+v", v)
	}
	checkHistory(t, store, o.ID, order.EvtCreated, order.EvtStockReserved, order.EvtPaymentSubmitted)
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("ERROR logged:\n%s", logs.String())
	}
}

// refusingStore refuses, as invalid, every write carrying the key "refuse", the way a
// store refuses content it cannot keep.
type refusingStore struct{ persistence.Store }

func (s refusingStore) WriteOrder(ctx context.Context, w persistence.Write) error {
	for _, e := range w.Events {
		if e.IdempotencyKey == "refuse" {
			return fmt.Errorf("writing order %s: %w", w.Order.ID, persistence.ErrInvalid)
		}
	}
	return s.Store.WriteOrder(ctx, w)
}

// TestRefusedWriteIsPermanent: a write the store refuses for its content is answered
// 400 at once (not "retry"), the grain stays active with the order unchanged, and it is
// logged once, as a warning.
func TestRefusedWriteIsPermanent(t *testing.T) {
	var logs logBuffer
	store := refusingStore{openStore(t, filepath.Join(t.TempDir(), "om.db"))}
	n := startNode(t, store, logTo(&logs))
	o := create(t, n, "k1")
	_, err := exec(n, o.ID, order.CmdSubmitPayment, "refuse", alice)
	wantRefused(t, "refused write", err)
	if n.Activations() != 1 {
		t.Errorf("%d activations after a refused write; the grain must not stop", n.Activations())
	}
	v := mustExec(t, n, o.ID, order.CmdSubmitPayment, "pay", alice)
	if v.Version != 3 || v.Status != order.StatusPaying {
		t.Fatalf("after the refused write: %+v", v)
	}
	checkHistory(t, store, o.ID, order.EvtCreated, order.EvtStockReserved, order.EvtPaymentSubmitted)
	out := logs.String()
	if strings.Contains(out, "level=ERROR") || strings.Count(out, "level=WARN") != 1 {
		t.Errorf("want exactly one WARN and no ERROR line, got:\n%s", out)
	}
}

// TestOldKeyReplayedThroughGrain: a retried command whose key is two hours old, with 100
// newer keys on the same order (so the order forgot it), is a replay on both stores:
// the same answer, marked replayed, and nothing changes. The same key from another
// user is 42201.
func TestOldKeyReplayedThroughGrain(t *testing.T) {
	for name, open := range bothStores {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			clock := &fakeClock{now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
			n := startNode(t, store, func(g *actors.GrainConfig) { g.Now = clock.Now })
			o := create(t, n, "create")
			first := mustExec(t, n, o.ID, order.CmdSubmitPayment, "pay-1", alice)
			clock.Advance(time.Minute)
			mustExec(t, n, o.ID, order.CmdFailPayment, "fail-1", olga)
			clock.Advance(2 * time.Hour)
			for i := range 100 {
				typ, by := order.CmdSubmitPayment, alice
				if i%2 == 1 {
					typ, by = order.CmdFailPayment, olga
				}
				mustExec(t, n, o.ID, typ, fmt.Sprintf("newer-%d", i), by)
			}
			// CREATED again: without the lookup, "pay-1" would pay a second time.
			now, err := n.Get(context.Background(), o.ID, alice, "t")
			if err != nil || now.Status != order.StatusCreated || now.Version != 104 {
				t.Fatalf("before the retry: %+v, %v", now, err)
			}
			for _, passivate := range []bool{false, true} {
				if passivate {
					// Also from a fresh activation that loads the snapshot.
					stopGrain(t, n, o.ID)
				}
				res, err := exec(n, o.ID, order.CmdSubmitPayment, "pay-1", alice)
				if err != nil || !res.Replayed || !viewsEqual(res.View, first) {
					t.Fatalf("retry of pay-1 (fresh activation %v) = %+v, %v\nwant a replay of %+v", passivate, res, err, first)
				}
				ada := order.Principal{Subject: "ada", Role: order.RoleAdmin}
				if _, err := exec(n, o.ID, order.CmdFailPayment, "fail-1", ada); order.ErrorCode(err) != order.CodeKeyReused {
					t.Fatalf("another user's fail-1: err = %v, want %d", err, order.CodeKeyReused)
				}
			}
			events, err := store.OrderEvents(context.Background(), o.ID)
			if err != nil || len(events) != 104 {
				t.Fatalf("%d events, %v; the replays must change nothing", len(events), err)
			}
		})
	}
}

// viewsEqual compares views by value, times by instant.
func viewsEqual(a, b order.View) bool {
	return a.ID == b.ID && a.Status == b.Status && a.Version == b.Version && a.Total == b.Total &&
		a.PaymentDeadline.Equal(b.PaymentDeadline) && a.UpdatedAt.Equal(b.UpdatedAt) && a.CreatedAt.Equal(b.CreatedAt)
}

// stopGrain stops the activation of order id and waits until it is gone.
func stopGrain(t *testing.T, n *Node, id string) {
	t.Helper()
	pid := n.lookup.Get(pcluster.NewClusterIdentity(id, actors.KindOrder))
	if pid == nil {
		t.Fatalf("order %s has no activation", id)
	}
	before := n.Activations()
	n.system.Root.Poison(pid)
	eventually(t, 5*time.Second, "the grain to stop", func() bool { return n.Activations() == before-1 })
}
