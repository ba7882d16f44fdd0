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
	StatusNone Status = "" // the order does not exist yet
	// StatusReserving: the order was received and its stock is being reserved, line by
	// line. The node moves it on by itself, to CREATED or REJECTED; a client sees it only
	// while a reservation is in flight or after a node failed in the middle of one.
	StatusReserving Status = "RESERVING"
	StatusCreated   Status = "CREATED"
	StatusPaying    Status = "PAYING"
	StatusPaid      Status = "PAID"
	StatusShipped   Status = "SHIPPED"
	StatusDelivered Status = "DELIVERED"
	StatusClosed    Status = "CLOSED"
	StatusRefunded  Status = "REFUNDED"
	StatusRejected  Status = "REJECTED" // final: a line was out of stock; nothing is held
)

// Statuses lists every state an existing order can be in, in lifecycle order.
var Statuses = []Status{StatusReserving, StatusCreated, StatusPaying, StatusPaid, StatusShipped, StatusDelivered, StatusClosed, StatusRefunded, StatusRejected}

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
	// ExpiresAt is when the order closes if it is still unpaid (CREATED): set when its
	// stock is reserved, Command.OrderTimeout after it was created.
	ExpiresAt time.Time
	// Rejection says why a REJECTED order was refused (the out-of-stock message naming
	// the sku); a retried create is refused with it again.
	Rejection string
	// StockVersion is the order's version whose effect on stock (see StockCommands) is
	// known to be applied. While it is below Version the node still has to move the
	// order's holdings; the order's Deadline brings the sweeper back until it has.
	StockVersion uint64
	CreatedAt    time.Time
	UpdatedAt    time.Time
	Keys         []KeyResult // oldest first, at most KeysKept
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
	ExpiresAt       time.Time `json:"expires_at,omitzero"` // set while CREATED: when the unpaid order closes
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
	Actions         []string  `json:"actions"` // commands legal in Status, as API action names
}

// View returns the client view of the order as it is now.
func (o *Order) View() View {
	return o.view(o.Status, o.Version, o.UpdatedAt, o.PaymentDeadline)
}

// Deadline is when the node must next act on the order by itself, zero if never: while
// its stock has not followed its status (StockSynced), soon (StockRetry after its last
// change), so that a node that failed in between is covered by another, and so too while
// the order is RESERVING, which only the saga's outcome ends; else the end of
// the payment window while PAYING and the expiry of an unpaid order while CREATED. The
// store keeps it as the order's deadline, which the sweeper pages through.
func (o *Order) Deadline() time.Time {
	switch {
	case !o.StockSynced() || o.Status == StatusReserving:
		// A reservation is never done until ConfirmStock or RejectStock says so, even
		// once the stock is recorded as reserved.
		return o.UpdatedAt.Add(StockRetry)
	case o.Status == StatusPaying:
		return o.PaymentDeadline
	case o.Status == StatusCreated:
		return o.ExpiresAt
	}
	return time.Time{}
}

// StockRetry is how long after a change an order whose stock has not followed it is
// taken up again by a sweeper (see Deadline).
const StockRetry = 10 * time.Second

// StockSynced reports whether the order's stock follows its status: the holdings of its
// lines have been moved for its current version, or its status moves none.
func (o *Order) StockSynced() bool {
	return o.StockVersion >= o.Version || (o.Status != StatusReserving && len(StockCommands(o.Status)) == 0)
}

// StockCommand names a command to the stock of one line's sku (package actors/stock);
// the names are stock's command types.
type StockCommand string

// The stock commands an order's status calls for.
const (
	StockReserve StockCommand = "Reserve"
	StockRelease StockCommand = "Release"
	StockSell    StockCommand = "Sell"
	StockShip    StockCommand = "Ship"
	StockRefund  StockCommand = "Refund"
)

// StockCommands returns what the holdings of an order's lines must be told, in order,
// once the order is in status st: each is idempotent, so a node may send them again
// after a failure. RESERVING reserves (the reservation saga, see the grain), CREATED and
// PAYING hold what was reserved, PAID sells, SHIPPED and DELIVERED ship (sold first,
// should the sale not have been recorded), CLOSED and REJECTED release, and REFUNDED
// refunds (a refund after shipping changes nothing: the goods left the warehouse).
func StockCommands(st Status) []StockCommand {
	switch st {
	case StatusReserving:
		return []StockCommand{StockReserve}
	case StatusPaid:
		return []StockCommand{StockSell}
	case StatusShipped, StatusDelivered:
		return []StockCommand{StockSell, StockShip}
	case StatusClosed, StatusRejected:
		return []StockCommand{StockRelease}
	case StatusRefunded:
		return []StockCommand{StockSell, StockRefund}
	}
	return nil
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
		ExpiresAt: expiresAt(st, o.ExpiresAt),
		Actions:   ActionsFrom(st),
	}
}

func expiresAt(st Status, t time.Time) time.Time {
	if st != StatusCreated {
		return time.Time{}
	}
	return t
}
