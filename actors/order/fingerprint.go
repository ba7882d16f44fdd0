package order

// Hasher accumulates the fields of a request into a 64-bit FNV-1a fingerprint. Strings are
// length-prefixed, so moving bytes from one field to the next changes the result. It is a
// value with no allocation: fingerprints are taken on every command. Stored fingerprints
// depend on these exact bytes, so the encoding never changes.
type Hasher struct{ sum uint64 }

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// NewHasher returns an empty fingerprint.
func NewHasher() Hasher { return Hasher{sum: fnvOffset64} }

// Int adds v as 8 little-endian bytes.
func (h *Hasher) Int(v int64) {
	for i := 0; i < 8; i++ {
		h.sum ^= uint64(byte(uint64(v) >> (8 * i)))
		h.sum *= fnvPrime64
	}
}

// String adds s, preceded by its length.
func (h *Hasher) String(s string) {
	h.Int(int64(len(s)))
	for i := 0; i < len(s); i++ {
		h.sum ^= uint64(s[i])
		h.sum *= fnvPrime64
	}
}

// Sum is the fingerprint of what was added.
func (h *Hasher) Sum() uint64 { return h.sum }
