package bench

import (
	"encoding/json"
	"fmt"

	"github.com/ordermesh/ordermesh/actors/order"
	"net/http"
	"strings"
	"sync"
	"time"
)

// fakeAPI implements just enough of the ordermesh HTTP API (login, create, actions, get,
// list, events, readyz) for end-to-end tests of the harness, with the same envelope,
// idempotency and 409 semantics. loseEvery > 0 makes it acknowledge every n-th action
// without storing its event: a planted bug the checker must catch.
//
// paymentTimeout > 0 arms a payment deadline on pay; the fake expires it on access: when
// an order is touched (action, get, events) after its deadline while still PAYING, it
// first appends PaymentExpired, as the node's timers would have. expireBoth plants a bug:
// an expiry that also lands after a confirm (both outcomes of the race).
type fakeAPI struct {
	mu             sync.Mutex
	orders         map[string]*fakeOrder
	loseEvery      int
	actions        int
	paymentTimeout time.Duration
	expireBoth     bool
	now            func() time.Time // nil: time.Now
	// stock, when not nil, turns on inventory as issue 9 has it: creates reserve (or are
	// REJECTED with 40902), closing releases, and the inventory endpoints answer.
	// oversell plants a bug: creates never look at what is available.
	stock     map[string]*InventoryView
	stockKeys map[string]InventoryView // adjust key -> answer
	oversell  bool
	// partial plants another: a refused basket keeps the units of its lines that were
	// available (no all-or-nothing).
	partial bool
	// provider, when not nil, puts a simulated payment provider and fulfilment pool behind
	// the fake (issue 10): see fakeProvider.
	provider *fakeProvider
}

// fakeProvider is the payment provider and the fulfilment pool of the fake, asynchronous
// and deterministic: a pay's outcome lands delay after the pay, and the shipment delay
// after the payment, applied when the fake is next asked about the order (as expire
// does); every declineEvery-th payment is declined and every deadEvery-th task dies,
// counted in the order the outcomes land.
type fakeProvider struct {
	delay        time.Duration
	declineEvery int
	deadEvery    int
	// Planted bugs, on every order: the pool ships twice, PAID writes no task, or two.
	shipTwice, loseTask, twoTasks bool

	intents, shipments int
}

// nth counts *n up and reports whether it is now a multiple of every (never when every is 0).
func nth(n *int, every int) bool {
	*n++
	return every > 0 && *n%every == 0
}

// advance applies the provider's and the pool's steps that are due on o. Callers hold f.mu.
func (f *fakeAPI) advance(o *fakeOrder) {
	p := f.provider
	if p == nil {
		return
	}
	now := f.clock()
	for !o.due.IsZero() && !now.Before(o.due) {
		at := o.due
		o.due = time.Time{}
		switch o.status {
		case statePaying:
			o.payments++
			if nth(&p.intents, p.declineEvery) {
				f.system(o, "PaymentFailed", stateCreated, byProvider, fmt.Sprintf("evt_%s_%d", o.id, o.payments))
				break
			}
			f.system(o, "PaymentConfirmed", statePaid, byProvider, fmt.Sprintf("evt_%s_%d", o.id, o.payments))
			tasks := 1
			switch {
			case p.loseTask:
				tasks = 0
			case p.twoTasks:
				tasks = 2
			}
			for i := range tasks {
				o.tasks = append(o.tasks, FulfilmentTask{ID: fmt.Sprintf("fulfil_%s%s", o.id, strings.Repeat("'", i)), OrderID: o.id, State: taskPending})
			}
			if tasks > 0 {
				o.due = at.Add(p.delay)
			}
		case statePaid:
			t := &o.tasks[0]
			t.Attempts++
			if nth(&p.shipments, p.deadEvery) {
				t.State, t.LastError = taskDead, "warehouse: simulated failure"
				break
			}
			f.system(o, "OrderShipped", stateShipped, byPool, t.ID)
			if p.shipTwice {
				f.system(o, "OrderShipped", stateShipped, byPool, t.ID+"-again")
			}
			t.State = taskDone
		}
	}
}

