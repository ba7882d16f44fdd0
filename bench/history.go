package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// FetchHistories reads GET /api/v1/orders/{id}/events for every id as operator, with at
// most parallel requests at once. An order whose history cannot be read is left out, and
// the checker reports it as a missing history; only a cancelled ctx is an error.
func FetchHistories(ctx context.Context, lb *Balancer, operator *Account, ids []string, parallel int) (map[string][]Event, error) {
	out, err := fetchEach(ctx, ids, parallel, func(id string) ([]Event, bool) { return fetchHistory(ctx, lb, operator, id) })
	if err != nil {
		return nil, fmt.Errorf("reading histories: %w", err)
	}
	return out, nil
}

// fetchEach calls get for every id, with at most parallel calls at once, and returns what
// the calls that succeeded got, by id. Only a cancelled ctx is an error.
func fetchEach[T any](ctx context.Context, ids []string, parallel int, get func(id string) (T, bool)) (map[string]T, error) {
	out := make(map[string]T, len(ids))
	var mu sync.Mutex
	work := make(chan string)
	var wg sync.WaitGroup
	for range max(parallel, 1) {
		wg.Go(func() {
			for id := range work {
				if v, ok := get(id); ok {
					mu.Lock()
					out[id] = v
					mu.Unlock()
				}
			}
		})
	}
feed:
	for _, id := range ids {
		select {
		case work <- id:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// fetchHistory tries a few times: right after a chaos run a node may still be settling.
func fetchHistory(ctx context.Context, lb *Balancer, operator *Account, id string) ([]Event, bool) {
	for try := range 5 {
		if try > 0 && sleepCtx(ctx, time.Duration(try)*200*time.Millisecond) != nil {
			return nil, false
		}
		resp := lb.Do(ctx, Request{Method: http.MethodGet, Path: "/api/v1/orders/" + url.PathEscape(id) + "/events", Token: operator.Token()})
		if resp.HTTP == http.StatusUnauthorized {
			_ = operator.login(ctx, lb)
			continue
		}
		if !resp.OK() {
			continue
		}
		var body struct {
			Events []Event `json:"events"`
		}
		if err := json.Unmarshal(resp.Data, &body); err != nil {
			continue
		}
		return body.Events, true
	}
	return nil, false
}
