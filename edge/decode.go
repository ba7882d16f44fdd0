package edge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ordermesh/ordermesh/actors/order"
)

// decodeStrict decodes body into v, which must be a pointer to a struct. The body must hold
// exactly one JSON value with only known fields of the right types; anything else is a 400
// CodeInvalidRequest whose message says what is wrong and where, because a client developer
// reads it. An empty body is an error unless allowEmpty.
func decodeStrict(body []byte, v any, allowEmpty bool) error {
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return nil
		}
		return order.Errorf(order.CodeInvalidRequest, "request body is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return order.Errorf(order.CodeInvalidRequest, "invalid JSON body: %s", describeJSONError(err))
	}
	// A second value (or garbage) after the first one is a client bug we refuse to guess about.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return order.Errorf(order.CodeInvalidRequest, "invalid JSON body: unexpected data after the JSON value")
	}
	return nil
}

// describeJSONError turns encoding/json's errors into a short message for clients.
func describeJSONError(err error) string {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("malformed JSON at byte %d", syntaxErr.Offset)
	case errors.As(err, &typeErr):
		if typeErr.Field != "" {
			return fmt.Sprintf("field %q must be %s, not %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
		}
		return fmt.Sprintf("the body must be a JSON object, not %s", typeErr.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the JSON value is incomplete"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	default:
		return "cannot decode the JSON value"
	}
}

// jsonKind names a Go kind the way a JSON client thinks of it.
func jsonKind(kind string) string {
	switch kind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	default:
		return "a " + kind
	}
}
