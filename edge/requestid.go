package edge

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/gofiber/fiber/v2"
)

// HeaderRequestID carries the request id in both directions.
const HeaderRequestID = "X-Request-ID"

// maxRequestIDLen bounds a client-chosen request id, which ends up in every log line.
const maxRequestIDLen = 128

// ensureRequestID returns the id of the request, choosing it on first call: the client's
// X-Request-ID if it is sane, a fresh random one otherwise. It echoes the id on the
// response every time, since an error path may have reset the response.
func ensureRequestID(c *fiber.Ctx) string {
	id, ok := c.Locals(localRequestID).(string)
	if !ok {
		id = c.Get(HeaderRequestID)
		if !saneRequestID(id) {
			id = newRequestID()
		}
		c.Locals(localRequestID, id)
	}
	c.Set(HeaderRequestID, id)
	return id
}

// saneRequestID accepts 1..128 printable ASCII characters without spaces, so that an id
// can neither forge log lines nor blow up their size.
func saneRequestID(id string) bool {
	return id != "" && len(id) <= maxRequestIDLen && printableASCII(id, 0x21)
}

// printableASCII reports whether every byte of s is in lowest..0x7E.
func printableASCII(s string, lowest byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < lowest || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}
