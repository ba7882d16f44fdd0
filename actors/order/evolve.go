package order

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
	o.Status = e.To
	o.Version = e.Version
	o.UpdatedAt = e.At
	o.PaymentDeadline = e.PaymentDeadline // zero except while PAYING
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
