package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func quickConfig(url, scenario string) Config {
	cfg := DefaultConfig()
	cfg.Targets = []string{url}
	cfg.Scenario = scenario
	cfg.Rate = 100
	cfg.Duration = time.Second
	cfg.Warmup = 0
	cfg.Shoppers = 3
	cfg.Seed = 42
	cfg.Concurrency = 16
	return cfg
}

func TestRunLifecycleAgainstAFakeAPIPasses(t *testing.T) {
	srv := httptest.NewServer(newCatalogFakeAPI().handler())
	defer srv.Close()
	cfg := quickConfig(srv.URL, "lifecycle")
	cfg.Out = t.TempDir()
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Check == nil || !rep.Check.Pass {
		t.Fatalf("check: %+v", rep.Check)
	}
	if rep.Total.Count < 80 || rep.Total.Errors != 0 {
		t.Fatalf("total %+v: want about 100 requests and no errors", rep.Total)
	}
	for _, op := range []string{OpCreate, OpPay, OpConfirm, OpShip, OpDeliver} {
		if o, ok := rep.Op(op); !ok || o.Count == 0 {
			t.Errorf("no %s in the report", op)
		}
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil || !strings.Contains(text.String(), "check PASS") {
		t.Fatalf("text report (%v):\n%s", err, text.String())
	}
	for _, name := range []string{"report.txt", "report.json", "report.svg", "acks.jsonl", "cost.svg"} {
		b, err := os.ReadFile(filepath.Join(cfg.Out, name))
		if err != nil || len(b) == 0 {
			t.Fatalf("%s: %v", name, err)
		}
	}
	var back Report
	b, _ := os.ReadFile(filepath.Join(cfg.Out, "report.json"))
	if err := json.Unmarshal(b, &back); err != nil || back.Total.Count != rep.Total.Count {
		t.Fatalf("report.json does not round-trip: %v", err)
	}
	f, _ := os.Open(filepath.Join(cfg.Out, "acks.jsonl"))
	defer f.Close()
	acks, err := ReadJSONL(f)
	if err != nil || len(acks) == 0 {
		t.Fatalf("acks.jsonl: %d acks, %v", len(acks), err)
	}
}

func TestRunHotAgainstAFakeAPIHasOneWinnerPerRace(t *testing.T) {
	srv := httptest.NewServer(newCatalogFakeAPI().handler())
	defer srv.Close()
	cfg := quickConfig(srv.URL, "hot")
	cfg.HotOrders = 2
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Check.Pass || len(rep.Check.Races) == 0 {
		t.Fatalf("check: %s %+v", rep.Check.Summary(), rep.Check.Races)
	}
	for _, rs := range rep.Check.Races {
		if rs.MultiWin != 0 {
			t.Fatalf("race %+v", rs)
		}
	}
}

func TestRunCatchesAServerThatLosesAcknowledgedCommands(t *testing.T) {
	api := newCatalogFakeAPI()
	api.loseEvery = 7
	srv := httptest.NewServer(api.handler())
	defer srv.Close()
	rep, err := Run(context.Background(), quickConfig(srv.URL, "lifecycle"))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Check.Pass || rep.Check.Counts[ViolationLostAck] == 0 {
		t.Fatalf("a lossy server passed: %s", rep.Check.Summary())
	}
}

func TestRunRejectsABadConfig(t *testing.T) {
	cfg := quickConfig("http://127.0.0.1:1", "nope")
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "unknown scenario") {
		t.Fatalf("err = %v", err)
	}
}

// hotExpiryConfig runs hot long and fast enough for a few confirm-vs-expiry races.
func hotExpiryConfig(url string) Config {
	cfg := quickConfig(url, "hot")
	cfg.HotOrders = 2
	cfg.Rate = 300
	cfg.Duration = 1500 * time.Millisecond
	cfg.PaymentTimeout = 200 * time.Millisecond
	return cfg
}

func TestRunHotRacesConfirmAgainstExpiry(t *testing.T) {
	api := newCatalogFakeAPI()
	api.paymentTimeout = 200 * time.Millisecond
	srv := httptest.NewServer(api.handler())
	defer srv.Close()
	rep, err := Run(context.Background(), hotExpiryConfig(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Check.Pass {
		t.Fatalf("check: %s %+v %+v", rep.Check.Summary(), rep.Check.Violations, rep.Check.Races)
	}
	var expiry RaceStats
	for _, rs := range rep.Check.Races {
		if rs.Kind == raceConfirmExpiry {
			expiry = rs
		}
	}
	t.Logf("confirm vs expiry: %+v", expiry)
	if expiry.Races == 0 || expiry.OneWin != expiry.Races {
		t.Fatalf("confirm vs expiry: %+v (all races: %+v)", expiry, rep.Check.Races)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil || !strings.Contains(text.String(), "race "+raceConfirmExpiry) {
		t.Fatalf("text report (%v):\n%s", err, text.String())
	}
}

func TestRunHotCatchesAConfirmThatIgnoresTheExpiry(t *testing.T) {
	api := newCatalogFakeAPI()
	api.paymentTimeout, api.expireBoth = 200*time.Millisecond, true
	srv := httptest.NewServer(api.handler())
	defer srv.Close()
	rep, err := Run(context.Background(), hotExpiryConfig(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Check.Pass || rep.Check.Counts[ViolationRaceWinners] == 0 {
		t.Fatalf("both outcomes passed: %s %+v", rep.Check.Summary(), rep.Check.Races)
	}
}
