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
	o, _ = step(t, o, cmdOn(&o, order.CmdSubmitPayment, c.By, "pay", at.Add(time.Nanosecond)))
	cases["zoned, paying"] = o
	return cases
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
	for _, c := range []order.Command{create, cancel, pay, {}} {
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
			want.At, want.PaymentTimeout = time.Time{}, 0 // stamped by the grain, not sent
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
	o := orderIn(t, order.StatusPaying)
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
	if v := ViewFromPB(nil); !reflect.DeepEqual(v, order.View{}) {
		t.Errorf("ViewFromPB(nil) = %+v", v)
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
