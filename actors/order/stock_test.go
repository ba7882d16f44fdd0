package order_test

import (
	"reflect"
	"slices"
	"testing"
	"time"

	. "github.com/ordermesh/ordermesh/actors/order"
)

// TestConfirmStock: the node confirms the reservation; the order is CREATED, expires
// OrderTimeout after its creation, its stock is synced, and a retried create answers v2
// CREATED with the expiry, not the v1 RESERVING of the first moment.
func TestConfirmStock(t *testing.T) {
	create := createCmd(alice, "create", t0)
	reserving, _ := step(t, Order{}, create)
	confirmAt := t0.Add(3 * time.Second)
	expires := t0.Add(orderTimeout)

	for _, timeout := range []time.Duration{0, -time.Second} {
		c := cmdOn(&reserving, CmdConfirmStock, sys, "stock", confirmAt)
		c.OrderTimeout = timeout
		d, err := Decide(&reserving, c)
		wantCode(t, d, err, CodeInvalidRequest)
	}
	for _, p := range []Principal{alice, oper, adm} {
		d, err := Decide(&reserving, cmdOn(&reserving, CmdConfirmStock, p, "stock", confirmAt))
		wantCode(t, d, err, CodeForbidden)
	}

	o, e := step(t, reserving, cmdOn(&reserving, CmdConfirmStock, sys, "stock", confirmAt))
	if e.Type != EvtStockReserved || e.From != StatusReserving || e.To != StatusCreated || e.Version != 2 || !e.ExpiresAt.Equal(expires) {
		t.Fatalf("event %+v", e)
	}
	if p := PayloadOf(e); !p.ExpiresAt.Equal(expires) {
		t.Errorf("payload %+v does not carry the expiry", p)
	}
	if o.Status != StatusCreated || !o.ExpiresAt.Equal(expires) || o.StockVersion != 2 || !o.StockSynced() {
		t.Errorf("order %s, expires %v, stock version %d", o.Status, o.ExpiresAt, o.StockVersion)
	}
	if v := o.View(); !v.ExpiresAt.Equal(expires) || v.Status != StatusCreated || v.Version != 2 {
		t.Errorf("view %+v", v)
	}

	retry := create
	retry.Lines, retry.At = testLines(), t0.Add(time.Hour)
	r := wantReplay(t, &o, retry)
	want := KeyResult{Key: "create", Command: CmdCreate, Fingerprint: Fingerprint(create), Version: 2, Status: StatusCreated, At: confirmAt}
	if r != want {
		t.Errorf("create replay %+v, want %+v", r, want)
	}
	if got := o.ViewAt(r); !reflect.DeepEqual(got, o.View()) {
		t.Errorf("create replay view %+v, want %+v", got, o.View())
	}
	// The node retrying its confirmation gets the first answer; a second reservation
	// outcome is illegal.
	if r := wantReplay(t, &o, cmdOn(&o, CmdConfirmStock, sys, "stock", t0.Add(time.Hour))); r.Version != 2 || r.Command != CmdConfirmStock {
		t.Errorf("confirm replay %+v", r)
	}
	for _, typ := range []CommandType{CmdConfirmStock, CmdRejectStock} {
		d, err := Decide(&o, cmdOn(&o, typ, sys, "stock-2", t0.Add(time.Hour)))
		wantCode(t, d, err, CodeIllegalTransition)
	}

	// The expiry counts from the creation, however late the confirmation comes.
	late, _ := step(t, reserving, cmdOn(&reserving, CmdConfirmStock, sys, "stock", t0.Add(time.Hour)))
	if !late.ExpiresAt.Equal(expires) {
		t.Errorf("a late confirmation set the expiry %v, want %v", late.ExpiresAt, expires)
	}
}

