package baseline_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/stock"

	"github.com/ordermesh/ordermesh/bench/baseline"
)

// plenty is the stock open puts on the skus the order tests use.
const plenty = 1_000_000

var _ stock.Service = (*baseline.Stocks)(nil)

// adjust changes the units on hand of sku by delta as olga, and fails the test on an error.
func adjust(t testing.TB, s *baseline.Service, sku string, delta int64, key string) stock.View {
	t.Helper()
	res, err := s.Stock().Execute(context.Background(), adjustCmd(sku, delta, key), "test")
	if err != nil {
		t.Fatalf("adjusting %s by %d: %v", sku, delta, err)
	}
	return res.View
}

func adjustCmd(sku string, delta int64, key string) stock.Command {
	return stock.Command{Type: stock.CmdAdjust, SKU: sku, Delta: delta, Key: key, Reason: "test", By: olga}
}

func getStock(t testing.TB, s *baseline.Service, sku string) stock.View {
	t.Helper()
	v, err := s.Stock().Get(context.Background(), sku, "test")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantStock(t testing.TB, s *baseline.Service, sku string, onHand, reserved int64) {
	t.Helper()
	v := getStock(t, s, sku)
	if v.OnHand != onHand || v.Reserved != reserved || v.Available != onHand-reserved {
		t.Fatalf("stock of %s: %+v, want on_hand %d reserved %d", sku, v, onHand, reserved)
	}
}

var kettle = []order.Line{{SKU: "flash-kettle", Name: "Kettle", Qty: 1, UnitPrice: 5900}}

// TestFlashSaleSellsExactlyTheStock is the acceptance test of issue 9 on the baseline:
// 200 concurrent creates of one unit against a stock of 50 sell exactly 50; the other
// 150 get 40902 naming the sku, and so does a retry of one of them with the same key.
func TestFlashSaleSellsExactlyTheStock(t *testing.T) {
	s, _ := open(t, baseline.Options{})
	ctx := context.Background()
	if v := getStock(t, s, "flash-kettle"); v != (stock.View{SKU: "flash-kettle"}) {
		t.Fatalf("never stocked: %+v, want zeros", v)
	}
	adjust(t, s, "flash-kettle", 50, "stock-50")
	const buyers = 200
	results := make([]order.Result, buyers)
	errs := make([]error, buyers)
	var wg sync.WaitGroup
	for i := range buyers {
		wg.Go(func() {
			by := order.Principal{Subject: fmt.Sprintf("buyer-%d", i), Role: order.RoleShopper}
			results[i], errs[i] = s.Execute(ctx, createCmd(by, "flash", kettle), "test")
		})
	}
	wg.Wait()
	sold, refused, loser := 0, 0, -1
	for i, err := range errs {
		switch {
		case err == nil:
			sold++
			if v := results[i].View; v.Status != order.StatusCreated || v.Version != 2 {
				t.Fatalf("buyer %d: %+v, want CREATED at version 2", i, v)
			}
		case order.ErrorCode(err) == order.CodeOutOfStock:
			refused++
			loser = i
			if msg := order.ErrorMessage(err); msg != "out of stock: sku flash-kettle has fewer than 1 available" {
				t.Fatalf("refusal %q does not name the sku", msg)
			}
		default:
			t.Fatalf("buyer %d: %v", i, err)
		}
	}
	if sold != 50 || refused != 150 {
		t.Fatalf("%d sold, %d refused; want 50 and 150", sold, refused)
	}
	wantStock(t, s, "flash-kettle", 50, 50)

	// A refused buyer retries after a cancel freed a unit: the same 409, not a sale.
	winner := slicesIndex(errs, nil)
	do(t, s, cmd(order.CmdCancel, results[winner].View.ID, "cancel", order.Principal{Subject: results[winner].View.Customer, Role: order.RoleShopper}))
	wantStock(t, s, "flash-kettle", 50, 49)
	by := order.Principal{Subject: fmt.Sprintf("buyer-%d", loser), Role: order.RoleShopper}
	wantCode(t, s, createCmd(by, "flash", kettle), order.CodeOutOfStock, "out of stock: sku flash-kettle has fewer than 1 available")
	id := order.OrderIDFor(by.Subject, "flash")
	if got := statuses(checkHistory(t, s, id)); fmt.Sprint(got) != "[RESERVING REJECTED]" {
		t.Fatalf("rejected order's history %v", got)
	}
	// A new buyer gets the freed unit.
	fresh := order.Principal{Subject: "late", Role: order.RoleShopper}
	v := do(t, s, createCmd(fresh, "flash", kettle)).View
	if got := statuses(checkHistory(t, s, v.ID)); fmt.Sprint(got) != "[RESERVING CREATED]" {
		t.Fatalf("created order's history %v", got)
	}
	wantStock(t, s, "flash-kettle", 50, 50)
	// And a replay of its create answers the same, without reserving again.
	again := do(t, s, createCmd(fresh, "flash", kettle))
	if !again.Replayed || again.View.Status != order.StatusCreated || again.View.Version != 2 {
		t.Fatalf("replayed create %+v", again)
	}
	wantStock(t, s, "flash-kettle", 50, 50)
}

func slicesIndex(errs []error, want error) int {
	for i, e := range errs {
		if e == want {
			return i
		}
	}
	return -1
}

// TestStockFollowsTheOrder walks orders through every transition that moves stock.
func TestStockFollowsTheOrder(t *testing.T) {
	s, clk := open(t, baseline.Options{PaymentTimeout: time.Minute, OrderTimeout: 10 * time.Minute})
	adjust(t, s, "flash-kettle", 10, "stock-10")
	two := []order.Line{{SKU: "flash-kettle", Name: "Kettle", Qty: 2, UnitPrice: 5900}}
	mk := func(key string) string { return do(t, s, createCmd(alice, key, two)).View.ID }

	a, b, c, d, e := mk("a"), mk("b"), mk("c"), mk("d"), mk("e")
	wantStock(t, s, "flash-kettle", 10, 10)
	wantCode(t, s, createCmd(alice, "f", two), order.CodeOutOfStock, "")

	do(t, s, cmd(order.CmdCancel, a, "a-cancel", alice)) // CREATED: released
	wantStock(t, s, "flash-kettle", 10, 8)
	for _, id := range []string{b, c, d} {
		do(t, s, cmd(order.CmdSubmitPayment, id, id+"-pay", alice))
	}
	do(t, s, cmd(order.CmdConfirmPayment, b, "b-confirm", olga)) // sold units stay reserved
	do(t, s, cmd(order.CmdConfirmPayment, c, "c-confirm", olga))
	wantStock(t, s, "flash-kettle", 10, 8)
	do(t, s, cmd(order.CmdShip, b, "b-ship", olga)) // shipped: leaves on_hand
	wantStock(t, s, "flash-kettle", 8, 6)
	do(t, s, cmd(order.CmdDeliver, b, "b-deliver", olga))
	do(t, s, cmd(order.CmdRefund, b, "b-refund", olga)) // after delivery: nothing
	wantStock(t, s, "flash-kettle", 8, 6)
	do(t, s, cmd(order.CmdRefund, c, "c-refund", olga)) // from PAID: units back
	wantStock(t, s, "flash-kettle", 8, 4)

	clk.Advance(2 * time.Minute) // d's payment expires
	if n, err := s.Sweep(context.Background()); err != nil || n != 1 {
		t.Fatalf("payment sweep: %d, %v", n, err)
	}
	wantStock(t, s, "flash-kettle", 8, 2)
	clk.Advance(10 * time.Minute) // e was never paid
	if n, err := s.Sweep(context.Background()); err != nil || n != 1 {
		t.Fatalf("order sweep: %d, %v", n, err)
	}
	wantStock(t, s, "flash-kettle", 8, 0)
	if got := checkHistory(t, s, e); got[len(got)-1].Type != "OrderExpired" || got[len(got)-1].To != "CLOSED" {
		t.Fatalf("expired order's history %+v", got)
	}
	// The operator cannot take away what is reserved, but what is available.
	do(t, s, createCmd(alice, "g", two))
	if _, err := s.Stock().Execute(context.Background(), adjustCmd("flash-kettle", -7, "take-7"), "test"); order.ErrorCode(err) != order.CodeOutOfStock {
		t.Fatalf("removing 7 of 6 available: %v", err)
	}
	adjust(t, s, "flash-kettle", -6, "take-6")
	wantStock(t, s, "flash-kettle", 2, 2)
}

// TestAdjustIsIdempotent: a retry answers the same and changes nothing; the same key for
// another adjustment is 422; shoppers may not adjust.
func TestAdjustIsIdempotent(t *testing.T) {
	s, _ := open(t, baseline.Options{})
	ctx := context.Background()
	first := adjust(t, s, "flash-kettle", 5, "k1")
	if first.OnHand != 5 || first.Version != 1 {
		t.Fatalf("first adjustment %+v", first)
	}
	adjust(t, s, "flash-kettle", 3, "k2")
	res, err := s.Stock().Execute(ctx, adjustCmd("flash-kettle", 5, "k1"), "test")
	if err != nil || !res.Replayed || res.View != first {
		t.Fatalf("replay: %+v %v, want %+v replayed", res, err, first)
	}
	wantStock(t, s, "flash-kettle", 8, 0)
	if _, err := s.Stock().Execute(ctx, adjustCmd("flash-kettle", 6, "k1"), "test"); order.ErrorCode(err) != order.CodeKeyReused {
		t.Fatalf("key reused: %v", err)
	}
	c := adjustCmd("flash-kettle", 1, "k3")
	c.By = alice
	if _, err := s.Stock().Execute(ctx, c, "test"); order.ErrorCode(err) != order.CodeForbidden {
		t.Fatalf("shopper adjusting: %v", err)
	}
	if _, err := s.Stock().Execute(ctx, adjustCmd("flash-kettle", -9, "k4"), "test"); order.ErrorCode(err) != order.CodeOutOfStock {
		t.Fatalf("removing more than on hand: %v", err)
	}
	wantStock(t, s, "flash-kettle", 8, 0)
}

// Transactions that move the stock of the same skus wait for each other and never
// deadlock, whatever the order of the lines: creates reserving, cancels releasing and
// ships shipping three skus at once, 24 at a time, all succeed at the first attempt
// (PostgreSQL breaks a deadlock by failing one transaction, after a second).
func TestStockMovesDoNotDeadlock(t *testing.T) {
	s, _ := open(t, baseline.Options{})
	skus := []string{"tea-sencha", "mug-stoneware", "kettle-gooseneck"}
	linesOf := func(i int) []order.Line {
		var ls []order.Line
		for j := range skus { // a different rotation, and so line order, per order
			ls = append(ls, order.Line{SKU: skus[(i+j)%len(skus)], Name: "x", Qty: 1, UnitPrice: 100})
		}
		if i%2 == 1 {
			slices.Reverse(ls)
		}
		return ls
	}
	const orders = 96
	ids := make([]string, orders)
	for i := range orders {
		ids[i] = do(t, s, createCmd(alice, fmt.Sprintf("dl-%d", i), linesOf(i))).View.ID
	}
	for i := range orders / 2 { // half will ship: pay and confirm first
		do(t, s, cmd(order.CmdSubmitPayment, ids[i], "pay", alice))
		do(t, s, cmd(order.CmdConfirmPayment, ids[i], "confirm", olga))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3*orders)
	work := make(chan order.Command)
	for range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				if _, err := s.Execute(context.Background(), c, "test"); err != nil {
					errs <- fmt.Errorf("%s %s: %w", c.Type, c.OrderID, err)
				}
			}
		}()
	}
	for i := range orders {
		if i < orders/2 {
			work <- cmd(order.CmdShip, ids[i], "ship", olga)
		} else {
			work <- cmd(order.CmdCancel, ids[i], "cancel", alice)
		}
		work <- createCmd(bob, fmt.Sprintf("dl-new-%d", i), linesOf(i))
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, sku := range skus { // 96 + 96 reserved, 48 shipped, 48 released
		wantStock(t, s, sku, plenty-orders/2, orders)
	}
}
