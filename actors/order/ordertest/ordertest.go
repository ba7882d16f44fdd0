// Package ordertest builds orders in any state through the real Decide and Evolve, for
// the tests of the order domain and of the packages that host or encode it.
package ordertest

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	. "github.com/ordermesh/ordermesh/actors/order"
)

var (
	T0    = time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	Alice = Principal{Subject: "alice", Role: RoleShopper}
	Bob   = Principal{Subject: "bob", Role: RoleShopper}
	Oper  = Principal{Subject: "olga", Role: RoleOperator}
	Adm   = Principal{Subject: "root", Role: RoleAdmin}
	Sys   = Principal{Subject: "node-1", Role: RoleSystem}
)

const PayTimeout = 15 * time.Minute

// OrderTimeout is the Command.OrderTimeout of the ConfirmStock commands built here: an
// order created at T0 expires at T0 + OrderTimeout while unpaid.
const OrderTimeout = 30 * time.Minute

// OutOfStock is the Reason of the RejectStock commands built here: the out-of-stock
// message a REJECTED order keeps and a retried create is refused with.
const OutOfStock = `sku "sku-tea": 1 wanted, 0 available`

func TestLines() []Line {
	return []Line{
		{SKU: "sku-mug", Name: "Mug", Qty: 2, UnitPrice: 1999},
		{SKU: "sku-tea", Name: "Tea", Qty: 1, UnitPrice: 500},
	}
}

const TestTotal = 2*1999 + 500

func CreateCmd(by Principal, key string, at time.Time) Command {
	return Command{Type: CmdCreate, OrderID: OrderIDFor(by.Subject, key), Key: key, By: by, At: at,
		Lines: TestLines(), Currency: "EUR"}
}

// CmdOn builds a non-create command for order o: a SubmitPayment carries PayTimeout, a
// ConfirmStock OrderTimeout and a RejectStock the OutOfStock message.
func CmdOn(o *Order, typ CommandType, by Principal, key string, at time.Time) Command {
	c := Command{Type: typ, OrderID: o.ID, Key: key, By: by, At: at}
	switch typ {
	case CmdSubmitPayment:
		c.PaymentTimeout = PayTimeout
	case CmdConfirmStock:
		c.OrderTimeout = OrderTimeout
	case CmdRejectStock:
		c.Reason = OutOfStock
	}
	return c
}

// Created returns the order of create command c after its stock was reserved: Create
// at c.At, then ConfirmStock by the node (key "confirm-" + c.Key) at the same time.
func Created(tb testing.TB, c Command) Order {
	tb.Helper()
	o, _ := Step(tb, Order{}, c)
	o, _ = Step(tb, o, CmdOn(&o, CmdConfirmStock, Sys, "confirm-"+c.Key, c.At))
	return o
}

// Step decides c on o, requires exactly one new event and returns the order after it.
func Step(tb testing.TB, o Order, c Command) (Order, Event) {
	tb.Helper()
	d, err := Decide(&o, c)
	if err != nil {
		tb.Fatalf("Decide(%s on %q order): %v", c.Type, o.Status, err)
	}
	if d.Replay != nil || len(d.Events) != 1 {
		tb.Fatalf("Decide(%s on %q order) = %+v, want one event", c.Type, o.Status, d)
	}
	return Evolve(o, d.Events[0]), d.Events[0]
}

// PathTo is a legal way from "does not exist" to each state, with who does each Step.
// Every order but a RESERVING or REJECTED one had its stock reserved (ConfirmStock by
// the node) right after its creation.
var PathTo = map[Status][]struct {
	cmd CommandType
	by  Principal
}{
	StatusNone:      {},
	StatusReserving: {{CmdCreate, Alice}},
	StatusRejected:  {{CmdCreate, Alice}, {CmdRejectStock, Sys}},
	StatusCreated:   {{CmdCreate, Alice}, {CmdConfirmStock, Sys}},
	StatusPaying:    {{CmdCreate, Alice}, {CmdConfirmStock, Sys}, {CmdSubmitPayment, Alice}},
	StatusPaid:      {{CmdCreate, Alice}, {CmdConfirmStock, Sys}, {CmdSubmitPayment, Alice}, {CmdConfirmPayment, Oper}},
	StatusShipped:   {{CmdCreate, Alice}, {CmdConfirmStock, Sys}, {CmdSubmitPayment, Alice}, {CmdConfirmPayment, Oper}, {CmdShip, Oper}},
	StatusDelivered: {{CmdCreate, Alice}, {CmdConfirmStock, Sys}, {CmdSubmitPayment, Alice}, {CmdConfirmPayment, Oper}, {CmdShip, Oper}, {CmdDeliver, Adm}},
	StatusClosed:    {{CmdCreate, Alice}, {CmdConfirmStock, Sys}, {CmdCancel, Alice}},
	StatusRefunded:  {{CmdCreate, Alice}, {CmdConfirmStock, Sys}, {CmdSubmitPayment, Alice}, {CmdConfirmPayment, Oper}, {CmdRefund, Oper}},
}

