package orderpb

import "github.com/ordermesh/ordermesh/actors/order"

// ViewToPB converts a view for the wire (live push sends the order after each change).
func ViewToPB(v order.View) *OrderView { return viewToPB(v) }
