package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// hotScenario stages races on a few hot orders. Each arrival is one race on one of
// HotOrders slots: Racers requests sent at the same intended instant, either all with the
// same key (exactly one may apply, the rest are replays) or split between two commands
// with different keys that exclude each other (exactly one may win; the other gets 409).
// The races cycle an order CREATED → PAYING → CREATED (pay, fail-payment) so one order
// stays hot; when a race ends it (cancel, confirm), the slot creates a fresh order.
//
// Rounds on one slot are serialised: a race must start from a known state for "exactly
// one winner" to be judged. An arrival that finds its slot busy waits, and that wait is
// part of its measured latency, as it would be for any queued request.
type hotScenario struct {
	slots          []*hotSlot
	racersPerRound int
}

type hotSlot struct {
	lock  chan struct{} // a mutex that a cancelled wait can give up on
	order string
	owner *Account
	state string
	round int
}

// Race kinds.
const (
	raceSameKeyPay    = "same-key pay"
	raceSameKeyFail   = "same-key fail-payment"
	racePayVsCancel   = "pay vs cancel"
	raceConfirmCancel = "confirm vs cancel"
)

func (s *hotScenario) requestsPerArrival() float64 { return float64(s.racersPerRound) + 0.1 }

func (s *hotScenario) setup(ctx context.Context, r *runner) error {
	s.racersPerRound = r.cfg.Racers
	for k := range r.cfg.HotOrders {
		sl := &hotSlot{lock: make(chan struct{}, 1), owner: r.shopper(k)}
		if !s.renew(r, sl, fmt.Sprintf("setup%d", k), r.clock.Now()) {
			return fmt.Errorf("creating hot order %d failed", k)
		}
		s.slots = append(s.slots, sl)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// renew gives the slot a fresh order.
func (s *hotScenario) renew(r *runner, sl *hotSlot, tag string, intended time.Time) bool {
	resp, _ := r.exec(createCall(sl.owner, r.key("hot", tag), r.sessionRand(len(tag))), intended)
	var v orderView
	if !resp.OK() || json.Unmarshal(resp.Data, &v) != nil || v.ID == "" {
		return false
	}
	sl.order, sl.state = v.ID, v.Status
	return true
}

func (s *hotScenario) arrive(ctx context.Context, r *runner, i int, intended time.Time) {
	sl := s.slots[i%len(s.slots)]
	select {
	case sl.lock <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-sl.lock }()
	sl.round++
	id := r.key("race", i)
	var a, b call
	kind := ""
	switch sl.state {
	case stateCreated:
		a = command(OpPay, sl.order, sl.owner, id+"-pay")
		kind = raceSameKeyPay
		if sl.round%4 == 0 {
			kind = racePayVsCancel
			b = command(OpCancel, sl.order, sl.owner, id+"-cancel")
		}
	case statePaying:
		a = command(OpFailPayment, sl.order, r.operator, id+"-fail")
		kind = raceSameKeyFail
		if sl.round%4 == 0 {
			kind = raceConfirmCancel
			a = command(OpConfirm, sl.order, r.operator, id+"-confirm")
			b = command(OpCancel, sl.order, sl.owner, id+"-cancel")
		}
	default:
		s.renew(r, sl, fmt.Sprint(i), intended)
		return
	}
	race := Race{ID: id, Kind: kind, OrderID: sl.order, Keys: []string{a.key}}
	if b.key != "" {
		race.Keys = append(race.Keys, b.key)
	}
	r.addRace(race)

	racers := r.cfg.Racers
	results := make([]Response, racers)
	var wg sync.WaitGroup
	for n := range racers {
		c := a
		if b.key != "" && n%2 == 1 {
			c = b
		}
		c.race, c.expect409 = id, b.key != ""
		wg.Go(func() { results[n], _ = r.exec(c, intended) })
	}
	wg.Wait()

	sl.state = ""
	for _, res := range results {
		var v orderView
		if res.OK() && json.Unmarshal(res.Data, &v) == nil {
			sl.state = v.Status
			break
		}
	}
	if sl.state == "" {
		// Nobody won visibly (all failed): ask the order where it is.
		res, _ := r.exec(call{op: OpGet, order: sl.order, as: r.operator, method: http.MethodGet, path: "/api/v1/orders/" + sl.order}, r.clock.Now())
		var v orderView
		if res.OK() && json.Unmarshal(res.Data, &v) == nil {
			sl.state = v.Status
		}
	}
}
