package edge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/ordermesh/ordermesh/actors/order"
)

// strictJSON are the options of every request body decode. encoding/json matches member
// names in any letter case and lets the last of duplicate members win, so that
// {"USERNAME":...} logs in and "qty":1,"qty":1000 orders a thousand; a body must mean one
// thing only. The first three are v2's defaults, spelled out so that they stay.
var strictJSON = json.JoinOptions(
	json.MatchCaseInsensitiveNames(false), // "Qty" is not "qty"
	jsontext.AllowDuplicateNames(false),   // "qty":1,"qty":1000 is refused
	jsontext.AllowInvalidUTF8(false),
	json.RejectUnknownMembers(true), // "unit_price" from a client is a bug, not a hint
)

// decodeStrict decodes body into v, which must be a pointer. The body must hold exactly
// one JSON value with only known members, each once and exactly cased, of the right types;
// anything else is a 400 CodeInvalidRequest whose message says what is wrong and where,
// because a client developer reads it. An empty body is an error unless allowEmpty.
func decodeStrict(body []byte, v any, allowEmpty bool) error {
	// Only JSON's whitespace: bytes.TrimSpace would also take "\v" or U+0085 for nothing.
	if len(bytes.Trim(body, " \t\r\n")) == 0 {
		if allowEmpty {
			return nil
		}
		return order.Errorf(order.CodeInvalidRequest, "request body is required")
	}
	dec := jsontext.NewDecoder(bytes.NewReader(body), strictJSON)
	if err := json.UnmarshalDecode(dec, v, strictJSON); err != nil {
		return order.Errorf(order.CodeInvalidRequest, "invalid JSON body: %s", describeJSONError(err))
	}
	// A second value (or garbage) after the first one is a client bug we refuse to guess about.
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return order.Errorf(order.CodeInvalidRequest, "invalid JSON body: unexpected data after the JSON value")
	}
	return nil
}

// describeJSONError turns the decoder's errors into a short message for clients: what is
// wrong, and where (a path like items[0].qty, or a byte offset).
func describeJSONError(err error) string {
	var syn *jsontext.SyntacticError
	var sem *json.SemanticError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the JSON value is incomplete"
	case errors.As(err, &syn):
		switch {
		case errors.Is(syn.Err, jsontext.ErrDuplicateName):
			return fmt.Sprintf("duplicate field %q", jsonPath(syn.JSONPointer))
		case errors.Is(syn.Err, jsontext.ErrNonStringName):
			return fmt.Sprintf("field names must be strings (byte %d)", syn.ByteOffset)
		}
		return fmt.Sprintf("malformed JSON at byte %d", syn.ByteOffset)
	case errors.As(err, &sem):
		if errors.Is(sem.Err, json.ErrUnknownName) {
			return fmt.Sprintf("unknown field %q", jsonPath(sem.JSONPointer))
		}
		want := "a valid value"
		if sem.GoType != nil {
			want = jsonKind(sem.GoType.Kind())
		}
		got := kindName(sem.JSONKind)
		if sem.JSONKind == '0' && len(sem.JSONValue) > 0 {
			got = truncate(string(sem.JSONValue), 32) // 1.5, 1e30: say which number
		}
		if sem.JSONPointer == "" {
			return fmt.Sprintf("the body must be %s, not %s", want, got)
		}
		return fmt.Sprintf("field %q must be %s, not %s", jsonPath(sem.JSONPointer), want, got)
	default:
		return "cannot decode the JSON value"
	}
}

// jsonPath writes a JSON pointer (/items/0/qty) the way a client developer reads a field:
// items[0].qty. Indices are told from names by the JSON pointer grammar alone: every
// all-digit token of our request types is an array index.
func jsonPath(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if _, err := strconv.ParseUint(tok, 10, 64); err == nil {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

// kindName names the kind of a JSON value that was found.
func kindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 'f', 't':
		return "a boolean"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case '{':
		return "an object"
	case '[':
		return "an array"
	default:
		return "this value"
	}
}

// jsonKind names a Go kind the way a JSON client thinks of it.
func jsonKind(kind reflect.Kind) string {
	switch kind {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	default:
		return "a " + kind.String()
	}
}
