package order

import (
	"crypto/sha256"
	"encoding/base32"
	"slices"
	"time"
)

// Command asks an order to change. Time comes in with the command (At), so decide stays
// pure; the grain stamps At from its clock.
type Command struct {
	Type    CommandType
	OrderID string
	Key     string // idempotency key chosen by the client
	By      Principal
	At      time.Time

	Lines    []Line // Create: priced lines (prices come from the catalog, never the client)
	Currency string // Create

	PaymentTimeout time.Duration // SubmitPayment: how long the payment may take
	// OrderTimeout (ConfirmStock): how long after its creation an unpaid order stays
	// open; it closes (ExpireOrder) at CreatedAt plus this.
	OrderTimeout time.Duration
	Reason       string // optional, for FailPayment, Cancel, Refund

	// Seen is what Key did to this order when the order no longer remembers it itself
	// (Order.NeedsKeyLookup): the host looks the key up in the order's stored events
	// and passes the result in, so Decide stays pure. nil when the key was not found or
	// not looked up. Decide honours it for KeyWindow after the command it records.
	Seen *KeyResult
}

// Event is one accepted change to an order. Version numbers run 1, 2, 3, ... per order.
type Event struct {
	Type        EventType
	OrderID     string
	Version     uint64
	From, To    Status
	At          time.Time
	Key         string
	By          string
	Fingerprint uint64

	// Payload: set only by the events that carry it.
	Customer        string    // OrderCreated
	Lines           []Line    // OrderCreated
	Currency        string    // OrderCreated
	Total           int64     // OrderCreated
	PaymentDeadline time.Time // PaymentSubmitted
	ExpiresAt       time.Time // StockReserved
	Reason          string    // for OrderRejected: the out-of-stock message naming the sku
}

// Decision is the outcome of Decide: either new events to persist and apply, or, when the
// idempotency key was seen before, the remembered result and no events.
type Decision struct {
	Events []Event
	Replay *KeyResult
}

// Decide checks command c against order o and returns what happens. It is pure: no clock,
// no I/O, no mutation of o. Errors are *Error with a stable code, checked in this order:
// malformed command (400), role not allowed (403), unknown or invisible order (404),
// idempotency key reused for another request (422), illegal transition (409), invalid
// content (422).
func Decide(o *Order, c Command) (Decision, error) {
	if err := CheckCommand(c); err != nil {
		return Decision{}, err
	}
	t, ok := TransitionFor(c.Type)
	if !ok {
		return Decision{}, Errorf(CodeInvalidRequest, "unknown command %q", c.Type)
	}
	if c.Type == CmdSubmitPayment && c.PaymentTimeout <= 0 {
		return Decision{}, Errorf(CodeInvalidRequest, "payment timeout must be positive")
	}
	if c.Type == CmdConfirmStock && c.OrderTimeout <= 0 {
		return Decision{}, Errorf(CodeInvalidRequest, "order timeout must be positive")
	}
	if !t.Allows(c.By.Role) {
		return Decision{}, Errorf(CodeForbidden, "role %q may not %s", c.By.Role, commandVerb(c.Type))
	}
	fp := Fingerprint(c)

	if c.Type == CmdCreate {
		if o.Exists() {
			if r, seen := findKey(o, c); seen && o.Customer == c.By.Subject && r.Command == CmdCreate {
				if r.Fingerprint != fp {
					return Decision{}, Errorf(CodeKeyReused, "idempotency key %q was used for a different order", c.Key)
				}
				if o.Status == StatusRejected {
					// The first answer was the refusal; a retry gets it again.
					return Decision{}, Errorf(CodeOutOfStock, "%s", rejection(o))
				}
				return Decision{Replay: &r}, nil
			}
			return Decision{}, Errorf(CodeAlreadyExists, "order %s exists already", c.OrderID)
		}
		if err := validateReason(c.Reason); err != nil {
			return Decision{}, err
		}
		total, err := ValidateLines(c.Lines, c.Currency)
		if err != nil {
			return Decision{}, err
		}
		return Decision{Events: []Event{{
			Type: t.Event, OrderID: c.OrderID, Version: 1, From: StatusNone, To: t.To, At: c.At,
			Key: c.Key, By: c.By.Subject, Fingerprint: fp,
			Customer: c.By.Subject, Lines: slices.Clone(c.Lines), Currency: c.Currency, Total: total, Reason: c.Reason,
		}}}, nil
	}

	if !o.Exists() || !CanView(c.By, o) {
		return Decision{}, Errorf(CodeNotFound, "order %s not found", c.OrderID)
	}
	if r, seen := findKey(o, c); seen {
		if r.Command != c.Type || r.Fingerprint != fp {
			return Decision{}, Errorf(CodeKeyReused, "idempotency key %q was used for a different request on this order", c.Key)
		}
		return Decision{Replay: &r}, nil
	}
	if !t.allowsFrom(o.Status) {
		return Decision{}, Errorf(CodeIllegalTransition, "cannot %s an order that is %s", commandVerb(c.Type), o.Status)
	}
	if err := validateReason(c.Reason); err != nil {
		return Decision{}, err
	}
	e := Event{
		Type: t.Event, OrderID: o.ID, Version: o.Version + 1, From: o.Status, To: t.To, At: c.At,
		Key: c.Key, By: c.By.Subject, Fingerprint: fp, Reason: c.Reason,
	}
	switch c.Type {
	case CmdSubmitPayment:
		e.PaymentDeadline = c.At.Add(c.PaymentTimeout)
	case CmdExpirePayment:
		if c.At.Before(o.PaymentDeadline) {
			return Decision{}, Errorf(CodeIllegalTransition, "the payment deadline %s has not passed", o.PaymentDeadline.Format(time.RFC3339))
		}
	case CmdConfirmStock:
		e.ExpiresAt = o.CreatedAt.Add(c.OrderTimeout)
	case CmdExpire:
		if c.At.Before(o.ExpiresAt) {
			return Decision{}, Errorf(CodeIllegalTransition, "the order expires at %s, not yet", o.ExpiresAt.Format(time.RFC3339))
		}
	}
	return Decision{Events: []Event{e}}, nil
}

