package edge

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestMain(m *testing.M) {
	bcryptCost = bcrypt.MinCost // the cost of a hash is not what these tests are about
	code := m.Run()
	// With every test run, every documented response must have been produced and
	// validated; a -run subset cannot be held to that.
	if code == 0 && flag.Lookup("test.run").Value.String() == "" {
		if err := checkContractCoverage(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			code = 1
		}
	}
	os.Exit(code)
}
