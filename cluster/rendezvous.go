package cluster

// Rendezvous (highest-random-weight) hashing places an identity on the member that scores
// highest for it. Unlike a hash ring it needs no shared state and no virtual nodes: every
// process that sees the same members computes the same owner, adding a member moves only
// the identities it now wins, and removing one moves only the identities it owned.
//
// The weights must be identical in every process and every build, so they use fixed
// functions (FNV-1a 64 and the splitmix64 finalizer) rather than hash/maphash, whose seed
// is per process.

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// Owner returns the member that owns identity among members, or false when members is
// empty. Callers pass the active members of their current view (View.Active), so a member
// that is joining or leaving owns nothing. The result does not depend on the order of
// members; if two members had the same weight, the lower id would win.
//
// Owner is on the path of every request: it does not allocate.
func Owner(members []MemberInfo, identity string) (MemberInfo, bool) {
	if len(members) == 0 {
		return MemberInfo{}, false
	}
	key := mix64(fnv1a(identity))
	best := -1
	var bestWeight uint64
	for i := range members {
		w := mix64(fnv1a(members[i].ID) ^ key)
		if best < 0 || w > bestWeight || (w == bestWeight && members[i].ID < members[best].ID) {
			best, bestWeight = i, w
		}
	}
	return members[best], true
}

// fnv1a is FNV-1a 64 over s, written out so that hashing a string does not convert it
// to a []byte (hash/fnv would allocate on every call).
func fnv1a(s string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return h
}

// mix64 is the splitmix64 finalizer. FNV alone is weak in its high bits for short,
// similar strings (ids and order numbers differ in a few trailing characters); the
// finalizer spreads every input bit over the whole word, which is what makes the
// comparison of weights fair.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
