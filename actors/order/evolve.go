package order

import "slices"

// Evolve returns the order after event e. It is pure: o is not modified (slices are
// copied, never appended to in place), so a caller can keep o if persisting e fails.
func Evolve(o Order, e Event) Order {
	if e.Type == EvtCreated {
		o.ID = e.OrderID
		o.Customer = e.Customer
		o.Lines = e.Lines
		o.Currency = e.Currency
		o.Total = e.Total
		o.CreatedAt = e.At
	}
	// A status that moves the same stock as the one before it (SHIPPED -> DELIVERED) finds
	// its stock already where it belongs if the stock had followed the old status: the
	// order follows at once, with no stock call and no second write.
	followed := o.StockSynced() && o.Status != StatusReserving && len(StockCommands(e.To)) > 0 &&
		slices.Equal(StockCommands(o.Status), StockCommands(e.To))
	o.Status = e.To
	o.Version = e.Version
	if followed {
		o.StockVersion = e.Version
	}
	o.UpdatedAt = e.At
	o.PaymentDeadline = e.PaymentDeadline // zero except while PAYING
	switch e.Type {
	case EvtStockReserved:
		// The create's answer is the order as its reservation left it: a retried create
		// gets this version, as the first one did.
		o.ExpiresAt, o.StockVersion = e.ExpiresAt, e.Version
		o.Keys = answerCreate(o.Keys, e)
	case EvtRejected:
		// The saga released what it had reserved before recording the refusal.
		o.Rejection, o.StockVersion = e.Reason, e.Version
	}
	cmd := CommandType("")
	if t, ok := TransitionForEvent(e.Type); ok {
		cmd = t.Command
	}
	o.Keys = rememberKey(o.Keys, KeyResult{
		Key: e.Key, Command: cmd, Fingerprint: e.Fingerprint,
		Version: e.Version, Status: e.To, At: e.At, Deadline: e.PaymentDeadline,
	})
	return o
}

// rememberKey returns a new slice: keys plus r, with at most KeysKept entries. The oldest
// entries go first, except the Create key, which is kept for the life of the order so a
// retried create is always recognised.
func rememberKey(keys []KeyResult, r KeyResult) []KeyResult {
	out := make([]KeyResult, 0, min(len(keys)+1, KeysKept))
	rest := keys
	if len(keys) > 0 && keys[0].Command == CmdCreate {
		out = append(out, keys[0])
		rest = keys[1:]
	}
	if excess := len(out) + len(rest) + 1 - KeysKept; excess > 0 {
		rest = rest[min(excess, len(rest)):]
	}
	out = append(out, rest...)
	return append(out, r)
}

// answerCreate returns keys with the Create key's result moved to event e (a new slice).
func answerCreate(keys []KeyResult, e Event) []KeyResult {
	if len(keys) == 0 || keys[0].Command != CmdCreate {
		return keys
	}
	out := slices.Clone(keys)
	out[0].Version, out[0].Status, out[0].At = e.Version, e.To, e.At
	return out
}
