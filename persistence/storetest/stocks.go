package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
)

// RunStocks runs the conformance suite of persistence.Stocks. open must return a new,
// empty store and arrange for it to be closed when t ends; if the store has a Close
// method, the suite may call it earlier itself, so Close must be safe to call twice. If
// the store also implements persistence.Orders, order writes run beside stock writes.
func RunStocks(t *testing.T, open func(t *testing.T) persistence.Stocks) {
	runAll(t, open, []suiteTest[persistence.Stocks]{
		{"FirstWrite", testStockFirstWrite},
		{"Fence", testStockFence},
		{"RacingFirstWrites", testStockRacingFirstWrites},
		{"HoldingsUpsert", testStockHoldingsUpsert},
		{"LoadStockFilter", testStockLoadFilter},
		{"HoldingOf", testStockHoldingOf},
		{"LargeBatch", testStockLargeBatch},
		{"InvalidWrites", testStockInvalid},
		{"ListStock", testListStock},
		{"StockEvents", testStockEvents},
		{"ConcurrentSkus", testStockConcurrentSkus},
		{"Close", testStockClose},
	})
}

// stockWrite is the write taking sku from version from to from+n: one holding event per
// version, each moving order "<sku>-o<version>" from "" to state (qty = version), which
// is the holding it upserts. Times derive from base and the version.
func stockWrite(sku string, from, n int64, state string) persistence.StockWrite {
	to := from + n
	w := persistence.StockWrite{
		Stock: persistence.StockRecord{SKU: sku, OnHand: 1000 + to, Reserved: to, Version: to,
			Snapshot: []byte(fmt.Sprintf(`{"sku":%q,"v":%d}`, sku, to)), UpdatedAt: base.Add(time.Duration(to) * time.Second)},
		ExpectedVersion: from,
	}
	for v := from + 1; v <= to; v++ {
		order := fmt.Sprintf("%s-o%d", sku, v)
		at := base.Add(time.Duration(v) * time.Second)
		w.Holdings = append(w.Holdings, persistence.Holding{SKU: sku, OrderID: order, Qty: v, State: state, Version: v, UpdatedAt: at})
		w.Events = append(w.Events, persistence.StockEvent{SKU: sku, Version: v, Type: "Holding" + state, OrderID: order, Qty: v,
			To: state, IdempotencyKey: "key-" + order, Node: "n1", At: at, Payload: []byte(fmt.Sprintf(`{"v":%d}`, v))})
	}
	return w
}

// move is the write moving the holdings of orders (each by one event) to state.
func move(sku string, from int64, state string, at time.Time, holdings ...persistence.Holding) persistence.StockWrite {
	w := persistence.StockWrite{ExpectedVersion: from}
	v := from
	for _, h := range holdings {
		v++
		w.Events = append(w.Events, persistence.StockEvent{SKU: sku, Version: v, Type: "Holding" + state, OrderID: h.OrderID,
			Qty: h.Qty, From: h.State, To: state, Node: "n2", At: at})
		h.State, h.Version, h.UpdatedAt = state, v, at
		w.Holdings = append(w.Holdings, h)
	}
	w.Stock = persistence.StockRecord{SKU: sku, OnHand: 7, Reserved: 3, Version: v, Snapshot: []byte("moved"), UpdatedAt: at}
	return w
}

func mustWriteStock(t *testing.T, s persistence.Stocks, w persistence.StockWrite) {
	t.Helper()
	if err := s.WriteStock(context.Background(), w); err != nil {
		t.Fatalf("WriteStock(%s, expected %d): %v", w.Stock.SKU, w.ExpectedVersion, err)
	}
}

func mustLoadStock(t *testing.T, s persistence.Stocks, sku string, live []string, since time.Time) (persistence.StockRecord, []persistence.Holding) {
	t.Helper()
	row, holdings, err := s.LoadStock(context.Background(), sku, live, since)
	if err != nil {
		t.Fatalf("LoadStock(%s): %v", sku, err)
	}
	return row, holdings
}

func mustStockEvents(t *testing.T, s persistence.Stocks, sku string, after int64, limit int) []persistence.StockEvent {
	t.Helper()
	evs, err := s.StockEvents(context.Background(), sku, after, limit)
	if err != nil {
		t.Fatalf("StockEvents(%s, %d, %d): %v", sku, after, limit, err)
	}
	return evs
}

