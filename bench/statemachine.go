package bench

// The order state machine, copied from README "The order state machine". It is the
// public contract, so the checker hard-codes it instead of importing the implementation
// it is checking.

// Order states as the API spells them; stateNone is "does not exist yet".
const (
	stateNone      = ""
	stateCreated   = "CREATED"
	statePaying    = "PAYING"
	statePaid      = "PAID"
	stateShipped   = "SHIPPED"
	stateDelivered = "DELIVERED"
	stateClosed    = "CLOSED"
	stateRefunded  = "REFUNDED"
	// Issue 9: a create reserves its stock (RESERVING, transient) and then is CREATED,
	// or REJECTED (final) for want of stock.
	stateReserving = "RESERVING"
	stateRejected  = "REJECTED"
)

// liveStates hold stock reserved; soldStates are the states of sold units.
var (
	liveStates = []string{stateCreated, statePaying, statePaid}
	soldStates = []string{statePaid, stateShipped, stateDelivered}
)

// transition is one row of the table: an event legal in any of from, leading to to.
type transition struct {
	op    string // the bench operation (API action) that causes it; "" for timer-driven
	event string
	from  []string
	to    string
}

var table = []transition{
	{op: OpCreate, event: "OrderCreated", from: []string{stateNone}, to: stateReserving},
	{op: "", event: "StockReserved", from: []string{stateReserving}, to: stateCreated},
	{op: "", event: "OrderRejected", from: []string{stateReserving}, to: stateRejected},
	{op: "", event: "OrderExpired", from: []string{stateCreated}, to: stateClosed},
	{op: OpPay, event: "PaymentSubmitted", from: []string{stateCreated}, to: statePaying},
	{op: OpConfirm, event: "PaymentConfirmed", from: []string{statePaying}, to: statePaid},
	{op: OpFailPayment, event: "PaymentFailed", from: []string{statePaying}, to: stateCreated},
	{op: "", event: "PaymentExpired", from: []string{statePaying}, to: stateClosed},
	{op: OpCancel, event: "OrderCancelled", from: []string{stateCreated, statePaying}, to: stateClosed},
	{op: OpShip, event: "OrderShipped", from: []string{statePaid}, to: stateShipped},
	{op: OpDeliver, event: "OrderDelivered", from: []string{stateShipped}, to: stateDelivered},
	{op: OpRefund, event: "OrderRefunded", from: []string{statePaid, stateDelivered}, to: stateRefunded},
}

// Operation names used in reports and the ack log. Commands use their API action name.
const (
	OpCreate      = "create"
	OpPay         = "pay"
	OpConfirm     = "confirm-payment"
	OpFailPayment = "fail-payment"
	OpCancel      = "cancel"
	OpShip        = "ship"
	OpDeliver     = "deliver"
	OpRefund      = "refund"
	OpGet         = "get"
	OpList        = "list"
)

// opOrder is the order operations appear in reports.
var opOrder = []string{OpCreate, OpPay, OpConfirm, OpShip, OpDeliver, OpCancel, OpFailPayment, OpRefund, OpGet, OpList}

func transitionForEvent(event string) (transition, bool) {
	for _, t := range table {
		if t.event == event {
			return t, true
		}
	}
	return transition{}, false
}

func eventForOp(op string) (string, bool) {
	for _, t := range table {
		if t.op == op && op != "" {
			return t.event, true
		}
	}
	return "", false
}

// legal reports whether event may happen in state and where it leads.
func legal(state, event string) (string, bool) {
	t, ok := transitionForEvent(event)
	if !ok {
		return "", false
	}

	for _, f := range t.from {
		if f == state {
			return t.to, true
		}
	}
	return "", false
}