// TestRejectStock: a line out of stock rejects the order; a retried create gets 40902
// with the out-of-stock message, for ever; nothing else may happen to it.
func TestRejectStock(t *testing.T) {
	create := createCmd(alice, "create", t0)
	reserving, _ := step(t, Order{}, create)
	for _, p := range []Principal{alice, oper, adm} {
		d, err := Decide(&reserving, cmdOn(&reserving, CmdRejectStock, p, "stock", t0))
		wantCode(t, d, err, CodeForbidden)
	}
	o, e := step(t, reserving, cmdOn(&reserving, CmdRejectStock, sys, "stock", t0.Add(time.Second)))
	if e.Type != EvtRejected || e.To != StatusRejected || e.Reason != outOfStock || PayloadOf(e).Reason != outOfStock {
		t.Fatalf("event %+v", e)
	}
	if o.Status != StatusRejected || o.Rejection != outOfStock || o.StockVersion != 2 || !o.ExpiresAt.IsZero() {
		t.Errorf("order %+v", o)
	}
	if v := o.View(); len(v.Actions) != 0 || !v.ExpiresAt.IsZero() || v.Status != StatusRejected {
		t.Errorf("view %+v", v)
	}

	for _, at := range []time.Time{t0.Add(time.Minute), t0.Add(2 * KeyWindow)} {
		retry := create
		retry.Lines, retry.At = testLines(), at
		d, err := Decide(&o, retry)
		wantCode(t, d, err, CodeOutOfStock)
		if msg := ErrorMessage(err); msg != outOfStock {
			t.Errorf("retried create refused with %q, want %q", msg, outOfStock)
		}
	}
	other := create
	other.Currency = "USD"
	d, err := Decide(&o, other)
	wantCode(t, d, err, CodeKeyReused)

	// The node retrying the rejection gets the first answer.
	if r := wantReplay(t, &o, cmdOn(&o, CmdRejectStock, sys, "stock", t0.Add(time.Hour))); r.Status != StatusRejected || r.Version != 2 {
		t.Errorf("reject replay %+v", r)
	}
	for _, tr := range Table {
		if tr.Command == CmdCreate {
			continue
		}
		by := sys
		switch {
		case tr.Allows(RoleOperator):
			by = oper
		case tr.Allows(RoleShopper):
			by = alice
		}
		d, err := Decide(&o, cmdOn(&o, tr.Command, by, "later", t0.Add(48*time.Hour)))
		wantCode(t, d, err, CodeIllegalTransition)
	}

	t.Run("without a message", func(t *testing.T) {
		c := cmdOn(&reserving, CmdRejectStock, sys, "stock", t0)
		c.Reason = ""
		o, _ := step(t, reserving, c)
		retry := create
		retry.Lines = testLines()
		d, err := Decide(&o, retry)
		wantCode(t, d, err, CodeOutOfStock) // and, checked there, a message
	})
}

