package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// OpReport is the result of one operation (or of all: Op "total") over the measured part
// of a run. Latencies are in milliseconds, measured from each request's intended start.
type OpReport struct {
	Op         string           `json:"op"`
	Count      int64            `json:"count"`
	Throughput float64          `json:"throughput"` // completed per second of measured duration
	Errors     int64            `json:"errors"`     // unexpected failures
	ErrorRate  float64          `json:"error_rate"` // Errors / Count
	P50Ms      float64          `json:"p50_ms"`
	P90Ms      float64          `json:"p90_ms"`
	P99Ms      float64          `json:"p99_ms"`
	P999Ms     float64          `json:"p999_ms"`
	MaxMs      float64          `json:"max_ms"`
	ByCode     map[string]int64 `json:"errors_by_code,omitempty"`   // envelope code or "transport"
	Expected   map[string]int64 `json:"expected_by_code,omitempty"` // refusals the scenario expects (race losers)
}

// TimelinePoint is one second of the run (warm-up included), by completion time.
type TimelinePoint struct {
	Second int     `json:"second"` // 0-based since the start of the schedule
	Count  int64   `json:"count"`
	Errors int64   `json:"errors"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
}

// Report is everything a run measured; bench compare reads Total and Ops.
type Report struct {
	Scenario    string          `json:"scenario"`
	Targets     []string        `json:"targets"`
	Rate        float64         `json:"rate"` // intended requests per second
	Duration    time.Duration   `json:"duration_ns"`
	Warmup      time.Duration   `json:"warmup_ns"`
	Started     time.Time       `json:"started"`
	Elapsed     time.Duration   `json:"elapsed_ns"` // schedule start to last request done
	Arrivals    int             `json:"arrivals"`   // sessions started (lifecycles, races, reads)
	Late        int64           `json:"late"`       // requests that could not start on time
	Resent      int64           `json:"resent"`     // sends repeated on another node after a transport error
	Sent        int64           `json:"sent"`       // requests sent, warm-up and retries included
	ToOwner     int64           `json:"to_owner"`   // of Sent, those sent to the node the cluster named as the order's owner
	Total       OpReport        `json:"total"`
	Ops         []OpReport      `json:"ops"`
	Timeline    []TimelinePoint `json:"timeline"`
	Chaos       []ChaosLog      `json:"chaos,omitempty"`
	Check       *CheckResult    `json:"check,omitempty"`
	Concurrency int             `json:"concurrency"`
	Flash       *FlashReport    `json:"flash,omitempty"` // flash and restock`
	// Provider is the shoppers' waits for the provider and the pool (--provider).
	Provider *ProviderReport `json:"provider,omitempty"`
	// SystemArgs are the extra arguments of the systems the bench started itself.
	SystemArgs []string `json:"system_args,omitempty"`
	// Cost is what the measured window cost each process and the database (cost.go).
	Cost *CostReport `json:"cost,omitempty"`
}

// commandOps are the operations that change an order: one success is one transition.
var commandOps = []string{OpCreate, OpPay, OpConfirm, OpShip, OpDeliver, OpCancel, OpFailPayment, OpRefund}

// transitions counts the commands of the measured window that succeeded.
func (r *Report) transitions() int64 {
	var n int64
	for _, o := range r.Ops {
		if !slices.Contains(commandOps, o.Op) {
			continue
		}
		n += o.Count - o.Errors
		for _, k := range o.Expected {
			n -= k
		}
	}
	return n
}

// Op returns the report of op, and whether there was one.
func (r *Report) Op(op string) (OpReport, bool) {
	for _, o := range r.Ops {
		if o.Op == op {
			return o, true
		}
	}
	return OpReport{}, false
}

func opReport(op string, h *hdrhistogram.Histogram, errs, expected map[string]int64, secs float64) OpReport {
	o := OpReport{Op: op, Count: h.TotalCount(), ByCode: errs, Expected: expected}
	for _, n := range errs {
		o.Errors += n
	}
	if o.Count > 0 {
		o.ErrorRate = float64(o.Errors) / float64(o.Count)
		o.P50Ms = millis(h.ValueAtQuantile(50))
		o.P90Ms = millis(h.ValueAtQuantile(90))
		o.P99Ms = millis(h.ValueAtQuantile(99))
		o.P999Ms = millis(h.ValueAtQuantile(99.9))
		o.MaxMs = millis(h.Max())
	}
	if secs > 0 {
		o.Throughput = float64(o.Count) / secs
	}
	return o
}

