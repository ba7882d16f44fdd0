package cluster

import (
	"context"

	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/ordermesh/ordermesh/actors"
	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/orderpb"
	"github.com/ordermesh/ordermesh/actors/stock"
)

// StockService is the stock.Service of a node: it reaches the grain of a sku wherever it
// lives, as Node does for orders. Node.Stock returns it.
type StockService struct{ n *Node }

var _ stock.Service = StockService{}

// Stock is the node's stock service.
func (n *Node) Stock() StockService { return StockService{n} }

// Execute delivers a command to its sku's grain, wherever it lives.
func (s StockService) Execute(ctx context.Context, c stock.Command, requestID string) (stock.Result, error) {
	if err := order.CheckText("sku", c.SKU); err != nil || c.SKU == "" || len(c.SKU) > order.MaxIDBytes {
		return stock.Result{}, order.Errorf(order.CodeInvalidRequest, "a sku of 1 to %d bytes of text is required", order.MaxIDBytes)
	}
	reply, err := callAs[*orderpb.StockReply](s.n, ctx, stockIdentity(c.SKU), orderpb.StockCommandToPB(c, requestID))
	if err != nil {
		return stock.Result{}, err
	}
	return orderpb.StockResultFromReply(reply)
}

// Get asks a sku's grain for its stock.
func (s StockService) Get(ctx context.Context, sku, requestID string) (stock.View, error) {
	if err := order.CheckText("sku", sku); err != nil || sku == "" || len(sku) > order.MaxIDBytes {
		return stock.View{}, order.Errorf(order.CodeInvalidRequest, "a sku of 1 to %d bytes of text is required", order.MaxIDBytes)
	}
	reply, err := callAs[*orderpb.StockReply](s.n, ctx, stockIdentity(sku), &orderpb.StockGetRequest{Sku: sku, RequestId: requestID})
	if err != nil {
		return stock.View{}, err
	}
	res, err := orderpb.StockResultFromReply(reply)
	return res.View, err
}

func stockIdentity(sku string) *pcluster.ClusterIdentity {
	return pcluster.NewClusterIdentity(actors.StockIdentity(sku), actors.KindStock)
}