func diffStock(got, want persistence.StockRecord) string {
	if got.SKU != want.SKU || got.OnHand != want.OnHand || got.Reserved != want.Reserved || got.Version != want.Version ||
		string(got.Snapshot) != string(want.Snapshot) || !sameTime(got.UpdatedAt, want.UpdatedAt) {
		return fmt.Sprintf("stock row %+v, want %+v", got, want)
	}
	return ""
}

func diffHoldings(got, want []persistence.Holding) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d holdings, want %d", len(got), len(want))
	}
	for i, g := range got {
		w := want[i]
		if g.SKU != w.SKU || g.OrderID != w.OrderID || g.Qty != w.Qty || g.State != w.State || g.Version != w.Version ||
			!sameTime(g.UpdatedAt, w.UpdatedAt) {
			return fmt.Sprintf("holding %d = %+v, want %+v", i, g, w)
		}
	}
	return ""
}

func diffStockEvents(got, want []persistence.StockEvent) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d events, want %d", len(got), len(want))
	}
	for i, g := range got {
		w := want[i]
		if g.SKU != w.SKU || g.Version != w.Version || g.Type != w.Type || g.OrderID != w.OrderID || g.Qty != w.Qty ||
			g.From != w.From || g.To != w.To || g.Delta != w.Delta || g.IdempotencyKey != w.IdempotencyKey ||
			g.Node != w.Node || !sameTime(g.At, w.At) || string(g.Payload) != string(w.Payload) {
			return fmt.Sprintf("event %d = %+v, want %+v", i, g, w)
		}
	}
	return ""
}

// unchanged checks that a sku still has row, every one of its holdings and events, and
// nothing else, after what failed.
func unchanged(t *testing.T, s persistence.Stocks, what string, row persistence.StockRecord, holdings []persistence.Holding,
	events []persistence.StockEvent) {
	t.Helper()
	gotRow, gotHoldings := mustLoadStock(t, s, row.SKU, nil, time.Time{})
	if d := diffStock(gotRow, row); d != "" {
		t.Error("row changed by "+what+":", d)
	}
	if d := diffHoldings(gotHoldings, holdings); d != "" {
		t.Error("holdings changed by "+what+":", d)
	}
	if d := diffStockEvents(mustStockEvents(t, s, row.SKU, 0, 0), events); d != "" {
		t.Error("events changed by "+what+":", d)
	}
}

// byOrder returns holdings sorted by order id, the order LoadStock returns them in.
func byOrder(hs []persistence.Holding) []persistence.Holding {
	hs = slices.Clone(hs)
	slices.SortFunc(hs, func(a, b persistence.Holding) int { return strings.Compare(a.OrderID, b.OrderID) })
	return hs
}

// testStockFirstWrite: a first write stores the row, its holdings and its events as given,
// times in UTC at microseconds; an adjustment event keeps its delta and key; zero times
// become the store's now.
func testStockFirstWrite(t *testing.T, s persistence.Stocks) {
	w := stockWrite("sku-1", 0, 3, "RESERVED")
	w.Stock.UpdatedAt = base.Add(time.Nanosecond).In(time.FixedZone("X", 3600))
	w.Events = append(w.Events, persistence.StockEvent{SKU: "sku-1", Version: 4, Type: "Adjusted", Delta: -5,
		IdempotencyKey: "adj-1", Node: "n1", At: base})
	w.Stock.Version = 4
	mustWriteStock(t, s, w)
	want := w.Stock
	want.UpdatedAt = base
	row, holdings := mustLoadStock(t, s, "sku-1", []string{"RESERVED"}, time.Time{})
	if d := diffStock(row, want); d != "" {
		t.Error(d)
	}
	if d := diffHoldings(holdings, byOrder(w.Holdings)); d != "" {
		t.Error(d)
	}
	if d := diffStockEvents(mustStockEvents(t, s, "sku-1", 0, 0), w.Events); d != "" {
		t.Error(d)
	}

	// Zero times are the store's now; the SKU of holdings and events may be left out.
	before := time.Now().Add(-time.Second)
	mustWriteStock(t, s, persistence.StockWrite{
		Stock:    persistence.StockRecord{SKU: "sku-2", Version: 1},
		Holdings: []persistence.Holding{{OrderID: "o1", Qty: 1, State: "RESERVED", Version: 1}},
		Events:   []persistence.StockEvent{{Version: 1, Type: "HoldingRESERVED", OrderID: "o1", Qty: 1}},
	})
	row, holdings = mustLoadStock(t, s, "sku-2", []string{"RESERVED"}, time.Time{})
	evs := mustStockEvents(t, s, "sku-2", 0, 0)
	if len(holdings) != 1 || len(evs) != 1 || holdings[0].SKU != "sku-2" || evs[0].SKU != "sku-2" {
		t.Fatalf("holdings %+v, events %+v: want one each, of sku-2", holdings, evs)
	}
	for name, at := range map[string]time.Time{"row": row.UpdatedAt, "holding": holdings[0].UpdatedAt, "event": evs[0].At} {
		if at.Before(before) || at.Location() != time.UTC || at.Nanosecond()%1000 != 0 {
			t.Errorf("%s time %v: want the store's now, in UTC, at microseconds", name, at)
		}
	}
	if len(row.Snapshot) != 0 {
		t.Errorf("nil snapshot read back as %q, want empty", row.Snapshot)
	}
}

