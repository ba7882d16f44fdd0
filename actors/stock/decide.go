package stock

import (
	"github.com/ordermesh/ordermesh/actors/order"
)

// Decide checks command c against stock s and returns what happens. It is pure: no clock,
// no I/O, no mutation of s. Errors are *order.Error with a stable code; nothing changes
// and nothing is recorded when one comes back. They are checked in this order:
//
//   - 400 order.CodeInvalidRequest: unknown command, a command for another sku, a missing
//     or unusable order id (holding commands) or key (Adjust), text a store cannot keep;
//   - 403 order.CodeForbidden: the caller's role may not issue c (see Roles);
//   - 422 order.CodeValidation: Reserve's Qty outside 1..order.MaxQty, Adjust's Delta 0 or
//     beyond ±MaxOnHand, a reason over order.MaxReason, or an Adjust that would put more
//     than MaxOnHand units on hand;
//   - 422 order.CodeKeyReused: an Adjust key used before for a different request, or a
//     Reserve for an order that holds another quantity already;
//   - 409 order.CodeIllegalTransition: the holding's state does not allow c (see Table);
//   - 409 order.CodeOutOfStock: an Adjust that would leave fewer units on hand than are
//     reserved (or fewer than 0), naming the sku.
//
// A Reserve refused for want of stock is not an error of Decide: it is recorded (an
// EvtReserveRefused event) and reported in Decision.Refused (order.CodeOutOfStock,
// naming the sku), so that a repeat of it is refused alike even after stock comes in.
func Decide(s *Stock, c Command) (Decision, error) {
	if err := checkCommand(s, c); err != nil {
		return Decision{}, err
	}
	if !Allows(c.Type, c.By.Role) {
		return Decision{}, order.Errorf(order.CodeForbidden, "role %q may not %s stock", c.By.Role, verb(c.Type))
	}
	if len(c.Reason) > order.MaxReason {
		return Decision{}, order.Errorf(order.CodeValidation, "reason is longer than %d characters", order.MaxReason)
	}
	if c.Type == CmdAdjust {
		return decideAdjust(s, c)
	}
	if c.Type == CmdReserve && (c.Qty < 1 || c.Qty > order.MaxQty) {
		return Decision{}, order.Errorf(order.CodeValidation, "qty must be 1 to %d", order.MaxQty)
	}
	h := s.Holding(c.OrderID)
	if c.Type == CmdReserve && h.State != HoldNone && h.Qty != c.Qty {
		return Decision{}, order.Errorf(order.CodeKeyReused, "order %s reserved %d of sku %s already, not %d", c.OrderID, h.Qty, s.SKU, c.Qty)
	}
	r := RuleFor(h.State, c.Type)
	switch r.Effect {
	case Done:
		d := Decision{Replay: true}
		if c.Type == CmdReserve && h.State == HoldRefused {
			d.Refused = outOfStock(s.SKU, h.Qty)
		}
		return d, nil
	case Illegal:
		return Decision{}, order.Errorf(order.CodeIllegalTransition, "cannot %s stock of sku %s for order %s: its holding is %s",
			verb(c.Type), s.SKU, c.OrderID, holdingName(h.State))
	}
	e := Event{
		Type: r.Event, SKU: s.SKU, Version: s.Version + 1, At: c.At, By: c.By.Subject, Reason: c.Reason,
		OrderID: c.OrderID, Qty: h.Qty, From: h.State, To: r.To,
	}
	if c.Type == CmdReserve {
		e.Qty = c.Qty
		if s.Available() < c.Qty {
			e.Type, e.To = EvtReserveRefused, HoldRefused
			return Decision{Events: []Event{e}, Refused: outOfStock(s.SKU, c.Qty)}, nil
		}
	}
	return Decision{Events: []Event{e}}, nil
}

func decideAdjust(s *Stock, c Command) (Decision, error) {
	if c.Delta == 0 || c.Delta > MaxOnHand || c.Delta < -MaxOnHand {
		return Decision{}, order.Errorf(order.CodeValidation, "an adjustment must change the units on hand by 1 to %d either way", MaxOnHand)
	}
	fp := Fingerprint(c)
	if k, seen := s.FindKey(c.Key); seen {
		if k.Fingerprint != fp {
			return Decision{}, order.Errorf(order.CodeKeyReused, "idempotency key %q was used for a different adjustment of sku %s", c.Key, s.SKU)
		}
		return Decision{Replay: true}, nil
	}
	after := s.OnHand + c.Delta
	if after > MaxOnHand {
		return Decision{}, order.Errorf(order.CodeValidation, "sku %s may have at most %d units on hand", s.SKU, MaxOnHand)
	}
	if after < s.Reserved {
		return Decision{}, order.Errorf(order.CodeOutOfStock, "out of stock: sku %s has %d units available, cannot remove %d",
			s.SKU, s.Available(), -c.Delta)
	}
	return Decision{Events: []Event{{
		Type: EvtAdjusted, SKU: s.SKU, Version: s.Version + 1, At: c.At, By: c.By.Subject, Reason: c.Reason,
		Delta: c.Delta, Key: c.Key, Fingerprint: fp,
	}}}, nil
}

