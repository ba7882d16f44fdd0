package bench

import (
	"testing"
)

// cleanRun is one order taken through the whole lifecycle, acknowledged and stored. The
// create is stored as OrderCreated (v1) and answered at StockReserved (v2); step i of
// steps is then version i+2.
func cleanRun() ([]Ack, map[string][]Event) {
	steps := []struct{ op, event, from, to string }{
		{OpCreate, "StockReserved", stateReserving, stateCreated},
		{OpPay, "PaymentSubmitted", stateCreated, statePaying},
		{OpFailPayment, "PaymentFailed", statePaying, stateCreated},
		{OpPay, "PaymentSubmitted", stateCreated, statePaying},
		{OpConfirm, "PaymentConfirmed", statePaying, statePaid},
		{OpShip, "OrderShipped", statePaid, stateShipped},
		{OpDeliver, "OrderDelivered", stateShipped, stateDelivered},
		{OpRefund, "OrderRefunded", stateDelivered, stateRefunded},
	}
	var acks []Ack
	h := []Event{{Version: 1, Type: "OrderCreated", To: stateReserving, IdempotencyKey: "ka"}}
	for i, s := range steps {
		key := "k" + string(rune('a'+i))
		v := int64(i + 2)
		acks = append(acks, Ack{Op: s.op, OrderID: "o1", Key: key, HTTP: 200, Version: v, State: s.to})
		if i == 0 {
			key = "reserve-stock"
		}
		h = append(h, Event{Version: v, Type: s.event, From: s.from, To: s.to, IdempotencyKey: key})
	}
	// A replay of pay answers with the original version; a refused command is no ack.
	acks = append(acks, Ack{Op: OpPay, OrderID: "o1", Key: "kb", HTTP: 200, Version: 3, State: statePaying, Replayed: true})
	acks = append(acks, Ack{Op: OpShip, OrderID: "o1", Key: "kz", HTTP: 409, Code: "40900"})
	return acks, map[string][]Event{"o1": h}
}

func TestCheckPassesACleanHistory(t *testing.T) {
	acks, hist := cleanRun()
	res := Check(acks, hist, nil)
	if !res.Pass || res.Acked != 9 || res.Verified != 9 || res.Events != 9 || res.Orders != 1 {
		t.Fatalf("clean run: %s %+v", res.Summary(), res.Violations)
	}
}

func TestCheckCatchesPlantedViolations(t *testing.T) {
	cases := []struct {
		name  string
		plant func(acks []Ack, hist map[string][]Event) ([]Ack, map[string][]Event, []Race)
		want  string
	}{
		{"lost acknowledged command", func(a []Ack, h map[string][]Event) ([]Ack, map[string][]Event, []Race) {
			h["o1"] = h["o1"][:8] // the acknowledged refund never reached the store
			return a, h, nil
		}, ViolationLostAck},
		{"skipped version", func(a []Ack, h map[string][]Event) ([]Ack, map[string][]Event, []Race) {
			for i := 6; i < len(h["o1"]); i++ {
				h["o1"][i].Version++
			}
			return a, h, nil
		}, ViolationVersionGap},
		{"illegal transition", func(a []Ack, h map[string][]Event) ([]Ack, map[string][]Event, []Race) {
			h["o1"][6], h["o1"][7] = h["o1"][7], h["o1"][6] // delivered before shipped
			h["o1"][6].Version, h["o1"][7].Version = 7, 8
			return a, h, nil
		}, ViolationIllegal},
		{"event leads elsewhere than the table says", func(a []Ack, h map[string][]Event) ([]Ack, map[string][]Event, []Race) {
			h["o1"][5].To = stateShipped
			return a, h, nil
		}, ViolationIllegal},
		{"duplicated key", func(a []Ack, h map[string][]Event) ([]Ack, map[string][]Event, []Race) {
			h["o1"][4].IdempotencyKey = "kb" // the second pay reused the first pay's key
			return a[:3], h, nil
		}, ViolationDuplicateKey},
		{"acknowledged at another version", func(a []Ack, h map[string][]Event) ([]Ack, map[string][]Event, []Race) {
			a[8].Version = 4 // the replay claims another version than the original
			return a, h, nil
		}, ViolationAckMismatch},
		{"history missing", func(a []Ack, h map[string][]Event) ([]Ack, map[string][]Event, []Race) {
			return a, map[string][]Event{}, nil
		}, ViolationMissingHistory},
		{"two winners of an exclusive race", func(a []Ack, h map[string][]Event) ([]Ack, map[string][]Event, []Race) {
			// fail-payment (v4) and confirm (v6) were racers on the same PAYING order.
			return a, h, []Race{{ID: "r1", Kind: raceConfirmFail, OrderID: "o1", Keys: []string{"kc", "ke"}, Exclusive: true}}
		}, ViolationRaceWinners},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			acks, hist, races := tc.plant(cleanRun())
			res := Check(acks, hist, races)
			if res.Pass || res.Counts[tc.want] == 0 {
				t.Fatalf("want a %s violation, got %s %+v", tc.want, res.Summary(), res.Violations)
			}
		})
	}
}