// testStockFence: a write applies only at the expected version; a stale or early one is
// ErrConflict and changes nothing.
func testStockFence(t *testing.T, s persistence.Stocks) {
	ctx := context.Background()
	w1 := stockWrite("sku", 0, 2, "RESERVED")
	mustWriteStock(t, s, w1)
	row1, holdings1 := mustLoadStock(t, s, "sku", nil, time.Time{})
	for name, w := range map[string]persistence.StockWrite{
		"create again":    stockWrite("sku", 0, 3, "SOLD"),
		"stale":           stockWrite("sku", 1, 2, "SOLD"),
		"ahead":           stockWrite("sku", 3, 1, "SOLD"),
		"missing sku":     stockWrite("other", 1, 1, "SOLD"),
		"stale, no rows":  {Stock: persistence.StockRecord{SKU: "sku", Version: 2}, ExpectedVersion: 1},
		"moves a holding": move("sku", 1, "SOLD", base, holdings1[0]),
	} {
		if err := s.WriteStock(ctx, w); !errors.Is(err, persistence.ErrConflict) || errors.Is(err, persistence.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrConflict", name, err)
		}
	}
	unchanged(t, s, "conflicting writes", row1, holdings1, w1.Events)
	if _, _, err := s.LoadStock(ctx, "other", nil, time.Time{}); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("LoadStock(other) = %v, want ErrNotFound", err)
	}
	mustWriteStock(t, s, stockWrite("sku", 2, 1, "RESERVED"))
}

// testStockRacingFirstWrites: activations racing to create one sku: exactly one wins,
// the others get ErrConflict (not a unique violation), and the store holds the winner's
// write alone. Every round races on a new sku, and then on its next version.
func testStockRacingFirstWrites(t *testing.T, s persistence.Stocks) {
	const racers, rounds = 8, 5
	ctx := context.Background()
	for round := range rounds {
		sku := fmt.Sprintf("race-%d", round)
		for _, from := range []int64{0, 1} {
			errs := make([]error, racers)
			writes := make([]persistence.StockWrite, racers)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range racers {
				w := stockWrite(sku, from, 1, "RESERVED")
				w.Stock.Snapshot = []byte(fmt.Sprintf("racer-%d", i))
				w.Holdings[0].OrderID = fmt.Sprintf("racer-%d-%d", from, i)
				w.Events[0].Node = fmt.Sprintf("n%d", i)
				writes[i] = w
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					errs[i] = s.WriteStock(ctx, w)
				}()
			}
			close(start)
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Errorf("%s from %d: racers %d and %d both won", sku, from, winner, i)
				case err == nil:
					winner = i
				case !errors.Is(err, persistence.ErrConflict):
					t.Errorf("%s from %d: racer %d: err = %v, want nil or ErrConflict", sku, from, i, err)
				}
			}
			if winner < 0 {
				t.Fatalf("%s from %d: no racer won", sku, from)
			}
			row, holdings := mustLoadStock(t, s, sku, []string{"RESERVED"}, time.Time{})
			if string(row.Snapshot) != fmt.Sprintf("racer-%d", winner) || row.Version != from+1 {
				t.Errorf("%s from %d: row %+v, want racer %d's", sku, from, row, winner)
			}
			if len(holdings) != int(from)+1 || !slices.ContainsFunc(holdings, func(h persistence.Holding) bool {
				return h.OrderID == writes[winner].Holdings[0].OrderID
			}) {
				t.Errorf("%s from %d: holdings %+v, want racer %d's beside the earlier ones", sku, from, holdings, winner)
			}
			evs := mustStockEvents(t, s, sku, from, 0)
			if d := diffStockEvents(evs, writes[winner].Events); d != "" {
				t.Errorf("%s from %d: %s", sku, from, d)
			}
		}
	}
}