// rejection is the message a REJECTED order's create is refused with: its Rejection, or a
// general one should the RejectStock have carried none (an error's message is never empty).
func rejection(o *Order) string {
	if o.Rejection == "" {
		return "a line of the order is out of stock"
	}
	return o.Rejection
}

// findKey returns what c's key did to o: from the keys o remembers, or else from c.Seen
// if that is the same key and younger than KeyWindow at c.At.
func findKey(o *Order, c Command) (KeyResult, bool) {
	if r, ok := o.FindKey(c.Key); ok {
		return r, true
	}
	if s := c.Seen; s != nil && s.Key == c.Key && c.At.Sub(s.At) < KeyWindow {
		return *s, true
	}
	return KeyResult{}, false
}

func validateReason(r string) error {
	if len(r) > MaxReason {
		return Errorf(CodeValidation, "reason is longer than %d characters", MaxReason)
	}
	return nil
}

// ValidateLines checks an order's lines against the limits of one order and returns their
// total. Decide calls it for every Create; the edge calls it too, to refuse a bad order
// without waking a grain. A sku may appear on one line only: two lines of one sku are
// refused (CodeDuplicateItem) rather than merged, so that the order a client sees is the
// order it sent, and the per-line limit cannot be sidestepped by splitting a line.
func ValidateLines(lines []Line, currency string) (int64, error) {
	if len(lines) == 0 || len(lines) > MaxLines {
		return 0, Errorf(CodeValidation, "an order needs 1 to %d items", MaxLines)
	}
	if currency == "" {
		return 0, Errorf(CodeValidation, "currency is required")
	}
	var total, qty int64
	lineOf := make(map[string]int, len(lines))
	for i, l := range lines {
		if l.SKU == "" {
			return 0, Errorf(CodeValidation, "item %d: sku is required", i)
		}
		if l.Qty < 1 || l.Qty > MaxQty {
			return 0, Errorf(CodeValidation, "item %d: qty must be 1 to %d", i, MaxQty)
		}
		if l.UnitPrice < 0 || l.UnitPrice > MaxTotalValue {
			return 0, Errorf(CodeValidation, "item %d: unit price out of range", i)
		}
		if j, dup := lineOf[l.SKU]; dup {
			return 0, Errorf(CodeDuplicateItem, "item %d: sku %q is on item %d already; order it on one line", i, l.SKU, j)
		}
		lineOf[l.SKU] = i
		// Both sums stay far from overflow: each term is at most MaxQty*MaxTotalValue.
		qty += l.Qty
		total += l.Qty * l.UnitPrice
	}
	if qty > MaxTotalQty {
		return 0, Errorf(CodeOrderTooLarge, "the order holds %d items in all; at most %d are allowed", qty, MaxTotalQty)
	}
	if total > MaxTotalValue {
		return 0, Errorf(CodeOrderTooLarge, "the order's total is %d %s (minor units); at most %d is allowed", total, currency, MaxTotalValue)
	}
	return total, nil
}

// Fingerprint identifies a command's content and its caller, so that an idempotency key
// reused for a different request, or by another user, can be told from a genuine retry.
// The caller is the principal's subject and role, except that every System principal
// (the node's timers and sweepers) is one caller: any of them may retry the expiry
// another started.
func Fingerprint(c Command) uint64 {
	h := NewHasher()
	h.String(string(c.Type))
	if c.By.Role != RoleSystem {
		h.String(c.By.Subject)
	} else {
		h.String("")
	}
	h.String(string(c.By.Role))
	h.String(c.Currency)
	h.String(c.Reason)
	h.Int(int64(len(c.Lines)))
	for _, l := range c.Lines {
		h.String(l.SKU)
		h.Int(l.Qty)
		h.Int(l.UnitPrice)
	}
	return h.Sum()
}

// OrderIDFor derives the id of the order a customer creates with an idempotency key. A
// retried create therefore reaches the same grain and is answered from its memory, with
// no lookup table.
func OrderIDFor(customer, key string) string {
	sum := sha256.Sum256([]byte(customer + "\x00" + key))
	return "o_" + base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:15])
}

func commandVerb(c CommandType) string {
	switch c {
	case CmdSubmitPayment:
		return "pay for"
	case CmdConfirmPayment:
		return "confirm the payment of"
	case CmdFailPayment:
		return "fail the payment of"
	case CmdExpirePayment:
		return "expire the payment of"
	case CmdConfirmStock:
		return "confirm the stock of"
	case CmdRejectStock:
		return "reject for want of stock"
	case CmdExpire:
		return "expire"
	default:
		return lower(string(c))
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if 'A' <= ch && ch <= 'Z' {
			b[i] = ch + 'a' - 'A'
		}
	}
	return string(b)
}
