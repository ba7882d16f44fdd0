package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeProc is a /proc with just the files cost.go reads.
type fakeProc struct {
	t    *testing.T
	root string
}

func newFakeProc(t *testing.T, hz uint64) *fakeProc {
	p := &fakeProc{t: t, root: t.TempDir()}
	var auxv bytes.Buffer
	for _, kv := range [][2]uint64{{6, 4096}, {17, hz}, {0, 0}} { // AT_PAGESZ, AT_CLKTCK, AT_NULL
		_ = binary.Write(&auxv, binary.NativeEndian, kv)
	}
	p.write("self/auxv", auxv.String())
	return p
}

func (p *fakeProc) write(name, body string) {
	path := filepath.Join(p.root, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// set writes pid's stat (a command name with spaces and a parenthesis, as real ones may
// have) and status.
func (p *fakeProc) set(pid, ppid int, utime, stime, cutime, cstime int64, hwmKB int64) {
	p.write(fmt.Sprintf("%d/stat", pid), fmt.Sprintf(
		"%d (postgres: a (b) c) S %d 1 1 0 -1 4194560 100 0 0 0 %d %d %d %d 20 0 1 0 100 1000 50",
		pid, ppid, utime, stime, cutime, cstime))
	p.write(fmt.Sprintf("%d/status", pid), fmt.Sprintf("Name:\tx\nVmPeak:\t  99999 kB\nVmHWM:\t %d kB\nVmRSS:\t 1 kB\n", hwmKB))
}

func (p *fakeProc) remove(pid int) {
	if err := os.RemoveAll(filepath.Join(p.root, fmt.Sprint(pid))); err != nil {
		p.t.Fatal(err)
	}
}

type fakeDB struct {
	samples []DBSample
	finals  []bool
}

func (f *fakeDB) Sample(_ context.Context, final bool) (DBSample, error) {
	f.finals = append(f.finals, final)
	s := f.samples[0]
	f.samples = f.samples[1:]
	return s, nil
}

func TestCostPerProcessAndDatabase(t *testing.T) {
	p := newFakeProc(t, 100)             // 10 ms ticks
	p.set(10, 1, 500, 100, 0, 0, 2048)   // node: 6 s so far
	p.set(20, 1, 1000, 200, 30, 10, 512) // postmaster
	p.set(21, 20, 300, 100, 0, 0, 4096)  // a backend
	p.set(22, 20, 50, 50, 0, 0, 4096)    // a backend that will end
	p.set(30, 1, 10, 0, 0, 0, 100)       // the harness
	db := &fakeDB{samples: []DBSample{{XID: 1000, WALBytes: 1 << 20, Commits: 5000, Rows: 300}, {XID: 1500, WALBytes: 3 << 20, Commits: 6100, Rows: 1300}}}
	m := newCostMeter(CostSources{Proc: p.root, DB: db, Processes: []Process{
		{Name: "node 0", PID: 10}, {Name: "postgres", PID: 20, Tree: true}, {Name: "bench", PID: 30},
	}})
	if m.tick != 10*time.Millisecond {
		t.Fatalf("tick %v, want 10ms from AT_CLKTCK", m.tick)
	}
	t0 := time.Unix(1000, 0)
	m.begin(context.Background(), t0)

	p.set(10, 1, 700, 150, 0, 0, 3072) // +2.5 s
	// Backend 22 ended and was reaped: its 1 s moves into the postmaster's cutime/cstime,
	// and must not count twice; backend 21 spent 1 s more; a new backend 23 spent 0.5 s;
	// the postmaster itself 0.5 s: 2 s in all.
	p.remove(22)
	p.set(20, 1, 1040, 210, 80, 60, 512)
	p.set(21, 20, 380, 120, 0, 0, 4096)
	p.set(23, 20, 40, 10, 0, 0, 1024)
	p.set(30, 1, 60, 0, 0, 0, 200) // +0.5 s
	rep := m.end(context.Background(), t0.Add(10*time.Second), 2000, 500)

	if rep.WindowSeconds != 10 || rep.Requests != 2000 || rep.Transitions != 500 {
		t.Fatalf("window %+v", rep)
	}
	want := map[string]struct {
		cpu float64
		rss int64
	}{
		"node 0":   {2.5, 3072 << 10},
		"postgres": {2.0, (512 + 4096 + 1024) << 10},
		"bench":    {0.5, 200 << 10},
	}
	if len(rep.Processes) != 3 {
		t.Fatalf("processes %+v (the harness is named already: not added twice)", rep.Processes)
	}
	for name, w := range want {
		pc, ok := rep.Process(name)
		if !ok || pc.Error != "" {
			t.Fatalf("%s: %+v", name, pc)
		}
		if d := pc.CPUSeconds - w.cpu; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s: %.3f CPU s, want %.3f", name, pc.CPUSeconds, w.cpu)
		}
		if pc.PeakRSSBytes != w.rss {
			t.Errorf("%s: peak RSS %d, want %d", name, pc.PeakRSSBytes, w.rss)
		}
		if got, wantMs := pc.CPUMsPerRequest, w.cpu*1e3/2000; got-wantMs > 1e-9 || wantMs-got > 1e-9 {
			t.Errorf("%s: %.4f ms per request, want %.4f", name, got, wantMs)
		}
		if got, wantUs := pc.CPUMicrosPerTransition, w.cpu*1e6/500; got-wantUs > 1e-6 || wantUs-got > 1e-6 {
			t.Errorf("%s: %.1f µs per transition, want %.1f", name, got, wantUs)
		}
	}
	d := rep.DB
	if d == nil || d.Error != "" || d.WriteTransactions != 500 || d.Commits != 1100 || d.RowsWritten != 1000 || d.WALBytes != 2<<20 {
		t.Fatalf("db %+v", d)
	}
	if d.WritesPerTrans != 1 || d.CommitsPerTrans != 2.2 || d.RowsPerTrans != 2 || d.WALBytesPerTrans != float64(2<<20)/500 {
		t.Errorf("db per transition %+v", d)
	}
	if len(db.finals) != 2 || db.finals[0] || !db.finals[1] {
		t.Errorf("final flags %v: only the last reading may wait for late statistics", db.finals)
	}

	var text bytes.Buffer
	rep.WriteText(&text)
	for _, s := range []string{"cost over 10.0 s: 2000 requests, 500 transitions", "postgres", "4000", "1.00 per transition"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("text lacks %q:\n%s", s, text.String())
		}
	}
}

