package bench

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
)

// Event is one row of an order's history as GET /api/v1/orders/{id}/events returns it.
type Event struct {
	Version        int64  `json:"version"`
	Type           string `json:"type"`
	From           string `json:"from"`
	To             string `json:"to"`
	IdempotencyKey string `json:"idempotency_key"`
	By             string `json:"by,omitempty"` // who: a user, or the system's "payment-provider", "fulfilment", ...
}

// Race is one contest the hot scenario staged on OrderID: the commands sent with Keys.
// However many requests carried one key, it is applied at most once. When Exclusive, the
// keys' commands exclude each other (confirm vs cancel on a PAYING order: whichever
// applies first makes the other illegal), so at most one key may be applied at all. A
// non-exclusive race (pay vs cancel on a CREATED order: cancel is legal after pay too) may
// apply both, in an order the state machine allows, which the history check verifies.
//
// A race against a timer (confirm vs expiry) names the event the timer produces (Timer,
// e.g. PaymentExpired) and the key of the command that armed it (After, the pay): no
// client request carries the timer's outcome, so the checker reads it from the history.
// Its outcomes are the events after After's event (up to the next event of After's type)
// that carry one of Keys or are of type Timer; an exclusive one allows exactly one. Each
// racer's answer must agree: 2xx means its key won, 409 means the timer did.
type Race struct {
	ID        string   `json:"id"`
	Kind      string   `json:"kind"`
	OrderID   string   `json:"order_id"`
	Keys      []string `json:"keys"`
	Exclusive bool     `json:"exclusive"`
	After     string   `json:"after,omitempty"` // timer races: key of the command that armed the timer
	Timer     string   `json:"timer,omitempty"` // timer races: the event type the timer produces
}

// Violation kinds the checker reports.
const (
	ViolationLostAck        = "lost-ack"           // an acknowledged command has no event
	ViolationAckMismatch    = "ack-mismatch"       // its event differs from what was acknowledged
	ViolationVersionGap     = "version-gap"        // versions are not 1..n
	ViolationIllegal        = "illegal-transition" // an event the table does not allow there
	ViolationDuplicateKey   = "duplicate-key"      // one idempotency key applied twice
	ViolationRaceWinners    = "race-winners"       // more than one outcome of a race won
	ViolationRaceAnswer     = "race-answer"        // a racer's answer disagrees with the history's winner
	ViolationMissingHistory = "missing-history"    // the history of a touched order could not be read
)

// Violation is one thing the checker found wrong.
type Violation struct {
	Kind    string `json:"kind"`
	OrderID string `json:"order_id"`
	Detail  string `json:"detail"`
}

// RaceStats counts races of one kind by how many outcomes won.
type RaceStats struct {
	Kind     string `json:"kind"`
	Races    int    `json:"races"`
	OneWin   int    `json:"one_winner"`
	NoWin    int    `json:"no_winner"`           // every racer failed before applying: allowed
	Serial   int    `json:"both_applied"`        // non-exclusive race: both applied, one after the other
	MultiWin int    `json:"multiple_winners"`    // exclusive race with several winners: a violation
	TimerWin int    `json:"timer_won,omitempty"` // of OneWin, races the timer won (confirm vs expiry)
}

// CheckResult is the verdict over one run.
type CheckResult struct {
	Pass       bool           `json:"pass"`
	Orders     int            `json:"orders"`
	Events     int            `json:"events"`
	Acked      int            `json:"acked"`    // acknowledged commands checked
	Verified   int            `json:"verified"` // of those, found at the acknowledged version
	Counts     map[string]int `json:"violations_by_kind"`
	Violations []Violation    `json:"violations"` // the first maxViolations
	Races      []RaceStats    `json:"races,omitempty"`
	// Stock is the stock check of a flash run (stockcheck.go); its violations are
	// counted above too.
	Stock *StockCheckResult `json:"stock,omitempty"`
	// Fulfilment is the fulfilment check of a --provider run (fulfilcheck.go); its
	// violations are counted above too.
	Fulfilment *FulfilmentCheckResult `json:"fulfilment,omitempty"`
}

const maxViolations = 50

