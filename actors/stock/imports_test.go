package stock_test

import (
	"testing"

	"github.com/ordermesh/ordermesh/actors/order/ordertest"
)

// TestImportsOnlyTheStandardLibrary keeps the domain pure: no framework, no protobuf, no
// SQL, nothing of ours but actors/order (its errors, codes and principals).
func TestImportsOnlyTheStandardLibrary(t *testing.T) {
	ordertest.AssertImportsOnlyTheStandardLibrary(t, "stock", "github.com/ordermesh/ordermesh/actors/order")
}
