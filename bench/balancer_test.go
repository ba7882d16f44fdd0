package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// node is a fake edge that counts what it served and names owner as the owner of every
// order, as a clustered node does.
type node struct {
	srv   *httptest.Server
	mu    sync.Mutex
	hits  map[string]int // path -> requests served
	owner *string
}

func newNode(t *testing.T, owner *string) *node {
	n := &node{hits: map[string]int{}, owner: owner}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		n.hits[r.URL.Path]++
		n.mu.Unlock()
		if r.URL.Path == "/readyz" {
			return
		}
		w.Header().Set(HeaderOwner, *n.owner)
		if r.URL.Path == "/api/v1/orders" {
			w.Header().Set("Location", "/api/v1/orders/o1")
			w.WriteHeader(http.StatusCreated)
		}
		_, _ = w.Write([]byte(`{"code":0,"message":"ok","data":{}}`))
	}))
	t.Cleanup(n.srv.Close)
	return n
}

func (n *node) served(path string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hits[path]
}

// After the create's answer names the owner, every request about the order goes to it;
// routing by owner off, they go round robin; an owner that is not ready is skipped.
func TestBalancerRoutesToTheOwner(t *testing.T) {
	var owner string
	a, b, c := newNode(t, &owner), newNode(t, &owner), newNode(t, &owner)
	owner = strings.TrimPrefix(b.srv.URL, "http://")
	lb := NewBalancer(4, 5*time.Second, []string{a.srv.URL, b.srv.URL, c.srv.URL})
	t.Cleanup(lb.Close)
	ctx := context.Background()

	if r := lb.Do(ctx, Request{Method: "POST", Path: "/api/v1/orders", Key: "k"}); !r.OK() {
		t.Fatalf("create: %+v", r)
	}
	for range 9 {
		lb.Do(ctx, Request{Method: "GET", Path: "/api/v1/orders/o1"})
	}
	if got := b.served("/api/v1/orders/o1"); got != 9 {
		t.Errorf("owner served %d of 9 gets (others %d, %d)", got, a.served("/api/v1/orders/o1"), c.served("/api/v1/orders/o1"))
	}
	if sent, toOwner := lb.Sends(); sent != 10 || toOwner != 9 {
		t.Errorf("Sends() = %d, %d; want 10, 9", sent, toOwner)
	}

	lb.mu.Lock()
	lb.ready[b.srv.URL] = false
	lb.mu.Unlock()
	lb.Do(ctx, Request{Method: "GET", Path: "/api/v1/orders/o1"})
	if got := b.served("/api/v1/orders/o1"); got != 9 {
		t.Errorf("an owner that is not ready was sent a request")
	}

	lb.Probe(ctx) // b is ready again
	lb.RouteByOwner(false)
	for range 9 {
		lb.Do(ctx, Request{Method: "GET", Path: "/api/v1/orders/o1"})
	}
	for _, n := range []*node{a, b, c} {
		if got := n.served("/api/v1/orders/o1"); got < 3 {
			t.Errorf("round robin: %s served %d", n.srv.URL, got)
		}
	}
}

func TestOrderOfPath(t *testing.T) {
	for path, want := range map[string]string{
		"/api/v1/orders/o_1":        "o_1",
		"/api/v1/orders/o_1/pay":    "o_1",
		"/api/v1/orders/o_1/events": "o_1",
		"/api/v1/orders/o_1?x=1":    "o_1",
		"/api/v1/orders":            "",
		"/api/v1/orders?limit=5":    "",
		"/api/v1/users/alice":       "",
		"":                          "",
	} {
		if got := orderOfPath(path); got != want {
			t.Errorf("orderOfPath(%q) = %q, want %q", path, got, want)
		}
	}
}