// TestExpireOrder: an unpaid order closes at its expiry, not a nanosecond before, only by
// the node; a payment in flight keeps it open, a failed one brings the expiry back.
func TestExpireOrder(t *testing.T) {
	o := orderIn(t, StatusCreated)
	expires := t0.Add(orderTimeout)
	if !o.ExpiresAt.Equal(expires) {
		t.Fatalf("fixture expires at %v", o.ExpiresAt)
	}
	expire := func(o *Order, key string, at time.Time) Command { return cmdOn(o, CmdExpire, sys, key, at) }
	for _, at := range []time.Time{t0.Add(time.Minute), expires.Add(-time.Nanosecond)} {
		d, err := Decide(&o, expire(&o, ExpiryKey(expires), at))
		wantCode(t, d, err, CodeIllegalTransition)
	}
	for _, p := range []Principal{alice, oper, adm} {
		d, err := Decide(&o, cmdOn(&o, CmdExpire, p, "exp", expires))
		wantCode(t, d, err, CodeForbidden)
	}
	for _, at := range []time.Time{expires, expires.Add(time.Nanosecond), expires.Add(48 * time.Hour)} {
		t.Run("at or after the expiry "+at.Sub(expires).String(), func(t *testing.T) {
			closed, e := step(t, o, expire(&o, ExpiryKey(expires), at))
			if e.Type != EvtExpired || e.To != StatusClosed || closed.Status != StatusClosed {
				t.Fatalf("event %+v", e)
			}
			if !closed.View().ExpiresAt.IsZero() || !closed.ExpiresAt.Equal(expires) {
				t.Errorf("closed order: view expires %v, order %v", closed.View().ExpiresAt, closed.ExpiresAt)
			}
			// Every timer of one expiry uses one key: a second firing replays.
			r := wantReplay(t, &closed, cmdOn(&closed, CmdExpire, Principal{Subject: "sweeper", Role: RoleSystem}, ExpiryKey(expires), at.Add(time.Hour)))
			if r.Status != StatusClosed || r.Version != closed.Version {
				t.Errorf("replay %+v", r)
			}
			d, err := Decide(&closed, expire(&closed, "exp-2", at.Add(time.Hour)))
			wantCode(t, d, err, CodeIllegalTransition)
		})
	}

	paying, _ := step(t, o, cmdOn(&o, CmdSubmitPayment, alice, "pay", t0.Add(20*time.Minute)))
	d, err := Decide(&paying, expire(&paying, "exp", expires.Add(time.Hour)))
	wantCode(t, d, err, CodeIllegalTransition)
	failed, _ := step(t, paying, cmdOn(&paying, CmdFailPayment, oper, "fail", expires.Add(time.Hour)))
	if failed.Deadline() != expires {
		t.Errorf("after a failed payment the deadline is %v, want the expiry %v", failed.Deadline(), expires)
	}
	closed, _ := step(t, failed, expire(&failed, "exp", expires.Add(time.Hour)))
	if closed.Status != StatusClosed {
		t.Errorf("status %s", closed.Status)
	}
	reserving := orderIn(t, StatusReserving)
	d, err = Decide(&reserving, expire(&reserving, "exp", t0.Add(48*time.Hour)))
	wantCode(t, d, err, CodeIllegalTransition)
}

// wantStock is what each status asks of the stock, written from the design.
var wantStock = map[Status][]StockCommand{
	StatusNone:      nil,
	StatusReserving: {StockReserve},
	StatusCreated:   nil,
	StatusPaying:    nil,
	StatusPaid:      {StockSell},
	StatusShipped:   {StockSell, StockShip},
	StatusDelivered: {StockSell, StockShip},
	StatusClosed:    {StockRelease},
	StatusRefunded:  {StockSell, StockRefund},
	StatusRejected:  {StockRelease},
}

func TestStockCommands(t *testing.T) {
	for _, st := range append(slices.Clone(allStates), "BOGUS") {
		if got := StockCommands(st); !slices.Equal(got, wantStock[st]) {
			t.Errorf("StockCommands(%q) = %v, want %v", st, got, wantStock[st])
		}
	}
	a := StockCommands(StatusShipped)
	a[0] = StockRefund
	if StockCommands(StatusShipped)[0] != StockSell {
		t.Error("StockCommands returns a shared slice")
	}
}

