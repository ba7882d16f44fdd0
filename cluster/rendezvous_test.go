package cluster

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// rendezvousMembers returns n active members with ids shaped like actor system ids.
func rendezvousMembers(n int) []MemberInfo {
	out := make([]MemberInfo, n)
	for i := range out {
		out[i] = MemberInfo{ID: fmt.Sprintf("node-%02d-7f3a9c", i), State: StateActive}
	}
	return out
}

func orderIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("ord_%08d", i)
	}
	return out
}

func owners(t *testing.T, members []MemberInfo, ids []string) map[string]string {
	t.Helper()
	out := make(map[string]string, len(ids))
	for _, id := range ids {
		m, ok := Owner(members, id)
		if !ok {
			t.Fatalf("Owner(%d members, %q) found no owner", len(members), id)
		}
		out[id] = m.ID
	}
	return out
}

func TestOwnerEmpty(t *testing.T) {
	for _, members := range [][]MemberInfo{nil, {}} {
		if m, ok := Owner(members, "ord_1"); ok {
			t.Errorf("Owner(%v) = %v, true; want false", members, m)
		}
	}
}

func TestOwnerDeterministic(t *testing.T) {
	members := rendezvousMembers(5)
	ids := orderIDs(1000)
	want := owners(t, members, ids)

	// Another process sees the members in another order: same owners.
	reversed := slices.Clone(members)
	slices.Reverse(reversed)
	got := owners(t, reversed, ids)
	for _, id := range ids {
		if got[id] != want[id] {
			t.Fatalf("owner of %s depends on member order: %s vs %s", id, got[id], want[id])
		}
	}

	// Golden values: the weights must never change between builds or machines, or a
	// rolling upgrade would place the same order on two nodes.
	golden := []struct{ identity, owner string }{
		{"ord_00000000", "node-01-7f3a9c"},
		{"ord_00000001", "node-03-7f3a9c"},
		{"ord_00000999", "node-01-7f3a9c"},
	}
	for _, g := range golden {
		if m, _ := Owner(members, g.identity); m.ID != g.owner {
			t.Errorf("Owner(%s) = %s, want %s", g.identity, m.ID, g.owner)
		}
	}
	if h := mix64(fnv1a("ord_1")); h != 0xbc630a305b8804d3 {
		t.Errorf("mix64(fnv1a(\"ord_1\")) = %#x: the weight function changed", h)
	}
}

func TestOwnerEvenSpread(t *testing.T) {
	const n = 30000
	members := rendezvousMembers(3)
	counts := map[string]int{}
	for _, owner := range owners(t, members, orderIDs(n)) {
		counts[owner]++
	}
	third := float64(n) / 3
	for _, m := range members {
		if dev := math.Abs(float64(counts[m.ID])-third) / third; dev > 0.05 {
			t.Errorf("%s owns %d of %d identities (%.1f%% off a third)", m.ID, counts[m.ID], n, 100*dev)
		}
	}
	t.Logf("spread over 3 members: %v", counts)
}

func TestOwnerMinimalMovementOnJoin(t *testing.T) {
	const n = 30000
	three := rendezvousMembers(4)[:3]
	four := rendezvousMembers(4)
	newcomer := four[3].ID
	ids := orderIDs(n)
	before, after := owners(t, three, ids), owners(t, four, ids)

	moved := 0
	for _, id := range ids {
		if before[id] == after[id] {
			continue
		}
		moved++
		if after[id] != newcomer {
			t.Fatalf("%s moved from %s to %s, not to the new member", id, before[id], after[id])
		}
	}
	if frac := float64(moved) / n; math.Abs(frac-0.25) > 0.25*0.05 {
		t.Errorf("adding a 4th member moved %.3f of the identities, want ~0.25", frac)
	}
}

func TestOwnerMinimalMovementOnLeave(t *testing.T) {
	const n = 30000
	four := rendezvousMembers(4)
	gone := four[1].ID
	three := slices.Delete(slices.Clone(four), 1, 2)
	ids := orderIDs(n)
	before, after := owners(t, four, ids), owners(t, three, ids)

	for _, id := range ids {
		if before[id] != after[id] && before[id] != gone {
			t.Fatalf("%s moved from %s to %s although its owner stayed", id, before[id], after[id])
		}
		if after[id] == gone {
			t.Fatalf("%s still placed on the departed member", id)
		}
	}
}

func TestOwnerDoesNotAllocate(t *testing.T) {
	members := rendezvousMembers(10)
	if a := testing.AllocsPerRun(1000, func() { Owner(members, "ord_12345678") }); a != 0 {
		t.Errorf("Owner allocates %.0f times per call", a)
	}
}

func BenchmarkOwner(b *testing.B) {
	for _, n := range []int{3, 10} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			members := rendezvousMembers(n)
			ids := orderIDs(1024)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				Owner(members, ids[i&1023])
				i++
			}
		})
	}
}
