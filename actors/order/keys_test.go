package order_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	. "github.com/ordermesh/ordermesh/actors/order"
)

// TestDecideRefusesUnstorableText: a key that is not printable ASCII, or text with invalid
// UTF-8 or control characters anywhere in a command, is a malformed command (400) before
// anything else is looked at, so nothing can reach a snapshot or a store that would
// refuse it.
func TestDecideRefusesUnstorableText(t *testing.T) {
	created := orderIn(t, StatusCreated)
	at := t0.Add(time.Hour)
	bad := map[string]string{"NUL": "a\x00b", "invalid UTF-8": "a\xffb", "newline": "a\nb", "DEL": "a\x7fb", "C1": "a\u0085b"}
	for name, s := range bad {
		cases := map[string]Command{
			"key":           cmdOn(&created, CmdCancel, alice, s, at),
			"reason":        func() Command { c := cmdOn(&created, CmdCancel, alice, "k", at); c.Reason = s; return c }(),
			"caller":        cmdOn(&created, CmdCancel, Principal{Subject: s, Role: RoleOperator}, "k", at),
			"create key":    createCmd(alice, s, at),
			"sku":           func() Command { c := createCmd(alice, "k", at); c.Lines[1].SKU = s; return c }(),
			"name":          func() Command { c := createCmd(alice, "k", at); c.Lines[0].Name = s; return c }(),
			"currency":      func() Command { c := createCmd(alice, "k", at); c.Currency = s; return c }(),
			"unknown order": func() Command { c := cmdOn(&Order{}, CmdCancel, alice, "k", at); c.Reason = s; return c }(),
		}
		for field, c := range cases {
			t.Run(name+" in "+field, func(t *testing.T) {
				o := created
				if c.Type == CmdCreate || field == "unknown order" {
					o = Order{}
				}
				d, err := Decide(&o, c)
				wantCode(t, d, err, CodeInvalidRequest)
			})
		}
	}
	// Non-ASCII text is fine.
	c := cmdOn(&created, CmdCancel, alice, "ключ with spaces ~!", at)
	c.Reason = "zu spät geliefert ☕"
	if _, err := Decide(&created, c); err != nil {
		t.Errorf("valid text refused: %v", err)
	}
	if !ValidKey("ключ") || !ValidKey(" ") || ValidKey("") || ValidKey(strings.Repeat("k", MaxKeyLen+1)) {
		t.Error("ValidKey accepts 1 to MaxKeyLen bytes of text")
	}
}

// oldKeyFixture is an order paid with key "pay-1" (by alice) and failed with key "fail-1"
// (by olga) after its stock was reserved (key "stock"), followed by newer commands, each with a fresh key, so that the order itself
// no longer remembers either key. It returns the order and its events.
func oldKeyFixture(t *testing.T, newer int) (Order, []Event) {
	t.Helper()
	o, e := step(t, Order{}, createCmd(alice, "create", t0))
	events := []Event{e}
	at := t0
	add := func(typ CommandType, by Principal, key string) {
		at = at.Add(time.Second)
		o, e = step(t, o, cmdOn(&o, typ, by, key, at))
		events = append(events, e)
	}
	add(CmdConfirmStock, sys, "stock")
	add(CmdSubmitPayment, alice, "pay-1")
	add(CmdFailPayment, oper, "fail-1")
	for i := range newer {
		if i%2 == 0 {
			add(CmdSubmitPayment, alice, fmt.Sprintf("newer-%d", i))
		} else {
			add(CmdFailPayment, oper, fmt.Sprintf("newer-%d", i))
		}
	}
	return o, events
}

// seenFromEvent is what a host does with a stored event: the payload column as the
// grain writes it, read back through KeyResultOf.
func seenFromEvent(t *testing.T, e Event) *KeyResult {
	t.Helper()
	payload, err := json.Marshal(PayloadOf(e))
	if err != nil {
		t.Fatal(err)
	}
	r, err := KeyResultOf(e.Key, e.Type, e.Version, e.To, e.At, payload)
	if err != nil {
		t.Fatal(err)
	}
	return &r
}