// system appends an event by the system. Callers hold f.mu.
func (f *fakeAPI) system(o *fakeOrder, event, to, by, key string) {
	o.events = append(o.events, Event{Version: int64(len(o.events)) + 1, Type: event, From: o.status, To: to, IdempotencyKey: key, By: by})
	o.status = to
}

// advanceAll advances every order. Callers hold f.mu.
func (f *fakeAPI) advanceAll() {
	for _, o := range f.orders {
		f.advance(o)
	}
}

type fakeOrder struct {
	id, owner string
	status    string
	events    []Event
	answers   map[string]orderView // idempotency key -> original answer
	deadline  time.Time            // payment deadline while PAYING (and after, for expireBoth)
	items     []StockLine
	refusal   bool // REJECTED: every replay of the create is 409 40902
	// provider: when the next system step is due, payments decided, fulfilment tasks
	due      time.Time
	payments int
	tasks    []FulfilmentTask
}

// newCatalogFakeAPI is a fake with inventory whose basket skus start with no stock, as a
// new cluster's do: the bench stocks them before a run.
func newCatalogFakeAPI() *fakeAPI {
	stock := map[string]int64{}
	for _, sku := range basketSKUs {
		stock[sku] = 0
	}
	return newStockFakeAPI(stock)
}

func newStockFakeAPI(stock map[string]int64) *fakeAPI {
	f := newFakeAPI()
	f.stock, f.stockKeys = map[string]*InventoryView{}, map[string]InventoryView{}
	for sku, n := range stock {
		f.stock[sku] = &InventoryView{SKU: sku, OnHand: n, Available: n}
	}
	return f
}

// release gives back o's units when it leaves a live state for CLOSED. Callers hold f.mu.
func (f *fakeAPI) release(o *fakeOrder, from, to string) {
	if f.stock == nil || to != stateClosed || (from != stateCreated && from != statePaying) {
		return
	}
	for _, l := range o.items {
		v := f.stock[l.SKU]
		v.Reserved -= l.Qty
		v.Available, v.Version = v.OnHand-v.Reserved, v.Version+1
	}
}

func (f *fakeAPI) clock() time.Time {
	if f.now != nil {
		return f.now()
	}
	return time.Now()
}

// expire appends PaymentExpired to o when its deadline has passed. Callers hold f.mu.
func (f *fakeAPI) expire(o *fakeOrder) {
	if o.deadline.IsZero() || f.clock().Before(o.deadline) {
		return
	}
	if o.status != statePaying && !(f.expireBoth && o.status == statePaid) {
		return
	}
	o.events = append(o.events, Event{Version: int64(len(o.events)) + 1, Type: "PaymentExpired", From: o.status, To: stateClosed,
		IdempotencyKey: "expire-" + o.deadline.Format(time.RFC3339Nano)})
	f.release(o, o.status, stateClosed)
	o.status, o.deadline = stateClosed, time.Time{}
}

func newFakeAPI() *fakeAPI { return &fakeAPI{orders: map[string]*fakeOrder{}} }

