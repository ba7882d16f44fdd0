package edge

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
	"github.com/ordermesh/ordermesh/actors/stock"
)

// adjust sends POST /api/v1/inventory/{sku}/adjust as user.
func (h *harness) adjust(user, sku, key, body string) response {
	h.t.Helper()
	return h.do(req{method: "POST", path: "/api/v1/inventory/" + sku + "/adjust", token: h.token(user), key: key, body: body})
}

func (r response) stockView(t testing.TB) stock.View {
	t.Helper()
	var v stock.View
	if err := json.Unmarshal(r.Data, &v); err != nil {
		t.Fatalf("decoding stock view: %v: %s", err, r.Data)
	}
	return v
}

func TestAdjustInventory(t *testing.T) {
	h, st := newStockHarness(t)
	first := h.adjust("olga", "tea-sencha", "in-1", `{"delta":10,"reason":"delivery"}`).expect(t, 200, order.CodeOK)
	if v := first.stockView(t); v.SKU != "tea-sencha" || v.OnHand != 10 || v.Reserved != 0 || v.Available != 10 || v.Version != 1 ||
		!v.UpdatedAt.Equal(h.clock.Now()) {
		t.Fatalf("view %+v", v)
	}
	if first.Header.Get(HeaderReplayed) != "" {
		t.Error("a first adjustment is marked replayed")
	}
	h.clock.Advance(time.Minute) // a replay must not pick up the new time
	second := h.adjust("olga", "tea-sencha", "in-1", `{"delta":10,"reason":"delivery"}`).expect(t, 200, order.CodeOK)
	if !bytes.Equal(first.Data, second.Data) || second.Header.Get(HeaderReplayed) != "true" {
		t.Errorf("replay differs or is unmarked (%q):\n%s\n%s", second.Header.Get(HeaderReplayed), first.Data, second.Data)
	}
	// The same key for another adjustment, or by another operator, is refused.
	h.adjust("olga", "tea-sencha", "in-1", `{"delta":11,"reason":"delivery"}`).expect(t, 422, order.CodeKeyReused)
	h.adjust("ada", "tea-sencha", "in-1", `{"delta":10,"reason":"delivery"}`).expect(t, 422, order.CodeKeyReused)

	// Units reserved for orders cannot be removed: 10 on hand, 4 reserved, 6 available.
	st.reserve(t, "tea-sencha", "order-1", 4)
	r := h.adjust("ada", "tea-sencha", "out-1", `{"delta":-7}`).expect(t, 409, order.CodeOutOfStock)
	if !strings.Contains(r.Message, "tea-sencha") {
		t.Errorf("out-of-stock message %q does not name the sku", r.Message)
	}
	v := h.adjust("ada", "tea-sencha", "out-2", `{"delta":-6}`).expect(t, 200, order.CodeOK).stockView(t)
	if v.OnHand != 4 || v.Reserved != 4 || v.Available != 0 || v.Version != 3 {
		t.Fatalf("after removing the available units: %+v", v)
	}
	if st.executed != 4 { // +10, its replay, the reservation, -6
		t.Errorf("%d commands reached the grain", st.executed)
	}
}

func TestAdjustInventoryErrors(t *testing.T) {
	h, st := newStockHarness(t)
	tests := []struct {
		name, user, sku, key, body string
		status                     int
		code                       order.Code
	}{
		{"shopper", "alice", "tea-sencha", "a", `{"delta":1}`, 403, order.CodeForbidden},
		{"unknown sku", "olga", "caviar", "b", `{"delta":1}`, 404, order.CodeNotFound},
		{"sku in another case", "olga", "TEA-SENCHA", "b", `{"delta":1}`, 404, order.CodeNotFound},
		{"malformed JSON", "olga", "tea-sencha", "c", `{"delta":`, 400, order.CodeInvalidRequest},
		{"no body", "olga", "tea-sencha", "c", ``, 400, order.CodeInvalidRequest},
		{"fractional delta", "olga", "tea-sencha", "d", `{"delta":1.5}`, 400, order.CodeInvalidRequest},
		{"delta as a string", "olga", "tea-sencha", "e", `{"delta":"5"}`, 400, order.CodeInvalidRequest},
		{"delta beyond int64", "olga", "tea-sencha", "e", `{"delta":9223372036854775808}`, 400, order.CodeInvalidRequest},
		{"reason as a number", "olga", "tea-sencha", "e", `{"delta":1,"reason":5}`, 400, order.CodeInvalidRequest},
		{"unknown field", "olga", "tea-sencha", "f", `{"delta":1,"sku":"mug-stoneware"}`, 400, order.CodeInvalidRequest},
		{"duplicate field", "olga", "tea-sencha", "f", `{"delta":1,"delta":1000}`, 400, order.CodeInvalidRequest},
		{"no key", "olga", "tea-sencha", "", `{"delta":1}`, 400, order.CodeInvalidRequest},
		{"zero delta", "olga", "tea-sencha", "g", `{"delta":0}`, 422, order.CodeValidation},
		{"no delta", "olga", "tea-sencha", "g", `{"reason":"count"}`, 422, order.CodeValidation},
		{"delta over the maximum", "olga", "tea-sencha", "h", `{"delta":1000000001}`, 422, order.CodeValidation},
		{"reason too long", "olga", "tea-sencha", "i", `{"delta":1,"reason":"` + strings.Repeat("x", order.MaxReason+1) + `"}`, 422, order.CodeValidation},
		{"removing from nothing", "ada", "mug-stoneware", "j", `{"delta":-1}`, 409, order.CodeOutOfStock},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.adjust(tt.user, tt.sku, tt.key, tt.body).expect(t, tt.status, tt.code)
		})
	}
	if st.executed != 0 {
		t.Errorf("%d refused adjustments changed the stock", st.executed)
	}
}

