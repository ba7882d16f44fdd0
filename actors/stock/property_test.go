package stock_test

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"

	"github.com/ordermesh/ordermesh/actors/order"
	. "github.com/ordermesh/ordermesh/actors/stock"
)

// A sequence is made of steps of 3 bytes each, applied to one sku:
//
//	b0: command: Reserve, Release, Sell, Ship, Refund, Adjust (mod 6); high bit: issued by
//	    a shopper (always forbidden).
//	b1: the order (mod 6) of a holding command; for Adjust, one of 8 shared keys (low 3
//	    bits), or a fresh key if the high bit is set.
//	b2: Reserve: qty 1 to 8 (mod 8); Adjust: delta -6 to 9 (mod 16), 0 included.
const stepBytes = 3

var seqCommands = []CommandType{CmdReserve, CmdRelease, CmdSell, CmdShip, CmdRefund, CmdAdjust}

type modelHolding struct {
	qty   int64
	state HoldingState
}

type modelKey struct {
	key     string
	content string
}

// model is an independent reference of the rules, written from the hand-made design
// table, used as the oracle for Decide.
type model struct {
	onHand, reserved int64
	holdings         map[string]modelHolding
	keys             []modelKey // accepted adjustments, oldest first
}

func (m *model) findKey(key string) (modelKey, bool) {
	for i := len(m.keys) - 1; i >= max(0, len(m.keys)-KeysKept); i-- {
		if m.keys[i].key == key {
			return m.keys[i], true
		}
	}
	return modelKey{}, false
}

// expect returns what c must do: an error code (nothing changes), or a replay (and
// whether it is a refusal), or an event.
func (m *model) expect(c Command) (code order.Code, replay, refused bool, evt EventType) {
	if !Allows(c.Type, c.By.Role) {
		return order.CodeForbidden, false, false, ""
	}
	if c.Type == CmdAdjust {
		content := fmt.Sprint(c.Delta, c.By)
		switch k, seen := m.findKey(c.Key); {
		case c.Delta == 0:
			return order.CodeValidation, false, false, ""
		case seen && k.content != content:
			return order.CodeKeyReused, false, false, ""
		case seen:
			return order.CodeOK, true, false, ""
		case m.onHand+c.Delta < m.reserved:
			return order.CodeOutOfStock, false, false, ""
		}
		return order.CodeOK, false, false, EvtAdjusted
	}
	h := m.holdings[c.OrderID]
	if c.Type == CmdReserve && h.state != HoldNone && h.qty != c.Qty {
		return order.CodeKeyReused, false, false, ""
	}
	w := design[h.state][c.Type]
	switch w.effect {
	case Illegal:
		return order.CodeIllegalTransition, false, false, ""
	case Done:
		return order.CodeOK, true, c.Type == CmdReserve && h.state == HoldRefused, ""
	}
	if c.Type == CmdReserve && m.onHand-m.reserved < c.Qty {
		return order.CodeOK, false, true, EvtReserveRefused
	}
	return order.CodeOK, false, false, w.evt
}

func (m *model) accept(c Command, evt EventType) {
	if evt == EvtAdjusted {
		m.onHand += c.Delta
		m.keys = append(m.keys, modelKey{c.Key, fmt.Sprint(c.Delta, c.By)})
		return
	}
	h := m.holdings[c.OrderID]
	if c.Type == CmdReserve {
		h.qty = c.Qty
	}
	to := design[h.state][c.Type].to
	if evt == EvtReserveRefused {
		to = HoldRefused
	}
	switch {
	case evt == EvtReserved:
		m.reserved += h.qty
	case evt == EvtShipped:
		m.onHand -= h.qty
		m.reserved -= h.qty
	case evt == EvtReleased || evt == EvtRefunded:
		m.reserved -= h.qty
	}
	h.state = to
	m.holdings[c.OrderID] = h
}

// stepCommand turns one step into a command.
func stepCommand(s [stepBytes]byte, n int) Command {
	c := Command{Type: seqCommands[int(s[0]&0x7f)%len(seqCommands)], SKU: sku, By: sys, At: t0}
	if c.Type == CmdAdjust {
		c.By = oper
		c.Key = "k" + strconv.Itoa(int(s[1]&7))
		if s[1]&0x80 != 0 {
			c.Key = "fresh-" + strconv.Itoa(n)
		}
		c.Delta = int64(s[2]%16) - 6
	} else {
		c.OrderID = "o" + strconv.Itoa(int(s[1])%6)
		c.Qty = 1 + int64(s[2]%8)
	}
	if s[0]&0x80 != 0 {
		c.By = shop
	}
	return c
}

