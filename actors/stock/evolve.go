package stock

// Evolve returns the stock after event e. It is pure: s is not modified (its holdings
// and keys are copied first), so a caller can keep s if persisting e fails. Events are
// trusted: they come from Decide or from the store.
func Evolve(s Stock, e Event) Stock {
	s = s.Clone()
	s.Apply(e)
	return s
}

// Apply applies event e to s in place, as Evolve does without the copy: the cheap way for
// a host that owns s outright (no copy of it shares its holdings map) to follow its
// events, and what DecideBatch uses between commands.
//
// Counting, read from the event's From and To: Reserved drops by the holding's Qty when
// it leaves a live state and grows by it when it enters one; OnHand drops by it when the
// holding is shipped and moves by Delta on an adjustment. Nothing else moves OnHand.
func (s *Stock) Apply(e Event) {
	s.Version, s.UpdatedAt = e.Version, e.At
	if e.Type == EvtAdjusted {
		s.OnHand += e.Delta
		s.Keys = rememberKey(s.Keys, AdjustKey{Key: e.Key, Fingerprint: e.Fingerprint, Version: e.Version, OnHand: s.OnHand, At: e.At})
		return
	}
	if e.From.Live() {
		s.Reserved -= e.Qty
	}
	if e.To.Live() {
		s.Reserved += e.Qty
	}
	if e.To == HoldShipped && e.From != HoldShipped {
		s.OnHand -= e.Qty
	}
	if s.Holdings == nil {
		s.Holdings = map[string]Holding{}
	}
	s.Holdings[e.OrderID] = Holding{Qty: e.Qty, State: e.To, Version: e.Version}
}

// rememberKey returns a new slice: keys plus k, with at most KeysKept entries, the oldest
// dropped first.
func rememberKey(keys []AdjustKey, k AdjustKey) []AdjustKey {
	rest := keys[max(0, len(keys)+1-KeysKept):]
	out := make([]AdjustKey, 0, len(rest)+1)
	return append(append(out, rest...), k)
}
