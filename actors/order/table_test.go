package order_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	. "github.com/ordermesh/ordermesh/actors/order"
)

// designRow is one row of the table in the README ("The order state machine"), written out
// by hand and independently of Table, so that a wrong edit of Table fails a test.
type designRow struct {
	from   []Status
	cmd    CommandType
	to     Status
	evt    EventType
	roles  []Role
	action string
}

var design = []designRow{
	{[]Status{StatusNone}, CmdCreate, StatusReserving, EvtCreated, []Role{RoleShopper}, ""},
	{[]Status{StatusReserving}, CmdConfirmStock, StatusCreated, EvtStockReserved, []Role{RoleSystem}, ""},
	{[]Status{StatusReserving}, CmdRejectStock, StatusRejected, EvtRejected, []Role{RoleSystem}, ""},
	{[]Status{StatusCreated}, CmdExpire, StatusClosed, EvtExpired, []Role{RoleSystem}, ""},
	{[]Status{StatusCreated}, CmdSubmitPayment, StatusPaying, EvtPaymentSubmitted, []Role{RoleShopper}, "pay"},
	{[]Status{StatusPaying}, CmdConfirmPayment, StatusPaid, EvtPaymentConfirmed, []Role{RoleOperator, RoleAdmin, RoleSystem}, "confirm-payment"},
	{[]Status{StatusPaying}, CmdFailPayment, StatusCreated, EvtPaymentFailed, []Role{RoleOperator, RoleAdmin, RoleSystem}, "fail-payment"},
	{[]Status{StatusPaying}, CmdExpirePayment, StatusClosed, EvtPaymentExpired, []Role{RoleSystem}, ""},
	{[]Status{StatusCreated, StatusPaying}, CmdCancel, StatusClosed, EvtCancelled, []Role{RoleShopper, RoleOperator, RoleAdmin}, "cancel"},
	{[]Status{StatusPaid}, CmdShip, StatusShipped, EvtShipped, []Role{RoleOperator, RoleAdmin, RoleSystem}, "ship"},
	{[]Status{StatusShipped}, CmdDeliver, StatusDelivered, EvtDelivered, []Role{RoleOperator, RoleAdmin}, "deliver"},
	{[]Status{StatusPaid, StatusDelivered}, CmdRefund, StatusRefunded, EvtRefunded, []Role{RoleOperator, RoleAdmin}, "refund"},
}

// allStates is every state including "does not exist yet".
var allStates = []Status{StatusNone, StatusReserving, StatusCreated, StatusPaying, StatusPaid, StatusShipped,
	StatusDelivered, StatusClosed, StatusRefunded, StatusRejected}

var allRoles = []Role{RoleShopper, RoleOperator, RoleAdmin, RoleSystem}

var allEvents = []EventType{EvtCreated, EvtStockReserved, EvtRejected, EvtExpired, EvtPaymentSubmitted,
	EvtPaymentConfirmed, EvtPaymentFailed, EvtPaymentExpired, EvtCancelled, EvtShipped, EvtDelivered, EvtRefunded}

// legalPairs is the number of (from, command) pairs of the design.
const legalPairs = 14

func designFor(c CommandType) (designRow, bool) {
	for _, r := range design {
		if r.cmd == c {
			return r, true
		}
	}
	return designRow{}, false
}