func TestCheckCountsRaceWinners(t *testing.T) {
	acks, hist := cleanRun()
	races := []Race{
		{ID: "same", Kind: raceSameKeyPay, OrderID: "o1", Keys: []string{"kb"}, Exclusive: true},
		{ID: "excl", Kind: raceConfirmCancel, OrderID: "o1", Keys: []string{"ke", "never-applied"}, Exclusive: true},
		{ID: "none", Kind: raceConfirmCancel, OrderID: "o1", Keys: []string{"x", "y"}, Exclusive: true},
		// Non-exclusive: both applied one after the other is allowed.
		{ID: "serial", Kind: racePayVsCancel, OrderID: "o1", Keys: []string{"kb", "kc"}},
	}
	res := Check(acks, hist, races)
	if !res.Pass {
		t.Fatalf("%s %+v", res.Summary(), res.Violations)
	}
	got := map[string]RaceStats{}
	for _, r := range res.Races {
		got[r.Kind] = r
	}
	if s := got[raceConfirmCancel]; s.Races != 2 || s.OneWin != 1 || s.NoWin != 1 {
		t.Fatalf("confirm vs cancel: %+v", s)
	}
	if s := got[racePayVsCancel]; s.Serial != 1 || s.MultiWin != 0 {
		t.Fatalf("pay vs cancel: %+v", s)
	}
	if s := got[raceSameKeyPay]; s.OneWin != 1 {
		t.Fatalf("same-key pay: %+v", s)
	}

	// Two different keys acknowledged in an exclusive race is a violation even if the
	// store shows one: someone was told they won who did not.
	acks = append(acks, Ack{Op: OpConfirm, OrderID: "o1", Key: "ke", HTTP: 200, Version: 6, State: statePaid, Race: "excl2"},
		Ack{Op: OpCancel, OrderID: "o1", Key: "kq", HTTP: 200, Version: 6, State: stateClosed, Race: "excl2"})
	res = Check(acks, hist, []Race{{ID: "excl2", Kind: raceConfirmCancel, OrderID: "o1", Keys: []string{"ke", "kq"}, Exclusive: true}})
	if res.Counts[ViolationRaceWinners] == 0 {
		t.Fatalf("two acknowledged winners passed: %s", res.Summary())
	}
}

// expiryRun is an order paid and then raced by a confirm against the payment's expiry:
// outcome is the event that followed PaymentSubmitted ("PaymentConfirmed" with the
// confirm's key, or "PaymentExpired" with the timer's), and the confirm's answer agrees.
func expiryRun(outcome string) ([]Ack, map[string][]Event, []Race) {
	h := []Event{
		{Version: 1, Type: "OrderCreated", To: stateReserving, IdempotencyKey: "kc"},
		{Version: 2, Type: "StockReserved", From: stateReserving, To: stateCreated, IdempotencyKey: "reserve-stock"},
		{Version: 3, Type: "PaymentSubmitted", From: stateCreated, To: statePaying, IdempotencyKey: "kp"},
	}
	acks := []Ack{
		{Op: OpCreate, OrderID: "o1", Key: "kc", HTTP: 201, Version: 2, State: stateCreated},
		{Op: OpPay, OrderID: "o1", Key: "kp", HTTP: 200, Version: 3, State: statePaying},
	}
	switch outcome {
	case "PaymentConfirmed":
		h = append(h, Event{Version: 4, Type: outcome, From: statePaying, To: statePaid, IdempotencyKey: "kx"})
		acks = append(acks, Ack{Op: OpConfirm, OrderID: "o1", Key: "kx", HTTP: 200, Version: 4, State: statePaid, Race: "r1"})
	case "PaymentExpired":
		h = append(h, Event{Version: 4, Type: outcome, From: statePaying, To: stateClosed, IdempotencyKey: "expire-1"})
		acks = append(acks, Ack{Op: OpConfirm, OrderID: "o1", Key: "kx", HTTP: 409, Code: "40900", Race: "r1"})
	}
	races := []Race{{ID: "r1", Kind: raceConfirmExpiry, OrderID: "o1", Keys: []string{"kx"}, Exclusive: true,
		After: "kp", Timer: "PaymentExpired"}}
	return acks, map[string][]Event{"o1": h}, races
}

