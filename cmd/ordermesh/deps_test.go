package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependenciesPointInward checks what each layer links, as `go list -deps` sees it:
// the order domain only the standard library, and neither the edge nor the baseline the
// actor framework (they talk to orders through order.Service).
func TestDependenciesPointInward(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not on PATH")
	}
	deps := func(pkg string) []string {
		out, err := exec.Command(goBin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	if got := deps("github.com/ordermesh/ordermesh/actors/order"); len(got) != 1 {
		t.Errorf("actors/order depends on %v, want only the standard library", got)
	}
	for _, pkg := range []string{"github.com/ordermesh/ordermesh/edge", "github.com/ordermesh/ordermesh/bench/baseline"} {
		for _, d := range deps(pkg) {
			if strings.Contains(d, "protoactor") || strings.HasSuffix(d, "ordermesh/actors") || strings.Contains(d, "memberlist") {
				t.Errorf("%s links %s", pkg, d)
			}
		}
	}
}
