package orderpb

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"

	"google.golang.org/protobuf/proto"
)

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// normalised returns o with every time in UTC and empty slices as nil, the form a snapshot
// round trip is expected to preserve.
func normalised(o order.Order) order.Order {
	o.PaymentDeadline, o.CreatedAt, o.UpdatedAt = utc(o.PaymentDeadline), utc(o.CreatedAt), utc(o.UpdatedAt)
	o.ExpiresAt = utc(o.ExpiresAt)
	if len(o.Lines) == 0 {
		o.Lines = nil
	}
	if len(o.Keys) == 0 {
		o.Keys = nil
	} else {
		keys := make([]order.KeyResult, len(o.Keys))
		for i, k := range o.Keys {
			k.At, k.Deadline = utc(k.At), utc(k.Deadline)
			keys[i] = k
		}
		o.Keys = keys
	}
	return o
}

func snapshotCases(t testing.TB) map[string]order.Order {
	cases := map[string]order.Order{}
	for _, st := range order.Statuses {
		cases[string(st)] = orderIn(t, st)
	}
	cases["full keys"] = fullKeys(t)

	// Times in another zone, nanoseconds, a reason, an empty line name, zero prices.
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456789, zone)
	c := createCmd(order.Principal{Subject: "zoë", Role: order.RoleShopper}, "ключ", at)
	c.Lines = append(c.Lines, order.Line{SKU: "free", Qty: order.MaxQty, UnitPrice: 0})
	c.Reason = "gift"
	o, _ := step(t, order.Order{}, c)
	o, _ = step(t, o, cmdOn(&o, order.CmdConfirmStock, sys, "stock", at.Add(time.Nanosecond)))
	o, _ = step(t, o, cmdOn(&o, order.CmdSubmitPayment, c.By, "pay", at.Add(2*time.Nanosecond)))
	cases["zoned, paying"] = o

	// A rejection in other scripts; stock the host recorded (in no event).
	r, _ := step(t, order.Order{}, c)
	reject := cmdOn(&r, order.CmdRejectStock, sys, "stock", at.Add(time.Second))
	reject.Reason = `sku "free": 1000 wanted, 3 available — ausverkauft ☕`
	r, _ = step(t, r, reject)
	cases["zoned, rejected"] = r
	for _, st := range []order.Status{order.StatusPaid, order.StatusClosed, order.StatusReserving} {
		o := orderIn(t, st)
		o.StockVersion = o.Version
		cases[string(st)+", stock recorded"] = o
	}
	return cases
}

