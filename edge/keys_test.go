package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"sync"
	"testing"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ordermesh/ordermesh/persistence"
)

// withStoreKeys makes the harness sign with the store's keys, as a node without
// --jwt-secret does.
func withStoreKeys(t testing.TB) option {
	return func(c *Config, d *Deps) {
		ring, err := OpenKeyRing(context.Background(), d.Store.(persistence.Secrets), KeyRingOptions{Clock: d.Clock})
		if err != nil {
			t.Fatalf("OpenKeyRing: %v", err)
		}
		c.JWTSecret, d.Keys = nil, ring
	}
}

// login logs user in over the API and returns the access token.
func (h *harness) login(user string) string {
	h.t.Helper()
	r := h.do(req{method: "POST", path: "/auth/login", body: `{"username":"` + user + `","password":"` + DemoPassword + `"}`}).
		expect(h.t, 200, order.CodeOK)
	var out loginResponse
	if err := json.Unmarshal(r.Data, &out); err != nil {
		h.t.Fatal(err)
	}
	return out.AccessToken
}

// kidOf returns the kid header of a token.
func kidOf(t testing.TB, token string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}

// storeKey reads a signing key straight from the store, as another node would have it.
func (h *harness) storeKey(kid string) []byte {
	h.t.Helper()
	keys, err := h.store.Secrets(context.Background(), SecretKindJWT)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, k := range keys {
		if k.ID == kid {
			return k.Value
		}
	}
	h.t.Fatalf("no key %s in the store", kid)
	return nil
}

func (h *harness) listOrders(token string) response {
	h.t.Helper()
	return h.do(req{method: "GET", path: "/api/v1/orders", token: token})
}

func TestStoreKeysSignWithAKidAndSurviveARestart(t *testing.T) {
	h := newHarness(t, withStoreKeys(t))
	token := h.login("alice")
	if kid := kidOf(t, token); kid != firstKeyID {
		t.Fatalf("kid %q, want the first key %s", kid, firstKeyID)
	}
	h.listOrders(token).expect(t, 200, order.CodeOK)

	// A second ring on the same store (another node, or this one restarted) loads the
	// same key instead of creating one, and accepts the token.
	again, err := New(Config{NodeID: "node-2"}, Deps{Orders: h.svc, Store: h.store, Clock: h.clock.Now, Keys: mustRing(t, h)})
	if err != nil {
		t.Fatal(err)
	}
	h.app = again
	h.listOrders(token).expect(t, 200, order.CodeOK)
	if keys, _ := h.store.Secrets(context.Background(), SecretKindJWT); len(keys) != 1 {
		t.Errorf("%d keys in the store after two starts, want 1", len(keys))
	}
}

