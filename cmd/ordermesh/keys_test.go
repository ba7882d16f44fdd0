package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/edge"
	"github.com/ordermesh/ordermesh/persistence/sqlite"
)

func TestKeysRotatePrunesOnlyWhatNoTokenNeeds(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// The store as a node leaves it on its first start.
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	if _, err := edge.OpenKeyRing(ctx, store, edge.KeyRingOptions{Clock: func() time.Time { return t0 }}); err != nil {
		t.Fatal(err)
	}
	const ttl = 15 * time.Minute
	run := func(at time.Time) string {
		t.Helper()
		var out strings.Builder
		if err := rotateKeys(ctx, store, at, ttl, &out); err != nil {
			t.Fatalf("rotate at %v: %v", at, err)
		}
		return out.String()
	}
	list := func(at time.Time) string {
		t.Helper()
		var out strings.Builder
		if err := listKeys(ctx, store, at, &out); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}

	t1 := t0.Add(24 * time.Hour)
	if out := run(t1); !strings.Contains(out, "created k0002") || strings.Contains(out, "deleted") {
		t.Fatalf("first rotation said:\n%s", out)
	}
	if got := list(t1); !hasRows(got, "k0001 signing", "k0002 pending") {
		t.Errorf("list right after the rotation:\n%s", got)
	}
	if got := list(t1.Add(edge.KeyPropagation)); !hasRows(got, "k0001 verifying", "k0002 signing") {
		t.Errorf("list once k0002 propagated:\n%s", got)
	}

	// Rotating again before the retention keeps k0001: tokens signed with it may live on.
	t2 := t1.Add(edge.KeyRetention(ttl) - time.Second)
	if out := run(t2); !strings.Contains(out, "created k0003") || strings.Contains(out, "deleted") {
		t.Fatalf("second rotation said:\n%s", out)
	}
	// Once k0003 is retention old, k0001 and k0002 go.
	t3 := t2.Add(edge.KeyRetention(ttl))
	out := run(t3)
	if !strings.Contains(out, "deleted k0001") || !strings.Contains(out, "deleted k0002") || !strings.Contains(out, "created k0004") {
		t.Fatalf("third rotation said:\n%s", out)
	}
	if got := list(t3); !hasRows(got, "k0003 signing", "k0004 pending") {
		t.Errorf("list after pruning:\n%s", got)
	}
	keys, _ := store.Secrets(ctx, edge.SecretKindJWT)
	if len(keys) != 2 {
		t.Errorf("%d keys left, want 2", len(keys))
	}
}

// hasRows reports whether the table rows (after the header), with their creation
// times removed, are want.
func hasRows(table string, want ...string) bool {
	rows := strings.Split(strings.TrimSpace(table), "\n")
	if len(rows) != len(want)+1 {
		return false
	}
	for i, row := range rows[1:] {
		f := strings.Fields(row)
		if len(f) != 3 || fmt.Sprintf("%s %s", f[0], f[2]) != want[i] {
			return false
		}
	}
	return true
}

// TestTokensWorkOnEveryNodeAndAfterRestarts starts three nodes without --jwt-secret: the
// token one of them issued is good on all three, and still is after all three restarted
// (and on a baseline sharing their PostgreSQL).
func TestTokensWorkOnEveryNodeAndAfterRestarts(t *testing.T) {
	for name, store := range storeTargets(t) {
		t.Run(name, func(t *testing.T) {
			c := startCluster(t, store(t), 3)
			alice := login(t, c.nodes[0].base, "alice")
			status, env, err := alice.do("POST", "/api/v1/orders", "keys-1", orderBody)
			if err != nil || status != 201 {
				t.Fatalf("create: %d %+v %v", status, env, err)
			}
			var created orderView
			if err := json.Unmarshal(env.Data, &created); err != nil {
				t.Fatal(err)
			}
			everyNode := func(when string) {
				t.Helper()
				for i, p := range c.nodes {
					cl := *alice
					cl.base = p.base
					if status, env, err := cl.do("GET", "/api/v1/orders/"+created.ID, "", nil); err != nil || status != 200 {
						t.Errorf("%s: node %d refused node 0's token: %d %+v %v", when, i, status, env, err)
					}
				}
			}
			everyNode("first start")
			// A session started on node 0, refreshed on the others after the restart.
			refresh := startSession(t, c.nodes[0].base, "bob")

			for i := len(c.nodes) - 1; i >= 0; i-- {
				c.nodes[i].stop()
			}
			// New ports: what is tested is the keys, not a rejoin on the old addresses.
			for i := range c.nodes {
				var join []string
				if i > 0 {
					join = []string{"--join", c.nodes[0].addrs.gossip}
				}
				c.nodes[i] = startFresh(t, c.dsn, join...)
			}
			everyNode("after a restart")
			first := refresh
			for i := range c.nodes {
				refresh = refreshOn(t, c.nodes[(i+1)%len(c.nodes)].base, refresh, 200)
			}
			// The token node 0 issued was spent: presenting it again, anywhere, ends the
			// session, and the newest token with it.
			refreshOn(t, c.nodes[1].base, first, 401)
			refreshOn(t, c.nodes[2].base, refresh, 401)

			if name != "postgres" {
				return // the baseline is the PostgreSQL design
			}
			// The baseline on the same database shares the keys: an empty --jwt-secret
			// leaves it on the store's keys.
			l, err := newLauncher(c.dsn, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			l.bin = binary
			t.Cleanup(l.stop)
			base, err := l.startBaseline(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			cl := *alice
			cl.base = base
			if status, env, err := cl.do("GET", "/api/v1/orders", "", nil); err != nil || status != 200 {
				t.Errorf("the baseline refused a node's token: %d %+v %v", status, env, err)
			}
			// And it refreshes a node's session, whose next token a node refreshes.
			next := refreshOn(t, base, startSession(t, c.nodes[0].base, "bob"), 200)
			refreshOn(t, c.nodes[0].base, next, 200)
		})
	}
}

// startSession logs user in at base and returns the refresh token.
func startSession(t *testing.T, base, user string) string {
	t.Helper()
	c := &client{base: base, http: &http.Client{Timeout: 15 * time.Second}}
	status, env, err := c.do("POST", "/auth/login", "", map[string]string{"username": user, "password": "ordermesh"})
	if err != nil || status != 200 {
		t.Fatalf("login %s: %d %+v %v", user, status, env, err)
	}
	var s struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(env.Data, &s); err != nil || s.RefreshToken == "" {
		t.Fatalf("login response %s: %v", env.Data, err)
	}
	return s.RefreshToken
}

// refreshOn refreshes tok at base, expects status, and returns the next refresh token.
func refreshOn(t *testing.T, base, tok string, want int) string {
	t.Helper()
	c := &client{base: base, http: &http.Client{Timeout: 15 * time.Second}}
	status, env, err := c.do("POST", "/auth/refresh", "", map[string]string{"refresh_token": tok})
	if err != nil || status != want {
		t.Fatalf("refresh at %s: %d %+v %v, want %d", base, status, env, err, want)
	}
	var s struct {
		RefreshToken string `json:"refresh_token"`
	}
	_ = json.Unmarshal(env.Data, &s)
	return s.RefreshToken
}