// testStockHoldingsUpsert: a holding is one row per (sku, order): a later write replaces
// it, holdings the write does not name stay as they were, and the same order id in
// another sku is another holding.
func testStockHoldingsUpsert(t *testing.T, s persistence.Stocks) {
	w1 := stockWrite("sku", 0, 3, "RESERVED")
	mustWriteStock(t, s, w1)
	mustWriteStock(t, s, stockWrite("other", 0, 1, "RESERVED"))
	at := base.Add(time.Hour)
	w2 := move("sku", 3, "SOLD", at, w1.Holdings[0], w1.Holdings[2])
	w2.Holdings = append(w2.Holdings, persistence.Holding{SKU: "sku", OrderID: "sku-o9", Qty: 9, State: "RESERVED", Version: 5, UpdatedAt: at})
	mustWriteStock(t, s, w2)
	w3 := move("sku", 5, "SHIPPED", at.Add(time.Minute), w2.Holdings[0])
	mustWriteStock(t, s, w3)

	want := byOrder([]persistence.Holding{w3.Holdings[0], w1.Holdings[1], w2.Holdings[1], w2.Holdings[2]})
	_, holdings := mustLoadStock(t, s, "sku", nil, time.Time{})
	if d := diffHoldings(holdings, want); d != "" {
		t.Error(d)
	}
	if _, holdings := mustLoadStock(t, s, "other", nil, time.Time{}); len(holdings) != 1 {
		t.Errorf("other sku has %d holdings, want 1", len(holdings))
	}
	if evs := mustStockEvents(t, s, "sku", 0, 0); len(evs) != 6 {
		t.Errorf("%d events, want 6", len(evs))
	}
}

// testStockLoadFilter: LoadStock returns the holdings in a live state, or updated at or
// after since, ordered by order id.
func testStockLoadFilter(t *testing.T, s persistence.Stocks) {
	ctx := context.Background()
	w := persistence.StockWrite{Stock: persistence.StockRecord{SKU: "sku", Version: 6, UpdatedAt: base}}
	for i, st := range []string{"RESERVED", "SOLD", "RELEASED", "SHIPPED", "REFUNDED", "REFUSED"} {
		at := base.Add(time.Duration(i) * time.Minute)
		w.Holdings = append(w.Holdings, persistence.Holding{SKU: "sku", OrderID: fmt.Sprintf("o%d-%s", 6-i, st), Qty: 1,
			State: st, Version: int64(i + 1), UpdatedAt: at})
	}
	mustWriteStock(t, s, w)
	mustWriteStock(t, s, stockWrite("sku-b", 0, 2, "RESERVED")) // another sku's holdings never show
	h := func(states ...string) []persistence.Holding {
		var out []persistence.Holding
		for _, x := range w.Holdings {
			if slices.Contains(states, x.State) {
				out = append(out, x)
			}
		}
		return byOrder(out)
	}
	far := base.Add(24 * time.Hour)
	for _, tt := range []struct {
		name  string
		live  []string
		since time.Time
		want  []persistence.Holding
	}{
		{"live only", []string{"RESERVED", "SOLD"}, far, h("RESERVED", "SOLD")},
		{"one live state", []string{"SOLD"}, far, h("SOLD")},
		{"since only, inclusive", nil, base.Add(3 * time.Minute), h("SHIPPED", "REFUNDED", "REFUSED")},
		{"since truncated to microseconds", nil, base.Add(3*time.Minute + 999*time.Nanosecond), h("SHIPPED", "REFUNDED", "REFUSED")},
		{"live or since", []string{"RESERVED", "SOLD"}, base.Add(4 * time.Minute), h("RESERVED", "SOLD", "REFUNDED", "REFUSED")},
		{"overlapping", []string{"RESERVED", "REFUSED"}, base.Add(5 * time.Minute), h("RESERVED", "REFUSED")},
		{"zero since is every holding", nil, time.Time{}, byOrder(w.Holdings)},
		{"nothing", []string{"UNKNOWN"}, far, nil},
		{"empty live", []string{}, far, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			row, holdings := mustLoadStock(t, s, "sku", tt.live, tt.since)
			if row.Version != 6 {
				t.Errorf("row at version %d, want 6", row.Version)
			}
			if holdings == nil {
				t.Error("holdings nil, want an empty slice")
			}
			if d := diffHoldings(holdings, tt.want); d != "" {
				t.Error(d)
			}
		})
	}
	row, holdings, err := s.LoadStock(ctx, "missing", []string{"RESERVED"}, time.Time{})
	if !errors.Is(err, persistence.ErrNotFound) || holdings != nil || row.SKU != "" {
		t.Errorf("LoadStock(missing) = %+v, %v, %v; want ErrNotFound and nothing", row, holdings, err)
	}
}

