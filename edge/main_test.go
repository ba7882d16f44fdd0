package edge

import (
	"os"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestMain(m *testing.M) {
	bcryptCost = bcrypt.MinCost // the cost of a hash is not what these tests are about
	os.Exit(m.Run())
}
