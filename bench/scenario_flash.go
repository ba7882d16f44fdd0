package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
)

// flashScenario is a flash sale of one sku (issue 9). Before the schedule starts, the
// operator sets the sku's available units to FlashStock through the API (reads the
// inventory, adjusts by the difference with a fresh key). Then every arrival is one
// shopper's attempt to buy one unit: arrivals 0..FlashBuyers-1 are the first wave, later
// ones the late shoppers, who keep trying for as long as the schedule runs, so units
// freed by churn sell again. A winner churns with probability FlashChurn: half of them
// (all, without --payment-timeout) cancel after holding the unit up to churnHold, the
// others pay and let the payment expire. restock: the operator adds Restock units in the
// middle of the first wave.
//
// Rate is attempts per second: the churn's requests come on top of it. Out of stock
// (409, 40902) is an expected answer of a create, not an error.
type flashScenario struct {
	restock bool
	sku     string
	skus    []string // of every attempt: sku, and basket's second sku

	// Filled by setup: the inventory before the bench touched it and the units shipped
	// then, for the stock check, by sku.
	before        map[string]InventoryView
	shippedBefore map[string]int64
	opened        InventoryView // of sku, after the opening adjustment

	mu        sync.Mutex
	adjusted  map[string]int64 // acknowledged deltas
	restocked int64
	restockAt time.Time
	attempts  []flashAttempt
	churn     map[string]int // by way: cancel, expire
}

type flashAttempt struct {
	intended, done time.Time
	late           bool // a late shopper (after the first wave)
	code           string
}

// churnHold bounds how long a churning winner holds the unit before cancelling.
const churnHold = 500 * time.Millisecond

// stockWait bounds the stock check's wait for orders still RESERVING.
const stockWait = 30 * time.Second

// IsFlash reports whether scenario is a flash sale (flash, restock, basket).
func IsFlash(scenario string) bool {
	return scenario == "flash" || scenario == "restock" || scenario == "basket"
}

func (s *flashScenario) requestsPerArrival() float64 { return 1 }

func (s *flashScenario) setup(ctx context.Context, r *runner) error {
	s.sku, s.skus, s.churn = r.cfg.FlashSKU, []string{r.cfg.FlashSKU}, map[string]int{}
	stock := map[string]int64{s.sku: r.cfg.FlashStock}
	if r.cfg.Scenario == "basket" {
		s.skus = append(s.skus, r.cfg.BasketSKU)
		stock[r.cfg.BasketSKU] = r.cfg.FlashStock / 2
	}
	orders, inv, err := stockSnapshot(ctx, r.lb, r.operator, s.skus, stockWait)
	if err != nil {
		return err
	}
	s.before, s.shippedBefore, s.adjusted = map[string]InventoryView{}, map[string]int64{}, map[string]int64{}
	for _, sku := range s.skus {
		s.before[sku], s.shippedBefore[sku] = inv[sku], shippedUnits(orders, sku)
		// Available = on_hand - reserved: units held by earlier runs' orders stay held.
		v, err := s.adjust(ctx, r, sku, stock[sku]+inv[sku].Reserved-inv[sku].OnHand, r.key("flash-open-"+sku))
		if err != nil {
			return err
		}
		if v.Available != stock[sku] {
			return fmt.Errorf("sku %s has %d units available after the adjustment, want %d", sku, v.Available, stock[sku])
		}
		if sku == s.sku {
			s.opened = v
		}
	}
	return nil
}

// adjust changes the units on hand of the sku by delta as the operator (nothing for 0)
// and returns the inventory after it.
func (s *flashScenario) adjust(ctx context.Context, r *runner, sku string, delta int64, key string) (InventoryView, error) {
	v, err := adjustStock(ctx, r, sku, delta, key)
	if err != nil || delta == 0 {
		return v, err
	}
	s.mu.Lock()
	s.adjusted[sku] += delta
	s.mu.Unlock()
	return v, nil
}