func TestCheckConfirmVsExpiryOneWinnerPasses(t *testing.T) {
	for _, outcome := range []string{"PaymentConfirmed", "PaymentExpired"} {
		res := Check(expiryRun(outcome))
		if !res.Pass || len(res.Races) != 1 {
			t.Fatalf("%s won: %s %+v", outcome, res.Summary(), res.Violations)
		}
		rs := res.Races[0]
		wantTimer := 0
		if outcome == "PaymentExpired" {
			wantTimer = 1
		}
		if rs.Kind != raceConfirmExpiry || rs.Races != 1 || rs.OneWin != 1 || rs.TimerWin != wantTimer {
			t.Fatalf("%s won: %+v", outcome, rs)
		}
	}
	// The confirm failed (no answer) and the deadline has not been swept yet: no winner,
	// which is allowed, as for the other races.
	acks, hist, races := expiryRun("")
	acks = append(acks, Ack{Op: OpConfirm, OrderID: "o1", Key: "kx", HTTP: 0, Code: "transport", Race: "r1"})
	if res := Check(acks, hist, races); !res.Pass || res.Races[0].NoWin != 1 {
		t.Fatalf("no winner: %s %+v", res.Summary(), res.Races)
	}
	// A later round (paid again after a failed payment) does not count for this race.
	acks, hist, races = expiryRun("PaymentExpired")
	hist["o1"][3] = Event{Version: 4, Type: "PaymentFailed", From: statePaying, To: stateCreated, IdempotencyKey: "kf"}
	hist["o1"] = append(hist["o1"],
		Event{Version: 5, Type: "PaymentSubmitted", From: stateCreated, To: statePaying, IdempotencyKey: "kp2"},
		Event{Version: 6, Type: "PaymentExpired", From: statePaying, To: stateClosed, IdempotencyKey: "expire-2"})
	acks[len(acks)-1] = Ack{Op: OpConfirm, OrderID: "o1", Key: "kx", HTTP: 0, Code: "transport", Race: "r1"}
	if res := Check(acks, hist, races); !res.Pass || res.Races[0].NoWin != 1 {
		t.Fatalf("later round: %s %+v", res.Summary(), res.Races)
	}
}

func TestCheckConfirmVsExpiryCatchesViolations(t *testing.T) {
	cases := []struct {
		name  string
		plant func(acks []Ack, hist map[string][]Event) []Ack
		want  string
	}{
		{"both confirmed and expired after one payment", func(a []Ack, h map[string][]Event) []Ack {
			h["o1"] = append(h["o1"], Event{Version: 5, Type: "PaymentExpired", From: statePaid, To: stateClosed, IdempotencyKey: "expire-1"})
			return a
		}, ViolationRaceWinners},
		{"confirm acknowledged but the expiry won", func(a []Ack, h map[string][]Event) []Ack {
			h["o1"][3] = Event{Version: 4, Type: "PaymentExpired", From: statePaying, To: stateClosed, IdempotencyKey: "expire-1"}
			return a
		}, ViolationRaceAnswer},
		{"confirm refused with 409 but nothing expired", func(a []Ack, h map[string][]Event) []Ack {
			h["o1"] = h["o1"][:3]
			a[2] = Ack{Op: OpConfirm, OrderID: "o1", Key: "kx", HTTP: 409, Code: "40900", Race: "r1"}
			return a
		}, ViolationRaceAnswer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			acks, hist, races := expiryRun("PaymentConfirmed")
			acks = tc.plant(acks, hist)
			res := Check(acks, hist, races)
			if res.Pass || res.Counts[tc.want] == 0 {
				t.Fatalf("want a %s violation, got %s %+v", tc.want, res.Summary(), res.Violations)
			}
		})
	}
}
