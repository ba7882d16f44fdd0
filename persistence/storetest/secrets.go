package storetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
)

// testSecrets checks the key-material store: create-if-absent with one winner among racers,
// oldest-first listing per kind, byte-exact values, deletion, and validation.
func testSecrets(t *testing.T, s persistence.Store) {
	ctx := context.Background()
	if got, err := s.Secrets(ctx, "jwt"); err != nil || len(got) != 0 {
		t.Fatalf("Secrets of an empty store = %v, %v; want none", got, err)
	}

	// Nodes racing to create the cluster's first key: exactly one wins, and everyone reads it.
	const racers = 8
	var wg sync.WaitGroup
	wins := make(chan []byte, racers)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := []byte(fmt.Sprintf("candidate-%d\x00\xff", i)) // binary-safe
			created, err := s.CreateSecret(ctx, persistence.Secret{Kind: "ca", ID: "cluster", Value: v})
			if err != nil {
				t.Errorf("CreateSecret racer %d: %v", i, err)
			}
			if created {
				wins <- v
			}
		}()
	}
	wg.Wait()
	close(wins)
	var winners [][]byte
	for v := range wins {
		winners = append(winners, v)
	}
	if len(winners) != 1 {
		t.Fatalf("%d racers created the same secret, want exactly 1", len(winners))
	}
	got, err := s.Secrets(ctx, "ca")
	if err != nil || len(got) != 1 || !bytes.Equal(got[0].Value, winners[0]) || got[0].Kind != "ca" || got[0].ID != "cluster" {
		t.Fatalf("Secrets(ca) = %+v, %v; want the winner %q", got, err, winners[0])
	}
	if got[0].CreatedAt.IsZero() || got[0].CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v, want a UTC time set by the store", got[0].CreatedAt)
	}

	// Rotation: a newer key is listed after the older one; kinds do not mix.
	older := persistence.Secret{Kind: "jwt", ID: "k1", Value: []byte("one"), CreatedAt: base}
	newer := persistence.Secret{Kind: "jwt", ID: "k2", Value: []byte("two"), CreatedAt: base.Add(time.Hour)}
	for _, sec := range []persistence.Secret{newer, older} {
		if created, err := s.CreateSecret(ctx, sec); err != nil || !created {
			t.Fatalf("CreateSecret(%s) = %v, %v", sec.ID, created, err)
		}
	}
	got, err = s.Secrets(ctx, "jwt")
	if err != nil || len(got) != 2 || got[0].ID != "k1" || got[1].ID != "k2" || !got[0].CreatedAt.Equal(base) {
		t.Fatalf("Secrets(jwt) = %+v, %v; want k1 then k2", got, err)
	}
	if created, err := s.CreateSecret(ctx, persistence.Secret{Kind: "jwt", ID: "k1", Value: []byte("other")}); err != nil || created {
		t.Errorf("re-creating k1 = %v, %v; want false, nil", created, err)
	}
	if got, _ := s.Secrets(ctx, "jwt"); len(got) != 2 || string(got[0].Value) != "one" {
		t.Errorf("re-creating k1 changed it: %+v", got)
	}

	if err := s.DeleteSecret(ctx, "jwt", "k1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSecret(ctx, "jwt", "k1"); err != nil {
		t.Errorf("deleting a missing secret: %v", err)
	}
	if got, _ := s.Secrets(ctx, "jwt"); len(got) != 1 || got[0].ID != "k2" {
		t.Errorf("after delete Secrets(jwt) = %+v, want only k2", got)
	}
	if got, _ := s.Secrets(ctx, "ca"); len(got) != 1 {
		t.Errorf("deleting a jwt key touched the ca: %+v", got)
	}

	for _, bad := range []persistence.Secret{{ID: "x", Value: []byte("v")}, {Kind: "jwt", Value: []byte("v")}, {Kind: "jwt", ID: "empty"}} {
		if _, err := s.CreateSecret(ctx, bad); err == nil {
			t.Errorf("CreateSecret(%+v) succeeded, want a validation error", bad)
		}
	}
}