// OrderIn returns Alice's order in state st, built by Decide/Evolve along PathTo[st]; Step
// i uses key "setup-i" at T0 + i minutes.
func OrderIn(tb testing.TB, st Status) Order {
	tb.Helper()
	steps, ok := PathTo[st]
	if !ok {
		tb.Fatalf("no path to %q", st)
	}
	var o Order
	for i, s := range steps {
		at := T0.Add(time.Duration(i) * time.Minute)
		key := "setup-" + string(rune('0'+i))
		c := CmdOn(&o, s.cmd, s.by, key, at)
		if s.cmd == CmdCreate {
			c = CreateCmd(s.by, key, at)
		}
		o, _ = Step(tb, o, c)
	}
	if o.Status != st {
		tb.Fatalf("orderIn(%q) built a %q order", st, o.Status)
	}
	return o
}

// FullKeys returns Alice's PAYING order after enough pay/fail cycles that KeysKept keys
// are kept.
func FullKeys(tb testing.TB) Order {
	tb.Helper()
	o := OrderIn(tb, StatusCreated)
	at := T0
	for i := 0; len(o.Keys) < KeysKept || o.Status != StatusPaying; i++ {
		at = at.Add(time.Minute)
		typ, by := CmdSubmitPayment, Alice
		if o.Status == StatusPaying {
			typ, by = CmdFailPayment, Oper
		}
		o, _ = Step(tb, o, CmdOn(&o, typ, by, fmt.Sprintf("fill-%d", i), at))
	}
	return o
}

// DeepCopyOrder copies o including the whole backing arrays of its slices (up to cap), so
// that a write past len by an append in place is noticed too.
func DeepCopyOrder(o Order) Order {
	c := o
	if o.Lines != nil {
		c.Lines = slices.Clone(o.Lines[:cap(o.Lines)])[:len(o.Lines)]
	}
	if o.Keys != nil {
		c.Keys = slices.Clone(o.Keys[:cap(o.Keys)])[:len(o.Keys)]
	}
	return c
}

// AssertOrderUnchanged fails tb if after differs from before, including past len in the
// backing arrays of its slices.
func AssertOrderUnchanged(tb testing.TB, before, after Order) {
	tb.Helper()
	if !reflect.DeepEqual(before, after) {
		tb.Errorf("order was modified:\nbefore %+v\nafter  %+v", before, after)
	}
	if cap(before.Keys) == cap(after.Keys) && !reflect.DeepEqual(before.Keys[:cap(before.Keys)], after.Keys[:cap(after.Keys)]) {
		tb.Errorf("the backing array of Keys was written past len")
	}
	if cap(before.Lines) == cap(after.Lines) && !reflect.DeepEqual(before.Lines[:cap(before.Lines)], after.Lines[:cap(after.Lines)]) {
		tb.Errorf("the backing array of Lines was written past len")
	}
}

// PayingWithKeys returns a PAYING order that has already seen a few keys: its create and
// ConfirmStock keys, two pay/fail rounds and the payment.
func PayingWithKeys(tb testing.TB) Order {
	tb.Helper()
	o := OrderIn(tb, StatusCreated)
	at := T0
	for i := range 4 {
		at = at.Add(time.Minute)
		typ, by := CmdSubmitPayment, Alice
		if i%2 == 1 {
			typ, by = CmdFailPayment, Oper
		}
		o, _ = Step(tb, o, CmdOn(&o, typ, by, "bench-"+strconv.Itoa(i), at))
	}
	o, _ = Step(tb, o, CmdOn(&o, CmdSubmitPayment, Alice, "bench-pay", at.Add(time.Minute)))
	if o.Status != StatusPaying || len(o.Keys) != 7 {
		tb.Fatalf("setup: %s with %d keys", o.Status, len(o.Keys))
	}
	return o
}
