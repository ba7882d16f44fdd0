package edge

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
)

// What checking an access token costs on every request: the same token again and
// again, as a client sends it until it expires.
//
//	go test -run '^$' -bench VerifyAccessToken -benchmem ./edge
func BenchmarkVerifyAccessToken(b *testing.B) {
	keys, err := StaticKeyRing([]byte(testSecret))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	ti := &tokenIssuer{keys: keys, issuer: "ordermesh", audience: "ordermesh-api", ttl: 15 * time.Minute, now: func() time.Time { return now }}
	tok, _, err := ti.issue(order.Principal{Subject: "alice", Role: order.RoleShopper})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ti.verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// A remembered token is as good as a verified one and no better: it stops working when it
// expires or when the key that signed it is gone, and no other string can use its place.
func TestVerifiedTokensAreRememberedOnlyWhileValid(t *testing.T) {
	h := newHarness(t, withStoreKeys(t))
	ctx := context.Background()
	now := h.clock.Now()
	ti := &tokenIssuer{keys: h.keys, issuer: "ordermesh", audience: "ordermesh-api", ttl: 15 * time.Minute, now: func() time.Time { return now }}
	alice := order.Principal{Subject: "alice", Role: order.RoleShopper}
	tok, exp, err := ti.issue(alice)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // verified, then remembered
		if p, err := ti.verify(ctx, tok); err != nil || p != alice {
			t.Fatalf("verify: %v %v", p, err)
		}
	}
	if len(ti.verified) != 1 {
		t.Fatalf("%d tokens remembered, want 1", len(ti.verified))
	}

	// Another signature over the same claims is another string: verified in full, refused.
	dot := strings.LastIndexByte(tok, '.')
	forged := tok[:dot+1] + strings.Repeat("A", len(tok)-dot-1)
	if _, err := ti.verify(ctx, forged); err == nil {
		t.Fatal("a forged signature was accepted")
	}

	// Expiry: at exp the remembered token is refused, and forgotten.
	now = exp
	if _, err := ti.verify(ctx, tok); err == nil {
		t.Fatal("an expired remembered token was accepted")
	}
	if _, ok := ti.verified[tok]; ok {
		t.Error("an expired token is still remembered")
	}

	// A key taken out of the ring ends the tokens it signed, remembered or not.
	now = h.clock.Now()
	tok2, _, err := ti.issue(alice)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ti.verify(ctx, tok2); err != nil {
		t.Fatal(err)
	}
	if _, err := RotateKey(ctx, h.store, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(KeyPropagation + time.Second)
	if gone, err := PruneKeys(ctx, h.store, h.clock.Now(), 0); err != nil || len(gone) != 1 {
		t.Fatalf("pruned %v, %v", gone, err)
	}
	if err := h.keys.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ti.verify(ctx, tok2); err == nil {
		t.Fatal("a token whose key was pruned was accepted because it was remembered")
	}
}

// The remembered tokens stay bounded: when full, the expired ones go, else all.
func TestVerifiedTokensAreBounded(t *testing.T) {
	keys, err := StaticKeyRing([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	ti := &tokenIssuer{keys: keys, issuer: "i", audience: "a", ttl: time.Minute, now: func() time.Time { return now }}
	fill := func(exp time.Time) {
		ti.verified = make(map[string]verifiedToken, maxVerified)
		for i := range maxVerified - 1 {
			ti.verified[fmt.Sprint("t", i)] = verifiedToken{exp: exp}
		}
		ti.verified["live"] = verifiedToken{exp: now.Add(time.Minute)}
	}
	tok, _, _ := ti.issue(order.Principal{Subject: "bob", Role: order.RoleShopper})

	fill(now.Add(-time.Second)) // all expired but one
	if _, err := ti.verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if n := len(ti.verified); n != 2 {
		t.Errorf("after evicting the expired: %d remembered, want 2 (the live one and the new one)", n)
	}

	fill(now.Add(time.Minute)) // none expired
	if _, err := ti.verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if n := len(ti.verified); n != 1 {
		t.Errorf("after starting over: %d remembered, want 1", n)
	}
}