// A process that is gone is reported as not measured; the others still are.
func TestCostOfAMissingProcess(t *testing.T) {
	p := newFakeProc(t, 250)
	p.set(10, 1, 100, 0, 0, 0, 10)
	m := newCostMeter(CostSources{Proc: p.root, Processes: []Process{{Name: "node 0", PID: 10}, {Name: "node 1", PID: 11}}})
	if m.tick != 4*time.Millisecond {
		t.Fatalf("tick %v", m.tick)
	}
	m.begin(context.Background(), time.Unix(0, 0))
	p.set(10, 1, 350, 0, 0, 0, 10)
	rep := m.end(context.Background(), time.Unix(1, 0), 10, 0)
	if pc, _ := rep.Process("node 0"); pc.CPUSeconds != 1 || pc.CPUMicrosPerTransition != 0 {
		t.Errorf("node 0 %+v", pc)
	}
	if pc, _ := rep.Process("node 1"); pc.Error == "" {
		t.Errorf("node 1 %+v: want an error", pc)
	}
	if _, ok := rep.Process("bench"); !ok {
		t.Error("the harness is always measured")
	}
	if rep.DB != nil {
		t.Error("no database given, none reported")
	}
}

// A run reports what the harness itself spent over its measured window.
func TestRunReportsTheHarnessCost(t *testing.T) {
	srv := httptest.NewServer(newCatalogFakeAPI().handler())
	defer srv.Close()
	cfg := quickConfig(srv.URL, "lifecycle")
	cfg.Warmup = 200 * time.Millisecond
	cfg.NoCheck = true
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Cost == nil {
		t.Fatal("no cost in the report")
	}
	pc, ok := rep.Cost.Process("bench")
	if !ok || pc.Error != "" || pc.CPUSeconds <= 0 || pc.PeakRSSBytes <= 0 {
		t.Fatalf("harness cost %+v", pc)
	}
	if rep.Cost.Requests != rep.Total.Count || rep.Cost.Transitions == 0 || rep.Cost.Transitions > rep.Total.Count {
		t.Fatalf("cost counts %+v, total %d", rep.Cost, rep.Total.Count)
	}
	if w := rep.Cost.WindowSeconds; w < 0.9 || w > 5 {
		t.Errorf("window %.2f s, want about the 1 s measured", w)
	}
}

