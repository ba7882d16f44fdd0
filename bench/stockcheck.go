package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"time"
)

// The stock invariants (issue 9), checked through the API after a flash run: the orders
// (every one the system holds, GET /api/v1/orders) against the inventory
// (GET /api/v1/inventory/{sku}), both read by the operator once no order is RESERVING.
//
// For every sku checked:
//   - oversold: the units held by live orders (CREATED, PAYING, PAID) exceed on_hand, or
//     the counters themselves do (reserved > on_hand, or either below 0). Units are sold
//     out of on_hand only, so this is "sold never exceeds the stock";
//   - reserved-mismatch: reserved differs from the units of the live orders' lines;
//   - on-hand-mismatch: on_hand moved by something other than the bench's acknowledged
//     adjustments and the shipments since the bench first read it (units of orders in
//     SHIPPED or DELIVERED, or REFUNDED after shipping, now minus before);
//
// and for the bench's own creates:
//   - lost-ack: an acknowledged create whose order is missing, RESERVING or REJECTED;
//   - refused-live: a create refused out of stock (40902) whose order exists and is not
//     REJECTED;
//   - still-reserving: an order still RESERVING when the wait for the sagas ran out.

// Stock violation kinds, beside the history checker's.
const (
	ViolationOversold       = "oversold"
	ViolationReserved       = "reserved-mismatch"
	ViolationOnHand         = "on-hand-mismatch"
	ViolationRefusedLive    = "refused-live"
	ViolationStillReserving = "still-reserving"
)

// codeOutOfStock is the API's out-of-stock code (409).
const codeOutOfStock = "40902"

// StockLine is one line of an order as the stock checker reads it.
type StockLine struct {
	SKU string `json:"sku"`
	Qty int64  `json:"qty"`
}

// StockOrder is an order as the stock checker reads it. Shipped is set for a REFUNDED
// order that had shipped (its units left on_hand for good).
type StockOrder struct {
	ID      string      `json:"id"`
	Status  string      `json:"status"`
	Items   []StockLine `json:"items"`
	Shipped bool        `json:"-"`
}

// InventoryView is GET /api/v1/inventory/{sku}.
type InventoryView struct {
	SKU       string `json:"sku"`
	OnHand    int64  `json:"on_hand"`
	Reserved  int64  `json:"reserved"`
	Available int64  `json:"available"`
	Version   uint64 `json:"version"`
}

// StockInput is what the stock check looks at.
type StockInput struct {
	SKUs      []string                 // the skus to check
	Orders    []StockOrder             // every order, after the run
	Inventory map[string]InventoryView // after the run
	// Before is the inventory when the bench first read it and ShippedBefore the units
	// shipped then; Adjusted the deltas of the bench's acknowledged adjustments since.
	// Without Before the on_hand check is skipped.
	Before        map[string]InventoryView
	ShippedBefore map[string]int64
	Adjusted      map[string]int64
	Acks          []Ack // the run's acks: its creates are checked against the orders
}

// StockSKU is the accounting of one sku.
type StockSKU struct {
	SKU          string `json:"sku"`
	OnHand       int64  `json:"on_hand"`
	Reserved     int64  `json:"reserved"`
	LiveUnits    int64  `json:"live_units"`    // lines of CREATED, PAYING, PAID orders
	SoldUnits    int64  `json:"sold_units"`    // lines of PAID, SHIPPED, DELIVERED orders
	ShippedUnits int64  `json:"shipped_units"` // lines of shipped orders, refunded after shipping included
	WantOnHand   int64  `json:"want_on_hand"`  // from Before, Adjusted and the shipments; -1 when unknown
}

// StockCheckResult is the verdict of CheckStock.
type StockCheckResult struct {
	Pass       bool           `json:"pass"`
	SKUs       []StockSKU     `json:"skus"`
	Creates    int            `json:"creates_acknowledged"`
	Refused    int            `json:"creates_refused"`
	Counts     map[string]int `json:"violations_by_kind"`
	Violations []Violation    `json:"violations"`
}

// shippedUnits counts the units of sku that left on_hand with the orders.
func shippedUnits(orders []StockOrder, sku string) int64 {
	var n int64
	for _, o := range orders {
		if o.Status == stateShipped || o.Status == stateDelivered || (o.Status == stateRefunded && o.Shipped) {
			n += unitsOf(o, sku)
		}
	}
	return n
}

func unitsOf(o StockOrder, sku string) int64 {
	var n int64
	for _, l := range o.Items {
		if l.SKU == sku {
			n += l.Qty
		}
	}
	return n
}

