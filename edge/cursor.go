package edge

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// cursorSigner wraps the store's opaque page cursors so that clients can only hand back
// cursors this API gave out, for the same filter. The store therefore never sees a forged
// cursor (which it could only answer with an internal error), and a cursor from a
// shopper's listing cannot be replayed against another filter. Its key is derived apart
// from the token keys (deriveCursorKey): a cursor MAC is never a token signature, and
// rotating token keys leaves the cursors clients hold valid.
type cursorSigner struct {
	key []byte
}

// maxCursorLen bounds what is worth verifying; real cursors are far shorter.
const maxCursorLen = 1024

// sign returns the public form of the store cursor for the query scope.
func (s cursorSigner) sign(storeCursor, scope string) string {
	if storeCursor == "" {
		return ""
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(storeCursor)) + "." + enc.EncodeToString(s.mac(storeCursor, scope))
}

// open returns the store cursor behind a public cursor, or false if it was not issued
// for scope by this API.
func (s cursorSigner) open(cursor, scope string) (string, bool) {
	if len(cursor) > maxCursorLen {
		return "", false
	}
	body, sig, ok := strings.Cut(cursor, ".")
	if !ok {
		return "", false
	}
	enc := base64.RawURLEncoding
	raw, err1 := enc.DecodeString(body)
	mac, err2 := enc.DecodeString(sig)
	if err1 != nil || err2 != nil || len(raw) == 0 || !hmac.Equal(mac, s.mac(string(raw), scope)) {
		return "", false
	}
	return string(raw), true
}

func (s cursorSigner) mac(storeCursor, scope string) []byte {
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte("ordermesh cursor\x00"))
	h.Write([]byte(scope))
	h.Write([]byte{0})
	h.Write([]byte(storeCursor))
	return h.Sum(nil)[:16]
}