// testStockHoldingOf: one order's holding of a sku, or ErrNotFound.
func testStockHoldingOf(t *testing.T, s persistence.Stocks) {
	ctx := context.Background()
	w := stockWrite("sku", 0, 2, "RESERVED")
	mustWriteStock(t, s, w)
	mustWriteStock(t, s, stockWrite("sku-b", 0, 1, "SOLD"))
	h, err := s.HoldingOf(ctx, "sku", "sku-o2")
	if err != nil {
		t.Fatalf("HoldingOf(sku, sku-o2): %v", err)
	}
	if d := diffHoldings([]persistence.Holding{h}, w.Holdings[1:]); d != "" {
		t.Error(d)
	}
	for _, k := range [][2]string{{"sku", "nobody"}, {"sku", "sku-b-o1"}, {"missing", "sku-o1"}} {
		if _, err := s.HoldingOf(ctx, k[0], k[1]); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("HoldingOf(%s, %s) = %v, want ErrNotFound", k[0], k[1], err)
		}
	}
}

// testStockLargeBatch: thousands of holdings and events in one write, and a later write
// that moves them all.
func testStockLargeBatch(t *testing.T, s persistence.Stocks) {
	const n = 2000
	w := stockWrite("sku", 0, n, "RESERVED")
	mustWriteStock(t, s, w)
	_, holdings := mustLoadStock(t, s, "sku", []string{"RESERVED"}, base.Add(24*time.Hour))
	if d := diffHoldings(holdings, byOrder(w.Holdings)); d != "" {
		t.Error(d)
	}
	evs := append(mustStockEvents(t, s, "sku", 0, n), mustStockEvents(t, s, "sku", 1000, n)...)
	if d := diffStockEvents(evs, w.Events); d != "" {
		t.Error(d)
	}
	all := move("sku", n, "SOLD", base.Add(time.Hour), w.Holdings...)
	mustWriteStock(t, s, all)
	if _, live := mustLoadStock(t, s, "sku", []string{"RESERVED"}, base.Add(2*time.Hour)); len(live) != 0 {
		t.Errorf("%d holdings still RESERVED", len(live))
	}
	if _, sold := mustLoadStock(t, s, "sku", []string{"SOLD"}, base.Add(2*time.Hour)); len(sold) != n {
		t.Errorf("%d holdings SOLD, want %d", len(sold), n)
	}
}

