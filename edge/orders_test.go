package edge

import (
	"bytes"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
)

const twoTeas = `[{"sku":"tea-sencha","qty":2},{"sku":"mug-stoneware","qty":1}]`

func TestCreateOrderPricesFromCatalog(t *testing.T) {
	h := newHarness(t)
	v := h.createOrder("alice", "k1", twoTeas)
	if v.ID != order.OrderIDFor("alice", "k1") || v.Customer != "alice" || v.Status != order.StatusCreated || v.Version != 2 {
		t.Fatalf("view %+v", v)
	}
	// CREATED once its stock is reserved (v2), and closed unless paid by its expiry.
	if want := v.CreatedAt.Add(30 * time.Minute); !v.ExpiresAt.Equal(want) || !v.PaymentDeadline.IsZero() {
		t.Errorf("expires_at %v, payment_deadline %v; want %v and none", v.ExpiresAt, v.PaymentDeadline, want)
	}
	want := []order.Line{
		{SKU: "tea-sencha", Name: "Sencha green tea, 100 g", Qty: 2, UnitPrice: 1290},
		{SKU: "mug-stoneware", Name: "Stoneware mug", Qty: 1, UnitPrice: 1850},
	}
	if !slices.Equal(v.Lines, want) || v.Total != 2*1290+1850 || v.Currency != "EUR" {
		t.Fatalf("lines %+v total %d %s", v.Lines, v.Total, v.Currency)
	}
	if !slices.Equal(v.Actions, []string{"pay", "cancel"}) {
		t.Errorf("actions %v", v.Actions)
	}
}

func TestCreateOrderSameKeyTwice(t *testing.T) {
	h := newHarness(t)
	send := func(body string) response {
		return h.do(req{method: "POST", path: "/api/v1/orders", token: h.token("alice"), key: "same", body: body})
	}
	first := send(`{"items":`+twoTeas+`}`).expect(t, 201, order.CodeOK)
	h.clock.Advance(time.Minute) // a replay must not pick up the new time
	second := send(`{"items":`+twoTeas+`}`).expect(t, 201, order.CodeOK)
	if !bytes.Equal(first.Data, second.Data) {
		t.Errorf("replay differs:\n%s\n%s", first.Data, second.Data)
	}
	if first.Header.Get(HeaderReplayed) != "" || second.Header.Get(HeaderReplayed) != "true" {
		t.Errorf("%s headers: %q then %q", HeaderReplayed, first.Header.Get(HeaderReplayed), second.Header.Get(HeaderReplayed))
	}
	if first.Header.Get("Location") != "/api/v1/orders/"+first.view(t).ID {
		t.Errorf("Location %q", first.Header.Get("Location"))
	}
	if v := second.view(t); v.Status != order.StatusCreated || v.Version != 2 {
		t.Errorf("replayed view %+v", v)
	}
	if ev := h.events("alice", first.view(t).ID); len(ev) != 2 || ev[0].Version != 1 || ev[0].Type != string(order.EvtCreated) ||
		ev[1].Version != 2 || ev[1].Type != string(order.EvtStockReserved) {
		t.Fatalf("events after a replay: %+v", ev)
	}
	// The same key for a different order is refused, not silently replayed.
	send(`{"items":[{"sku":"tea-sencha","qty":5}]}`).expect(t, 422, order.CodeKeyReused)
	// Another shopper's identical key is another order.
	h.createOrder("bob", "same", twoTeas)
}

func TestActionSameKeyTwice(t *testing.T) {
	h := newHarness(t)
	id := h.createOrder("alice", "k", twoTeas).ID
	first := h.act("alice", id, "pay", "pay-1").expect(t, 200, order.CodeOK)
	second := h.act("alice", id, "pay", "pay-1").expect(t, 200, order.CodeOK)
	if !bytes.Equal(first.Data, second.Data) || second.Header.Get(HeaderReplayed) != "true" {
		t.Errorf("replay differs or is unmarked:\n%s\n%s", first.Data, second.Data)
	}
	if v := second.view(t); v.Status != order.StatusPaying || v.Version != 3 {
		t.Errorf("view %+v", v)
	}
	if ev := h.events("alice", id); len(ev) != 3 {
		t.Fatalf("%d events, want 3", len(ev))
	}
}

