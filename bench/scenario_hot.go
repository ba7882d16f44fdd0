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
// with different keys: confirm vs cancel and confirm vs fail-payment exclude each other
// (exactly one may win; the other gets 409); pay vs cancel does not (cancel is legal in
// PAYING too), so there either cancel wins alone or both apply, pay first.
// The races cycle an order CREATED → PAYING → CREATED (pay, fail-payment) so one order
// stays hot; when a race ends it (cancel, confirm), the slot creates a fresh order.
//
// Rounds on one slot are serialised: a race must start from a known state for "exactly
// one winner" to be judged. An arrival that finds its slot busy waits, and that wait is
// part of its measured latency, as it would be for any queued request.
//
// With PaymentTimeout set, every expiryEvery-th arrival races confirm-payment against the
// payment's expiry instead: it creates and pays an order of its own (no slot, so nobody
// queues behind it), waits on its own goroutine until the payment deadline the server
// answered (± a little jitter), then confirms. The node's timers close the order at the
// deadline (its sweeper within a second after), so exactly one of PaymentConfirmed and
// PaymentExpired may follow PaymentSubmitted, and the confirm's answer must agree.
type hotScenario struct {
	slots          []*hotSlot
	racersPerRound int
	expiryEvery    int           // 0: no confirm-vs-expiry races
	paymentTimeout time.Duration // the system under test's --payment-timeout
}

// hotExpiryEvery is how many arrivals make one confirm-vs-expiry race, so that those (three
// requests each, mostly waiting) stay a small part of the load.
const hotExpiryEvery = 20

// maxExpiryJitter bounds how far from the deadline the confirm is aimed.
const maxExpiryJitter = 100 * time.Millisecond

type hotSlot struct {
	lock  chan struct{} // a mutex that a cancelled wait can give up on
	order string
	owner *Account
	state string
}

// Race kinds.
const (
	raceSameKeyPay    = "same-key pay"
	raceSameKeyFail   = "same-key fail-payment"
	racePayVsCancel   = "pay vs cancel"
	raceConfirmCancel = "confirm vs cancel"
	raceConfirmFail   = "confirm vs fail-payment"
	raceConfirmExpiry = "confirm vs expiry"
)

func (s *hotScenario) requestsPerArrival() float64 {
	slot := float64(s.racersPerRound) + 0.3 // + the occasional create
	if s.expiryEvery == 0 {
		return slot
	}
	n := float64(s.expiryEvery)
	return slot*(n-1)/n + 3/n // create, pay, confirm
}