// CheckStock verifies the stock invariants. It is pure, so planted violations can be
// tested without a server.
func CheckStock(in StockInput) StockCheckResult {
	res := StockCheckResult{Counts: map[string]int{}}
	add := func(kind, order, format string, args ...any) {
		res.Counts[kind]++
		if len(res.Violations) < maxViolations {
			res.Violations = append(res.Violations, Violation{Kind: kind, OrderID: order, Detail: fmt.Sprintf(format, args...)})
		}
	}
	byID := make(map[string]StockOrder, len(in.Orders))
	for _, o := range in.Orders {
		byID[o.ID] = o
		if o.Status == stateReserving {
			add(ViolationStillReserving, o.ID, "order is still RESERVING")
		}
	}
	for _, sku := range in.SKUs {
		v, ok := in.Inventory[sku]
		if !ok {
			add(ViolationReserved, "", "sku %s: no inventory read", sku)
			continue
		}
		st := StockSKU{SKU: sku, OnHand: v.OnHand, Reserved: v.Reserved, WantOnHand: -1,
			ShippedUnits: shippedUnits(in.Orders, sku)}
		for _, o := range in.Orders {
			if slices.Contains(liveStates, o.Status) {
				st.LiveUnits += unitsOf(o, sku)
			}
			if slices.Contains(soldStates, o.Status) {
				st.SoldUnits += unitsOf(o, sku)
			}
		}
		if st.LiveUnits > v.OnHand || v.Reserved > v.OnHand || v.Reserved < 0 || v.OnHand < 0 {
			add(ViolationOversold, "", "sku %s: %d units held by live orders, reserved %d, on hand %d",
				sku, st.LiveUnits, v.Reserved, v.OnHand)
		}
		if v.Reserved != st.LiveUnits {
			add(ViolationReserved, "", "sku %s: reserved %d, the live orders hold %d", sku, v.Reserved, st.LiveUnits)
		}
		if b, ok := in.Before[sku]; ok {
			st.WantOnHand = b.OnHand + in.Adjusted[sku] - (st.ShippedUnits - in.ShippedBefore[sku])
			if v.OnHand != st.WantOnHand {
				add(ViolationOnHand, "", "sku %s: on hand %d, want %d (%d before, %+d adjusted, %d shipped since)",
					sku, v.OnHand, st.WantOnHand, b.OnHand, in.Adjusted[sku], st.ShippedUnits-in.ShippedBefore[sku])
			}
		}
		res.SKUs = append(res.SKUs, st)
	}
	for _, a := range in.Acks {
		if a.Op != OpCreate || a.OrderID == "" {
			continue
		}
		o, exists := byID[a.OrderID]
		switch {
		case a.OK():
			res.Creates++
			if !exists || o.Status == stateReserving || o.Status == stateRejected {
				st := "missing"
				if exists {
					st = o.Status
				}
				add(ViolationLostAck, a.OrderID, "create key %q acknowledged as %s v%d, the order is %s", a.Key, a.State, a.Version, st)
			}
		case a.Code == codeOutOfStock:
			res.Refused++
			if exists && o.Status != stateRejected {
				add(ViolationRefusedLive, a.OrderID, "create key %q refused out of stock, the order is %s", a.Key, o.Status)
			}
		}
	}
	res.Pass = len(res.Counts) == 0
	return res
}

// addStock merges a stock check into the run's verdict.
func (r *CheckResult) addStock(s StockCheckResult) {
	r.Stock = &s
	r.merge(s.Counts, s.Violations, s.Pass)
}

// merge adds another check's violations to the run's verdict.
func (r *CheckResult) merge(counts map[string]int, vs []Violation, pass bool) {
	for k, n := range counts {
		r.Counts[k] += n
	}
	for _, v := range vs {
		if len(r.Violations) < maxViolations {
			r.Violations = append(r.Violations, v)
		}
	}
	r.Pass = r.Pass && pass
}

// Summary is the stock verdict in one line.
func (s StockCheckResult) Summary() string {
	verdict := "PASS"
	if !s.Pass {
		verdict = "FAIL"
	}
	out := fmt.Sprintf("stock %s: %d acknowledged creates, %d refused out of stock", verdict, s.Creates, s.Refused)
	for _, k := range s.SKUs {
		want := "unknown"
		if k.WantOnHand >= 0 {
			want = fmt.Sprint(k.WantOnHand)
		}
		out += fmt.Sprintf("; %s on hand %d (want %s), reserved %d = live %d, sold %d, shipped %d",
			k.SKU, k.OnHand, want, k.Reserved, k.LiveUnits, k.SoldUnits, k.ShippedUnits)
	}
	return out
}