// Check verifies a run from the harness's own log (acks) and the store's event histories
// (by order id; every order the acks touch must be present). It is pure, so planted
// violations can be tested without a server.
func Check(acks []Ack, histories map[string][]Event, races []Race) CheckResult {
	res := CheckResult{Counts: map[string]int{}}
	add := func(kind, order, format string, args ...any) {
		res.Counts[kind]++
		if len(res.Violations) < maxViolations {
			res.Violations = append(res.Violations, Violation{Kind: kind, OrderID: order, Detail: fmt.Sprintf(format, args...)})
		}
	}

	for _, id := range OrdersTouched(acks) {
		if _, ok := histories[id]; !ok {
			add(ViolationMissingHistory, id, "no event history for an order the run touched")
		}
	}
	ids := make([]string, 0, len(histories))
	for id := range histories {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		checkHistory(id, histories[id], add)
		res.Orders++
		res.Events += len(histories[id])
	}

	for _, a := range acks {
		if !a.OK() || a.OrderID == "" {
			continue
		}
		want, isCommand := eventForOp(a.Op)
		if !isCommand {
			continue // reads change nothing
		}
		res.Acked++
		h, ok := histories[a.OrderID]
		if !ok {
			continue // reported as missing history above
		}
		e, found := eventWithKey(h, a.Key)
		if found && a.Op == OpCreate && e.To == stateReserving && int(e.Version) < len(h) {
			// A create is answered once its stock is reserved: by the event after its own.
			e = h[e.Version]
			if e.Type != "StockReserved" {
				e.Type = "OrderCreated then " + e.Type
			} else {
				e.Type = "OrderCreated"
			}
		}
		switch {
		case !found:
			add(ViolationLostAck, a.OrderID, "%s key %q acknowledged at version %d has no event", a.Op, a.Key, a.Version)
		case e.Version != a.Version || e.Type != want || (a.State != "" && e.To != a.State):
			add(ViolationAckMismatch, a.OrderID, "%s key %q acknowledged as v%d %s, stored as v%d %s -> %s",
				a.Op, a.Key, a.Version, a.State, e.Version, e.Type, e.To)
		default:
			res.Verified++
		}
	}

	res.Races = checkRaces(acks, histories, races, add)
	res.Pass = len(res.Counts) == 0
	return res
}

// checkHistory verifies versions 1..n, legal transitions and unique keys of one order.
func checkHistory(id string, h []Event, add func(kind, order, format string, args ...any)) {
	state := stateNone
	keys := map[string]int64{}
	for i, e := range h {
		if e.Version != int64(i+1) {
			add(ViolationVersionGap, id, "event %d has version %d, want %d", i+1, e.Version, i+1)
		}
		to, ok := legal(state, e.Type)
		if !ok {
			add(ViolationIllegal, id, "v%d %s is not allowed in %s", e.Version, e.Type, describeState(state))
		} else if e.To != "" && e.To != to {
			add(ViolationIllegal, id, "v%d %s leads to %s, the table says %s", e.Version, e.Type, e.To, to)
		}
		if ok {
			state = to
		}
		if e.IdempotencyKey == "" {
			continue
		}
		if first, dup := keys[e.IdempotencyKey]; dup {
			add(ViolationDuplicateKey, id, "key %q applied at v%d and v%d", e.IdempotencyKey, first, e.Version)
			continue
		}
		keys[e.IdempotencyKey] = e.Version
	}
}