func TestInventoryListAndGet(t *testing.T) {
	h, st := newStockHarness(t)
	h.adjust("olga", "mug-stoneware", "m", `{"delta":5}`).expect(t, 200, order.CodeOK)
	h.adjust("olga", "filter-paper", "f", `{"delta":100}`).expect(t, 200, order.CodeOK)
	st.reserve(t, "mug-stoneware", "order-1", 2)

	r := h.do(req{method: "GET", path: "/api/v1/inventory", token: h.token("ada")}).expect(t, 200, order.CodeOK)
	var list inventoryResponse
	if err := json.Unmarshal(r.Data, &list); err != nil {
		t.Fatal(err)
	}
	products := h.catalogProducts()
	if len(list.Items) != len(products) {
		t.Fatalf("%d items for %d products", len(list.Items), len(products))
	}
	for i, p := range products {
		v := list.Items[i]
		want := stock.View{SKU: p.SKU}
		switch p.SKU {
		case "mug-stoneware":
			want = stock.View{SKU: p.SKU, OnHand: 5, Reserved: 2, Available: 3, Version: 2, UpdatedAt: h.clock.Now()}
		case "filter-paper":
			want = stock.View{SKU: p.SKU, OnHand: 100, Available: 100, Version: 1, UpdatedAt: h.clock.Now()}
		}
		if v.SKU != want.SKU || v.OnHand != want.OnHand || v.Reserved != want.Reserved || v.Available != want.Available ||
			v.Version != want.Version || !v.UpdatedAt.Equal(want.UpdatedAt) {
			t.Errorf("item %d: %+v, want %+v", i, v, want)
		}
	}
	if strings.Contains(string(r.Data), `"sku":"tea-sencha","on_hand":0,"reserved":0,"available":0,"version":0,"updated_at"`) {
		t.Errorf("a sku never stocked has an updated_at: %s", r.Data)
	}

	one := h.do(req{method: "GET", path: "/api/v1/inventory/mug-stoneware", token: h.token("olga")}).expect(t, 200, order.CodeOK)
	if v := one.stockView(t); v != list.Items[slices.IndexFunc(products, func(p catalogProduct) bool { return p.SKU == "mug-stoneware" })] {
		t.Errorf("get %+v differs from the listing", v)
	}
	h.do(req{method: "GET", path: "/api/v1/inventory/caviar", token: h.token("olga")}).expect(t, 404, order.CodeNotFound)
	h.do(req{method: "GET", path: "/api/v1/inventory", token: h.token("alice")}).expect(t, 403, order.CodeForbidden)
	h.do(req{method: "GET", path: "/api/v1/inventory/mug-stoneware", token: h.token("alice")}).expect(t, 403, order.CodeForbidden)
}

func (h *harness) catalogProducts() []catalogProduct {
	h.t.Helper()
	r := h.do(req{method: "GET", path: "/api/v1/catalog"}).expect(h.t, 200, order.CodeOK)
	var cat catalogResponse
	if err := json.Unmarshal(r.Data, &cat); err != nil {
		h.t.Fatal(err)
	}
	return cat.Products
}

func TestInventoryPermissionsFollowTheStockDomain(t *testing.T) {
	ops := []string{"listInventory", "getInventory", "adjustInventory"}
	for _, r := range TokenRoles {
		perms := Permissions(r)
		for _, op := range ops {
			if want := stock.Allows(stock.CmdAdjust, r); slices.Contains(perms, op) != want {
				t.Errorf("%s may call %s: %v, want %v", r, op, !want, want)
			}
		}
	}
}