func mustRing(t testing.TB, h *harness) *KeyRing {
	t.Helper()
	ring, err := OpenKeyRing(context.Background(), h.store, KeyRingOptions{Clock: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func TestNodesStartingTogetherShareOneFirstKey(t *testing.T) {
	h := newHarness(t) // only for its empty store: no ring has touched it
	const nodes = 8
	rings := make([]*KeyRing, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rings[i] = mustRing(t, h)
		}()
	}
	wg.Wait()
	kid0, key0 := rings[0].Current()
	for i, r := range rings {
		if kid, key := r.Current(); kid != kid0 || !bytes.Equal(key, key0) {
			t.Errorf("node %d signs with %s, node 0 with %s", i, kid, kid0)
		}
		if !bytes.Equal(r.cursorKey(), rings[0].cursorKey()) {
			t.Errorf("node %d has another cursor key", i)
		}
	}
}

func TestRotatedOutKeyVerifiesUntilPruned(t *testing.T) {
	h := newHarness(t, withStoreKeys(t))
	ctx := context.Background()
	old := h.login("alice")

	next, err := RotateKey(ctx, h.store, h.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if next.ID != "k0002" {
		t.Fatalf("rotated to %s, want k0002", next.ID)
	}
	// Until the new key has propagated, nodes keep signing with the old one.
	if err := h.keys.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if kid := kidOf(t, h.login("alice")); kid != firstKeyID {
		t.Errorf("signed with %s right after the rotation, want %s until it propagated", kid, firstKeyID)
	}
	h.clock.Advance(KeyPropagation)
	fresh := h.login("alice")
	if kid := kidOf(t, fresh); kid != "k0002" {
		t.Errorf("signed with %s once k0002 propagated", kid)
	}
	// The old token, not expired, is still good.
	h.listOrders(old).expect(t, 200, order.CodeOK)
	h.listOrders(fresh).expect(t, 200, order.CodeOK)

	// Pruning waits for the retention, then removes the old key; nodes forget it on reload.
	if gone, err := PruneKeys(ctx, h.store, h.clock.Now(), KeyRetention(DefaultAccessTTL)); err != nil || len(gone) != 0 {
		t.Fatalf("PruneKeys before the retention deleted %v, %v", gone, err)
	}
	h.clock.Advance(KeyRetention(DefaultAccessTTL))
	if gone, err := PruneKeys(ctx, h.store, h.clock.Now(), KeyRetention(DefaultAccessTTL)); err != nil || len(gone) != 1 || gone[0] != firstKeyID {
		t.Fatalf("PruneKeys after the retention deleted %v, %v; want %s", gone, err, firstKeyID)
	}
	if err := h.keys.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.keys.find(firstKeyID); ok {
		t.Error("the pruned key is still honoured after a reload")
	}
}

func TestUnknownAndMissingKidsAreRefused(t *testing.T) {
	h := newHarness(t, withStoreKeys(t))
	kid, key := h.keys.Current()
	claims := h.claims("alice", "shopper")
	tests := map[string]string{
		"unknown kid":          mintKID(t, "k9999", key, claims),
		"no kid":               mint(t, jwt.SigningMethodHS256, key, claims),
		"right kid, wrong key": mintKID(t, kid, []byte("another-secret-that-is-also-long-enough"), claims),
		"overlong kid":         mintKID(t, string(bytes.Repeat([]byte("k"), maxKIDLen+1)), key, claims),
	}
	for name, token := range tests {
		t.Run(name, func(t *testing.T) {
			h.clock.Advance(missReloadEvery) // each unknown kid may reload; not what is tested
			h.listOrders(token).expect(t, 401, order.CodeUnauthenticated)
		})
	}
	h.listOrders(mintKID(t, kid, key, claims)).expect(t, 200, order.CodeOK)
}

func TestKeyCreatedElsewhereIsHonouredAtOnce(t *testing.T) {
	h := newHarness(t, withStoreKeys(t))
	ctx := context.Background()
	claims := h.claims("alice", "shopper")
	add := func(kid string) []byte {
		key := bytes.Repeat([]byte(kid[len(kid)-1:]), keyBytes)
		if created, err := h.store.CreateSecret(ctx, persistence.Secret{Kind: SecretKindJWT, ID: kid, Value: key, CreatedAt: h.clock.Now()}); err != nil || !created {
			t.Fatalf("CreateSecret %s: %v %v", kid, created, err)
		}
		return key
	}
	// Another node rotated and already signs with k0007: this node has not reloaded yet.
	h.listOrders(mintKID(t, "k0007", add("k0007"), claims)).expect(t, 200, order.CodeOK)

	// Unknown kids reload the store at most once a second: a key that appears just after a
	// miss is found by the next miss a second later, or by the periodic reload.
	h.listOrders(mintKID(t, "k0008", []byte("forged-key-forged-key-forged-key!"), claims)).expect(t, 401, order.CodeUnauthenticated)
	token := mintKID(t, "k0009", add("k0009"), claims)
	h.listOrders(token).expect(t, 401, order.CodeUnauthenticated)
	h.clock.Advance(missReloadEvery)
	h.listOrders(token).expect(t, 200, order.CodeOK)
}

func TestCursorKeyIsNoTokenKey(t *testing.T) {
	h := newHarness(t, withStoreKeys(t))
	ctx := context.Background()
	if _, err := RotateKey(ctx, h.store, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := h.keys.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	keys, _ := h.store.Secrets(ctx, SecretKindJWT)
	seeds, _ := h.store.Secrets(ctx, SecretKindCursor)
	if len(keys) != 2 || len(seeds) != 1 {
		t.Fatalf("%d jwt keys and %d cursor secrets, want 2 and 1", len(keys), len(seeds))
	}
	for _, k := range append(keys, seeds...) {
		if bytes.Equal(h.keys.cursorKey(), k.Value) {
			t.Errorf("the cursor key equals secret %s/%s", k.Kind, k.ID)
		}
	}
	static, err := StaticKeyRing(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if _, key := static.Current(); bytes.Equal(static.cursorKey(), key) || len(static.cursorKey()) != keyBytes {
		t.Error("with --jwt-secret, the cursor key is the token key")
	}

	// Cursors still round-trip.
	for i := range 3 {
		h.createOrder("alice", "cursor-"+string(rune('a'+i)), `[{"sku":"tea-sencha","qty":1}]`)
	}
	token := h.token("alice")
	var page orderListResponse
	r := h.do(req{method: "GET", path: "/api/v1/orders?limit=2", token: token}).expect(t, 200, order.CodeOK)
	if err := json.Unmarshal(r.Data, &page); err != nil || page.NextCursor == "" {
		t.Fatalf("first page: %v, cursor %q", err, page.NextCursor)
	}
	r = h.do(req{method: "GET", path: "/api/v1/orders?limit=2&cursor=" + url.QueryEscape(page.NextCursor), token: token}).expect(t, 200, order.CodeOK)
	if err := json.Unmarshal(r.Data, &page); err != nil || len(page.Orders) != 1 {
		t.Fatalf("second page: %v, %d orders, want 1", err, len(page.Orders))
	}
}

func TestJWTSecretOverrideDerivesItsKid(t *testing.T) {
	h := newHarness(t) // Config.JWTSecret = testSecret
	token := h.login("alice")
	kid := kidOf(t, token)
	if kid != staticKID(testSecret) || kid == "" {
		t.Fatalf("kid %q, want the one derived from the secret", kid)
	}
	h.listOrders(token).expect(t, 200, order.CodeOK)
	claims := h.claims("alice", "shopper")
	// Tokens from before kids (same secret) are still good; another kid is not.
	h.listOrders(mint(t, jwt.SigningMethodHS256, testSecret, claims)).expect(t, 200, order.CodeOK)
	h.listOrders(mintKID(t, firstKeyID, testSecret, claims)).expect(t, 401, order.CodeUnauthenticated)
	if keys, _ := h.store.Secrets(context.Background(), SecretKindJWT); len(keys) != 0 {
		t.Errorf("the override mode created %d store keys", len(keys))
	}
	if _, err := New(Config{JWTSecret: testSecret}, Deps{Orders: h.svc, Store: h.store, Keys: mustRing(t, h)}); err == nil {
		t.Error("New accepted both a JWT secret and store keys")
	}
}
