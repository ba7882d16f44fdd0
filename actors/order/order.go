// Package order is the order domain: states, roles, commands, events, the transition
// table, the pure Decide and Evolve, idempotency keys and their fingerprints, the stored
// event payload and the stable error codes. It imports only the standard library: no
// HTTP, SQL, protobuf, actor framework or membership. Time comes in with each command.
package order

import "time"

// Status is the state of an order.
type Status string

// The states of an order; see Table for how an order moves between them.
const (
	StatusNone      Status = "" // the order does not exist yet
	StatusCreated   Status = "CREATED"
	StatusPaying    Status = "PAYING"
	StatusPaid      Status = "PAID"
	StatusShipped   Status = "SHIPPED"
	StatusDelivered Status = "DELIVERED"
	StatusClosed    Status = "CLOSED"
	StatusRefunded  Status = "REFUNDED"
)

// Statuses lists every state an existing order can be in, in lifecycle order.
var Statuses = []Status{StatusCreated, StatusPaying, StatusPaid, StatusShipped, StatusDelivered, StatusClosed, StatusRefunded}

// ParseStatus returns the status named s, or false.
func ParseStatus(s string) (Status, bool) {
	for _, st := range Statuses {
		if string(st) == s {
			return st, true
		}
	}
	return StatusNone, false
}

// Role is what a caller is allowed to do.
type Role string

// The roles. System is the node itself (timers); it is never granted to a token.
const (
	RoleShopper  Role = "shopper"
	RoleOperator Role = "operator"
	RoleAdmin    Role = "admin"
	RoleSystem   Role = "system"
)

// ParseRole returns the role named s, or false. System is not a parseable role.
func ParseRole(s string) (Role, bool) {
	switch Role(s) {
	case RoleShopper, RoleOperator, RoleAdmin:
		return Role(s), true
	}
	return "", false
}

// Principal is who issues a command: the authenticated user (or the node for timers).
type Principal struct {
	Subject string // the user name; customer id for shoppers
	Role    Role
}

// SeesAllOrders reports whether the principal may see every order, not only its own.
func (p Principal) SeesAllOrders() bool {
	return p.Role == RoleOperator || p.Role == RoleAdmin || p.Role == RoleSystem
}

// CanView reports whether p may see order o. A shopper sees only its own orders; for any
// other order the answer must be "not found", so its existence is not revealed.
func CanView(p Principal, o *Order) bool {
	return p.SeesAllOrders() || (p.Role == RoleShopper && o.Customer == p.Subject)
}

// Line is one line of an order. Prices are in minor units (cents) of the order's currency.
type Line struct {
	SKU       string `json:"sku"`
	Name      string `json:"name"`
	Qty       int64  `json:"qty"`
	UnitPrice int64  `json:"unit_price"`
}

// Limits on what one order may hold.
const (
	MaxLines = 100
	MaxQty   = 1000 // of one line
	// MaxTotalQty caps the items of a whole order: without it MaxLines lines of MaxQty
	// each would be one order of 100,000 items.
	MaxTotalQty = 2000
	// MaxTotalValue caps an order's total, in minor units of its currency (100,000.00 in
	// a currency with cents). It also bounds a unit price, so totals cannot overflow.
	MaxTotalValue = 10_000_000
	MaxKeyLen     = 200
	MaxReason     = 500
	KeysKept      = 64 // idempotency keys remembered in the order itself (its snapshot)
	MaxIDBytes    = 64
)

// KeyWindow is how long an idempotency key is honoured at least: a retry within it gets
// the first answer, never a second application. The order remembers its create key and
// its KeysKept-1 newest others itself; an older key is looked up in the order's stored
// events (Order.NeedsKeyLookup, Command.Seen) and honoured while it is younger than
// KeyWindow. After that it may be forgotten, and reusing it is a new command. 24 hours
// is the window Stripe documents for its Idempotency-Key.
const KeyWindow = 24 * time.Hour

// KeyResult remembers what one idempotency key did, so that a repeat of it returns the
// same answer and changes nothing. It is small on purpose: the order's lines, customer and
// currency never change after creation, so the answer is rebuilt from the order plus these
// fields (see Order.ViewAt).
type KeyResult struct {
	Key         string
	Command     CommandType
	Fingerprint uint64 // of the request, to refuse the same key for a different request
	Version     uint64
	Status      Status
	At          time.Time
	Deadline    time.Time
}

// Order is the state of one order, as held by its grain and saved in its snapshot.
type Order struct {
	ID              string
	Customer        string
	Status          Status
	Version         uint64 // number of events applied; 0 = does not exist
	Lines           []Line
	Currency        string
	Total           int64
	PaymentDeadline time.Time // set while PAYING
	CreatedAt       time.Time
	UpdatedAt       time.Time
	Keys            []KeyResult // oldest first, at most KeysKept
}

// Exists reports whether the order has been created.
func (o *Order) Exists() bool { return o.Version > 0 }

// FindKey returns the remembered result of an idempotency key.
func (o *Order) FindKey(key string) (KeyResult, bool) {
	for i := len(o.Keys) - 1; i >= 0; i-- {
		if o.Keys[i].Key == key {
			return o.Keys[i], true
		}
	}
	return KeyResult{}, false
}

// NeedsKeyLookup reports whether key might have been used on o although o no longer
// remembers it: o does not hold it and has had more commands than it keeps keys of. Only
// then need a host look the key up in the stored events (see Command.Seen), so the
// common case costs nothing.
func (o *Order) NeedsKeyLookup(key string) bool {
	if _, ok := o.FindKey(key); ok {
		return false
	}
	return o.Version > uint64(len(o.Keys))
}

// View is what clients see of an order at one version.
type View struct {
	ID              string    `json:"id"`
	Customer        string    `json:"customer"`
	Status          Status    `json:"status"`
	Version         uint64    `json:"version"`
	Lines           []Line    `json:"items"`
	Currency        string    `json:"currency"`
	Total           int64     `json:"total"`
	PaymentDeadline time.Time `json:"payment_deadline,omitzero"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
	Actions         []string  `json:"actions"` // commands legal in Status, as API action names
}

// View returns the client view of the order as it is now.
func (o *Order) View() View {
	return o.view(o.Status, o.Version, o.UpdatedAt, o.PaymentDeadline)
}

// ViewAt returns the view of the order as it was right after the command that produced r.
func (o *Order) ViewAt(r KeyResult) View {
	return o.view(r.Status, r.Version, r.At, r.Deadline)
}

func (o *Order) view(st Status, version uint64, at, deadline time.Time) View {
	return View{
		ID: o.ID, Customer: o.Customer, Status: st, Version: version,
		Lines: o.Lines, Currency: o.Currency, Total: o.Total,
		PaymentDeadline: deadline, CreatedAt: o.CreatedAt, UpdatedAt: at,
		Actions: ActionsFrom(st),
	}
}