func checkRaces(acks []Ack, histories map[string][]Event, races []Race, add func(kind, order, format string, args ...any)) []RaceStats {
	if len(races) == 0 {
		return nil
	}
	ackedKeys := map[string]map[string]bool{} // race id -> keys acknowledged
	raceAcks := map[string][]Ack{}            // race id -> every answer its racers got
	for _, a := range acks {
		if a.Race == "" {
			continue
		}
		raceAcks[a.Race] = append(raceAcks[a.Race], a)
		if a.OK() {
			if ackedKeys[a.Race] == nil {
				ackedKeys[a.Race] = map[string]bool{}
			}
			ackedKeys[a.Race][a.Key] = true
		}
	}
	byKind := map[string]*RaceStats{}
	var kinds []string
	for _, r := range races {
		st := byKind[r.Kind]
		if st == nil {
			st = &RaceStats{Kind: r.Kind}
			byKind[r.Kind] = st
			kinds = append(kinds, r.Kind)
		}
		st.Races++
		var won []string
		if r.Timer != "" {
			won = checkTimerRace(r, histories[r.OrderID], raceAcks[r.ID], add)
		} else {
			for _, e := range histories[r.OrderID] {
				for _, k := range r.Keys {
					if e.IdempotencyKey == k {
						won = append(won, k)
					}
				}
			}
		}
		switch len(won) {
		case 0:
			st.NoWin++
		case 1:
			st.OneWin++
			if r.Timer != "" && won[0] == r.Timer {
				st.TimerWin++
			}
		default:
			if !r.Exclusive {
				st.Serial++
				break
			}
			st.MultiWin++
			add(ViolationRaceWinners, r.OrderID, "race %s (%s): %d outcomes applied: %s", r.ID, r.Kind, len(won), strings.Join(won, ", "))
		}
		if n := len(ackedKeys[r.ID]); n > 1 && r.Exclusive {
			add(ViolationRaceWinners, r.OrderID, "race %s (%s): %d different keys acknowledged", r.ID, r.Kind, n)
		}
	}
	sort.Strings(kinds)
	out := make([]RaceStats, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, *byKind[k])
	}
	return out
}

// checkTimerRace returns the outcomes of a race against a timer (its keys, or r.Timer for
// the timer's event) found in h after the event of r.After, and reports racers whose
// answer disagrees with them: a 2xx must be its key's event at the acknowledged version,
// a 409 needs the timer's event in the history.
func checkTimerRace(r Race, h []Event, answers []Ack, add func(kind, order, format string, args ...any)) []string {
	start := -1
	for i, e := range h {
		if r.After != "" && e.IdempotencyKey == r.After {
			start = i
			break
		}
	}
	if start < 0 {
		// The command that armed the timer is not in the history (a lost ack, reported
		// by the ack check, or never applied): there was no race to win.
		return nil
	}
	var won []string
	timerWon := false
	winner := map[string]Event{}
	for _, e := range h[start+1:] {
		if e.Type == h[start].Type {
			break // armed again: a later round, not this race
		}
		if e.Type == r.Timer {
			won = append(won, r.Timer)
			timerWon = true
			continue
		}
		if slices.Contains(r.Keys, e.IdempotencyKey) {
			won = append(won, e.IdempotencyKey)
			winner[e.IdempotencyKey] = e
		}
	}
	for _, a := range answers {
		if !slices.Contains(r.Keys, a.Key) {
			continue
		}
		switch {
		case a.OK():
			e, ok := winner[a.Key]
			if !ok || e.Version != a.Version {
				add(ViolationRaceAnswer, r.OrderID, "race %s (%s): %s key %q acknowledged at v%d, but the history after %q has %s",
					r.ID, r.Kind, a.Op, a.Key, a.Version, r.After, describeOutcomes(won))
			}
		case a.HTTP == http.StatusConflict && !timerWon:
			add(ViolationRaceAnswer, r.OrderID, "race %s (%s): %s key %q refused with 409, but the history after %q has %s",
				r.ID, r.Kind, a.Op, a.Key, r.After, describeOutcomes(won))
		}
	}
	return won
}

func describeOutcomes(won []string) string {
	if len(won) == 0 {
		return "no outcome"
	}
	return strings.Join(won, ", ")
}

func eventWithKey(h []Event, key string) (Event, bool) {
	for _, e := range h {
		if e.IdempotencyKey == key {
			return e, true
		}
	}
	return Event{}, false
}

func describeState(s string) string {
	if s == stateNone {
		return "no order"
	}
	return s
}

// Summary is the one-line verdict: PASS or FAIL with counts.
func (r CheckResult) Summary() string {
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	s := fmt.Sprintf("%s: %d orders, %d events, %d/%d acknowledged commands verified", verdict, r.Orders, r.Events, r.Verified, r.Acked)
	if len(r.Counts) > 0 {
		kinds := make([]string, 0, len(r.Counts))
		for k, n := range r.Counts {
			kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
		}
		sort.Strings(kinds)
		s += "; violations: " + strings.Join(kinds, " ")
	}
	return s
}
