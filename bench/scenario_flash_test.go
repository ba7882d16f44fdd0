package bench

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func flashConfig(url string) Config {
	cfg := quickConfig(url, "flash")
	cfg.Rate, cfg.Duration = 200, 1500*time.Millisecond
	cfg.FlashSKU, cfg.FlashStock, cfg.FlashBuyers, cfg.FlashChurn = "kettle", 50, 200, 0.3
	cfg.PaymentTimeout = 200 * time.Millisecond
	return cfg
}

// TestFlashSaleAgainstAFake: a sale of 50 units to 200 shoppers and 100 late ones, with
// churn by cancel and payment expiry, sells every unit, never more, and the checkers
// (histories and stock) pass.
func TestFlashSaleAgainstAFake(t *testing.T) {
	f := newStockFakeAPI(map[string]int64{"kettle": 7}) // the bench adjusts it to 50
	f.paymentTimeout = 200 * time.Millisecond
	srv := httptest.NewServer(f.handler())
	defer srv.Close()
	cfg := flashConfig(srv.URL)
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	fl := rep.Flash
	if rep.Check == nil || !rep.Check.Pass || rep.Check.Stock == nil {
		t.Fatalf("check: %+v", rep.Check)
	}
	if fl == nil || fl.Stock != 50 || fl.Attempts < 250 || fl.Sold < 50 || fl.Refused == 0 || fl.Sold+fl.Refused != fl.Attempts {
		t.Fatalf("flash report %+v", fl)
	}
	if fl.Sold <= 50 {
		t.Fatalf("churned units were not sold again: %+v", fl)
	}
	if fl.SoldPerSec <= 0 || fl.FirstSellout <= 0 || fl.CreateP99Ms <= 0 || fl.ByCode[codeOutOfStock] != int64(fl.Refused) {
		t.Fatalf("flash figures %+v", fl)
	}
	if c, _ := rep.Op(OpCreate); c.Errors != 0 || c.Expected[codeOutOfStock] == 0 {
		t.Fatalf("create op %+v: 40902 is expected, not an error", c)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil || !strings.Contains(text.String(), "sold/s") || !strings.Contains(text.String(), "check stock PASS") {
		t.Fatalf("text report (%v):\n%s", err, text.String())
	}
}

// TestFlashCheckerCatchesAnOversellingFake: the planted bug sells more than the stock.
func TestFlashCheckerCatchesAnOversellingFake(t *testing.T) {
	f := newStockFakeAPI(map[string]int64{"kettle": 0})
	f.oversell = true
	srv := httptest.NewServer(f.handler())
	defer srv.Close()
	cfg := flashConfig(srv.URL)
	cfg.Duration, cfg.FlashChurn = 500*time.Millisecond, 0
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Check == nil || rep.Check.Pass || rep.Check.Counts[ViolationOversold] == 0 {
		t.Fatalf("check: %+v", rep.Check)
	}
}

// TestBasketSaleIsAllOrNothing: baskets of two skus, the second with half the stock: no
// more baskets sell than the scarcer sku has, and the checker passes; a system that keeps
// the available line of a refused basket is caught.
func TestBasketSaleIsAllOrNothing(t *testing.T) {
	for _, partial := range []bool{false, true} {
		f := newStockFakeAPI(map[string]int64{"kettle": 0, "mug": 0})
		f.partial = partial
		srv := httptest.NewServer(f.handler())
		cfg := flashConfig(srv.URL)
		cfg.Scenario, cfg.BasketSKU, cfg.FlashChurn, cfg.Duration = "basket", "mug", 0, 500*time.Millisecond
		rep, err := Run(context.Background(), cfg)
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		if partial {
			if rep.Check == nil || rep.Check.Pass || rep.Check.Counts[ViolationReserved] == 0 {
				t.Fatalf("a partial basket passed the check: %+v", rep.Check)
			}
			continue
		}
		if rep.Check == nil || !rep.Check.Pass || rep.Flash.Sold != 25 {
			t.Fatalf("basket sale: sold %d (want the mug's 25), check %+v", rep.Flash.Sold, rep.Check)
		}
	}
}
