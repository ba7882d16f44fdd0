package orderpb

import "github.com/ordermesh/ordermesh/actors/order/ordertest"

// Short names for the shared fixtures of ordertest.
var (
	t0                   = ordertest.T0
	alice                = ordertest.Alice
	bob                  = ordertest.Bob
	oper                 = ordertest.Oper
	adm                  = ordertest.Adm
	sys                  = ordertest.Sys
	testLines            = ordertest.TestLines
	createCmd            = ordertest.CreateCmd
	cmdOn                = ordertest.CmdOn
	step                 = ordertest.Step
	pathTo               = ordertest.PathTo
	orderIn              = ordertest.OrderIn
	fullKeys             = ordertest.FullKeys
	deepCopyOrder        = ordertest.DeepCopyOrder
	assertOrderUnchanged = ordertest.AssertOrderUnchanged
)

const (
	payTimeout   = ordertest.PayTimeout
	orderTimeout = ordertest.OrderTimeout
	outOfStock   = ordertest.OutOfStock
	testTotal    = ordertest.TestTotal
)
