package order

// CommandType names a command sent to an order.
type CommandType string

// The commands.
const (
	CmdCreate         CommandType = "Create"
	CmdSubmitPayment  CommandType = "SubmitPayment"
	CmdConfirmPayment CommandType = "ConfirmPayment"
	CmdFailPayment    CommandType = "FailPayment"
	CmdExpirePayment  CommandType = "ExpirePayment"
	CmdCancel         CommandType = "Cancel"
	CmdShip           CommandType = "Ship"
	CmdDeliver        CommandType = "Deliver"
	CmdRefund         CommandType = "Refund"
	// The node's own commands: the outcome of the reservation saga, and the expiry of an
	// order left unpaid.
	CmdConfirmStock CommandType = "ConfirmStock"
	CmdRejectStock  CommandType = "RejectStock"
	CmdExpire       CommandType = "ExpireOrder"
)

// EventType names what happened to an order.
type EventType string

// The events, one per accepted command.
const (
	EvtCreated          EventType = "OrderCreated"
	EvtPaymentSubmitted EventType = "PaymentSubmitted"
	EvtPaymentConfirmed EventType = "PaymentConfirmed"
	EvtPaymentFailed    EventType = "PaymentFailed"
	EvtPaymentExpired   EventType = "PaymentExpired"
	EvtCancelled        EventType = "OrderCancelled"
	EvtShipped          EventType = "OrderShipped"
	EvtDelivered        EventType = "OrderDelivered"
	EvtRefunded         EventType = "OrderRefunded"
	EvtStockReserved    EventType = "StockReserved" // every line's stock is reserved: the order stands
	EvtRejected         EventType = "OrderRejected" // a line was out of stock: nothing is held
	EvtExpired          EventType = "OrderExpired"  // left unpaid past its expiry
)

// Transition is one row of the state machine: in any of From, Command moves the order to
// To and records Event. Roles may issue it; Action is its name in the HTTP API
// (POST /api/v1/orders/{id}/{action}); empty for commands that have no endpoint of their own.
type Transition struct {
	From    []Status
	Command CommandType
	To      Status
	Event   EventType
	Roles   []Role
	Action  string
}

// Table is the single source of truth for the order state machine. decide, evolve, the
// API documentation, the actions offered to clients and the tests all read it.
var Table = []Transition{
	{From: []Status{StatusNone}, Command: CmdCreate, To: StatusReserving, Event: EvtCreated,
		Roles: []Role{RoleShopper}},
	{From: []Status{StatusReserving}, Command: CmdConfirmStock, To: StatusCreated, Event: EvtStockReserved,
		Roles: []Role{RoleSystem}},
	{From: []Status{StatusReserving}, Command: CmdRejectStock, To: StatusRejected, Event: EvtRejected,
		Roles: []Role{RoleSystem}},
	{From: []Status{StatusCreated}, Command: CmdExpire, To: StatusClosed, Event: EvtExpired,
		Roles: []Role{RoleSystem}},
	{From: []Status{StatusCreated}, Command: CmdSubmitPayment, To: StatusPaying, Event: EvtPaymentSubmitted,
		Roles: []Role{RoleShopper}, Action: "pay"},
	{From: []Status{StatusPaying}, Command: CmdConfirmPayment, To: StatusPaid, Event: EvtPaymentConfirmed,
		Roles: []Role{RoleOperator, RoleAdmin, RoleSystem}, Action: "confirm-payment"},
	{From: []Status{StatusPaying}, Command: CmdFailPayment, To: StatusCreated, Event: EvtPaymentFailed,
		Roles: []Role{RoleOperator, RoleAdmin, RoleSystem}, Action: "fail-payment"},
	{From: []Status{StatusPaying}, Command: CmdExpirePayment, To: StatusClosed, Event: EvtPaymentExpired,
		Roles: []Role{RoleSystem}},
	{From: []Status{StatusCreated, StatusPaying}, Command: CmdCancel, To: StatusClosed, Event: EvtCancelled,
		Roles: []Role{RoleShopper, RoleOperator, RoleAdmin}, Action: "cancel"},
	{From: []Status{StatusPaid}, Command: CmdShip, To: StatusShipped, Event: EvtShipped,
		Roles: []Role{RoleOperator, RoleAdmin, RoleSystem}, Action: "ship"},
	{From: []Status{StatusShipped}, Command: CmdDeliver, To: StatusDelivered, Event: EvtDelivered,
		Roles: []Role{RoleOperator, RoleAdmin}, Action: "deliver"},
	{From: []Status{StatusPaid, StatusDelivered}, Command: CmdRefund, To: StatusRefunded, Event: EvtRefunded,
		Roles: []Role{RoleOperator, RoleAdmin}, Action: "refund"},
}

// TransitionFor returns the row of Table for command c.
func TransitionFor(c CommandType) (Transition, bool) {
	for _, t := range Table {
		if t.Command == c {
			return t, true
		}
	}
	return Transition{}, false
}

// TransitionForEvent returns the row of Table that records event e.
func TransitionForEvent(e EventType) (Transition, bool) {
	for _, t := range Table {
		if t.Event == e {
			return t, true
		}
	}
	return Transition{}, false
}

// CommandForAction returns the command behind an API action name ("pay", "ship", ...).
func CommandForAction(action string) (CommandType, bool) {
	for _, t := range Table {
		if t.Action != "" && t.Action == action {
			return t.Command, true
		}
	}
	return "", false
}

// ActionsFrom lists the API actions that are legal in state s (for some role).
func ActionsFrom(s Status) []string {
	out := []string{}
	for _, t := range Table {
		if t.Action != "" && t.allowsFrom(s) {
			out = append(out, t.Action)
		}
	}
	return out
}

// Allows reports whether t may be issued by role r.
func (t Transition) Allows(r Role) bool {
	for _, x := range t.Roles {
		if x == r {
			return true
		}
	}
	return false
}

func (t Transition) allowsFrom(s Status) bool {
	for _, f := range t.From {
		if f == s {
			return true
		}
	}
	return false
}

// Legal reports whether event e may follow state from and lead to state to; the checker
// and the tests use it to validate a stored history.
func Legal(from Status, e EventType, to Status) bool {
	t, ok := TransitionForEvent(e)
	return ok && t.To == to && t.allowsFrom(from)
}
