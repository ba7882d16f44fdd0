package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestUnstorableTextFailsAloneAmongGoodWrites sends 200 good creates together with
// requests whose key, reason or sku a store could not keep, on both stores: each bad
// request is 400/40000 (at once: the edge refuses it without asking a grain), every good
// one succeeds, and the node logs no ERROR.
func TestUnstorableTextFailsAloneAmongGoodWrites(t *testing.T) {
	for name, store := range storeTargets(t) {
		t.Run(name, func(t *testing.T) {
			node := startFresh(t, store(t))
			shopper := login(t, node.base, "alice")
			tea := map[string]any{"items": []map[string]any{{"sku": "tea-sencha", "qty": 1}}}
			status, env, err := shopper.do("POST", "/api/v1/orders", "first", tea)
			if err != nil || status != 201 {
				t.Fatalf("create: %d %+v %v", status, env, err)
			}
			var first orderView
			_ = json.Unmarshal(env.Data, &first)

			type request struct {
				path, key string
				body      any
			}
			// Go's HTTP client will not send NUL or control characters in a header, so
			// keys are broken the ways a client can break them.
			bad := map[string]request{
				"invalid UTF-8 key": {"/api/v1/orders", "k\xff\xfe", tea},
				"non-ASCII key":     {"/api/v1/orders", "ключ", tea},
				"tab in key":        {"/api/v1/orders/" + first.ID + "/pay", "a\tb", nil},
				"NUL in reason":     {"/api/v1/orders/" + first.ID + "/cancel", "c1", map[string]string{"reason": "a\x00b"}},
				"escape in reason":  {"/api/v1/orders/" + first.ID + "/cancel", "c2", map[string]string{"reason": "\x1b[31m"}},
				"NUL in sku":        {"/api/v1/orders", "c3", map[string]any{"items": []map[string]any{{"sku": "tea\x00", "qty": 1}}}},
			}
			const good = 200
			var wg sync.WaitGroup
			start := make(chan struct{})
			var mu sync.Mutex
			failures := []string{}
			send := func(what string, r request, wantStatus int) {
				defer wg.Done()
				<-start
				status, env, err := shopper.do("POST", r.path, r.key, r.body)
				if err != nil || status != wantStatus || (wantStatus == 400 && env.Code != 40000) {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s: %d %+v %v, want %d", what, status, env, err, wantStatus))
					mu.Unlock()
				}
			}
			for i := range good {
				wg.Add(1)
				go send(fmt.Sprintf("good %d", i), request{"/api/v1/orders", fmt.Sprintf("good-%d", i), tea}, 201)
			}
			for what, r := range bad {
				wg.Add(1)
				go send(what, r, 400)
			}
			close(start)
			wg.Wait()
			for _, f := range failures {
				t.Error(f)
			}
			// The order the bad actions aimed at is untouched and still serves.
			if v := shopper.order(t, first.ID); v.Version != 2 || v.Status != "CREATED" {
				t.Errorf("order after the refused actions: %+v", v)
			}
			if status, env, err := shopper.do("POST", "/api/v1/orders/"+first.ID+"/pay", "pay", nil); err != nil || status != 200 {
				t.Errorf("pay after the refusals: %d %+v %v", status, env, err)
			}
			if logs := node.logs.String(); strings.Contains(logs, "level=ERROR") || strings.Contains(logs, `"level":"ERROR"`) {
				t.Errorf("ERROR logged:\n%s", logs)
			}
		})
	}
}
