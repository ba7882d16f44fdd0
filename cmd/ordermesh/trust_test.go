package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/cluster/trust"
	"github.com/ordermesh/ordermesh/persistence/sqlite"
)

func runTrustCmd(t *testing.T, store string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(binary, append(append([]string{"trust"}, args...), "--store", store)...).CombinedOutput()
	return string(out), err
}

func TestTrustCommandRotatesAndRetires(t *testing.T) {
	store := filepath.Join(t.TempDir(), "trust.db")
	if out, err := runTrustCmd(t, store, "list"); err == nil {
		t.Fatalf("list on a store without trust material succeeded:\n%s", out)
	}
	// The cluster started an hour ago.
	s, err := sqlite.Open(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Bootstrap(context.Background(), s, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	out, err := runTrustCmd(t, store, "rotate-gossip")
	if err != nil {
		t.Fatalf("rotate-gossip: %v\n%s", err, out)
	}
	newID := regexp.MustCompile(`gossip-\d{8}T\d{6}Z-[0-9a-f]+`).FindString(out)
	if newID == "" {
		t.Fatalf("rotate-gossip did not name the new key:\n%s", out)
	}
	out, err = runTrustCmd(t, store, "list")
	if err != nil || !strings.Contains(out, newID) || !regexp.MustCompile(trust.FirstGossipID+`.*encrypts gossip`).MatchString(out) {
		t.Fatalf("list after rotate-gossip (the old key stays primary until propagation): %v\n%s", err, out)
	}
	if strings.Contains(out, "BEGIN") {
		t.Fatalf("list shows key material:\n%s", out)
	}
	if out, err := runTrustCmd(t, store, "retire-gossip", "--id", trust.FirstGossipID); err == nil {
		t.Fatalf("retired the gossip key in use:\n%s", out)
	}
	if out, err := runTrustCmd(t, store, "retire-gossip", "--id", newID); err != nil {
		t.Fatalf("retiring a key not yet in use: %v\n%s", err, out)
	}
	if out, err := runTrustCmd(t, store, "list"); err != nil || strings.Contains(out, newID) {
		t.Fatalf("list after retire: %v\n%s", err, out)
	}
}