func checkCommand(s *Stock, c Command) error {
	if Roles(c.Type) == nil {
		return order.Errorf(order.CodeInvalidRequest, "unknown command %q", c.Type)
	}
	if c.SKU != s.SKU {
		return order.Errorf(order.CodeInvalidRequest, "a command for sku %q sent to sku %q", c.SKU, s.SKU)
	}
	if c.Type == CmdAdjust {
		if err := order.CheckKey(c.Key); err != nil {
			return err
		}
	} else if c.OrderID == "" || len(c.OrderID) > order.MaxIDBytes || !order.ValidText(c.OrderID) {
		return order.Errorf(order.CodeInvalidRequest, "an order id of 1 to %d bytes of text is required", order.MaxIDBytes)
	}
	if err := order.CheckText("the caller's name", c.By.Subject); err != nil {
		return err
	}
	return order.CheckText("reason", c.Reason)
}

func outOfStock(sku string, qty int64) *order.Error {
	return order.Errorf(order.CodeOutOfStock, "out of stock: sku %s has fewer than %d available", sku, qty)
}

// Fingerprint identifies an Adjust's content and its caller (subject and role), so that a
// key reused for a different adjustment, or by another operator, can be told from a
// genuine retry.
func Fingerprint(c Command) uint64 {
	h := order.NewHasher()
	h.String(string(c.Type))
	h.String(c.By.Subject)
	h.String(string(c.By.Role))
	h.String(c.Reason)
	h.Int(c.Delta)
	return h.Sum()
}

// Outcome is the outcome of one command of a batch: its Decision, or the error Decide
// returned for it.
type Outcome struct {
	Decision
	Err error
}

// Error returns the command's refusal: Decide's error, else the out-of-stock refusal of a
// Reserve, else nil.
func (r Outcome) Error() error {
	if r.Err != nil {
		return r.Err
	}
	return r.Decision.Err()
}

// Batch is the outcome of DecideBatch.
type Batch struct {
	Results []Outcome // one per command, in order
	Events  []Event   // every event of the batch, in order, numbered on from the input's version
	// State is the stock after all of them, except that its Holdings are only those of
	// the orders the commands name (each as the batch leaves it): the rest are the
	// input's, untouched. ApplyTo makes the input this state.
	State Stock
}

// ApplyTo makes s, the stock the batch was decided against, the stock after the batch:
// its counters, version and keys, and the holdings the batch touched. It writes s's
// holdings map in place, so it costs the batch's size, not the sku's.
func (b *Batch) ApplyTo(s *Stock) {
	holdings := s.Holdings
	for id, h := range b.State.Holdings {
		if holdings == nil {
			holdings = make(map[string]Holding, len(b.State.Holdings))
		}
		holdings[id] = h
	}
	*s = b.State
	s.Holdings = holdings
}

// DecideBatch decides cmds one after the other, each against the stock as the ones
// before it left it, as if each were decided and its events applied before the next
// came in: the same results and events as calling Decide and Apply in a loop, and, once
// applied with Batch.ApplyTo, the same state. s is not modified, and not copied either:
// Decide reads only the holding of its command's order, so the batch works on a copy of
// just the holdings its commands name (a hot sku holds hundreds of thousands). A host
// persists Events in one write and then applies the batch; if the write fails it keeps s
// and answers every command with the failure. Who may do what and which errors come back
// is as for Decide, command by command; one command's refusal does not affect the others.
func DecideBatch(s Stock, cmds []Command) Batch {
	work := s
	work.Holdings = make(map[string]Holding, len(cmds))
	for _, c := range cmds {
		if h, ok := s.Holdings[c.OrderID]; ok {
			work.Holdings[c.OrderID] = h
		}
	}
	b := Batch{Results: make([]Outcome, len(cmds)), State: work}
	for i, c := range cmds {
		d, err := Decide(&b.State, c)
		b.Results[i] = Outcome{Decision: d, Err: err}
		for _, e := range d.Events {
			b.State.Apply(e)
			b.Events = append(b.Events, e)
		}
	}
	return b
}

func verb(c CommandType) string {
	switch c {
	case CmdReserve:
		return "reserve"
	case CmdRelease:
		return "release"
	case CmdSell:
		return "sell"
	case CmdShip:
		return "ship"
	case CmdRefund:
		return "refund"
	case CmdAdjust:
		return "adjust"
	}
	return string(c)
}

func holdingName(h HoldingState) string {
	if h == HoldNone {
		return "none"
	}
	return string(h)
}