func (f *fakeAPI) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { reply(w, 200, 0, map[string]string{"status": "ready"}) })
	mux.HandleFunc("POST /auth/login", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Username, Password string }
		if json.NewDecoder(r.Body).Decode(&in) != nil || in.Password != "ordermesh" {
			reply(w, 401, 40100, nil)
			return
		}
		reply(w, 200, 0, map[string]string{"access_token": "tok-" + in.Username})
	})
	mux.HandleFunc("POST /api/v1/orders", func(w http.ResponseWriter, r *http.Request) {
		user, key := caller(r), r.Header.Get("Idempotency-Key")
		if user == "" || key == "" {
			reply(w, 400, 40000, nil)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		id := "o-" + user + "-" + key
		if f.stock != nil {
			id = order.OrderIDFor(user, key)
		}
		if o, ok := f.orders[id]; ok {
			w.Header().Set("Idempotent-Replayed", "true")
			if o.refusal {
				reply(w, 409, 40902, nil)
				return
			}
			reply(w, 201, 0, o.answers[key])
			return
		}
		if f.stock != nil {
			f.createWithStock(w, r, id, user, key)
			return
		}
		o := &fakeOrder{id: id, owner: user, status: stateCreated, answers: map[string]orderView{}}
		o.events = []Event{{Version: 1, Type: "OrderCreated", To: stateCreated, IdempotencyKey: key}}
		o.answers[key] = orderView{ID: id, Status: stateCreated, Version: 1}
		f.orders[id] = o
		reply(w, 201, 0, o.answers[key])
	})
	mux.HandleFunc("GET /api/v1/orders", func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		out := []StockOrder{}
		for _, o := range f.orders {
			f.expire(o)
			f.advance(o)
			out = append(out, StockOrder{ID: o.id, Status: o.status, Items: o.items})
		}
		reply(w, 200, 0, map[string]any{"orders": out, "next_cursor": ""})
	})
	mux.HandleFunc("GET /api/v1/inventory/{sku}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if v := f.stock[r.PathValue("sku")]; v != nil {
			reply(w, 200, 0, v)
			return
		}
		reply(w, 404, 40400, nil)
	})
	mux.HandleFunc("POST /api/v1/inventory/{sku}/adjust", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Delta int64 }
		key := r.Header.Get("Idempotency-Key")
		if json.NewDecoder(r.Body).Decode(&in) != nil || key == "" || in.Delta == 0 {
			reply(w, 400, 40000, nil)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		v := f.stock[r.PathValue("sku")]
		switch {
		case v == nil:
			reply(w, 404, 40400, nil)
			return
		case f.stockKeys[key] != (InventoryView{}):
			w.Header().Set("Idempotent-Replayed", "true")
			reply(w, 200, 0, f.stockKeys[key])
			return
		case v.OnHand+in.Delta < v.Reserved:
			reply(w, 409, 40902, nil)
			return
		}
		v.OnHand += in.Delta
		v.Available, v.Version = v.OnHand-v.Reserved, v.Version+1
		f.stockKeys[key] = *v
		reply(w, 200, 0, v)
	})
	mux.HandleFunc("GET /api/v1/fulfilment", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.provider == nil {
			reply(w, 503, 50300, nil)
			return
		}
		f.advanceAll()
		id, state := r.URL.Query().Get("order_id"), r.URL.Query().Get("state")
		out := []FulfilmentTask{}
		for _, o := range f.orders {
			for _, t := range o.tasks {
				if (id == "" || t.OrderID == id) && (state == "" || t.State == state) {
					out = append(out, t)
				}
			}
		}
		reply(w, 200, 0, map[string]any{"tasks": out, "next_cursor": ""})
	})
	mux.HandleFunc("GET /api/v1/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if o := f.orders[r.PathValue("id")]; o != nil {
			f.expire(o)
			f.advance(o)
			reply(w, 200, 0, orderView{ID: o.id, Status: o.status, Version: int64(len(o.events))})
			return
		}
		reply(w, 404, 40400, nil)
	})
	mux.HandleFunc("GET /api/v1/orders/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if o := f.orders[r.PathValue("id")]; o != nil {
			f.expire(o)
			f.advance(o)
			reply(w, 200, 0, map[string]any{"events": o.events})
			return
		}
		reply(w, 404, 40400, nil)
	})
	mux.HandleFunc("POST /api/v1/orders/{id}/{action}", func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		f.mu.Lock()
		defer f.mu.Unlock()
		o := f.orders[r.PathValue("id")]
		event, known := eventForOp(r.PathValue("action"))
		switch {
		case o == nil:
			reply(w, 404, 40400, nil)
			return
		case !known:
			reply(w, 404, 40401, nil)
			return
		}
		if v, ok := o.answers[key]; ok {
			w.Header().Set("Idempotent-Replayed", "true")
			reply(w, 200, 0, v)
			return
		}
		if !f.expireBoth || event != "PaymentConfirmed" {
			f.expire(o) // the planted bug: a confirm does not look at the deadline
		}
		f.advance(o)
		to, ok := legal(o.status, event)
		if !ok {
			reply(w, 409, 40900, nil)
			return
		}
		f.actions++
		f.release(o, o.status, to)
		o.status = to
		version := int64(len(o.events)) + 1
		if f.loseEvery == 0 || f.actions%f.loseEvery != 0 {
			o.events = append(o.events, Event{Version: version, Type: event, To: to, IdempotencyKey: key, By: caller(r)})
		}
		o.answers[key] = orderView{ID: o.id, Status: to, Version: version}
		if f.provider != nil {
			f.handOver(o, to)
		}
		switch {
		case to == statePaying && f.paymentTimeout > 0:
			o.deadline = f.clock().Add(f.paymentTimeout).Truncate(time.Microsecond)
			o.answers[key] = orderView{ID: o.id, Status: to, Version: version, PaymentDeadline: o.deadline}
		case !f.expireBoth || to != statePaid:
			o.deadline = time.Time{}
		}
		time.Sleep(time.Millisecond) // widen the window in which racers overlap
		reply(w, 200, 0, o.answers[key])
	})
	return mux
}

