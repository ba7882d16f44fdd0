// Conversions between the order domain and its protobuf forms: the messages that cross
// nodes to and from grains, and the snapshot the store keeps.

package orderpb

import (
	"fmt"
	"time"
	"unique"

	"github.com/ordermesh/ordermesh/actors/order"

	"google.golang.org/protobuf/proto"
)

// EncodeSnapshot serialises an order for the store's snapshot column.
func EncodeSnapshot(o *order.Order) ([]byte, error) {
	s := &Snapshot{
		Order: viewToPB(o.View()), Keys: make([]*KeyResult, len(o.Keys)),
		ExpiresAt: unixNano(o.ExpiresAt), Rejection: o.Rejection, StockVersion: o.StockVersion,
	}
	for i, k := range o.Keys {
		s.Keys[i] = &KeyResult{
			Key: k.Key, Command: string(k.Command), Fingerprint: k.Fingerprint, Version: k.Version,
			Status: string(k.Status), At: unixNano(k.At), Deadline: unixNano(k.Deadline),
		}
	}
	return proto.Marshal(s)
}

// DecodeSnapshot is the inverse of EncodeSnapshot.
func DecodeSnapshot(b []byte) (order.Order, error) {
	var s Snapshot
	if err := proto.Unmarshal(b, &s); err != nil {
		return order.Order{}, fmt.Errorf("decoding order snapshot: %w", err)
	}
	v := ViewFromPB(s.Order)
	for i := range v.Lines {
		v.Lines[i].SKU, v.Lines[i].Name = interned(v.Lines[i].SKU), interned(v.Lines[i].Name)
	}
	o := order.Order{
		ID: v.ID, Customer: interned(v.Customer), Status: order.Status(interned(string(v.Status))), Version: v.Version, Lines: v.Lines,
		Currency: interned(v.Currency), Total: v.Total, PaymentDeadline: v.PaymentDeadline,
		CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt,
		ExpiresAt: fromUnixNano(s.ExpiresAt), Rejection: s.Rejection, StockVersion: s.StockVersion,
	}
	if len(s.Keys) > 0 {
		o.Keys = make([]order.KeyResult, len(s.Keys))
		for i, k := range s.Keys {
			o.Keys[i] = order.KeyResult{
				Key: k.Key, Command: order.CommandType(interned(k.Command)), Fingerprint: k.Fingerprint, Version: k.Version,
				Status: order.Status(interned(k.Status)), At: fromUnixNano(k.At), Deadline: fromUnixNano(k.Deadline),
			}
		}
	}
	return o, nil
}

// interned returns the process's one copy of s. A grain lives for as long as its order is
// used, so what it decodes from its snapshot stays on the heap: the text that many orders
// share (statuses, command types, skus and product names, customers, currencies) is then
// held once, not once per grain.
func interned(s string) string { return unique.Make(s).Value() }

// ViewToPB converts a view for the wire.
func viewToPB(v order.View) *OrderView {
	pb := &OrderView{
		Id: v.ID, Customer: v.Customer, Status: string(v.Status), Version: v.Version,
		Currency: v.Currency, Total: v.Total, PaymentDeadline: unixNano(v.PaymentDeadline),
		CreatedAt: unixNano(v.CreatedAt), UpdatedAt: unixNano(v.UpdatedAt), ExpiresAt: unixNano(v.ExpiresAt),
		Lines: make([]*Line, len(v.Lines)),
	}
	for i, l := range v.Lines {
		pb.Lines[i] = &Line{Sku: l.SKU, Name: l.Name, Qty: l.Qty, UnitPrice: l.UnitPrice}
	}
	return pb
}

// ViewFromPB converts a view from the wire; it fills Actions from the table.
func ViewFromPB(pb *OrderView) order.View {
	if pb == nil {
		return order.View{}
	}
	v := order.View{
		ID: pb.Id, Customer: pb.Customer, Status: order.Status(pb.Status), Version: pb.Version,
		Currency: pb.Currency, Total: pb.Total, PaymentDeadline: fromUnixNano(pb.PaymentDeadline),
		CreatedAt: fromUnixNano(pb.CreatedAt), UpdatedAt: fromUnixNano(pb.UpdatedAt), ExpiresAt: fromUnixNano(pb.ExpiresAt),
		Lines: make([]order.Line, len(pb.Lines)),
	}
	for i, l := range pb.Lines {
		v.Lines[i] = order.Line{SKU: l.Sku, Name: l.Name, Qty: l.Qty, UnitPrice: l.UnitPrice}
	}
	v.Actions = order.ActionsFrom(v.Status)
	return v
}

// CommandToPB converts a command for the wire. At and PaymentTimeout are not sent: the
// grain stamps them.
func CommandToPB(c order.Command, requestID string) *CommandRequest {
	pb := &CommandRequest{
		Type: string(c.Type), OrderId: c.OrderID, IdempotencyKey: c.Key,
		By:       &Principal{Subject: c.By.Subject, Role: string(c.By.Role)},
		Currency: c.Currency, Reason: c.Reason, RequestId: requestID,
		Lines: make([]*Line, len(c.Lines)),
	}
	for i, l := range c.Lines {
		pb.Lines[i] = &Line{Sku: l.SKU, Name: l.Name, Qty: l.Qty, UnitPrice: l.UnitPrice}
	}
	return pb
}

// CommandFromPB is the inverse of CommandToPB.
func CommandFromPB(pb *CommandRequest) order.Command {
	c := order.Command{
		Type: order.CommandType(pb.Type), OrderID: pb.OrderId, Key: pb.IdempotencyKey,
		By: PrincipalFromPB(pb.By), Currency: pb.Currency, Reason: pb.Reason,
	}
	if len(pb.Lines) > 0 {
		c.Lines = make([]order.Line, len(pb.Lines))
		for i, l := range pb.Lines {
			c.Lines[i] = order.Line{SKU: l.Sku, Name: l.Name, Qty: l.Qty, UnitPrice: l.UnitPrice}
		}
	}
	return c
}

func PrincipalFromPB(p *Principal) order.Principal {
	if p == nil {
		return order.Principal{}
	}
	return order.Principal{Subject: p.Subject, Role: order.Role(p.Role)}
}

// PrincipalToPB converts a principal for the wire.
func PrincipalToPB(p order.Principal) *Principal {
	return &Principal{Subject: p.Subject, Role: string(p.Role)}
}

// ReplyOK builds the reply carrying view v.
func ReplyOK(v order.View, replayed bool) *Reply {
	return &Reply{Order: viewToPB(v), Replayed: replayed}
}

// ReplyError builds the reply carrying err; non-application errors become CodeInternal.
func ReplyError(err error) *Reply {
	code := order.ErrorCode(err)
	r := &Reply{ErrorCode: int32(code), ErrorMessage: order.ErrorMessage(err)}
	if code.Retryable() {
		r.RetryReason = string(order.ErrorReason(err))
	}
	return r
}

// ResultFromReply turns a grain's reply into a Result or an *Error.
func ResultFromReply(r *Reply) (order.Result, error) {
	if r.ErrorCode != 0 {
		return order.Result{}, &order.Error{Code: order.Code(r.ErrorCode), Message: r.ErrorMessage, Reason: order.Reason(r.RetryReason)}
	}
	return order.Result{View: ViewFromPB(r.Order), Replayed: r.Replayed}, nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