func TestCreateOrderErrors(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name   string
		user   string
		key    string
		body   string
		status int
		code   order.Code
	}{
		{"unknown sku", "alice", "a", `{"items":[{"sku":"caviar","qty":1}]}`, 422, order.CodeValidation},
		{"zero qty", "alice", "b", `{"items":[{"sku":"tea-sencha","qty":0}]}`, 422, order.CodeValidation},
		{"qty too large", "alice", "c", `{"items":[{"sku":"tea-sencha","qty":1001}]}`, 422, order.CodeValidation},
		{"no items", "alice", "d", `{"items":[]}`, 422, order.CodeValidation},
		{"null body", "alice", "e", `null`, 422, order.CodeValidation},
		{"client price", "alice", "f", `{"items":[{"sku":"tea-sencha","qty":1,"unit_price":1}]}`, 400, order.CodeInvalidRequest},
		{"no key", "alice", "", `{"items":` + twoTeas + `}`, 400, order.CodeInvalidRequest},
		{"key too long", "alice", string(bytes.Repeat([]byte("k"), 201)), `{"items":` + twoTeas + `}`, 400, order.CodeInvalidRequest},
		{"operator may not create", "olga", "g", `{"items":` + twoTeas + `}`, 403, order.CodeForbidden},
		{"same sku twice", "alice", "h", `{"items":[{"sku":"tea-sencha","qty":1},{"sku":"mug-stoneware","qty":1},{"sku":"tea-sencha","qty":1}]}`, 422, order.CodeDuplicateItem},
		{"100 lines of 1000 of one sku", "alice", "i", `{"items":[` + strings.Repeat(`{"sku":"tea-sencha","qty":1000},`, 99) + `{"sku":"tea-sencha","qty":1000}]}`, 422, order.CodeDuplicateItem},
		{"too many items in all", "alice", "j", `{"items":[{"sku":"tea-sencha","qty":1000},{"sku":"tea-earlgrey","qty":1000},{"sku":"filter-paper","qty":1}]}`, 422, order.CodeOrderTooLarge},
		{"most items in all", "alice", "k", `{"items":[{"sku":"tea-sencha","qty":1000},{"sku":"tea-earlgrey","qty":1000}]}`, 201, order.CodeOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.do(req{method: "POST", path: "/api/v1/orders", token: h.token(tt.user), key: tt.key, body: tt.body}).expect(t, tt.status, tt.code)
		})
	}
}

func TestCreateOrderValueLimit(t *testing.T) {
	catalog, err := NewCatalog([]Product{
		{SKU: "gold-bar", Name: "Gold bar", UnitPrice: order.MaxTotalValue / 2, Currency: "EUR"},
		{SKU: "pin", Name: "Pin", UnitPrice: 1, Currency: "EUR"},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(_ *Config, d *Deps) { d.Catalog = catalog })
	create := func(key, items string) response {
		return h.do(req{method: "POST", path: "/api/v1/orders", token: h.token("alice"), key: key, body: `{"items":` + items + `}`})
	}
	create("at-limit", `[{"sku":"gold-bar","qty":2}]`).expect(t, 201, order.CodeOK)
	r := create("over-limit", `[{"sku":"gold-bar","qty":2},{"sku":"pin","qty":1}]`).expect(t, 422, order.CodeOrderTooLarge)
	if !strings.Contains(r.Message, "total") {
		t.Errorf("message %q does not say what is over the limit", r.Message)
	}
}

func TestOrderVisibility(t *testing.T) {
	h := newHarness(t)
	id := h.createOrder("alice", "k", twoTeas).ID
	tests := []struct {
		name   string
		user   string
		path   string
		status int
		code   order.Code
	}{
		{"owner", "alice", "/api/v1/orders/" + id, 200, order.CodeOK},
		{"operator", "olga", "/api/v1/orders/" + id, 200, order.CodeOK},
		{"admin", "ada", "/api/v1/orders/" + id, 200, order.CodeOK},
		{"another shopper", "bob", "/api/v1/orders/" + id, 404, order.CodeNotFound},
		{"unknown order", "alice", "/api/v1/orders/o_NOPE", 404, order.CodeNotFound},
		{"malformed id", "alice", "/api/v1/orders/" + url.PathEscape("a.b"), 404, order.CodeNotFound},
		{"id too long", "olga", "/api/v1/orders/" + string(bytes.Repeat([]byte("x"), 65)), 404, order.CodeNotFound},
		{"owner's events", "alice", "/api/v1/orders/" + id + "/events", 200, order.CodeOK},
		{"another shopper's events", "bob", "/api/v1/orders/" + id + "/events", 404, order.CodeNotFound},
		{"unknown order's events", "olga", "/api/v1/orders/o_NOPE/events", 404, order.CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.do(req{method: "GET", path: tt.path, token: h.token(tt.user)}).expect(t, tt.status, tt.code)
		})
	}
	// Acting on someone else's order looks exactly like acting on no order.
	h.act("bob", id, "cancel", "c").expect(t, 404, order.CodeNotFound)
}