func TestCostChart(t *testing.T) {
	rep := &CostReport{WindowSeconds: 10, Requests: 1000, Transitions: 900, Processes: []ProcessCost{
		{Name: "node <0>", CPUSeconds: 1, CPUMsPerRequest: 1, CPUMicrosPerTransition: 1111, PeakRSSBytes: 1 << 20},
		{Name: "postgres", Error: "gone"},
	}, DB: &DBCost{WritesPerTrans: 1.5}}
	var b bytes.Buffer
	if err := rep.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"CPU per committed transition", "node &lt;0&gt;", "1111 µs", "not measured: gone", "1.50 write transactions"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("chart lacks %q", s)
		}
	}
	rep.Transitions = 100 // mostly reads: per request
	b.Reset()
	_ = rep.WriteSVG(&b)
	if !strings.Contains(b.String(), "CPU per request") || !strings.Contains(b.String(), "1000 µs") {
		t.Errorf("a read run's chart is per request:\n%s", b.String())
	}
}

// Pooled cost is total CPU over total work; a process missing from one run is flagged.
func TestPoolCost(t *testing.T) {
	a := &CostReport{WindowSeconds: 10, Requests: 1000, Transitions: 100,
		Processes: []ProcessCost{{Name: "node-0", CPUSeconds: 1, PeakRSSBytes: 5}, {Name: "postgres", CPUSeconds: 2, PeakRSSBytes: 9}},
		DB:        &DBCost{WriteTransactions: 100, RowsWritten: 300, Commits: 150, WALBytes: 1000}}
	b := &CostReport{WindowSeconds: 10, Requests: 3000, Transitions: 300,
		Processes: []ProcessCost{{Name: "node-0", CPUSeconds: 5, PeakRSSBytes: 7}},
		DB:        &DBCost{WriteTransactions: 500, RowsWritten: 900, Commits: 450, WALBytes: 3000}}
	p := PoolCost(a, nil, b)
	if p.WindowSeconds != 20 || p.Requests != 4000 || p.Transitions != 400 {
		t.Fatalf("%+v", p)
	}
	n, _ := p.Process("node-0")
	if n.CPUSeconds != 6 || n.CPUMicrosPerTransition != 15000 || n.CPUMsPerRequest != 1.5 || n.PeakRSSBytes != 7 || n.Error != "" {
		t.Errorf("node-0 %+v", n)
	}
	if pg, _ := p.Process("postgres"); pg.Error == "" {
		t.Errorf("postgres %+v: measured in one run only, want that said", pg)
	}
	if d := p.DB; d.WriteTransactions != 600 || d.WritesPerTrans != 1.5 || d.RowsPerTrans != 3 || d.WALBytesPerTrans != 10 {
		t.Errorf("db %+v", d)
	}
	if PoolCost(nil, nil) != nil {
		t.Error("nothing pooled is nil")
	}
}
