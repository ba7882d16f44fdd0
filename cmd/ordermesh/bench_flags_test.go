package main

import (
	"flag"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/bench"
)

func TestLocalExtrasPutThePaymentsInTheLoopOnlyWithProvider(t *testing.T) {
	cfg := bench.DefaultConfig()
	got := localExtras(&cfg, defaultSimFlags())
	if want := "--payments manual --auto-ship=false"; strings.Join(got, " ") != want || !slices.Equal(cfg.SystemArgs, got) {
		t.Fatalf("lifecycle: %q (system args %q), want %q", got, cfg.SystemArgs, want)
	}

	cfg = bench.DefaultConfig()
	cfg.Provider = true
	got = localExtras(&cfg, defaultSimFlags())
	want := "--payments sim --auto-ship --sim-payment-delay 200ms --sim-payment-failure-rate 0.1 --warehouse-latency 50ms --warehouse-failure-rate 0.05"
	if strings.Join(got, " ") != want {
		t.Fatalf("provider: %q, want %q", got, want)
	}

	// The pass-through flags, as a user gives them to the bench.
	cfg = bench.DefaultConfig()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	sim := defaultSimFlags()
	sim.register(fs)
	if err := fs.Parse([]string{"--provider", "--payment-timeout", "2s", "--sim-payment-delay", "1s", "--warehouse-failure-rate", "0"}); err != nil {
		t.Fatal(err)
	}
	if !sim.given(fs) || sim.paymentDelay != time.Second {
		t.Fatalf("sim flags %+v", sim)
	}
	got = localExtras(&cfg, sim)
	want = "--payments sim --auto-ship --sim-payment-delay 1s --sim-payment-failure-rate 0.1 --warehouse-latency 50ms --warehouse-failure-rate 0 --payment-timeout 2s"
	if strings.Join(got, " ") != want {
		t.Fatalf("given: %q, want %q", got, want)
	}
}

func TestLauncherKeepsPaymentsManualUnlessTold(t *testing.T) {
	if got := withWorkDefaults([]string{"--payment-timeout", "2s"}); strings.Join(got, " ") != "--payments manual --auto-ship=false --payment-timeout 2s" {
		t.Fatalf("%q", got)
	}
	if got := withWorkDefaults([]string{"--payments", "sim", "--auto-ship"}); len(got) != 3 {
		t.Fatalf("%q", got)
	}
}