func (s *flashScenario) arrive(ctx context.Context, r *runner, i int, intended time.Time) {
	if s.restock && i == r.cfg.FlashBuyers/2 && r.cfg.Restock > 0 {
		go func() {
			if _, err := s.adjust(r.reqCtx, r, s.sku, r.cfg.Restock, r.key("flash-restock")); err == nil {
				s.mu.Lock()
				s.restocked, s.restockAt = r.cfg.Restock, r.clock.Now()
				s.mu.Unlock()
			}
		}()
	}
	shopper := r.shopper(i)
	key := r.key("flash", i)
	c := call{op: OpCreate, as: shopper, method: http.MethodPost, path: "/api/v1/orders", key: key,
		// The order's id is known before the answer, so a refusal's ack names it too
		// and the stock check can see that a refused create left no live order.
		order: order.OrderIDFor(shopper.Username, key), expect409: true,
		body: map[string]any{"items": s.basket()}}
	resp, done := r.exec(c, intended)
	s.mu.Lock()
	s.attempts = append(s.attempts, flashAttempt{intended: intended, done: done, late: i >= r.cfg.FlashBuyers, code: resp.CodeString()})
	s.mu.Unlock()
	rng := r.sessionRand(i)
	if !resp.OK() || rng.Float64() >= r.cfg.FlashChurn || ctx.Err() != nil {
		return
	}
	if r.cfg.PaymentTimeout > 0 && rng.IntN(2) == 0 {
		if resp, _ := r.exec(command(OpPay, c.order, shopper, key+"-pay"), done); resp.OK() {
			s.count("expire")
		}
		return // the payment expires: the system's timers release the unit
	}
	at := done.Add(time.Duration(rng.Int64N(int64(churnHold))))
	if r.clock.SleepUntil(ctx, at) != nil {
		return
	}
	cancel := command(OpCancel, c.order, shopper, key+"-cancel")
	cancel.body = map[string]string{"reason": "bench flash churn"}
	if resp, _ := r.exec(cancel, at); resp.OK() {
		s.count("cancel")
	}
}

// basket is the items of one attempt: one unit of each sku on sale.
func (s *flashScenario) basket() []map[string]any {
	items := make([]map[string]any, len(s.skus))
	for i, sku := range s.skus {
		items[i] = map[string]any{"sku": sku, "qty": 1}
	}
	return items
}

func (s *flashScenario) count(way string) {
	s.mu.Lock()
	s.churn[way]++
	s.mu.Unlock()
}

// FlashReport is what a flash sale measured. Times are from the first attempt's intended
// start. The selling window runs from there to the completion of the last successful
// create; sold/s is units reserved by successful creates (a unit freed by churn and sold
// again counts again) per second of it. Sell-out: FirstSellout is the first out-of-stock
// answer; FinalSellout the first out-of-stock answer after the last successful create
// completed (the stock stayed gone from then on; 0 when there was none).
type FlashReport struct {
	SKU            string           `json:"sku"`
	Stock          int64            `json:"stock"` // units available when the sale opened
	Restocked      int64            `json:"restocked,omitempty"`
	RestockAtMs    float64          `json:"restock_at_ms,omitempty"`
	Attempts       int              `json:"attempts"`
	LateAttempts   int              `json:"late_attempts"`
	Sold           int              `json:"sold"` // successful creates (units, one each)
	SoldLate       int              `json:"sold_late"`
	Refused        int              `json:"refused"` // 40902
	Churn          map[string]int   `json:"churn,omitempty"`
	WindowMs       float64          `json:"window_ms"`
	AttemptsPerSec float64          `json:"attempts_per_s"`
	SoldPerSec     float64          `json:"sold_per_s"`
	FirstSellout   float64          `json:"first_sellout_ms"`
	FinalSellout   float64          `json:"final_sellout_ms"`
	CreateP50Ms    float64          `json:"create_p50_ms"`
	CreateP99Ms    float64          `json:"create_p99_ms"`
	ByCode         map[string]int64 `json:"refusals_by_code,omitempty"` // every failed create, by code
}

func (s *flashScenario) report(start time.Time) *FlashReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	rep := &FlashReport{SKU: s.sku, Stock: s.opened.Available, Restocked: s.restocked, Churn: maps.Clone(s.churn), ByCode: map[string]int64{}}
	if len(s.attempts) == 0 {
		return rep
	}
	as := slices.Clone(s.attempts)
	slices.SortFunc(as, func(a, b flashAttempt) int { return a.done.Compare(b.done) })
	first := as[0].intended
	for _, a := range as {
		first = minTime(first, a.intended)
	}
	if !s.restockAt.IsZero() {
		rep.RestockAtMs = msSince(first, s.restockAt)
	}
	h := newHistogram()
	var lastSale time.Time
	for _, a := range as {
		rep.Attempts++
		recordLatency(h, a.done.Sub(a.intended))
		if a.late {
			rep.LateAttempts++
		}
		switch a.code {
		case "":
			rep.Sold++
			lastSale = a.done
			if a.late {
				rep.SoldLate++
			}
		case codeOutOfStock:
			rep.Refused++
			if rep.FirstSellout == 0 {
				rep.FirstSellout = msSince(first, a.done)
			}
			fallthrough
		default:
			rep.ByCode[a.code]++
		}
	}
	for _, a := range as {
		if a.code == codeOutOfStock && a.done.After(lastSale) {
			rep.FinalSellout = msSince(first, a.done)
			break
		}
	}
	rep.CreateP50Ms, rep.CreateP99Ms = millis(h.ValueAtQuantile(50)), millis(h.ValueAtQuantile(99))
	if !lastSale.IsZero() {
		rep.WindowMs = msSince(first, lastSale)
	}
	if secs := rep.WindowMs / 1000; secs > 0 {
		rep.SoldPerSec = float64(rep.Sold) / secs
		rep.AttemptsPerSec = float64(rep.Attempts) / msSince(first, as[len(as)-1].done) * 1000
	}
	return rep
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func msSince(from, t time.Time) float64 { return float64(t.Sub(from)) / float64(time.Millisecond) }

