package stock_test

import (
	"slices"
	"testing"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/order/ordertest"
	. "github.com/ordermesh/ordermesh/actors/stock"
)

// Short names for the shared fixtures of ordertest.
var (
	t0   = ordertest.T0
	sys  = ordertest.Sys
	oper = ordertest.Oper
	adm  = ordertest.Adm
	shop = ordertest.Alice
)

const sku = "tea-sencha"

// allHoldings is every holding state including "holds nothing".
var allHoldings = []HoldingState{HoldNone, HoldReserved, HoldSold, HoldShipped, HoldReleased, HoldRefunded, HoldRefused}

// want is the expected outcome of one holding command, written out by hand from the
// design (package doc and the issue), independently of Table.
type want struct {
	effect Effect
	to     HoldingState
	evt    EventType
}

var (
	illegal = want{effect: Illegal}
	done    = want{effect: Done}
)

func move(to HoldingState, e EventType) want { return want{Move, to, e} }

var design = map[HoldingState]map[CommandType]want{
	HoldNone: {CmdReserve: move(HoldReserved, EvtReserved), CmdRelease: done, CmdSell: illegal, CmdShip: illegal, CmdRefund: illegal},
	HoldReserved: {CmdReserve: done, CmdRelease: move(HoldReleased, EvtReleased), CmdSell: move(HoldSold, EvtSold),
		CmdShip: illegal, CmdRefund: illegal},
	HoldSold: {CmdReserve: done, CmdRelease: illegal, CmdSell: done, CmdShip: move(HoldShipped, EvtShipped),
		CmdRefund: move(HoldRefunded, EvtRefunded)},
	HoldShipped:  {CmdReserve: done, CmdRelease: illegal, CmdSell: done, CmdShip: done, CmdRefund: done},
	HoldReleased: {CmdReserve: done, CmdRelease: done, CmdSell: illegal, CmdShip: illegal, CmdRefund: illegal},
	HoldRefunded: {CmdReserve: done, CmdRelease: done, CmdSell: done, CmdShip: illegal, CmdRefund: done},
	HoldRefused:  {CmdReserve: done, CmdRelease: done, CmdSell: illegal, CmdShip: illegal, CmdRefund: illegal},
}

func TestNamesAreStable(t *testing.T) {
	// These strings are stored in snapshots and events.
	names := map[string]string{
		string(HoldNone): "", string(HoldReserved): "RESERVED", string(HoldSold): "SOLD", string(HoldShipped): "SHIPPED",
		string(HoldReleased): "RELEASED", string(HoldRefunded): "REFUNDED", string(HoldRefused): "REFUSED",
		string(CmdReserve): "Reserve", string(CmdRelease): "Release", string(CmdSell): "Sell", string(CmdShip): "Ship",
		string(CmdRefund): "Refund", string(CmdAdjust): "Adjust",
		string(EvtReserved): "StockReserved", string(EvtReserveRefused): "StockReserveRefused",
		string(EvtReleased): "StockReleased", string(EvtSold): "StockSold", string(EvtShipped): "StockShipped",
		string(EvtRefunded): "StockRefunded", string(EvtAdjusted): "StockAdjusted",
	}
	for got, want := range names {
		if got != want {
			t.Errorf("name %q, want %q", got, want)
		}
	}
	if !slices.Equal(HoldingStates, allHoldings[1:]) {
		t.Errorf("HoldingStates = %v", HoldingStates)
	}
}

func TestTableMatchesDesign(t *testing.T) {
	for _, h := range allHoldings {
		for _, c := range HoldingCommands {
			w := design[h][c]
			r := RuleFor(h, c)
			if r.Effect != w.effect || r.To != w.to || r.Event != w.evt || r.Command != c {
				t.Errorf("RuleFor(%q, %s) = %+v, want %+v", h, c, r, w)
			}
		}
	}
	// Every (state, command) pair is in at most one row.
	for _, h := range allHoldings {
		for _, c := range HoldingCommands {
			n := 0
			for _, r := range Table {
				if r.Command == c && slices.Contains(r.From, h) {
					n++
				}
			}
			if n > 1 {
				t.Errorf("(%q, %s) is in %d rows", h, c, n)
			}
		}
	}
	for _, e := range []EventType{EvtReserved, EvtReleased, EvtSold, EvtShipped, EvtRefunded} {
		if r, ok := RuleForEvent(e); !ok || r.Event != e || r.Effect != Move {
			t.Errorf("RuleForEvent(%s) = %+v, %v", e, r, ok)
		}
	}
	for _, e := range []EventType{EvtReserveRefused, EvtAdjusted} {
		if _, ok := RuleForEvent(e); ok {
			t.Errorf("RuleForEvent(%s) found a row", e)
		}
	}
	for _, h := range allHoldings {
		if h.Live() != (h == HoldReserved || h == HoldSold) {
			t.Errorf("%q.Live() = %v", h, h.Live())
		}
	}
}