func TestActionErrors(t *testing.T) {
	h := newHarness(t)
	id := h.createOrder("alice", "k", twoTeas).ID
	tests := []struct {
		name   string
		user   string
		action string
		key    string
		status int
		code   order.Code
	}{
		{"illegal transition", "olga", "ship", "s1", 409, order.CodeIllegalTransition},
		{"shopper may not ship", "alice", "ship", "s2", 403, order.CodeForbidden},
		{"shopper may not refund", "alice", "refund", "r1", 403, order.CodeForbidden},
		{"operator may not pay", "olga", "pay", "p1", 403, order.CodeForbidden},
		{"unknown action", "alice", "teleport", "t1", 404, order.CodeRouteNotFound},
		{"timer-only command", "olga", "ExpirePayment", "e1", 404, order.CodeRouteNotFound},
		{"missing key", "alice", "pay", "", 400, order.CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.act(tt.user, id, tt.action, tt.key).expect(t, tt.status, tt.code)
		})
	}
	// Nothing above changed the order: its create and its reservation only.
	if ev := h.events("alice", id); len(ev) != 2 {
		t.Fatalf("%d events, want 2", len(ev))
	}
}

func TestWalkthroughs(t *testing.T) {
	type step struct {
		user, action string
		want         order.Status
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"delivered", []step{
			{"alice", "pay", order.StatusPaying},
			{"olga", "confirm-payment", order.StatusPaid},
			{"olga", "ship", order.StatusShipped},
			{"ada", "deliver", order.StatusDelivered},
		}},
		{"refunded after delivery", []step{
			{"alice", "pay", order.StatusPaying},
			{"olga", "confirm-payment", order.StatusPaid},
			{"olga", "ship", order.StatusShipped},
			{"olga", "deliver", order.StatusDelivered},
			{"ada", "refund", order.StatusRefunded},
		}},
		{"refunded before shipping", []step{
			{"alice", "pay", order.StatusPaying},
			{"olga", "confirm-payment", order.StatusPaid},
			{"olga", "refund", order.StatusRefunded},
		}},
		{"payment failed, paid again, cancelled", []step{
			{"alice", "pay", order.StatusPaying},
			{"olga", "fail-payment", order.StatusCreated},
			{"alice", "pay", order.StatusPaying},
			{"alice", "cancel", order.StatusClosed},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			id := h.createOrder("alice", "create", twoTeas).ID
			for i, s := range tt.steps {
				h.clock.Advance(time.Second)
				v := h.act(s.user, id, s.action, "step-"+string(rune('a'+i))).expect(t, 200, order.CodeOK).view(t)
				// Versions 1 and 2 are the create and its reservation.
				if v.Status != s.want || v.Version != uint64(i+3) {
					t.Fatalf("after %s: %s v%d, want %s v%d", s.action, v.Status, v.Version, s.want, i+3)
				}
				if !slices.Equal(v.Actions, order.ActionsFrom(s.want)) {
					t.Errorf("after %s: actions %v", s.action, v.Actions)
				}
			}
			got := h.do(req{method: "GET", path: "/api/v1/orders/" + id, token: h.token("alice")}).expect(t, 200, order.CodeOK).view(t)
			if got.Status != tt.steps[len(tt.steps)-1].want {
				t.Errorf("GET says %s", got.Status)
			}
			events := h.events("olga", id)
			if len(events) != len(tt.steps)+2 {
				t.Fatalf("%d events, want %d", len(events), len(tt.steps)+2)
			}
			if events[1].Type != string(order.EvtStockReserved) || events[1].IdempotencyKey != "reserve-stock" {
				t.Errorf("event 1 is not the reservation: %+v", events[1])
			}
			for i, e := range events {
				if e.Version != int64(i+1) || !order.Legal(order.Status(e.From), order.EventType(e.Type), order.Status(e.To)) {
					t.Errorf("event %d is not a legal step: %+v", i, e)
				}
				if e.IdempotencyKey == "" || e.Node != "node-test" || len(e.Payload) == 0 || !json.Valid(e.Payload) {
					t.Errorf("event %d incomplete: %+v", i, e)
				}
			}
		})
	}
}

