package order

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// ValidKey reports whether key is a usable idempotency key: 1 to MaxKeyLen bytes of
// ValidText. (The edge is stricter: a key arrives in an HTTP header, so there it must be
// printable ASCII.)
func ValidKey(key string) bool {
	return key != "" && len(key) <= MaxKeyLen && ValidText(key)
}

// CheckKey returns the CodeInvalidRequest error for an unusable idempotency key (see
// ValidKey), or nil. Decide calls it, so a key is refused alike whatever path the command
// took: the edge, a timer, the sweeper or another node.
func CheckKey(key string) error {
	if !ValidKey(key) {
		return Errorf(CodeInvalidRequest, "an Idempotency-Key of 1 to %d characters of text (no control characters) is required", MaxKeyLen)
	}
	return nil
}

// ValidText reports whether s is valid UTF-8 without control characters (C0 including
// NUL, DEL and C1). Every string a command carries ends up in a snapshot (protobuf
// strings must be UTF-8) and in a database (PostgreSQL refuses NUL and invalid UTF-8),
// so text that breaks either is refused before anything is written.
func ValidText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// CheckText returns the CodeInvalidRequest error naming field when s is not ValidText,
// or nil.
func CheckText(field, s string) error {
	if !ValidText(s) {
		return Errorf(CodeInvalidRequest, "%s must be valid UTF-8 text without control characters", field)
	}
	return nil
}

// CheckCommand checks every string of c that would be stored or sent between nodes: its
// key (CheckKey), who issued it, its reason and, for a create, its currency and lines.
// It is Decide's first check; the edge and the cluster call it too, to refuse a
// malformed command before it travels (protobuf refuses invalid UTF-8 on the wire).
func CheckCommand(c Command) error {
	if err := CheckKey(c.Key); err != nil {
		return err
	}
	if err := CheckText("the caller's name", c.By.Subject); err != nil {
		return err
	}
	if err := CheckText("reason", c.Reason); err != nil {
		return err
	}
	if err := CheckText("currency", c.Currency); err != nil {
		return err
	}
	for i, l := range c.Lines {
		if err := CheckText(fmt.Sprintf("item %d: sku", i), l.SKU); err != nil {
			return err
		}
		if err := CheckText(fmt.Sprintf("item %d: name", i), l.Name); err != nil {
			return err
		}
	}
	return nil
}