// handOver starts the system's part after a shopper's or operator's command took o to
// `to`: a pay is handed to the provider; a refund of a PAID order cancels its task.
// Callers hold f.mu.
func (f *fakeAPI) handOver(o *fakeOrder, to string) {
	switch to {
	case statePaying:
		o.due = f.clock().Add(f.provider.delay)
	case stateRefunded, stateClosed:
		o.due = time.Time{}
		for i := range o.tasks {
			if o.tasks[i].State == taskPending {
				o.tasks[i].State = taskCancelled
			}
		}
	}
}

func caller(r *http.Request) string {
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer tok-")
}

func reply(w http.ResponseWriter, status, code int, data any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	msg := "ok"
	if code != 0 {
		msg = fmt.Sprint("error ", code)
	}
	json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg, "data": data})
}

// createWithStock is a create under inventory. Callers hold f.mu.
func (f *fakeAPI) createWithStock(w http.ResponseWriter, r *http.Request, id, user, key string) {
	var in struct {
		Items []StockLine `json:"items"`
	}
	if json.NewDecoder(r.Body).Decode(&in) != nil {
		reply(w, 400, 40000, nil)
		return
	}
	o := &fakeOrder{id: id, owner: user, items: in.Items, answers: map[string]orderView{}}
	o.events = []Event{{Version: 1, Type: "OrderCreated", To: stateReserving, IdempotencyKey: key}}
	f.orders[id] = o
	short := false
	for _, l := range in.Items {
		v := f.stock[l.SKU]
		short = short || v == nil || (v.Available < l.Qty && !f.oversell)
	}
	if short {
		for _, l := range in.Items {
			if v := f.stock[l.SKU]; f.partial && v != nil && v.Available >= l.Qty {
				v.Reserved += l.Qty
				v.Available = v.OnHand - v.Reserved
			}
		}
		o.status, o.refusal = stateRejected, true
		o.events = append(o.events, Event{Version: 2, Type: "OrderRejected", From: stateReserving, To: stateRejected, IdempotencyKey: "reserve-stock"})
		reply(w, 409, 40902, nil)
		return
	}
	for _, l := range in.Items {
		v := f.stock[l.SKU]
		v.Reserved += l.Qty
		v.Available, v.Version = v.OnHand-v.Reserved, v.Version+1
	}
	o.status = stateCreated
	o.events = append(o.events, Event{Version: 2, Type: "StockReserved", From: stateReserving, To: stateCreated, IdempotencyKey: "reserve-stock"})
	o.answers[key] = orderView{ID: id, Status: stateCreated, Version: 2}
	reply(w, 201, 0, o.answers[key])
}