func sortedCopy[S ~[]E, E ~string](s S) S {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

func TestNamesAreStable(t *testing.T) {
	// These strings are stored in snapshots and event rows and sent to clients.
	names := map[string]string{
		string(StatusCreated): "CREATED", string(StatusPaying): "PAYING", string(StatusPaid): "PAID",
		string(StatusShipped): "SHIPPED", string(StatusDelivered): "DELIVERED", string(StatusClosed): "CLOSED",
		string(StatusRefunded): "REFUNDED", string(StatusNone): "",
		string(StatusReserving): "RESERVING", string(StatusRejected): "REJECTED",
		string(CmdCreate): "Create", string(CmdSubmitPayment): "SubmitPayment", string(CmdConfirmPayment): "ConfirmPayment",
		string(CmdFailPayment): "FailPayment", string(CmdExpirePayment): "ExpirePayment", string(CmdCancel): "Cancel",
		string(CmdShip): "Ship", string(CmdDeliver): "Deliver", string(CmdRefund): "Refund",
		string(CmdConfirmStock): "ConfirmStock", string(CmdRejectStock): "RejectStock", string(CmdExpire): "ExpireOrder",
		string(EvtCreated): "OrderCreated", string(EvtPaymentSubmitted): "PaymentSubmitted",
		string(EvtPaymentConfirmed): "PaymentConfirmed", string(EvtPaymentFailed): "PaymentFailed",
		string(EvtPaymentExpired): "PaymentExpired", string(EvtCancelled): "OrderCancelled",
		string(EvtShipped): "OrderShipped", string(EvtDelivered): "OrderDelivered", string(EvtRefunded): "OrderRefunded",
		string(EvtStockReserved): "StockReserved", string(EvtRejected): "OrderRejected", string(EvtExpired): "OrderExpired",
	}
	for got, want := range names {
		if got != want {
			t.Errorf("name %q, want %q", got, want)
		}
	}
	// The stock commands are package stock's command types.
	stock := []StockCommand{StockReserve, StockRelease, StockSell, StockShip, StockRefund}
	if want := []StockCommand{"Reserve", "Release", "Sell", "Ship", "Refund"}; !slices.Equal(stock, want) {
		t.Errorf("stock commands %v, want %v", stock, want)
	}
	if want := []Status{StatusReserving, StatusCreated, StatusPaying, StatusPaid, StatusShipped, StatusDelivered,
		StatusClosed, StatusRefunded, StatusRejected}; !slices.Equal(Statuses, want) {
		t.Errorf("Statuses = %v, want %v", Statuses, want)
	}
}

func TestTableMatchesDesign(t *testing.T) {
	if len(Table) != len(design) {
		t.Fatalf("Table has %d rows, the README has %d", len(Table), len(design))
	}
	seenCmd, seenEvt, seenAction := map[CommandType]bool{}, map[EventType]bool{}, map[string]bool{}
	for _, tr := range Table {
		if seenCmd[tr.Command] || seenEvt[tr.Event] || (tr.Action != "" && seenAction[tr.Action]) {
			t.Errorf("row %s: command, event or action appears twice in Table", tr.Command)
		}
		seenCmd[tr.Command], seenEvt[tr.Event], seenAction[tr.Action] = true, true, true
	}
	for _, d := range design {
		t.Run(string(d.cmd), func(t *testing.T) {
			tr, ok := TransitionFor(d.cmd)
			if !ok {
				t.Fatalf("no row for %s", d.cmd)
			}
			if got, want := sortedCopy(tr.From), sortedCopy(d.from); !slices.Equal(got, want) {
				t.Errorf("From = %v, want %v", tr.From, d.from)
			}
			if tr.To != d.to || tr.Event != d.evt || tr.Action != d.action {
				t.Errorf("row = (to %s, event %s, action %q), want (to %s, event %s, action %q)",
					tr.To, tr.Event, tr.Action, d.to, d.evt, d.action)
			}
			if got, want := sortedCopy(tr.Roles), sortedCopy(d.roles); !slices.Equal(got, want) {
				t.Errorf("Roles = %v, want %v", tr.Roles, d.roles)
			}
			for _, r := range allRoles {
				if tr.Allows(r) != slices.Contains(d.roles, r) {
					t.Errorf("Allows(%s) = %v", r, tr.Allows(r))
				}
			}
			byEvt, ok := TransitionForEvent(d.evt)
			if !ok || byEvt.Command != d.cmd {
				t.Errorf("TransitionForEvent(%s) = %v, %v; want the %s row", d.evt, byEvt.Command, ok, d.cmd)
			}
			if d.action != "" {
				if c, ok := CommandForAction(d.action); !ok || c != d.cmd {
					t.Errorf("CommandForAction(%q) = %q, %v", d.action, c, ok)
				}
			}
		})
	}
	for _, bad := range []string{"", "create", "expire-payment", "Ship", "pay ", "confirm-stock", "reject-stock", "expire", "expire-order"} {
		if c, ok := CommandForAction(bad); ok {
			t.Errorf("CommandForAction(%q) = %q, want none", bad, c)
		}
	}
	if _, ok := TransitionFor("Teleport"); ok {
		t.Error("TransitionFor(unknown) found a row")
	}
	if _, ok := TransitionForEvent("Teleported"); ok {
		t.Error("TransitionForEvent(unknown) found a row")
	}
}

func TestLegalExhaustive(t *testing.T) {
	states := append(slices.Clone(allStates), "BOGUS")
	events := append(slices.Clone(allEvents), "Bogus")
	legal := 0
	for _, from := range states {
		for _, e := range events {
			for _, to := range states {
				want := false
				for _, d := range design {
					if d.evt == e && d.to == to && slices.Contains(d.from, from) {
						want = true
					}
				}
				if want {
					legal++
				}
				if got := Legal(from, e, to); got != want {
					t.Errorf("Legal(%q, %s, %q) = %v, want %v", from, e, to, got, want)
				}
			}
		}
	}
	if legal != legalPairs {
		t.Errorf("the design has %d legal (from, event) pairs, counted %d", legalPairs, legal)
	}
}

func TestActionsFrom(t *testing.T) {
	want := map[Status][]string{
		StatusNone:      {},
		StatusReserving: {},
		StatusRejected:  {},
		StatusCreated:   {"pay", "cancel"},
		StatusPaying:    {"confirm-payment", "fail-payment", "cancel"},
		StatusPaid:      {"ship", "refund"},
		StatusShipped:   {"deliver"},
		StatusDelivered: {"refund"},
		StatusClosed:    {},
		StatusRefunded:  {},
	}
	for _, st := range allStates {
		got := ActionsFrom(st)
		if got == nil {
			t.Errorf("ActionsFrom(%q) = nil, want an empty list (JSON [] not null)", st)
		}
		if !slices.Equal(sortedCopy(got), sortedCopy(want[st])) {
			t.Errorf("ActionsFrom(%q) = %v, want %v", st, got, want[st])
		}
	}
}

func TestParse(t *testing.T) {
	for _, st := range Statuses {
		if got, ok := ParseStatus(string(st)); !ok || got != st {
			t.Errorf("ParseStatus(%q) = %q, %v", st, got, ok)
		}
	}
	for _, s := range []string{"", "created", "NONE", "PAID ", "reserving", "Rejected"} {
		if got, ok := ParseStatus(s); ok {
			t.Errorf("ParseStatus(%q) = %q, want not ok", s, got)
		}
	}
	for _, r := range []Role{RoleShopper, RoleOperator, RoleAdmin} {
		if got, ok := ParseRole(string(r)); !ok || got != r {
			t.Errorf("ParseRole(%q) = %q, %v", r, got, ok)
		}
	}
	for _, s := range []string{"system", "", "Admin", "root"} {
		if got, ok := ParseRole(s); ok {
			t.Errorf("ParseRole(%q) = %q, want not ok (system is never granted to a token)", s, got)
		}
	}
}

// outcome is what one command does: an event and new state, or an error code.
type outcome struct {
	evt  EventType
	to   Status
	code Code
}

func (o outcome) String() string {
	if o.code != CodeOK {
		return fmt.Sprintf("error %d", o.code)
	}
	return fmt.Sprintf("%s -> %s", o.evt, o.to)
}

// designOutcome is the hand-written expectation: what the README says a fresh-keyed command
// of type c by the owner (or a principal of role r) does to an order in state st.
func designOutcome(st Status, c CommandType, r Role) outcome {
	d, ok := designFor(c)
	switch {
	case !ok:
		return outcome{code: CodeInvalidRequest}
	case !slices.Contains(d.roles, r):
		return outcome{code: CodeForbidden}
	case c == CmdCreate && st != StatusNone:
		return outcome{code: CodeAlreadyExists}
	case st == StatusNone && c != CmdCreate:
		return outcome{code: CodeNotFound}
	case !slices.Contains(d.from, st):
		return outcome{code: CodeIllegalTransition}
	}
	return outcome{evt: d.evt, to: d.to}
}

// tableOutcome is the same expectation generated from Table.
func tableOutcome(st Status, c CommandType, r Role) outcome {
	tr, ok := TransitionFor(c)
	switch {
	case !ok:
		return outcome{code: CodeInvalidRequest}
	case !tr.Allows(r):
		return outcome{code: CodeForbidden}
	case c == CmdCreate && st != StatusNone:
		return outcome{code: CodeAlreadyExists}
	case st == StatusNone && c != CmdCreate:
		return outcome{code: CodeNotFound}
	case !AllowsFrom(tr, st):
		return outcome{code: CodeIllegalTransition}
	}
	return outcome{evt: tr.Event, to: tr.To}
}

func decideOutcome(t *testing.T, o Order, c Command) outcome {
	t.Helper()
	before := deepCopyOrder(o)
	d, err := Decide(&o, c)
	assertOrderUnchanged(t, before, o)
	if err != nil {
		if d.Replay != nil || d.Events != nil {
			t.Errorf("Decide returned an error and a decision: %+v", d)
		}
		assertAppError(t, err)
		return outcome{code: ErrorCode(err)}
	}
	if d.Replay != nil {
		t.Fatalf("fresh key replayed: %+v", d.Replay)
	}
	if len(d.Events) != 1 {
		t.Fatalf("got %d events, want 1", len(d.Events))
	}
	e := d.Events[0]
	wantID := o.ID
	if c.Type == CmdCreate {
		wantID = c.OrderID
	}
	if e.From != o.Status || e.Version != o.Version+1 || e.OrderID != wantID || e.Key != c.Key ||
		e.By != c.By.Subject || !e.At.Equal(c.At) || e.Fingerprint != Fingerprint(c) || e.Reason != c.Reason {
		t.Errorf("event envelope %+v does not match order %s@%d and command %+v", e, o.Status, o.Version, c)
	}
	if !Legal(o.Status, e.Type, e.To) {
		t.Errorf("Decide produced an illegal event %s: %s -> %s", e.Type, o.Status, e.To)
	}
	if n := Evolve(o, e); n.Status != e.To || n.Version != e.Version {
		t.Errorf("Evolve gave %s@%d, want %s@%d", n.Status, n.Version, e.To, e.Version)
	}
	return outcome{evt: e.Type, to: e.To}
}

// TestDecideEveryStateCommandRole runs every command type of Table, in every state, as every
// role (shoppers acting on their own order) and checks the result against both the
// hand-written reading of the README and the expectation generated from Table.
func TestDecideEveryStateCommandRole(t *testing.T) {
	accepted := map[string]bool{}
	cmds := []CommandType{}
	for _, tr := range Table {
		cmds = append(cmds, tr.Command)
	}
	cmds = append(cmds, "Teleport")
	for _, st := range allStates {
		base := orderIn(t, st)
		for _, ct := range cmds {
			for _, r := range allRoles {
				by := Principal{Subject: "alice", Role: r}
				if r != RoleShopper {
					by.Subject = "staff-" + string(r)
				}
				// One hour after setup: past any payment deadline armed while building base, and
				// past the expiry of an unpaid order.
				c := Command{Type: ct, OrderID: base.ID, Key: "matrix-key", By: by, At: t0.Add(time.Hour),
					PaymentTimeout: payTimeout, OrderTimeout: orderTimeout}
				if ct == CmdCreate {
					c.Lines, c.Currency = testLines(), "EUR"
					if !base.Exists() {
						c.OrderID = OrderIDFor(by.Subject, c.Key)
					}
				}
				t.Run(fmt.Sprintf("%s/%s/%s", stName(st), ct, r), func(t *testing.T) {
					got := decideOutcome(t, base, c)
					if want := designOutcome(st, ct, r); got != want {
						t.Errorf("got %v, the README says %v", got, want)
					}
					if want := tableOutcome(st, ct, r); got != want {
						t.Errorf("got %v, Table says %v", got, want)
					}
					if got.code == CodeOK {
						accepted[string(st)+"/"+string(ct)] = true
					}
				})
			}
		}
	}
	if len(accepted) != legalPairs {
		t.Errorf("%d (state, command) pairs were accepted for some role, want the %d of the design: %v", len(accepted), legalPairs, accepted)
	}
}

// TestDecideOtherShoppersOrder: for a shopper, someone else's order does not exist (404),
// unless the role is refused anyway (403, checked first).
func TestDecideOtherShoppersOrder(t *testing.T) {
	for _, st := range Statuses {
		base := orderIn(t, st)
		for _, tr := range Table {
			if tr.Command == CmdCreate {
				continue
			}
			c := Command{Type: tr.Command, OrderID: base.ID, Key: "bobs-key", By: bob, At: t0.Add(time.Hour),
				PaymentTimeout: payTimeout, OrderTimeout: orderTimeout}
			t.Run(fmt.Sprintf("%s/%s", st, tr.Command), func(t *testing.T) {
				want := outcome{code: CodeNotFound}
				if d, _ := designFor(tr.Command); !slices.Contains(d.roles, RoleShopper) {
					want = outcome{code: CodeForbidden}
				}
				if got := decideOutcome(t, base, c); got != want {
					t.Errorf("bob on alice's %s order: got %v, want %v", st, got, want)
				}
			})
		}
	}
}

func stName(s Status) string {
	if s == StatusNone {
		return "None"
	}
	return string(s)
}
