// Conversions between the stock domain (package actors/stock) and its protobuf forms.

package orderpb

import (
	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/stock"
)

// StockCommandToPB converts a stock command for the wire. At is not sent: the grain
// stamps it.
func StockCommandToPB(c stock.Command, requestID string) *StockCommandRequest {
	return &StockCommandRequest{
		Type: string(c.Type), Sku: c.SKU, OrderId: c.OrderID, Qty: c.Qty, Delta: c.Delta,
		IdempotencyKey: c.Key, Reason: c.Reason, By: PrincipalToPB(c.By), RequestId: requestID,
	}
}

// StockCommandFromPB is the inverse of StockCommandToPB.
func StockCommandFromPB(pb *StockCommandRequest) stock.Command {
	return stock.Command{
		Type: stock.CommandType(pb.Type), SKU: pb.Sku, OrderID: pb.OrderId, Qty: pb.Qty, Delta: pb.Delta,
		Key: pb.IdempotencyKey, Reason: pb.Reason, By: PrincipalFromPB(pb.By),
	}
}

// StockReplyOK builds the reply carrying the stock's view and a holding.
func StockReplyOK(v stock.View, h stock.Holding, replayed bool) *StockReply {
	return &StockReply{Stock: stockViewToPB(v), Holding: holdingToPB(h), Replayed: replayed}
}

// StockReplyError builds the reply carrying err; non-application errors become
// CodeInternal. A refused Reserve also carries the stock and the refused holding.
func StockReplyError(err error) *StockReply {
	code := order.ErrorCode(err)
	r := &StockReply{ErrorCode: int32(code), ErrorMessage: order.ErrorMessage(err)}
	if code.Retryable() {
		r.RetryReason = string(order.ErrorReason(err))
	}
	return r
}

// StockResultFromReply turns a grain's reply into a Result and, if it carries one, an
// *order.Error.
func StockResultFromReply(r *StockReply) (stock.Result, error) {
	res := stock.Result{Replayed: r.Replayed}
	if r.Stock != nil {
		res.View = StockViewFromPB(r.Stock)
	}
	if r.Holding != nil {
		res.Holding = stock.Holding{Qty: r.Holding.Qty, State: stock.HoldingState(r.Holding.State), Version: r.Holding.Version}
	}
	if r.ErrorCode != 0 {
		return res, &order.Error{Code: order.Code(r.ErrorCode), Message: r.ErrorMessage, Reason: order.Reason(r.RetryReason)}
	}
	return res, nil
}

func stockViewToPB(v stock.View) *StockView {
	return &StockView{Sku: v.SKU, OnHand: v.OnHand, Reserved: v.Reserved, Version: v.Version, UpdatedAt: unixNano(v.UpdatedAt)}
}

// StockViewFromPB converts a stock view from the wire; Available is derived.
func StockViewFromPB(pb *StockView) stock.View {
	return stock.View{
		SKU: pb.Sku, OnHand: pb.OnHand, Reserved: pb.Reserved, Available: pb.OnHand - pb.Reserved,
		Version: pb.Version, UpdatedAt: fromUnixNano(pb.UpdatedAt),
	}
}

func holdingToPB(h stock.Holding) *Holding {
	return &Holding{Qty: h.Qty, State: string(h.State), Version: h.Version}
}