// testStockInvalid: a malformed write, or one holding text a column cannot keep anywhere
// in its holdings or events, fails with ErrInvalid and leaves nothing of itself.
func testStockInvalid(t *testing.T, s persistence.Stocks) {
	ctx := context.Background()
	w1 := stockWrite("sku", 0, 3, "RESERVED")
	mustWriteStock(t, s, w1)
	row1, holdings1 := mustLoadStock(t, s, "sku", nil, time.Time{})
	next := func() persistence.StockWrite {
		w := stockWrite("sku", 3, 500, "RESERVED")
		w.Holdings = append(w.Holdings, move("sku", 3, "SOLD", base, holdings1...).Holdings...)
		w.Holdings[len(w.Holdings)-1].Version = 503
		return w
	}
	for name, spoil := range map[string]func(w *persistence.StockWrite){
		"nul-in-state":       func(w *persistence.StockWrite) { w.Holdings[250].State = "SOLD\x00" },
		"utf8-in-order":      func(w *persistence.StockWrite) { w.Holdings[499].OrderID = "o\xff" },
		"utf8-in-key":        func(w *persistence.StockWrite) { w.Events[123].IdempotencyKey = "k\xc3" },
		"nul-in-event-order": func(w *persistence.StockWrite) { w.Events[0].OrderID = "\x00" },
		"nul-in-event-from":  func(w *persistence.StockWrite) { w.Events[9].From = "\x00" },
		"utf8-in-event-to":   func(w *persistence.StockWrite) { w.Events[10].To = "\xfe" },
		"nul-in-type":        func(w *persistence.StockWrite) { w.Events[499].Type = "T\x00" },
		"utf8-in-node":       func(w *persistence.StockWrite) { w.Events[1].Node = "\xff" },
		"version not above":  func(w *persistence.StockWrite) { w.Stock.Version = 3 },
		"negative expected":  func(w *persistence.StockWrite) { w.ExpectedVersion = -1 },
		"event out of range": func(w *persistence.StockWrite) { w.Events[0].Version = 3 },
		"event repeated":     func(w *persistence.StockWrite) { w.Events[1].Version = w.Events[0].Version },
		"event of other sku": func(w *persistence.StockWrite) { w.Events[7].SKU = "other" },
		"holding repeated":   func(w *persistence.StockWrite) { w.Holdings[1].OrderID = w.Holdings[0].OrderID },
		"holding no order":   func(w *persistence.StockWrite) { w.Holdings[1].OrderID = "" },
		"holding other sku":  func(w *persistence.StockWrite) { w.Holdings[2].SKU = "other" },
		"holding too new":    func(w *persistence.StockWrite) { w.Holdings[3].Version = 504 },
		"holding too old":    func(w *persistence.StockWrite) { w.Holdings[3].Version = 3 },
	} {
		w := next()
		spoil(&w)
		if err := s.WriteStock(ctx, w); !errors.Is(err, persistence.ErrInvalid) || errors.Is(err, persistence.ErrConflict) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	unchanged(t, s, "invalid writes", row1, holdings1, w1.Events)
	for name, sku := range map[string]string{"empty sku": "", "nul in sku": "s\x00", "utf8 in sku": "s\xff"} {
		if err := s.WriteStock(ctx, stockWrite(sku, 0, 1, "RESERVED")); !errors.Is(err, persistence.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if rows, err := s.ListStock(ctx); err != nil || len(rows) != 1 {
		t.Errorf("ListStock = %d rows, %v; want only sku", len(rows), err)
	}
	// The valid write goes through afterwards, and text beyond ASCII is kept byte for byte.
	w := next()
	w.Events[0].IdempotencyKey, w.Holdings[0].OrderID, w.Events[0].OrderID = "ключ ☕", "zoë", "zoë"
	mustWriteStock(t, s, w)
	if h, err := s.HoldingOf(ctx, "sku", "zoë"); err != nil || h.Version != 4 {
		t.Errorf("HoldingOf(zoë) = %+v, %v", h, err)
	}
	if evs := mustStockEvents(t, s, "sku", 3, 1); len(evs) != 1 || evs[0].IdempotencyKey != "ключ ☕" {
		t.Errorf("event 4 = %+v, want key %q", evs, "ключ ☕")
	}
}

// testListStock: every sku's row, ordered by sku (bytewise), and none in an empty store.
func testListStock(t *testing.T, s persistence.Stocks) {
	ctx := context.Background()
	rows, err := s.ListStock(ctx)
	if err != nil || rows == nil || len(rows) != 0 {
		t.Fatalf("ListStock of an empty store = %#v, %v; want an empty slice", rows, err)
	}
	skus := []string{"b-2", "a-10", "B-1", "a-9", "c"}
	want := make(map[string]persistence.StockRecord)
	for i, sku := range skus {
		w := stockWrite(sku, 0, int64(i+1), "RESERVED")
		mustWriteStock(t, s, w)
		want[sku] = w.Stock
	}
	rows, err = s.ListStock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sorted := slices.Clone(skus)
	slices.Sort(sorted)
	if len(rows) != len(sorted) {
		t.Fatalf("ListStock = %d rows, want %d", len(rows), len(sorted))
	}
	for i, r := range rows {
		if d := diffStock(r, want[sorted[i]]); d != "" {
			t.Errorf("row %d: %s", i, d)
		}
	}
}

// testStockEvents: pages through a sku's events by version, with limits clamped like
// the order listings.
func testStockEvents(t *testing.T, s persistence.Stocks) {
	w := stockWrite("sku", 0, 10, "RESERVED")
	mustWriteStock(t, s, w)
	mustWriteStock(t, s, stockWrite("sku-b", 0, 3, "RESERVED"))
	var got []persistence.StockEvent
	for after := int64(0); ; {
		page := mustStockEvents(t, s, "sku", after, 3)
		if len(page) > 3 {
			t.Fatalf("page of %d events, want at most 3", len(page))
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		after = page[len(page)-1].Version
	}
	if d := diffStockEvents(got, w.Events); d != "" {
		t.Error(d)
	}
	for _, tt := range []struct {
		after int64
		limit int
		want  []persistence.StockEvent
	}{
		{0, 0, w.Events}, // 0 = the default page size
		{0, -1, w.Events},
		{4, 2, w.Events[4:6]},
		{9, 5, w.Events[9:]},
		{10, 5, nil},
		{0, 1 << 30, w.Events},
	} {
		evs := mustStockEvents(t, s, "sku", tt.after, tt.limit)
		if evs == nil {
			t.Errorf("StockEvents(after %d, limit %d) = nil, want an empty slice", tt.after, tt.limit)
		}
		if d := diffStockEvents(evs, tt.want); d != "" {
			t.Errorf("StockEvents(after %d, limit %d): %s", tt.after, tt.limit, d)
		}
	}
	if evs := mustStockEvents(t, s, "missing", 0, 10); len(evs) != 0 {
		t.Errorf("events of a missing sku: %+v", evs)
	}
	// Clamping: the default and the maximum page sizes.
	big := stockWrite("big", 0, 1100, "RESERVED")
	mustWriteStock(t, s, big)
	if n := len(mustStockEvents(t, s, "big", 0, 0)); n != 50 {
		t.Errorf("default page of %d events, want 50", n)
	}
	if n := len(mustStockEvents(t, s, "big", 0, 5000)); n != 1000 {
		t.Errorf("page of %d events for limit 5000, want the maximum 1000", n)
	}
}

// testStockConcurrentSkus: many skus written at once, each by its own writer, beside order
// writes where the store has them: every write applies, in order.
func testStockConcurrentSkus(t *testing.T, s persistence.Stocks) {
	const skus, writes, per = 16, 15, 20
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, skus+1)
	for i := range skus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sku := fmt.Sprintf("sku-%02d", i)
			for v := int64(0); v < writes*per; v += per {
				if err := s.WriteStock(ctx, stockWrite(sku, v, per, "RESERVED")); err != nil {
					errs <- fmt.Errorf("%s from %d: %w", sku, v, err)
					return
				}
			}
		}()
	}
	if o, ok := s.(persistence.Orders); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := int64(1); v <= 50; v++ {
				if err := o.WriteOrder(ctx, transition("beside", v, "n1")); err != nil {
					errs <- fmt.Errorf("order write %d: %w", v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	rows, err := s.ListStock(ctx)
	if err != nil || len(rows) != skus {
		t.Fatalf("ListStock = %d rows, %v; want %d", len(rows), err, skus)
	}
	for _, r := range rows {
		if r.Version != writes*per {
			t.Errorf("%s at version %d, want %d", r.SKU, r.Version, writes*per)
		}
		if _, holdings := mustLoadStock(t, s, r.SKU, []string{"RESERVED"}, time.Time{}); len(holdings) != writes*per {
			t.Errorf("%s has %d holdings, want %d", r.SKU, len(holdings), writes*per)
		}
	}
}

// testStockClose: after Close (if the store has one), every method fails with ErrClosed.
func testStockClose(t *testing.T, s persistence.Stocks) {
	c, ok := s.(interface{ Close() error })
	if !ok {
		t.Skip("the store has no Close")
	}
	ctx := context.Background()
	mustWriteStock(t, s, stockWrite("sku", 0, 1, "RESERVED"))
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for name, err := range map[string]error{
		"WriteStock":  s.WriteStock(ctx, stockWrite("sku", 1, 1, "RESERVED")),
		"LoadStock":   func() error { _, _, err := s.LoadStock(ctx, "sku", nil, time.Time{}); return err }(),
		"HoldingOf":   func() error { _, err := s.HoldingOf(ctx, "sku", "sku-o1"); return err }(),
		"ListStock":   func() error { _, err := s.ListStock(ctx); return err }(),
		"StockEvents": func() error { _, err := s.StockEvents(ctx, "sku", 0, 1); return err }(),
	} {
		if !errors.Is(err, persistence.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
		}
	}
}