func TestInventoryRetriesWhileGrainIsUnavailable(t *testing.T) {
	h, st := newStockHarness(t)
	st.failNext(3)
	h.adjust("olga", "tea-sencha", "k", `{"delta":2}`).expect(t, 200, order.CodeOK)
	st.failNext(2)
	if v := h.do(req{method: "GET", path: "/api/v1/inventory/tea-sencha", token: h.token("olga")}).expect(t, 200, order.CodeOK).stockView(t); v.OnHand != 2 {
		t.Errorf("view %+v", v)
	}
	st.failNext(5)
	h.do(req{method: "GET", path: "/api/v1/inventory", token: h.token("olga")}).expect(t, 200, order.CodeOK)
	if st.executed != 1 {
		t.Errorf("%d adjustments after retries, want 1", st.executed)
	}

	quick, slow := newStockHarness(t, func(c *Config, _ *Deps) { c.RetryFor = 30 * time.Millisecond })
	slow.failNext(1 << 30)
	for _, r := range []req{
		{method: "POST", path: "/api/v1/inventory/tea-sencha/adjust", token: quick.token("olga"), key: "k", body: `{"delta":1}`},
		{method: "GET", path: "/api/v1/inventory/tea-sencha", token: quick.token("olga")},
		{method: "GET", path: "/api/v1/inventory", token: quick.token("olga")},
	} {
		res := quick.do(r).expect(t, 503, order.CodeUnavailable)
		if res.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s: 503 without Retry-After", r.method, r.path)
		}
	}
	if slow.executed != 0 {
		t.Errorf("%d adjustments while unavailable", slow.executed)
	}
}

// TestInventoryWithoutStockService: a node without Deps.Stock answers the inventory
// endpoints 503 and shows the catalog without "available".
func TestInventoryWithoutStockService(t *testing.T) {
	h := newHarness(t)
	for _, r := range []req{
		{method: "GET", path: "/api/v1/inventory", token: h.token("olga")},
		{method: "GET", path: "/api/v1/inventory/tea-sencha", token: h.token("olga")},
		{method: "POST", path: "/api/v1/inventory/tea-sencha/adjust", token: h.token("olga"), key: "k", body: `{"delta":1}`},
	} {
		h.do(r).expect(t, 503, order.CodeUnavailable)
	}
	r := h.do(req{method: "GET", path: "/api/v1/catalog"}).expect(t, 200, order.CodeOK)
	if strings.Contains(string(r.Data), "available") || r.Header.Get("Cache-Control") != catalogCache {
		t.Errorf("catalog without inventory: %s %s", r.Header.Get("Cache-Control"), r.Data)
	}
}

func TestCatalogShowsAvailable(t *testing.T) {
	h, st := newStockHarness(t)
	h.adjust("olga", "kettle-gooseneck", "k", `{"delta":3}`).expect(t, 200, order.CodeOK)
	st.reserve(t, "kettle-gooseneck", "order-1", 1)
	st.breakSKU("scale-digital")
	products := h.catalogProducts()
	for _, p := range products {
		switch {
		case p.SKU == "scale-digital":
			if p.Available != nil {
				t.Errorf("%s: available %d from a stock that cannot be read", p.SKU, *p.Available)
			}
		case p.Available == nil:
			t.Errorf("%s: no available", p.SKU)
		case p.SKU == "kettle-gooseneck" && *p.Available != 2, p.SKU != "kettle-gooseneck" && *p.Available != 0:
			t.Errorf("%s: available %d", p.SKU, *p.Available)
		}
	}
	if !slices.EqualFunc(products, DemoCatalog().Products(), func(a catalogProduct, b Product) bool { return a.Product == b }) {
		t.Errorf("products changed: %+v", products)
	}
	r := h.do(req{method: "GET", path: "/api/v1/catalog"}).expect(t, 200, order.CodeOK)
	if r.Header.Get("Cache-Control") != catalogStockCache {
		t.Errorf("Cache-Control %q", r.Header.Get("Cache-Control"))
	}
	if !strings.Contains(string(r.Data), `{"sku":"kettle-gooseneck","name":"Gooseneck kettle","unit_price":5900,"currency":"EUR","available":2}`) {
		t.Errorf("catalog %s", r.Data)
	}
	// A sku whose stock is unreachable is logged, and it does not wait for retries.
	if len(h.logs.lines(t, "msg", "catalog served without the availability of some skus")) != 2 {
		t.Errorf("logs: %s", h.logs.String())
	}
}

// TestCreateOrderOutOfStock: the order service's refusal for want of stock is a 409
// 40902 naming the sku, and a retry with the same key is refused alike.
func TestCreateOrderOutOfStock(t *testing.T) {
	h := newHarness(t)
	h.svc.sellOut("mug-stoneware")
	for range 2 {
		r := h.do(req{method: "POST", path: "/api/v1/orders", token: h.token("alice"), key: "sold-out", body: `{"items":` + twoTeas + `}`}).
			expect(t, 409, order.CodeOutOfStock)
		if !strings.Contains(r.Message, "mug-stoneware") {
			t.Errorf("message %q does not name the sku", r.Message)
		}
	}
	h.createOrder("alice", "in-stock", `[{"sku":"tea-sencha","qty":1}]`)
}
