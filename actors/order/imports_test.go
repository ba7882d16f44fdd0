package order_test

import (
	"testing"

	"github.com/ordermesh/ordermesh/actors/order/ordertest"
)

// TestImportsOnlyTheStandardLibrary keeps the domain pure: no framework, no protobuf, no
// SQL, nothing of ours.
func TestImportsOnlyTheStandardLibrary(t *testing.T) {
	ordertest.AssertImportsOnlyTheStandardLibrary(t, "order")
}