// roundTrip returns o after a snapshot.
func roundTrip(t *testing.T, o order.Order) order.Order {
	t.Helper()
	b, err := EncodeSnapshot(&o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestSnapshotKeepsTheSaga: what the view does not show of the reservation saga (the
// expiry outside CREATED, the rejection, the stock version) survives a snapshot.
func TestSnapshotKeepsTheSaga(t *testing.T) {
	expires := t0.Add(orderTimeout)
	cases := []struct {
		name                string
		o                   order.Order
		expires             time.Time
		rejection           string
		stockVersion        uint64
		viewShowsExpiration bool
	}{
		{"reserving", orderIn(t, order.StatusReserving), time.Time{}, "", 0, false},
		{"created", orderIn(t, order.StatusCreated), expires, "", 2, true},
		{"paying", orderIn(t, order.StatusPaying), expires, "", 2, false},
		{"closed", orderIn(t, order.StatusClosed), expires, "", 2, false},
		{"rejected", orderIn(t, order.StatusRejected), time.Time{}, outOfStock, 2, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := EncodeSnapshot(&tc.o)
			if err != nil {
				t.Fatal(err)
			}
			var pb Snapshot
			if err := proto.Unmarshal(b, &pb); err != nil {
				t.Fatal(err)
			}
			if pb.ExpiresAt != unixNano(tc.expires) || pb.Rejection != tc.rejection || pb.StockVersion != tc.stockVersion {
				t.Errorf("snapshot expires_at %d, rejection %q, stock_version %d; want %d, %q, %d",
					pb.ExpiresAt, pb.Rejection, pb.StockVersion, unixNano(tc.expires), tc.rejection, tc.stockVersion)
			}
			if shown := pb.Order.ExpiresAt != 0; shown != tc.viewShowsExpiration {
				t.Errorf("the snapshot's view has expires_at %d", pb.Order.ExpiresAt)
			}
			got, err := DecodeSnapshot(b)
			if err != nil {
				t.Fatal(err)
			}
			if !got.ExpiresAt.Equal(tc.expires) || got.Rejection != tc.rejection || got.StockVersion != tc.stockVersion {
				t.Errorf("decoded expires %v, rejection %q, stock version %d", got.ExpiresAt, got.Rejection, got.StockVersion)
			}
			if got.StockSynced() != tc.o.StockSynced() || !got.Deadline().Equal(tc.o.Deadline()) {
				t.Errorf("decoded: synced %v, deadline %v; before: %v, %v", got.StockSynced(), got.Deadline(), tc.o.StockSynced(), tc.o.Deadline())
			}
		})
	}
	// A failed payment after the round trip shows the expiry again: it was kept while PAYING.
	restored := roundTrip(t, orderIn(t, order.StatusPaying))
	failed, _ := step(t, restored, cmdOn(&restored, order.CmdFailPayment, oper, "fail", t0.Add(5*time.Minute)))
	if v := failed.View(); !v.ExpiresAt.Equal(expires) || !failed.Deadline().Equal(expires) {
		t.Errorf("after the round trip and a failed payment: view expires %v, deadline %v; want %v", v.ExpiresAt, failed.Deadline(), expires)
	}
	// The retried create of a restored order answers as before: v2 CREATED, or the refusal.
	for _, st := range []order.Status{order.StatusPaying, order.StatusRejected} {
		o := orderIn(t, st)
		restored := roundTrip(t, o)
		retry := createCmd(alice, "setup-0", t0.Add(time.Hour))
		d1, err1 := order.Decide(&o, retry)
		d2, err2 := order.Decide(&restored, retry)
		if order.ErrorCode(err1) != order.ErrorCode(err2) || order.ErrorMessage(err1) != order.ErrorMessage(err2) ||
			(d1.Replay == nil) != (d2.Replay == nil) || (d1.Replay != nil && d1.Replay.Version != d2.Replay.Version) {
			t.Errorf("%s: the create retry answers %+v, %v before the round trip and %+v, %v after", st, d1, err1, d2, err2)
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	for name, o := range snapshotCases(t) {
		t.Run(name, func(t *testing.T) {
			before := deepCopyOrder(o)
			b, err := EncodeSnapshot(&o)
			if err != nil {
				t.Fatal(err)
			}
			assertOrderUnchanged(t, before, o)
			got, err := DecodeSnapshot(b)
			if err != nil {
				t.Fatal(err)
			}
			if want := normalised(o); !reflect.DeepEqual(got, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
			}
			// The restored order answers every key exactly like the original.
			for _, k := range o.Keys {
				r1, ok1 := o.FindKey(k.Key)
				r2, ok2 := got.FindKey(k.Key)
				if !ok1 || !ok2 || r1.Fingerprint != r2.Fingerprint || r1.Version != r2.Version || !r1.At.Equal(r2.At) ||
					!r1.Deadline.Equal(r2.Deadline) || r1.Status != r2.Status || r1.Command != r2.Command {
					t.Errorf("key %q: %+v vs %+v", k.Key, r1, r2)
				}
				if v1, v2 := o.ViewAt(r1), got.ViewAt(r2); !v1.UpdatedAt.Equal(v2.UpdatedAt) || v1.Version != v2.Version || v1.Status != v2.Status {
					t.Errorf("ViewAt(%q) differs after the round trip", k.Key)
				}
			}
			// Encoding is deterministic enough to compare snapshots.
			b2, err := EncodeSnapshot(&got)
			if err != nil {
				t.Fatal(err)
			}
			again, err := DecodeSnapshot(b2)
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("second round trip differs: %v", err)
			}
		})
	}
}

func TestDecodeSnapshotErrors(t *testing.T) {
	for _, b := range [][]byte{{0xff}, {0x0a, 0x05, 0x01}, []byte("not a protobuf at all")} {
		if _, err := DecodeSnapshot(b); err == nil {
			t.Errorf("DecodeSnapshot(%x) succeeded", b)
		}
	}
	o, err := DecodeSnapshot(nil)
	if err != nil || o.Exists() || o.Status != order.StatusNone || len(o.Keys) != 0 || len(o.Lines) != 0 {
		t.Errorf("DecodeSnapshot(nil) = %+v, %v; want an order that does not exist", o, err)
	}
	zero := order.Order{}
	b, err := EncodeSnapshot(&zero)
	if err != nil {
		t.Fatal(err)
	}
	if o, err := DecodeSnapshot(b); err != nil || !reflect.DeepEqual(normalised(o), zero) {
		t.Errorf("zero order round trip = %+v, %v", o, err)
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	for _, o := range snapshotCases(f) {
		b, err := EncodeSnapshot(&o)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00, 0x12, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := DecodeSnapshot(b)
		if err != nil {
			return
		}
		b2, err := EncodeSnapshot(&o)
		if err != nil {
			t.Fatalf("re-encoding a decoded snapshot: %v", err)
		}
		o2, err := DecodeSnapshot(b2)
		if err != nil {
			t.Fatalf("decoding a re-encoded snapshot: %v", err)
		}
		if !reflect.DeepEqual(normalised(o), normalised(o2)) {
			t.Fatalf("unstable round trip:\n%+v\n%+v", o, o2)
		}
	})
}

func TestCommandPBRoundTrip(t *testing.T) {
	create := createCmd(alice, "create-1", t0)
	create.Reason = "birthday"
	cancel := order.Command{Type: order.CmdCancel, OrderID: "o_X", Key: "k", By: oper, At: t0, Reason: "out of stock"}
	pay := order.Command{Type: order.CmdSubmitPayment, OrderID: "o_X", Key: "k2", By: alice, At: t0, PaymentTimeout: payTimeout}
	confirm := order.Command{Type: order.CmdConfirmStock, OrderID: "o_X", Key: "k3", By: sys, At: t0, OrderTimeout: orderTimeout}
	reject := order.Command{Type: order.CmdRejectStock, OrderID: "o_X", Key: "k4", By: sys, At: t0, Reason: outOfStock}
	for _, c := range []order.Command{create, cancel, pay, confirm, reject, {}} {
		t.Run(string(c.Type), func(t *testing.T) {
			pb := CommandToPB(c, "req-1")
			if pb.RequestId != "req-1" {
				t.Errorf("RequestId = %q", pb.RequestId)
			}
			wire, err := proto.Marshal(pb)
			if err != nil {
				t.Fatal(err)
			}
			var back CommandRequest
			if err := proto.Unmarshal(wire, &back); err != nil {
				t.Fatal(err)
			}
			got := CommandFromPB(&back)
			want := c
			want.At, want.PaymentTimeout, want.OrderTimeout = time.Time{}, 0, 0 // stamped by the grain, not sent
			if len(want.Lines) == 0 {
				want.Lines = nil
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
			}
			if order.Fingerprint(got) != order.Fingerprint(c) {
				t.Error("the fingerprint changed over the wire: a retry through another node would be refused")
			}
		})
	}
	if got := CommandFromPB(&CommandRequest{Type: "Cancel"}); got.By != (order.Principal{}) {
		t.Errorf("missing principal = %+v", got.By)
	}
	if got := PrincipalToPB(adm); got.Subject != adm.Subject || got.Role != string(adm.Role) {
		t.Errorf("PrincipalToPB = %+v", got)
	}
}

func TestReplyRoundTrip(t *testing.T) {
	for _, st := range []order.Status{order.StatusPaying, order.StatusCreated, order.StatusRejected} {
		testReplyRoundTrip(t, orderIn(t, st))
	}
	if v := ViewFromPB(nil); !reflect.DeepEqual(v, order.View{}) {
		t.Errorf("ViewFromPB(nil) = %+v", v)
	}
}

func testReplyRoundTrip(t *testing.T, o order.Order) {
	t.Helper()
	if o.Status == order.StatusCreated && o.View().ExpiresAt.IsZero() {
		t.Fatal("a CREATED view without expires_at tests nothing")
	}
	for _, replayed := range []bool{false, true} {
		wire, err := proto.Marshal(ReplyOK(o.View(), replayed))
		if err != nil {
			t.Fatal(err)
		}
		var back Reply
		if err := proto.Unmarshal(wire, &back); err != nil {
			t.Fatal(err)
		}
		res, err := ResultFromReply(&back)
		if err != nil {
			t.Fatal(err)
		}
		if res.Replayed != replayed || !reflect.DeepEqual(res.View, o.View()) {
			t.Errorf("ResultFromReply:\n got %+v\nwant %+v (replayed %v)", res, o.View(), replayed)
		}
	}
}

func TestReplyError(t *testing.T) {
	appErr := order.Errorf(order.CodeIllegalTransition, "cannot ship an order that is %s", order.StatusCreated)
	cases := []struct {
		name     string
		err      error
		wantCode order.Code
		wantMsg  string
	}{
		{"app error", appErr, order.CodeIllegalTransition, "cannot ship an order that is CREATED"},
		{"wrapped app error", fmt.Errorf("deciding: %w", order.Errorf(order.CodeNotFound, "order o_1 not found")), order.CodeNotFound, "order o_1 not found"},
		{"unavailable", order.Errorf(order.CodeUnavailable, "order moved"), order.CodeUnavailable, "order moved"},
		{"plain error", errors.New("pq: password authentication failed for user ordermesh"), order.CodeInternal, "internal error"},
		{"wrapped plain error", fmt.Errorf("saving: %w", errors.New("disk full")), order.CodeInternal, "internal error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wire, err := proto.Marshal(ReplyError(tc.err))
			if err != nil {
				t.Fatal(err)
			}
			var back Reply
			if err := proto.Unmarshal(wire, &back); err != nil {
				t.Fatal(err)
			}
			res, err := ResultFromReply(&back)
			var e *order.Error
			if !errors.As(err, &e) {
				t.Fatalf("ResultFromReply = %+v, %v; want an *order.Error", res, err)
			}
			if e.Code != tc.wantCode || e.Message != tc.wantMsg {
				t.Errorf("got (%d, %q), want (%d, %q)", e.Code, e.Message, tc.wantCode, tc.wantMsg)
			}
			if !reflect.DeepEqual(res, order.Result{}) {
				t.Errorf("an error reply carried a result: %+v", res)
			}
		})
	}
}