// buildReport turns the recorder's state into a Report.
func buildReport(cfg Config, r *runner, start, finished time.Time, arrivals int, chaos []ChaosLog) *Report {
	rep := &Report{
		Scenario: cfg.Scenario, Targets: r.lb.Targets(), Rate: cfg.Rate, Duration: cfg.Duration, Warmup: cfg.Warmup,
		Started: start, Elapsed: finished.Sub(start), Arrivals: arrivals, Resent: r.lb.Resent(), Chaos: chaos,
		Concurrency: cfg.Concurrency, SystemArgs: cfg.SystemArgs,
	}
	rep.Sent, rep.ToOwner = r.lb.Sends()
	if cfg.Provider {
		rep.Provider = r.provider.report()
	}
	secs := cfg.Duration.Seconds()
	rec := r.rec
	rec.mu.Lock()
	rep.Late = rec.late
	names := slices.Collect(maps.Keys(rec.ops))
	sort.Slice(names, func(i, j int) bool { return opRank(names[i]) < opRank(names[j]) })
	var all []*hdrhistogram.Histogram
	totalErrs, totalExp := map[string]int64{}, map[string]int64{}
	for _, n := range names {
		st := rec.ops[n]
		rep.Ops = append(rep.Ops, opReport(n, st.hist, st.errors, st.expected, secs))
		all = append(all, st.hist)
		for c, k := range st.errors {
			totalErrs[c] += k
		}
		for c, k := range st.expected {
			totalExp[c] += k
		}
	}
	nsec := len(rec.seconds)
	rec.mu.Unlock()
	rep.Total = opReport("total", mergeHistograms(all...), totalErrs, totalExp, secs)
	for i := range nsec {
		rep.Timeline = append(rep.Timeline, rec.Second(i))
	}
	return rep
}

func opRank(op string) int {
	if i := slices.Index(opOrder, op); i >= 0 {
		return i
	}
	return len(opOrder)
}

// WriteText writes the human report.
func (r *Report) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "scenario %s against %s\n", r.Scenario, strings.Join(r.Targets, ", "))
	fmt.Fprintf(w, "intended %.0f req/s for %s after %s warm-up; %d arrivals, %d late, %d resent to another node\n",
		r.Rate, r.Duration, r.Warmup, r.Arrivals, r.Late, r.Resent)
	if r.ToOwner > 0 {
		fmt.Fprintf(w, "%d of %d requests sent straight to the order's owner (Ordermesh-Owner)\n", r.ToOwner, r.Sent)
	}
	if len(r.SystemArgs) > 0 {
		fmt.Fprintf(w, "systems started by the bench with: %s\n", strings.Join(r.SystemArgs, " "))
	}
	if r.Provider != nil {
		fmt.Fprintln(w, "payment provider and fulfilment pool in the loop: the per-op figures leave out the polls of the waits")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tcount\treq/s\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\terrors\t")
	for _, o := range append(slices.Clone(r.Ops), r.Total) {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t\n",
			o.Op, o.Count, o.Throughput, o.P50Ms, o.P90Ms, o.P99Ms, o.P999Ms, o.MaxMs, o.Errors)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	for _, o := range r.Ops {
		if len(o.ByCode) > 0 {
			fmt.Fprintf(w, "errors %-16s %s\n", o.Op, codes(o.ByCode))
		}
		if len(o.Expected) > 0 {
			fmt.Fprintf(w, "expected %-14s %s (race losers)\n", o.Op, codes(o.Expected))
		}
	}
	for _, c := range r.Chaos {
		status := "ok"
		if c.Error != "" {
			status = c.Error
		}
		fmt.Fprintf(w, "chaos at %s: %s %d: %s\n", c.At, c.Action, c.Node, status)
	}
	if r.Cost != nil {
		r.Cost.WriteText(w)
	}
	if r.Flash != nil {
		r.Flash.WriteText(w)
	}
	if r.Provider != nil {
		r.Provider.WriteText(w)
	}
	if r.Check != nil {
		if r.Check.Stock != nil {
			fmt.Fprintf(w, "check %s\n", r.Check.Stock.Summary())
		}
		if r.Check.Fulfilment != nil {
			fmt.Fprintf(w, "check %s\n", r.Check.Fulfilment.Summary())
		}
		for _, rs := range r.Check.Races {
			fmt.Fprintln(w, rs)
		}
		for _, v := range r.Check.Violations {
			fmt.Fprintf(w, "violation %s order %s: %s\n", v.Kind, v.OrderID, v.Detail)
		}
		fmt.Fprintf(w, "check %s\n", r.Check.Summary())
	}
	return nil
}

// String is the race's line in the text report.
func (rs RaceStats) String() string {
	expiry := ""
	if rs.Kind == raceConfirmExpiry {
		expiry = fmt.Sprintf(" (expiry won %d, confirm won %d)", rs.TimerWin, rs.OneWin-rs.TimerWin)
	}
	return fmt.Sprintf("race %-24s %4d races: %d one winner, %d no winner, %d both applied in order, %d several winners%s",
		rs.Kind, rs.Races, rs.OneWin, rs.NoWin, rs.Serial, rs.MultiWin, expiry)
}

func codes(m map[string]int64) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// WriteFiles writes report.txt, report.json, report.svg, acks.jsonl and (with a cost
// report) cost.svg into dir.
func (r *Report) WriteFiles(dir string, acks []Ack) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	write := func(name string, fn func(io.Writer) error) error {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("writing report: %w", err)
		}
		if err := fn(f); err != nil {
			f.Close()
			return fmt.Errorf("writing %s: %w", name, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
		return nil
	}
	files := []struct {
		name string
		fn   func(io.Writer) error
	}{
		{"report.txt", r.WriteText},
		{"report.json", func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(r)
		}},
		{"report.svg", r.WriteSVG},
		{"acks.jsonl", func(w io.Writer) error { return WriteJSONL(w, acks) }},
	}
	if r.Cost != nil {
		files = append(files, struct {
			name string
			fn   func(io.Writer) error
		}{"cost.svg", r.Cost.WriteSVG})
	}
	for _, f := range files {
		if err := write(f.name, f.fn); err != nil {
			return err
		}
	}
	return nil
}