// ListAllOrders reads every order through GET /api/v1/orders as operator, page by page.
func ListAllOrders(ctx context.Context, lb *Balancer, operator *Account) ([]StockOrder, error) {
	out, err := listAll[StockOrder](ctx, lb, operator, "/api/v1/orders?limit=200", "orders")
	if err != nil {
		return nil, fmt.Errorf("listing orders: %w", err)
	}
	return out, nil
}

// listAll reads path (which has a query) as operator, every page: the items are the
// array named field of each page, next_cursor leads to the next one.
func listAll[T any](ctx context.Context, lb *Balancer, operator *Account, path, field string) ([]T, error) {
	out := []T{}
	cursor := ""
	for {
		p := path
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		var page map[string]json.RawMessage
		if err := getJSON(ctx, lb, operator, p, &page); err != nil {
			return nil, err
		}
		var items []T
		if err := json.Unmarshal(page[field], &items); err != nil {
			return nil, fmt.Errorf("GET %s: %s: %w", p, field, err)
		}
		cursor = ""
		if raw, ok := page["next_cursor"]; ok {
			_ = json.Unmarshal(raw, &cursor)
		}
		out = append(out, items...)
		if cursor == "" || len(items) == 0 {
			return out, nil
		}
	}
}

// GetInventory reads GET /api/v1/inventory/{sku} as operator.
func GetInventory(ctx context.Context, lb *Balancer, operator *Account, sku string) (InventoryView, error) {
	var v InventoryView
	err := getJSON(ctx, lb, operator, "/api/v1/inventory/"+url.PathEscape(sku), &v)
	return v, err
}

// getJSON reads path as operator into out, logging in again on a 401 and retrying a few
// times (right after a run a node may still be settling).
func getJSON(ctx context.Context, lb *Balancer, operator *Account, path string, out any) error {
	var last Response
	for try := range 5 {
		if try > 0 && sleepCtx(ctx, time.Duration(try)*200*time.Millisecond) != nil {
			return ctx.Err()
		}
		last = lb.Do(ctx, Request{Method: http.MethodGet, Path: path, Token: operator.Token()})
		if last.HTTP == http.StatusUnauthorized {
			_ = operator.login(ctx, lb)
			continue
		}
		if last.OK() {
			if err := json.Unmarshal(last.Data, out); err != nil {
				return fmt.Errorf("GET %s: %w", path, err)
			}
			return nil
		}
		if last.HTTP >= 400 && last.HTTP < 500 && last.HTTP != http.StatusTooManyRequests {
			break
		}
	}
	return fmt.Errorf("GET %s: %s", path, describe(last))
}

// stockSnapshot reads the orders (once none is RESERVING, waiting up to wait) and the
// inventory of skus, and marks the REFUNDED orders of those skus that had shipped (from
// their histories).
func stockSnapshot(ctx context.Context, lb *Balancer, operator *Account, skus []string, wait time.Duration) ([]StockOrder, map[string]InventoryView, error) {
	deadline := time.Now().Add(wait)
	var orders []StockOrder
	for {
		var err error
		if orders, err = ListAllOrders(ctx, lb, operator); err != nil {
			return nil, nil, err
		}
		reserving := slices.ContainsFunc(orders, func(o StockOrder) bool { return o.Status == stateReserving })
		if !reserving || time.Now().After(deadline) {
			break
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return nil, nil, err
		}
	}
	var refunded []string
	for _, o := range orders {
		if o.Status != stateRefunded {
			continue
		}
		for _, sku := range skus {
			if unitsOf(o, sku) > 0 {
				refunded = append(refunded, o.ID)
				break
			}
		}
	}
	if len(refunded) > 0 {
		hist, err := FetchHistories(ctx, lb, operator, refunded, 8)
		if err != nil {
			return nil, nil, err
		}
		for i, o := range orders {
			if h, ok := hist[o.ID]; ok {
				orders[i].Shipped = slices.ContainsFunc(h, func(e Event) bool { return e.Type == "OrderShipped" })
			}
		}
	}
	inv := make(map[string]InventoryView, len(skus))
	for _, sku := range skus {
		v, err := GetInventory(ctx, lb, operator, sku)
		if err != nil {
			return nil, nil, err
		}
		inv[sku] = v
	}
	sort.Slice(orders, func(i, j int) bool { return orders[i].ID < orders[j].ID })
	return orders, inv, nil
}