// TestOldKeyHonouredThroughSeen: a key the order forgot (100 newer keys), retried two
// hours later with its stored result passed in as Seen, is a replay of the first answer;
// the same key from another user is 422; without Seen it would apply twice; after
// KeyWindow it is forgotten.
func TestOldKeyHonouredThroughSeen(t *testing.T) {
	o, events := oldKeyFixture(t, 100)
	if o.Status != StatusCreated {
		t.Fatalf("fixture ends %s, want CREATED so that a second payment would be legal", o.Status)
	}
	pay, fail := events[2], events[3]
	for _, key := range []string{"stock", "pay-1", "fail-1"} {
		if _, ok := o.FindKey(key); ok || !o.NeedsKeyLookup(key) {
			t.Fatalf("the order still remembers %q, or would not look it up", key)
		}
	}
	if o.NeedsKeyLookup("newer-99") || o.NeedsKeyLookup("create") {
		t.Error("a remembered key needs no lookup")
	}
	if fresh := orderIn(t, StatusPaying); fresh.NeedsKeyLookup("never-used") {
		t.Error("an order that forgot no key needs no lookup")
	}

	retry := cmdOn(&o, CmdSubmitPayment, alice, "pay-1", t0.Add(2*time.Hour))
	t.Run("without Seen it would apply twice", func(t *testing.T) {
		if d, err := Decide(&o, retry); err != nil || len(d.Events) != 1 {
			t.Fatalf("Decide = %+v, %v; the pure model treats a forgotten key as new", d, err)
		}
	})
	t.Run("replay", func(t *testing.T) {
		c := retry
		c.Seen = seenFromEvent(t, pay)
		before := deepCopyOrder(o)
		r := wantReplay(t, &o, c)
		assertOrderUnchanged(t, before, o)
		v := o.ViewAt(r)
		if v.Version != 3 || v.Status != StatusPaying || !v.PaymentDeadline.Equal(pay.PaymentDeadline) || !v.UpdatedAt.Equal(pay.At) {
			t.Errorf("replayed view %+v, want the first answer (v3 PAYING, deadline %v)", v, pay.PaymentDeadline)
		}
	})
	t.Run("another user", func(t *testing.T) {
		c := cmdOn(&o, CmdFailPayment, adm, "fail-1", t0.Add(2*time.Hour))
		c.Seen = seenFromEvent(t, fail)
		d, err := Decide(&o, c)
		wantCode(t, d, err, CodeKeyReused)
	})
	t.Run("the node's forgotten ConfirmStock", func(t *testing.T) {
		c := cmdOn(&o, CmdConfirmStock, Principal{Subject: "node-2", Role: RoleSystem}, "stock", t0.Add(2*time.Hour))
		c.Seen = seenFromEvent(t, events[1])
		if r := wantReplay(t, &o, c); r.Version != 2 || r.Status != StatusCreated || r.Command != CmdConfirmStock {
			t.Errorf("replay %+v", r)
		}
		c.Type = CmdRejectStock
		d, err := Decide(&o, c)
		wantCode(t, d, err, CodeKeyReused)
	})
	t.Run("another command", func(t *testing.T) {
		c := cmdOn(&o, CmdCancel, alice, "pay-1", t0.Add(2*time.Hour))
		c.Seen = seenFromEvent(t, pay)
		d, err := Decide(&o, c)
		wantCode(t, d, err, CodeKeyReused)
	})
	t.Run("Seen of another key is ignored", func(t *testing.T) {
		c := retry
		c.Key = "pay-2"
		c.Seen = seenFromEvent(t, pay)
		if d, err := Decide(&o, c); err != nil || len(d.Events) != 1 {
			t.Fatalf("Decide = %+v, %v; want a new payment", d, err)
		}
	})
	t.Run("forgotten after KeyWindow", func(t *testing.T) {
		c := retry
		c.Seen = seenFromEvent(t, pay)
		c.At = pay.At.Add(KeyWindow - time.Microsecond)
		wantReplay(t, &o, c)
		c.At = pay.At.Add(KeyWindow)
		if d, err := Decide(&o, c); err != nil || len(d.Events) != 1 {
			t.Fatalf("Decide = %+v, %v; want a new payment once the key is %s old", d, err, KeyWindow)
		}
	})
}

func TestKeyResultOf(t *testing.T) {
	o, events := oldKeyFixture(t, 0)
	for _, e := range events {
		got := seenFromEvent(t, e)
		// The order remembers every key of this short history: the stored event must say
		// exactly what the order says.
		want, ok := o.FindKey(e.Key)
		if !ok {
			t.Fatalf("key %q not remembered", e.Key)
		}
		if e.Type == EvtCreated {
			// The order answers its create as the reservation left it (StockReserved, v2);
			// the stored OrderCreated says what it did itself.
			if want.Version != 2 || want.Status != StatusCreated || !want.At.Equal(events[1].At) {
				t.Errorf("the create is remembered as %+v, want the StockReserved answer", want)
			}
			want.Version, want.Status, want.At = e.Version, e.To, e.At
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("KeyResultOf(%s) = %+v\nwant %+v", e.Type, *got, want)
		}
	}
	if _, err := KeyResultOf("k", "Teleported", 1, StatusCreated, t0, []byte(`{}`)); err == nil {
		t.Error("an unknown event type was accepted")
	}
	if _, err := KeyResultOf("k", EvtCancelled, 1, StatusClosed, t0, []byte(`{`)); err == nil {
		t.Error("a broken payload was accepted")
	}
}
