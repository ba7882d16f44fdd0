package cluster

import (
	"bytes"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func newKeyring(t *testing.T, primary []byte, others ...[]byte) *memberlist.Keyring {
	t.Helper()
	kr, err := memberlist.NewKeyring(append([][]byte{primary}, others...), primary)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// TestGossipKeyRotation: members gossip only with a shared key; a key added to every
// keyring, made primary and the old one removed keeps them together; a member holding
// only the retired key, or no key, cannot join.
func TestGossipKeyRotation(t *testing.T) {
	keyA, keyB := bytes.Repeat([]byte{'a'}, 32), bytes.Repeat([]byte{'b'}, 32)
	krs := []*memberlist.Keyring{newKeyring(t, keyA), newKeyring(t, keyA)}
	ms := make([]*Membership, len(krs))
	for i, kr := range krs {
		ms[i] = startMembership(t, "", func(c *MembershipConfig) { c.Keyring, c.Label = kr, "ordermesh/test" })
	}
	if _, err := ms[1].Join([]string{ms[0].Self().Gossip}); err != nil {
		t.Fatalf("members with the same key: %v", err)
	}

	for _, kr := range krs {
		if err := kr.AddKey(keyB); err != nil {
			t.Fatal(err)
		}
	}
	for _, kr := range krs {
		if err := kr.UseKey(keyB); err != nil {
			t.Fatal(err)
		}
	}
	for _, kr := range krs {
		if err := kr.RemoveKey(keyA); err != nil {
			t.Fatal(err)
		}
	}
	// Gossip after the rotation still flows: a state change reaches the peer.
	if err := ms[0].SetState(StateActive); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the peer sees the state set after the rotation", func() bool {
		return stateOf(ms[1], ms[0].Self().ID) == StateActive
	})

	for name, kr := range map[string]*memberlist.Keyring{"the retired key": newKeyring(t, keyA), "no key": nil} {
		m := startMembership(t, "", func(c *MembershipConfig) { c.Keyring, c.Label = kr, "ordermesh/test" })
		if _, err := m.Join([]string{ms[0].Self().Gossip}); err == nil {
			t.Fatalf("a member with %s joined", name)
		}
		if n := len(ms[0].View().Members); n != 2 {
			t.Fatalf("after a member with %s tried to join, the cluster has %d members", name, n)
		}
	}
	newcomer := startMembership(t, "", func(c *MembershipConfig) { c.Keyring, c.Label = newKeyring(t, keyB), "ordermesh/test" })
	if _, err := newcomer.Join([]string{ms[0].Self().Gossip}); err != nil {
		t.Fatalf("a member with the new key: %v", err)
	}
}