// TestStockSyncedAndDeadline: for every status, whether the stock follows the order as
// built (only the saga's outcome records it) and once the host has recorded it, and when
// the node must act next.
func TestStockSyncedAndDeadline(t *testing.T) {
	type want struct {
		synced   bool
		deadline func(o Order) time.Time
	}
	retry := func(o Order) time.Time { return o.UpdatedAt.Add(StockRetry) }
	never := func(Order) time.Time { return time.Time{} }
	payment := func(o Order) time.Time { return o.PaymentDeadline }
	expiry := func(Order) time.Time { return t0.Add(orderTimeout) }
	cases := map[Status]want{
		StatusNone:      {true, never},
		StatusReserving: {false, retry},
		StatusCreated:   {true, expiry},
		StatusPaying:    {true, payment},
		StatusPaid:      {false, retry},
		StatusShipped:   {false, retry},
		StatusDelivered: {false, retry},
		StatusClosed:    {false, retry},
		StatusRefunded:  {false, retry},
		StatusRejected:  {true, never},
	}
	// Once the host has recorded the stock of the current version.
	recorded := map[Status]func(Order) time.Time{
		StatusNone: never, StatusReserving: retry, StatusCreated: expiry, StatusPaying: payment,
		StatusPaid: never, StatusShipped: never, StatusDelivered: never, StatusClosed: never,
		StatusRefunded: never, StatusRejected: never,
	}
	for _, st := range allStates {
		t.Run(stName(st), func(t *testing.T) {
			o := orderIn(t, st)
			w := cases[st]
			if got := o.StockSynced(); got != w.synced {
				t.Errorf("StockSynced = %v, want %v (stock v%d, order v%d)", got, w.synced, o.StockVersion, o.Version)
			}
			if got := o.Deadline(); !got.Equal(w.deadline(o)) {
				t.Errorf("Deadline = %v, want %v", got, w.deadline(o))
			}
			if st == StatusPaying && (o.Deadline().IsZero() || !o.Deadline().Equal(t0.Add(2*time.Minute+payTimeout))) {
				t.Errorf("PAYING deadline %v", o.Deadline())
			}
			if !w.synced && !o.Deadline().Equal(o.UpdatedAt.Add(StockRetry)) {
				t.Errorf("unsynced order due at %v, want %v", o.Deadline(), o.UpdatedAt.Add(StockRetry))
			}
			o.StockVersion = o.Version
			if !o.StockSynced() {
				t.Error("not synced once the host recorded its version")
			}
			if got, want := o.Deadline(), recorded[st](o); !got.Equal(want) {
				t.Errorf("after the host recorded the stock: Deadline = %v, want %v", got, want)
			}
		})
	}
	// A status that moves no stock is synced whatever the version; one that does is not
	// until its own version is recorded.
	paying := orderIn(t, StatusPaying)
	failed, _ := step(t, paying, cmdOn(&paying, CmdFailPayment, oper, "fail", t0.Add(5*time.Minute)))
	if failed.StockVersion != 2 || failed.Version != 4 || !failed.StockSynced() || !failed.Deadline().Equal(t0.Add(orderTimeout)) {
		t.Errorf("CREATED again: stock v%d of v%d, synced %v, deadline %v", failed.StockVersion, failed.Version, failed.StockSynced(), failed.Deadline())
	}
	paid := orderIn(t, StatusPaid)
	paid.StockVersion = paid.Version - 1
	if paid.StockSynced() || !paid.Deadline().Equal(paid.UpdatedAt.Add(StockRetry)) {
		t.Errorf("PAID with the stock of an older version: synced %v, deadline %v", paid.StockSynced(), paid.Deadline())
	}
	// DELIVERED moves the same stock as SHIPPED: an order whose shipment's stock was
	// recorded follows at once, one whose shipment's stock was not still lags.
	for _, shippedSynced := range []bool{true, false} {
		shipped := orderIn(t, StatusShipped)
		if shippedSynced {
			shipped.StockVersion = shipped.Version
		}
		delivered, _ := step(t, shipped, cmdOn(&shipped, CmdDeliver, oper, "deliver", t0.Add(time.Hour)))
		if delivered.StockSynced() != shippedSynced || delivered.Deadline().IsZero() != shippedSynced {
			t.Errorf("DELIVERED after a shipment synced %v: stock v%d of v%d, synced %v, deadline %v", shippedSynced,
				delivered.StockVersion, delivered.Version, delivered.StockSynced(), delivered.Deadline())
		}
	}
	if StockRetry != 10*time.Second {
		t.Errorf("StockRetry = %v, the design retries after 10s", StockRetry)
	}
}