func TestRoles(t *testing.T) {
	for _, c := range append(slices.Clone(HoldingCommands), CmdAdjust, "Teleport") {
		for _, r := range []order.Role{order.RoleShopper, order.RoleOperator, order.RoleAdmin, order.RoleSystem} {
			want := (c != CmdAdjust && c != "Teleport" && r == order.RoleSystem) ||
				(c == CmdAdjust && (r == order.RoleOperator || r == order.RoleAdmin))
			if Allows(c, r) != want {
				t.Errorf("Allows(%s, %s) = %v", c, r, !want)
			}
		}
	}
}

// stockWith returns a stock of sku with 10 units on hand and order "o1" holding 3 in h.
func stockWith(h HoldingState) Stock {
	s := New(sku)
	s.Apply(Event{Type: EvtAdjusted, SKU: sku, Version: 1, Delta: 10, Key: "init"})
	if h != HoldNone {
		if h.Live() {
			s.Reserved = 3
		}
		if h == HoldShipped {
			s.OnHand = 7
		}
		s.Holdings = map[string]Holding{"o1": {Qty: 3, State: h, Version: 1}}
	}
	return s
}

func holdingCmd(c CommandType, orderID string) Command {
	return Command{Type: c, SKU: sku, OrderID: orderID, Qty: 3, By: sys, At: t0}
}

// TestDecideEveryHoldingStateAndCommand runs Decide for every (holding state, command)
// pair and checks it against the hand-written design, including the counters.
func TestDecideEveryHoldingStateAndCommand(t *testing.T) {
	for _, h := range allHoldings {
		for _, c := range HoldingCommands {
			w := design[h][c]
			s := stockWith(h)
			before := s.Clone()
			d, err := Decide(&s, holdingCmd(c, "o1"))
			switch w.effect {
			case Illegal:
				if order.ErrorCode(err) != order.CodeIllegalTransition || len(d.Events) != 0 {
					t.Errorf("(%q, %s): %+v, %v; want 409", h, c, d, err)
				}
				continue
			case Done:
				if err != nil || !d.Replay || len(d.Events) != 0 {
					t.Errorf("(%q, %s): %+v, %v; want a replay", h, c, d, err)
				}
				if wantRefused := c == CmdReserve && h == HoldRefused; (d.Refused != nil) != wantRefused {
					t.Errorf("(%q, %s): Refused = %v", h, c, d.Refused)
				}
				continue
			}
			if err != nil || d.Replay || d.Refused != nil || len(d.Events) != 1 {
				t.Fatalf("(%q, %s): %+v, %v; want one event", h, c, d, err)
			}
			e := d.Events[0]
			if e.Type != w.evt || e.From != h || e.To != w.to || e.Qty != 3 || e.Version != s.Version+1 || e.OrderID != "o1" || e.SKU != sku {
				t.Errorf("(%q, %s): event %+v", h, c, e)
			}
			after := Evolve(s, e)
			if !equalStock(s, before) {
				t.Errorf("(%q, %s): Decide or Evolve modified its input", h, c)
			}
			wantReserved, wantOnHand := before.Reserved, before.OnHand
			if h.Live() {
				wantReserved -= 3
			}
			if w.to.Live() {
				wantReserved += 3
			}
			if w.to == HoldShipped {
				wantOnHand -= 3
			}
			if after.Reserved != wantReserved || after.OnHand != wantOnHand || after.Holding("o1").State != w.to {
				t.Errorf("(%q, %s): after = %+v", h, c, after)
			}
		}
	}
	// The guarded row: Reserve from none with too little available is refused and recorded.
	s := stockWith(HoldNone)
	c := holdingCmd(CmdReserve, "o2")
	c.Qty = 11
	d, err := Decide(&s, c)
	if err != nil || len(d.Events) != 1 || d.Events[0].Type != EvtReserveRefused || d.Events[0].To != HoldRefused ||
		order.ErrorCode(d.Err()) != order.CodeOutOfStock {
		t.Fatalf("short reserve: %+v, %v", d, err)
	}
}