func TestListOrders(t *testing.T) {
	h := newHarness(t)
	var alices []string
	for _, k := range []string{"1", "2", "3"} {
		h.clock.Advance(time.Second)
		alices = append(alices, h.createOrder("alice", k, twoTeas).ID)
	}
	h.clock.Advance(time.Second)
	bobs := h.createOrder("bob", "1", twoTeas).ID
	h.act("alice", alices[0], "pay", "p").expect(t, 200, order.CodeOK)

	list := func(user, query string) orderListResponse {
		t.Helper()
		r := h.do(req{method: "GET", path: "/api/v1/orders" + query, token: h.token(user)}).expect(t, 200, order.CodeOK)
		var out orderListResponse
		if err := json.Unmarshal(r.Data, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	ids := func(l orderListResponse) []string {
		var out []string
		for _, v := range l.Orders {
			out = append(out, v.ID)
		}
		return out
	}
	newestFirst := slices.Clone(alices)
	slices.Reverse(newestFirst)

	if got := ids(list("alice", "")); !slices.Equal(got, newestFirst) {
		t.Errorf("alice sees %v, want her own %v", got, newestFirst)
	}
	if got := ids(list("bob", "?customer=alice")); !slices.Equal(got, []string{bobs}) {
		t.Errorf("bob sees %v, want only his own", got)
	}
	if got := ids(list("olga", "")); len(got) != 4 {
		t.Errorf("operator sees %v, want all 4", got)
	}
	if got := ids(list("olga", "?customer=bob")); !slices.Equal(got, []string{bobs}) {
		t.Errorf("operator filtering by bob sees %v", got)
	}
	if l := list("alice", "?status=PAYING"); !slices.Equal(ids(l), alices[:1]) || l.Orders[0].Status != order.StatusPaying {
		t.Errorf("PAYING filter: %v", ids(l))
	}

	// Paging through two at a time yields everything once.
	var paged []string
	page := list("alice", "?limit=2")
	paged = append(paged, ids(page)...)
	if page.NextCursor == "" {
		t.Fatal("no next_cursor on a full page")
	}
	cursor := page.NextCursor
	page = list("alice", "?limit=2&cursor="+url.QueryEscape(cursor))
	paged = append(paged, ids(page)...)
	if !slices.Equal(paged, newestFirst) || page.NextCursor != "" {
		t.Errorf("paged %v (next %q), want %v", paged, page.NextCursor, newestFirst)
	}

	for _, q := range []string{
		"?status=LOST", "?limit=0", "?limit=201", "?limit=two", "?cursor=garbage",
		"?cursor=" + url.QueryEscape(cursor+"x"), "?status=CREATED&cursor=" + url.QueryEscape(cursor),
	} {
		h.do(req{method: "GET", path: "/api/v1/orders" + q, token: h.token("alice")}).expect(t, 400, order.CodeInvalidRequest)
	}
	// A cursor is bound to the listing it came from: bob cannot page through alice's.
	h.do(req{method: "GET", path: "/api/v1/orders?limit=2&cursor=" + url.QueryEscape(cursor), token: h.token("bob")}).
		expect(t, 400, order.CodeInvalidRequest)
}

func TestRetriesWhileGrainIsUnavailable(t *testing.T) {
	h := newHarness(t)
	h.svc.failNext(3)
	v := h.createOrder("alice", "k", twoTeas)
	h.svc.failNext(2)
	h.do(req{method: "GET", path: "/api/v1/orders/" + v.ID, token: h.token("alice")}).expect(t, 200, order.CodeOK)
	if ev := h.events("alice", v.ID); len(ev) != 2 {
		t.Fatalf("%d events, want 2", len(ev))
	}

	quick := newHarness(t, func(c *Config, _ *Deps) { c.RetryFor = 30 * time.Millisecond })
	quick.svc.failNext(1 << 30)
	r := quick.act("alice", v.ID, "pay", "p").expect(t, 503, order.CodeUnavailable)
	if r.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}