func (s *hotScenario) setup(ctx context.Context, r *runner) error {
	s.racersPerRound = r.cfg.Racers
	if r.cfg.PaymentTimeout > 0 {
		s.expiryEvery, s.paymentTimeout = hotExpiryEvery, r.cfg.PaymentTimeout
	}
	for k := range r.cfg.HotOrders {
		sl := &hotSlot{lock: make(chan struct{}, 1), owner: r.shopper(k)}
		if !s.renew(r, sl, fmt.Sprintf("setup%d", k), r.clock.Now(), nil) {
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
// When done is not nil it receives the completion time of the create.
func (s *hotScenario) renew(r *runner, sl *hotSlot, tag string, intended time.Time, done *time.Time) bool {
	resp, t := r.exec(createCall(sl.owner, r.key("hot", tag), r.sessionRand(len(tag))), intended)
	var v orderView
	if !resp.OK() || json.Unmarshal(resp.Data, &v) != nil || v.ID == "" {
		return false
	}
	sl.order, sl.state = v.ID, v.Status
	if done != nil {
		*done = t
	}
	return true
}

func (s *hotScenario) arrive(ctx context.Context, r *runner, i int, intended time.Time) {
	if s.expiryEvery > 0 && i%s.expiryEvery == s.expiryEvery-1 {
		s.raceExpiry(ctx, r, i, intended)
		return
	}
	sl := s.slots[i%len(s.slots)]
	select {
	case sl.lock <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-sl.lock }()
	if sl.state != stateCreated && sl.state != statePaying {
		// The last race ended this order: start a fresh one and race on it at once, so
		// every arrival is a race and the request rate stays near Rate.
		done := intended
		if !s.renew(r, sl, fmt.Sprint(i), intended, &done) {
			return
		}
		intended = done
	}
	id := r.key("race", i)
	rng := r.sessionRand(i)
	var a, b call
	kind := ""
	switch sl.state {
	case stateCreated:
		a = command(OpPay, sl.order, sl.owner, id+"-pay")
		kind = raceSameKeyPay
		if rng.IntN(4) == 0 {
			kind = racePayVsCancel
			b = command(OpCancel, sl.order, sl.owner, id+"-cancel")
		}
	case statePaying:
		a = command(OpFailPayment, sl.order, r.operator, id+"-fail")
		kind = raceSameKeyFail
		switch rng.IntN(6) {
		case 0:
			kind = raceConfirmCancel
			a = command(OpConfirm, sl.order, r.operator, id+"-confirm")
			b = command(OpCancel, sl.order, sl.owner, id+"-cancel")
		case 3:
			kind = raceConfirmFail
			a = command(OpConfirm, sl.order, r.operator, id+"-confirm")
			b = command(OpFailPayment, sl.order, r.operator, id+"-fail")
		}
	}
	race := Race{ID: id, Kind: kind, OrderID: sl.order, Keys: []string{a.key}, Exclusive: kind != racePayVsCancel}
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

	// The latest acknowledged version tells where the order is now: when both commands
	// of a non-exclusive race applied, the later one's answer is the current state.
	sl.state = ""
	var latest int64
	for _, res := range results {
		var v orderView
		if res.OK() && json.Unmarshal(res.Data, &v) == nil && v.Version > latest {
			sl.state, latest = v.Status, v.Version
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

// raceExpiry is one confirm-vs-expiry race on a fresh order: create, pay, then, at the
// payment deadline ± jitter, confirm. It runs on the arrival's own goroutine, so its wait
// holds up no other arrival; if the run ends first it gives up without a race.
func (s *hotScenario) raceExpiry(ctx context.Context, r *runner, i int, intended time.Time) {
	owner := r.shopper(i)
	id := r.key("race", i)
	rng := r.sessionRand(i)
	resp, t := r.exec(createCall(owner, id+"-create", rng), intended)
	var v orderView
	if !resp.OK() || json.Unmarshal(resp.Data, &v) != nil || v.ID == "" || ctx.Err() != nil {
		return
	}
	order := v.ID
	payKey := id + "-pay"
	resp, t = r.exec(command(OpPay, order, owner, payKey), t)
	v = orderView{}
	if !resp.OK() || json.Unmarshal(resp.Data, &v) != nil || v.Status != statePaying {
		return
	}
	deadline := v.PaymentDeadline
	if deadline.IsZero() {
		deadline = t.Add(s.paymentTimeout) // no deadline in the answer: the latest it can be
	}
	if d := deadline.Sub(t); d > 2*s.paymentTimeout+time.Second || d < -time.Second {
		// The server's timeout is not the one we were told (or the clocks disagree):
		// waiting for this deadline would not race anything.
		return
	}
	jitter := min(maxExpiryJitter, s.paymentTimeout/4)
	at := deadline.Add(time.Duration(rng.Int64N(int64(2*jitter)+1)) - jitter)
	if r.clock.SleepUntil(ctx, at) != nil {
		return
	}
	confirm := command(OpConfirm, order, r.operator, id+"-confirm")
	confirm.race, confirm.expect409 = id, true
	r.addRace(Race{ID: id, Kind: raceConfirmExpiry, OrderID: order, Keys: []string{confirm.key},
		Exclusive: true, After: payKey, Timer: "PaymentExpired"})
	r.exec(confirm, at)
}
