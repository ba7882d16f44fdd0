package actors

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ordermesh/ordermesh/actors/orderpb"
)

// EncodeSnapshot serialises an order for the store's snapshot column.
func EncodeSnapshot(o *Order) ([]byte, error) {
	s := &orderpb.Snapshot{Order: viewToPB(o.View()), Keys: make([]*orderpb.KeyResult, len(o.Keys))}
	for i, k := range o.Keys {
		s.Keys[i] = &orderpb.KeyResult{
			Key: k.Key, Command: string(k.Command), Fingerprint: k.Fingerprint, Version: k.Version,
			Status: string(k.Status), At: unixNano(k.At), Deadline: unixNano(k.Deadline),
		}
	}
	return proto.Marshal(s)
}

// DecodeSnapshot is the inverse of EncodeSnapshot.
func DecodeSnapshot(b []byte) (Order, error) {
	var s orderpb.Snapshot
	if err := proto.Unmarshal(b, &s); err != nil {
		return Order{}, fmt.Errorf("decoding order snapshot: %w", err)
	}
	v := ViewFromPB(s.Order)
	o := Order{
		ID: v.ID, Customer: v.Customer, Status: v.Status, Version: v.Version, Lines: v.Lines,
		Currency: v.Currency, Total: v.Total, PaymentDeadline: v.PaymentDeadline,
		CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt,
	}
	if len(s.Keys) > 0 {
		o.Keys = make([]KeyResult, len(s.Keys))
		for i, k := range s.Keys {
			o.Keys[i] = KeyResult{
				Key: k.Key, Command: CommandType(k.Command), Fingerprint: k.Fingerprint, Version: k.Version,
				Status: Status(k.Status), At: fromUnixNano(k.At), Deadline: fromUnixNano(k.Deadline),
			}
		}
	}
	return o, nil
}

// ViewToPB converts a view for the wire.
func viewToPB(v View) *orderpb.OrderView {
	pb := &orderpb.OrderView{
		Id: v.ID, Customer: v.Customer, Status: string(v.Status), Version: v.Version,
		Currency: v.Currency, Total: v.Total, PaymentDeadline: unixNano(v.PaymentDeadline),
		CreatedAt: unixNano(v.CreatedAt), UpdatedAt: unixNano(v.UpdatedAt),
		Lines: make([]*orderpb.Line, len(v.Lines)),
	}
	for i, l := range v.Lines {
		pb.Lines[i] = &orderpb.Line{Sku: l.SKU, Name: l.Name, Qty: l.Qty, UnitPrice: l.UnitPrice}
	}
	return pb
}

// ViewFromPB converts a view from the wire; it fills Actions from the table.
func ViewFromPB(pb *orderpb.OrderView) View {
	if pb == nil {
		return View{}
	}
	v := View{
		ID: pb.Id, Customer: pb.Customer, Status: Status(pb.Status), Version: pb.Version,
		Currency: pb.Currency, Total: pb.Total, PaymentDeadline: fromUnixNano(pb.PaymentDeadline),
		CreatedAt: fromUnixNano(pb.CreatedAt), UpdatedAt: fromUnixNano(pb.UpdatedAt),
		Lines: make([]Line, len(pb.Lines)),
	}
	for i, l := range pb.Lines {
		v.Lines[i] = Line{SKU: l.Sku, Name: l.Name, Qty: l.Qty, UnitPrice: l.UnitPrice}
	}
	v.Actions = ActionsFrom(v.Status)
	return v
}

// CommandToPB converts a command for the wire. At and PaymentTimeout are not sent: the
// grain stamps them.
func CommandToPB(c Command, requestID string) *orderpb.CommandRequest {
	pb := &orderpb.CommandRequest{
		Type: string(c.Type), OrderId: c.OrderID, IdempotencyKey: c.Key,
		By:       &orderpb.Principal{Subject: c.By.Subject, Role: string(c.By.Role)},
		Currency: c.Currency, Reason: c.Reason, RequestId: requestID,
		Lines: make([]*orderpb.Line, len(c.Lines)),
	}
	for i, l := range c.Lines {
		pb.Lines[i] = &orderpb.Line{Sku: l.SKU, Name: l.Name, Qty: l.Qty, UnitPrice: l.UnitPrice}
	}
	return pb
}

// CommandFromPB is the inverse of CommandToPB.
func CommandFromPB(pb *orderpb.CommandRequest) Command {
	c := Command{
		Type: CommandType(pb.Type), OrderID: pb.OrderId, Key: pb.IdempotencyKey,
		By: principalFromPB(pb.By), Currency: pb.Currency, Reason: pb.Reason,
	}
	if len(pb.Lines) > 0 {
		c.Lines = make([]Line, len(pb.Lines))
		for i, l := range pb.Lines {
			c.Lines[i] = Line{SKU: l.Sku, Name: l.Name, Qty: l.Qty, UnitPrice: l.UnitPrice}
		}
	}
	return c
}

func principalFromPB(p *orderpb.Principal) Principal {
	if p == nil {
		return Principal{}
	}
	return Principal{Subject: p.Subject, Role: Role(p.Role)}
}

// PrincipalToPB converts a principal for the wire.
func PrincipalToPB(p Principal) *orderpb.Principal {
	return &orderpb.Principal{Subject: p.Subject, Role: string(p.Role)}
}

// ReplyOK builds the reply carrying view v.
func ReplyOK(v View, replayed bool) *orderpb.Reply {
	return &orderpb.Reply{Order: viewToPB(v), Replayed: replayed}
}

// ReplyError builds the reply carrying err; non-application errors become CodeInternal.
func ReplyError(err error) *orderpb.Reply {
	return &orderpb.Reply{ErrorCode: int32(ErrorCode(err)), ErrorMessage: ErrorMessage(err)}
}

// ResultFromReply turns a grain's reply into a Result or an *Error.
func ResultFromReply(r *orderpb.Reply) (Result, error) {
	if r.ErrorCode != 0 {
		return Result{}, &Error{Code: Code(r.ErrorCode), Message: r.ErrorMessage}
	}
	return Result{View: ViewFromPB(r.Order), Replayed: r.Replayed}, nil
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