// check runs the stock check of the run: waits for the sagas, reads every order and the
// sku's inventory, and holds them against the bench's adjustments and acks.
func (s *flashScenario) check(ctx context.Context, r *runner) (StockCheckResult, error) {
	orders, inv, err := stockSnapshot(ctx, r.lb, r.operator, s.skus, stockWait)
	if err != nil {
		return StockCheckResult{}, err
	}
	s.mu.Lock()
	adjusted := maps.Clone(s.adjusted)
	s.mu.Unlock()
	return CheckStock(StockInput{
		SKUs: s.skus, Orders: orders, Inventory: inv,
		Before: s.before, ShippedBefore: s.shippedBefore, Adjusted: adjusted,
		Acks: r.acks.Snapshot(),
	}), nil
}

// WriteText writes the flash figures of the text report.
func (f *FlashReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "flash sale of %s: %d units available at the opening", f.SKU, f.Stock)
	if f.Restocked > 0 {
		fmt.Fprintf(w, ", %d more at %.0f ms", f.Restocked, f.RestockAtMs)
	}
	fmt.Fprintf(w, "\n  %d attempts (%d late), %.1f attempts/s; %d sold (%d to late shoppers), %.1f sold/s over %.0f ms\n",
		f.Attempts, f.LateAttempts, f.AttemptsPerSec, f.Sold, f.SoldLate, f.SoldPerSec, f.WindowMs)
	fmt.Fprintf(w, "  sold out first at %.0f ms, for good at %.0f ms; create p50 %.2f ms, p99 %.2f ms\n",
		f.FirstSellout, f.FinalSellout, f.CreateP50Ms, f.CreateP99Ms)
	fmt.Fprintf(w, "  refusals by code: %s; churn: %v\n", codes(f.ByCode), f.Churn)
}

// adjustStock changes the units on hand of sku by delta as the operator (nothing for 0)
// and returns the inventory after it.
func adjustStock(ctx context.Context, r *runner, sku string, delta int64, key string) (InventoryView, error) {
	if delta == 0 {
		return GetInventory(ctx, r.lb, r.operator, sku)
	}
	req := Request{Method: http.MethodPost, Path: "/api/v1/inventory/" + url.PathEscape(sku) + "/adjust",
		Token: r.operator.Token(), Key: key, Body: map[string]any{"delta": delta, "reason": "bench " + r.cfg.Scenario}}
	var resp Response
	for try := range 3 { // same key: a retry is safe
		if resp = r.lb.Do(ctx, req); resp.OK() || (resp.HTTP != 0 && resp.HTTP < 500) {
			break
		}
		_ = sleepCtx(ctx, time.Duration(try+1)*200*time.Millisecond)
	}
	if !resp.OK() {
		return InventoryView{}, fmt.Errorf("adjusting sku %s by %+d: %s", sku, delta, describe(resp))
	}
	var v InventoryView
	if err := json.Unmarshal(resp.Data, &v); err != nil {
		return InventoryView{}, fmt.Errorf("adjusting sku %s: %w", sku, err)
	}
	return v, nil
}

// catalogStock is the stock the bench makes available of every sku its baskets draw from
// before a scenario other than flash runs: more than any run here can sell, so stock is
// never what refuses a lifecycle or hot order.
const catalogStock = 10_000_000

// stockCatalog tops up the skus of the bench's baskets to catalogStock available units,
// as an operator would before a sale.
func stockCatalog(ctx context.Context, r *runner) error {
	for _, sku := range basketSKUs {
		v, err := GetInventory(ctx, r.lb, r.operator, sku)
		if err != nil {
			return err
		}
		if v.Available >= catalogStock/2 {
			continue
		}
		if _, err := adjustStock(ctx, r, sku, catalogStock-v.Available, r.key("stock-"+sku)); err != nil {
			return err
		}
	}
	return nil
}
