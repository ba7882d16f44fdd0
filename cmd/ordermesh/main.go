// Command ordermesh runs an ordermesh node. `ordermesh node --help` lists its flags.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

const usage = `ordermesh: an actor-model order processing cluster.

Usage:
  ordermesh node [flags]      start a node (ordermesh node --help for flags)
  ordermesh drain [flags]     drain a node and wait until it has left (ordermesh drain --help)
  ordermesh bench ...         load harness: run, compare, check (ordermesh bench --help)
  ordermesh baseline [flags]  the classic stateless design, for comparison (ordermesh baseline --help)
  ordermesh keys rotate|list  rotate or list the access-token signing keys in the store (ordermesh keys --help)
  ordermesh trust COMMAND     the cluster's CA and gossip keys: list, rotate, retire (ordermesh trust --help)
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "node":
		err = runNode(os.Args[2:])
	case "drain":
		err = runDrain(os.Args[2:])
	case "bench":
		err = runBench(os.Args[2:])
	case "baseline":
		err = runBaseline(os.Args[2:])
	case "keys":
		err = runKeys(os.Args[2:])
	case "trust":
		err = runTrust(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "ordermesh: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ordermesh: %v\n", err)
		os.Exit(1)
	}
}
