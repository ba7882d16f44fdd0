package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/ordermesh/ordermesh/actors/payment"
	"github.com/ordermesh/ordermesh/bench/baseline"
)

func TestBaselinePaymentFlags(t *testing.T) {
	const store = "--store=postgres://localhost/x"
	c, err := parseBaselineConfig([]string{store})
	if err != nil || c.Work.Payments != "manual" || c.Work.AutoShip || c.Work.Workers != 4 || c.Work.Attempts != 5 {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	var opts baseline.Options
	if pay, _, err := baselineProvider(c, &opts, slog.New(slog.DiscardHandler)); err != nil || pay.sim != nil || opts.Provider != nil || opts.Warehouse != nil {
		t.Fatalf("manual: %+v %v", opts, err)
	}
	for _, bad := range [][]string{
		{store, "--payments=paypal"},
		{store, "--payments=http://127.0.0.1:1"}, // no provider key
		{store, "--sim-payment-failure-rate=2"},
		{store, "--fulfilment-attempts=0"},
	} {
		if _, err := parseBaselineConfig(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}

	c, err = parseBaselineConfig([]string{store, "--payments=sim", "--auto-ship", "--http=:0"})
	if err != nil {
		t.Fatal(err)
	}
	pay, _, err := baselineProvider(c, &opts, slog.New(slog.DiscardHandler))
	if err != nil || pay.sim == nil {
		t.Fatalf("sim: %v", err)
	}
	defer pay.close(context.Background(), slog.New(slog.DiscardHandler))
	if opts.Provider == nil || len(opts.WebhookSecrets) != 1 || len(opts.WebhookSecrets[0]) < 16 ||
		opts.Warehouse == nil || opts.FulfilmentWorkers != 4 {
		t.Fatalf("sim: %+v", opts)
	}
	// The guarded client reaches the simulator this process serves.
	in := payment.Intent{ID: payment.IntentID("o1", 3), OrderID: "o1", Customer: "alice", Amount: 100, Currency: "EUR"}
	if r, err := opts.Provider.CreateIntent(context.Background(), in); err != nil || !strings.HasPrefix(r.ProviderID, "pi_") {
		t.Fatalf("CreateIntent through the simulator: %+v %v", r, err)
	}
}
