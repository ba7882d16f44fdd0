package bench

import (
	"testing"
)

// cleanSale is a consistent flash sale of sku "k": 10 units put in (5 before, +5 by the
// bench), one order shipped before the run (so 4 on hand then), and after it: three live
// orders (CREATED, PAYING, PAID) of 1, a cancelled one, a rejected one, and the shipped one.
func cleanSale() StockInput {
	line := func(n int64) []StockLine { return []StockLine{{SKU: "k", Qty: n}} }
	return StockInput{
		SKUs: []string{"k"},
		Orders: []StockOrder{
			{ID: "o1", Status: stateCreated, Items: line(1)},
			{ID: "o2", Status: statePaying, Items: line(1)},
			{ID: "o3", Status: statePaid, Items: line(1)},
			{ID: "o4", Status: stateClosed, Items: line(1)},
			{ID: "o5", Status: stateRejected, Items: line(1)},
			{ID: "o0", Status: stateDelivered, Items: line(1)},
			{ID: "x", Status: stateCreated, Items: []StockLine{{SKU: "other", Qty: 7}}},
		},
		Inventory:     map[string]InventoryView{"k": {SKU: "k", OnHand: 9, Reserved: 3, Available: 6}},
		Before:        map[string]InventoryView{"k": {SKU: "k", OnHand: 4}},
		ShippedBefore: map[string]int64{"k": 1},
		Adjusted:      map[string]int64{"k": 5},
		Acks: []Ack{
			{Op: OpCreate, OrderID: "o1", Key: "a1", HTTP: 201, Version: 2, State: stateCreated},
			{Op: OpCreate, OrderID: "o4", Key: "a4", HTTP: 201, Version: 2, State: stateCreated},
			{Op: OpCreate, OrderID: "o5", Key: "a5", HTTP: 409, Code: codeOutOfStock},
			{Op: OpCreate, OrderID: "o6", Key: "a6", HTTP: 409, Code: codeOutOfStock}, // never stored: fine
		},
	}
}

func TestCheckStockPassesAConsistentSale(t *testing.T) {
	res := CheckStock(cleanSale())
	if !res.Pass || res.Creates != 2 || res.Refused != 2 || len(res.SKUs) != 1 {
		t.Fatalf("clean sale: %s %+v", res.Summary(), res.Violations)
	}
	if k := res.SKUs[0]; k.LiveUnits != 3 || k.SoldUnits != 2 || k.ShippedUnits != 1 || k.WantOnHand != 9 {
		t.Fatalf("accounting %+v", k)
	}
}

func TestCheckStockCatchesPlantedViolations(t *testing.T) {
	cases := []struct {
		name  string
		plant func(in *StockInput)
		want  string
	}{
		{"more live units than on hand", func(in *StockInput) {
			in.Orders = append(in.Orders, StockOrder{ID: "o7", Status: statePaid, Items: []StockLine{{SKU: "k", Qty: 7}}})
			in.Inventory["k"] = InventoryView{SKU: "k", OnHand: 9, Reserved: 10}
		}, ViolationOversold},
		{"reserved counter beyond on hand", func(in *StockInput) {
			in.Inventory["k"] = InventoryView{SKU: "k", OnHand: 2, Reserved: 3}
			in.Before = nil
		}, ViolationOversold},
		{"reserved disagrees with the orders", func(in *StockInput) {
			in.Inventory["k"] = InventoryView{SKU: "k", OnHand: 9, Reserved: 4} // a leaked reservation
		}, ViolationReserved},
		{"a release that never happened", func(in *StockInput) {
			in.Orders[0].Status = stateClosed // cancelled, yet reserved still counts it
		}, ViolationReserved},
		{"on hand moved by itself", func(in *StockInput) {
			in.Inventory["k"] = InventoryView{SKU: "k", OnHand: 8, Reserved: 3}
		}, ViolationOnHand},
		{"a shipment that did not leave on hand", func(in *StockInput) {
			in.Orders[2].Status = stateShipped
			in.Inventory["k"] = InventoryView{SKU: "k", OnHand: 9, Reserved: 2}
		}, ViolationOnHand},
		{"acknowledged create lost", func(in *StockInput) {
			in.Orders = in.Orders[1:] // o1 is gone
			in.Inventory["k"] = InventoryView{SKU: "k", OnHand: 9, Reserved: 2}
		}, ViolationLostAck},
		{"acknowledged create rejected", func(in *StockInput) {
			in.Acks = append(in.Acks, Ack{Op: OpCreate, OrderID: "o5", Key: "a5", HTTP: 201, Version: 2, State: stateCreated})
		}, ViolationLostAck},
		{"refused create lives", func(in *StockInput) {
			in.Acks = append(in.Acks, Ack{Op: OpCreate, OrderID: "o2", Key: "a2", HTTP: 409, Code: codeOutOfStock})
		}, ViolationRefusedLive},
		{"saga never finished", func(in *StockInput) {
			in.Orders = append(in.Orders, StockOrder{ID: "o8", Status: stateReserving, Items: []StockLine{{SKU: "k", Qty: 1}}})
		}, ViolationStillReserving},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := cleanSale()
			c.plant(&in)
			res := CheckStock(in)
			if res.Pass || res.Counts[c.want] == 0 {
				t.Fatalf("want %s, got %s %+v", c.want, res.Summary(), res.Violations)
			}
		})
	}
}

func TestCheckStockMergesIntoTheRunVerdict(t *testing.T) {
	res := CheckResult{Pass: true, Counts: map[string]int{}}
	in := cleanSale()
	in.Inventory["k"] = InventoryView{SKU: "k", OnHand: 9, Reserved: 4}
	res.addStock(CheckStock(in))
	if res.Pass || res.Counts[ViolationReserved] != 1 || res.Stock == nil || len(res.Violations) != 1 {
		t.Fatalf("merged %+v", res)
	}
}
