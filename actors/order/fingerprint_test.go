package order_test

import (
	"encoding/binary"
	"hash/fnv"
	"testing"

	. "github.com/ordermesh/ordermesh/actors/order"
)

// TestHasherMatchesFNV pins the encoding: stored fingerprints were computed with
// hash/fnv's FNV-1a over length-prefixed strings and little-endian integers.
func TestHasherMatchesFNV(t *testing.T) {
	ref := fnv.New64a()
	var buf [8]byte
	refInt := func(v int64) { binary.LittleEndian.PutUint64(buf[:], uint64(v)); ref.Write(buf[:]) }
	refString := func(s string) { refInt(int64(len(s))); ref.Write([]byte(s)) }

	h := NewHasher()
	for _, s := range []string{"", "Create", "zoë", "\xff\x00"} {
		refString(s)
		h.String(s)
	}
	for _, v := range []int64{0, 1, -1, 1 << 40} {
		refInt(v)
		h.Int(v)
	}
	if h.Sum() != ref.Sum64() {
		t.Fatalf("Hasher = %x, hash/fnv = %x", h.Sum(), ref.Sum64())
	}
}
