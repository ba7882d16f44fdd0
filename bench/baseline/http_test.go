package baseline_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ordermesh/ordermesh/actors/order"

	"golang.org/x/crypto/bcrypt"

	"github.com/ordermesh/ordermesh/bench/baseline"
	"github.com/ordermesh/ordermesh/edge"
	"github.com/ordermesh/ordermesh/persistence"
)

type envelope struct {
	Code    order.Code      `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// TestBehindTheEdge serves the baseline through edge.New, as `ordermesh baseline` does,
// and checks that a client sees ordermesh's API: the envelope, 401 without a token, login
// against the shared users table, 201 on create, replays, 409 and 404 codes.
func TestBehindTheEdge(t *testing.T) {
	s, _ := open(t, baseline.Options{})
	ctx := context.Background()
	// The lowest bcrypt cost: the login path is the edge's, not what this test measures.
	hash, err := bcrypt.GenerateFromPassword([]byte("pw-alice"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []persistence.User{
		{Username: "alice", PasswordHash: string(hash), Role: "shopper"},
		{Username: "bob", PasswordHash: string(hash), Role: "shopper"},
	} {
		if err := s.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	app, err := edge.New(edge.Config{JWTSecret: []byte("baseline-test-secret-of-at-least-32-bytes")},
		edge.Deps{Orders: s, Store: s})
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path, token, key, body string) (int, envelope, http.Header) {
		t.Helper()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if key != "" {
			req.Header.Set(edge.HeaderIdempotencyKey, key)
		}
		resp, err := app.Test(req, -1)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var env envelope
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatalf("%s %s: body %q is not an envelope: %v", method, path, raw, err)
		}
		return resp.StatusCode, env, resp.Header
	}
	login := func(user string) string {
		t.Helper()
		status, env, _ := call("POST", "/auth/login", "", "", `{"username":"`+user+`","password":"pw-alice"}`)
		var out struct {
			AccessToken string `json:"access_token"`
		}
		if status != 200 || json.Unmarshal(env.Data, &out) != nil || out.AccessToken == "" {
			t.Fatalf("login %s: %d %+v", user, status, env)
		}
		return out.AccessToken
	}
	orderBody := `{"items":[{"sku":"tea-sencha","qty":2},{"sku":"mug-stoneware","qty":1}]}`

	status, env, hdr := call("POST", "/api/v1/orders", "", "k1", orderBody)
	if status != 401 || env.Code != order.CodeUnauthenticated || hdr.Get("X-Request-ID") == "" {
		t.Fatalf("create without token: %d %+v", status, env)
	}
	if status, env, _ := call("POST", "/api/v1/orders", "forged.token.here", "k1", orderBody); status != 401 || env.Code != order.CodeUnauthenticated {
		t.Fatalf("create with a forged token: %d %+v", status, env)
	}

	tok := login("alice")
	status, env, hdr = call("POST", "/api/v1/orders", tok, "k1", orderBody)
	var v order.View
	if status != 201 || env.Code != 0 || env.Message != "ok" || json.Unmarshal(env.Data, &v) != nil {
		t.Fatalf("create: %d %+v", status, env)
	}
	// Prices come from the edge's catalog, exactly as for ordermesh.
	if v.Status != order.StatusCreated || v.Total != 2*1290+1850 || v.ID != order.OrderIDFor("alice", "k1") ||
		hdr.Get("Location") != "/api/v1/orders/"+v.ID || hdr.Get(edge.HeaderReplayed) != "" {
		t.Fatalf("created %+v, headers %v", v, hdr)
	}
	status, env, hdr = call("POST", "/api/v1/orders", tok, "k1", orderBody)
	if status != 201 || hdr.Get(edge.HeaderReplayed) != "true" {
		t.Fatalf("create replay: %d %+v %v", status, env, hdr)
	}

	if status, env, _ := call("POST", "/api/v1/orders/"+v.ID+"/ship", tok, "s1", ""); status != 403 || env.Code != order.CodeForbidden {
		t.Fatalf("shopper ships: %d %+v", status, env)
	}
	if status, env, _ := call("POST", "/api/v1/orders/"+v.ID+"/pay", tok, "p1", ""); status != 200 || env.Code != 0 {
		t.Fatalf("pay: %d %+v", status, env)
	}
	if status, env, _ := call("POST", "/api/v1/orders/"+v.ID+"/pay", tok, "p2", ""); status != 409 || env.Code != order.CodeIllegalTransition {
		t.Fatalf("pay twice: %d %+v", status, env)
	}
	if status, env, _ := call("GET", "/api/v1/orders/"+v.ID, login("bob"), "", ""); status != 404 || env.Code != order.CodeNotFound {
		t.Fatalf("bob reads alice's order: %d %+v", status, env)
	}
	status, env, _ = call("GET", "/api/v1/orders/"+v.ID+"/events", tok, "", "")
	var hist struct {
		Events []struct {
			Version int64  `json:"version"`
			To      string `json:"to"`
		} `json:"events"`
	}
	if status != 200 || json.Unmarshal(env.Data, &hist) != nil || len(hist.Events) != 3 || hist.Events[2].To != "PAYING" {
		t.Fatalf("events: %d %s", status, env.Data)
	}
	status, env, _ = call("GET", "/api/v1/orders?limit=1", tok, "", "")
	var list struct {
		Orders []order.View `json:"orders"`
	}
	if status != 200 || json.Unmarshal(env.Data, &list) != nil || len(list.Orders) != 1 || list.Orders[0].Status != order.StatusPaying {
		t.Fatalf("list: %d %s", status, env.Data)
	}
}