// runSequence applies steps to one sku through Decide and Evolve, checks every result
// against the model and the invariants after each step, and then checks that DecideBatch
// over the same commands gives the same results, events and state.
func runSequence(tb testing.TB, steps []byte) []Event {
	fail := func(i int, format string, args ...any) {
		tb.Helper()
		tb.Fatalf("step %d (input %q): %s", i, hex.EncodeToString(steps), fmt.Sprintf(format, args...))
	}
	s := New(sku)
	m := model{holdings: map[string]modelHolding{}}
	var (
		cmds    []Command
		results []Outcome
		history []Event
		adjusts int64
		shipped int64
	)
	for i := 0; i+stepBytes <= len(steps); i += stepBytes {
		c := stepCommand([stepBytes]byte(steps[i:i+stepBytes]), i)
		code, replay, refused, evt := m.expect(c)
		d, err := Decide(&s, c)
		cmds, results = append(cmds, c), append(results, Outcome{Decision: d, Err: err})
		if order.ErrorCode(err) != code {
			fail(i, "%s %+v: error %v, want code %d", c.Type, c, err, code)
		}
		if err != nil {
			continue
		}
		if d.Replay != replay || (d.Refused != nil) != refused || (evt == "") != (len(d.Events) == 0) {
			fail(i, "%s: decision %+v, want replay %v refused %v event %q", c.Type, d, replay, refused, evt)
		}
		if refused && order.ErrorCode(d.Err()) != order.CodeOutOfStock {
			fail(i, "refusal %v", d.Err())
		}
		for _, e := range d.Events {
			if e.Type != evt || e.Version != s.Version+1 {
				fail(i, "event %+v, want %s at version %d", e, evt, s.Version+1)
			}
			switch e.Type {
			case EvtAdjusted:
				adjusts += e.Delta
			case EvtShipped:
				shipped += e.Qty
			}
			s = Evolve(s, e)
			history = append(history, e)
		}
		if evt != "" {
			m.accept(c, evt)
		}
		// Idempotency: the same command again changes nothing and answers alike.
		again, err := Decide(&s, c)
		if err != nil || len(again.Events) != 0 || !again.Replay || (again.Refused != nil) != refused {
			fail(i, "repeat of %s: %+v, %v", c.Type, again, err)
		}
		// Invariants.
		var live int64
		for id, h := range s.Holdings {
			if h.Qty < 1 {
				fail(i, "holding %s: %+v", id, h)
			}
			if h.State.Live() {
				live += h.Qty
			}
			if mh := m.holdings[id]; mh.qty != h.Qty || mh.state != h.State {
				fail(i, "holding %s = %+v, model %+v", id, h, mh)
			}
		}
		switch {
		case s.OnHand < 0 || s.Reserved < 0 || s.Available() < 0:
			fail(i, "negative: on hand %d, reserved %d", s.OnHand, s.Reserved)
		case s.Reserved != live:
			fail(i, "reserved %d, live holdings %d", s.Reserved, live)
		case s.OnHand != adjusts-shipped:
			fail(i, "on hand %d, adjusted %d, shipped %d", s.OnHand, adjusts, shipped)
		case s.OnHand != m.onHand || s.Reserved != m.reserved:
			fail(i, "counters %d/%d, model %d/%d", s.OnHand, s.Reserved, m.onHand, m.reserved)
		case len(s.Keys) > KeysKept:
			fail(i, "%d keys", len(s.Keys))
		}
	}
	b := DecideBatch(New(sku), cmds)
	batched := New(sku)
	b.ApplyTo(&batched)
	if !reflect.DeepEqual(batched, s) || len(b.Events) != len(history) || len(b.Results) != len(results) ||
		(len(history) > 0 && !reflect.DeepEqual(b.Events, history)) || (len(results) > 0 && !reflect.DeepEqual(b.Results, results)) {
		tb.Fatalf("input %q: the batch differs from one by one", hex.EncodeToString(steps))
	}
	return history
}

func FuzzStock(f *testing.F) {
	f.Add([]byte{5, 0x80, 15, 0, 1, 3, 2, 1, 0, 3, 1, 0, 4, 1, 0})
	f.Add([]byte{0, 0, 2, 5, 1, 9, 0, 0, 2, 0, 1, 7, 1, 1, 0, 0x80, 2, 0})
	f.Fuzz(func(t *testing.T, steps []byte) {
		if len(steps) > 600*stepBytes {
			t.Skip()
		}
		runSequence(t, steps)
	})
}

func TestRandomSequences(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[EventType]int{}
	for range n {
		steps := make([]byte, stepBytes*(20+rng.IntN(150)))
		for j := range steps {
			steps[j] = byte(rng.UintN(256))
		}
		// Mostly legitimate callers; shoppers now and then.
		for j := 0; j < len(steps); j += stepBytes {
			if rng.IntN(20) != 0 {
				steps[j] &^= 0x80
			}
		}
		for _, e := range runSequence(t, steps) {
			seen[e.Type]++
		}
	}
	for _, e := range []EventType{EvtReserved, EvtReserveRefused, EvtReleased, EvtSold, EvtShipped, EvtRefunded, EvtAdjusted} {
		if seen[e] < n/10 {
			t.Errorf("only %d %s events in %d sequences", seen[e], e, n)
		}
	}
	t.Logf("events: %v", seen)
}
