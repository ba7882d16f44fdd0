package stock

import "github.com/ordermesh/ordermesh/actors/order"

// CommandType names a command sent to a sku's stock.
type CommandType string

// The commands. Reserve, Release, Sell, Ship and Refund act on one order's holding and
// are keyed by its order id; Adjust changes the units on hand and carries its own
// idempotency key.
const (
	CmdReserve CommandType = "Reserve"
	CmdRelease CommandType = "Release"
	CmdSell    CommandType = "Sell"
	CmdShip    CommandType = "Ship"
	CmdRefund  CommandType = "Refund"
	CmdAdjust  CommandType = "Adjust"
)

// EventType names what happened to a sku's stock.
type EventType string

// The events. Every one of them advances the sku's version by one.
const (
	EvtReserved       EventType = "StockReserved"       // a holding of Qty units for an order
	EvtReserveRefused EventType = "StockReserveRefused" // not enough was available; recorded so a repeat is refused alike
	EvtReleased       EventType = "StockReleased"       // the order closed unpaid; its units are available again
	EvtSold           EventType = "StockSold"           // the order was paid; its units stay held
	EvtShipped        EventType = "StockShipped"        // the units left the warehouse: on hand and reserved drop
	EvtRefunded       EventType = "StockRefunded"       // a paid, unshipped order was refunded; its units are available again
	EvtAdjusted       EventType = "StockAdjusted"       // an operator changed the units on hand by Delta
)

// HoldingState is where one order's holding of a sku stands.
type HoldingState string

// The holding states; see Table for how a holding moves between them. Reserved and Sold
// are live: their units count in Stock.Reserved. The others are final.
const (
	HoldNone     HoldingState = ""         // the order holds nothing of this sku
	HoldReserved HoldingState = "RESERVED" // held for an unpaid order
	HoldSold     HoldingState = "SOLD"     // held for a paid order until it ships
	HoldShipped  HoldingState = "SHIPPED"  // shipped: the units left on hand and reserved
	HoldReleased HoldingState = "RELEASED" // the order closed unpaid; the units returned
	HoldRefunded HoldingState = "REFUNDED" // refunded before shipping; the units returned
	HoldRefused  HoldingState = "REFUSED"  // the reservation was refused: out of stock
)

// HoldingStates lists every state an existing holding can be in.
var HoldingStates = []HoldingState{HoldReserved, HoldSold, HoldShipped, HoldReleased, HoldRefunded, HoldRefused}

// Live reports whether a holding in state h counts in Stock.Reserved: reserved or sold,
// not yet shipped, released or refunded.
func (h HoldingState) Live() bool { return h == HoldReserved || h == HoldSold }

// Effect is what a holding command does to a holding in a given state.
type Effect string

// The effects.
const (
	// Move: the command is applied; Event is recorded and the holding moves to To.
	Move Effect = "move"
	// Done: the command changes nothing and succeeds: it was applied before (a repeat),
	// or, for a compensation (Release, Refund after shipping), there is nothing to undo.
	Done Effect = "done"
	// Illegal: refused with order.CodeIllegalTransition (409); nothing changes.
	Illegal Effect = "illegal"
)

// Rule is one row of the holding state machine: in any of From, Command has Effect; for
// Move it records Event and leads to To.
type Rule struct {
	From    []HoldingState
	Command CommandType
	Effect  Effect
	To      HoldingState
	Event   EventType
}

// Table is the single source of truth for a holding's state machine: Decide, Evolve and
// the tests read it. A (state, command) pair with no row is Illegal.
//
// Reserve from HoldNone moves to HoldReserved, or, when fewer than Qty units are
// available, records EvtReserveRefused and moves to HoldRefused (the one guarded row; see
// Decide). A Reserve for an order that holds anything already is answered with the
// original outcome (Done; refused again if it was refused) and changes nothing, even if
// the stock changed since.
//
// Refund after shipping is Done and changes nothing: the units left the warehouse, and
// goods that come back are counted in again with an Adjust by an operator.
var Table = []Rule{
	{From: []HoldingState{HoldNone}, Command: CmdReserve, Effect: Move, To: HoldReserved, Event: EvtReserved},
	{From: []HoldingState{HoldReserved, HoldSold, HoldShipped, HoldReleased, HoldRefunded, HoldRefused}, Command: CmdReserve, Effect: Done},

	{From: []HoldingState{HoldReserved}, Command: CmdRelease, Effect: Move, To: HoldReleased, Event: EvtReleased},
	{From: []HoldingState{HoldNone, HoldReleased, HoldRefunded, HoldRefused}, Command: CmdRelease, Effect: Done},

	{From: []HoldingState{HoldReserved}, Command: CmdSell, Effect: Move, To: HoldSold, Event: EvtSold},
	{From: []HoldingState{HoldSold, HoldShipped, HoldRefunded}, Command: CmdSell, Effect: Done},

	{From: []HoldingState{HoldSold}, Command: CmdShip, Effect: Move, To: HoldShipped, Event: EvtShipped},
	{From: []HoldingState{HoldShipped}, Command: CmdShip, Effect: Done},

	{From: []HoldingState{HoldSold}, Command: CmdRefund, Effect: Move, To: HoldRefunded, Event: EvtRefunded},
	{From: []HoldingState{HoldShipped, HoldRefunded}, Command: CmdRefund, Effect: Done},
}

// HoldingCommands lists the commands that act on one order's holding, in Table order.
var HoldingCommands = []CommandType{CmdReserve, CmdRelease, CmdSell, CmdShip, CmdRefund}

// RuleFor returns the rule for command c on a holding in state h: its row of Table, or an
// Illegal rule when Table has none.
func RuleFor(h HoldingState, c CommandType) Rule {
	for _, r := range Table {
		if r.Command == c && r.allowsFrom(h) {
			return r
		}
	}
	return Rule{From: []HoldingState{h}, Command: c, Effect: Illegal}
}

// RuleForEvent returns the Move row of Table that records event e. EvtReserveRefused and
// EvtAdjusted have none.
func RuleForEvent(e EventType) (Rule, bool) {
	for _, r := range Table {
		if r.Effect == Move && r.Event == e {
			return r, true
		}
	}
	return Rule{}, false
}

func (r Rule) allowsFrom(h HoldingState) bool {
	for _, f := range r.From {
		if f == h {
			return true
		}
	}
	return false
}

// Roles returns who may issue command c. The holding commands come from the reservation
// saga, which runs on the node (order.RoleSystem); Adjust comes from people who run the
// warehouse (order.RoleOperator, order.RoleAdmin). Shoppers may do nothing to stock.
func Roles(c CommandType) []order.Role {
	switch c {
	case CmdReserve, CmdRelease, CmdSell, CmdShip, CmdRefund:
		return []order.Role{order.RoleSystem}
	case CmdAdjust:
		return []order.Role{order.RoleOperator, order.RoleAdmin}
	}
	return nil
}

// Allows reports whether role r may issue command c.
func Allows(c CommandType, r order.Role) bool {
	for _, x := range Roles(c) {
		if x == r {
			return true
		}
	}
	return false
}
