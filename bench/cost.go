package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"html"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// What a run cost: for each process the bench started or was told about (the nodes, the
// baseline, PostgreSQL, the harness itself) the CPU time it spent and its peak memory, and
// for the database what it had to write. Latency says how a system feels; cost says how
// far it scales on given hardware, and what one more node or core would buy.
//
// CPU time and peak RSS come from /proc (Linux). The window is the measured part of the
// run: from the end of the warm-up to the moment the last request came back, so the
// requests counted are those of the report's total, and a transition is a command the
// harness saw succeed (create, pay, confirm, ship, deliver, cancel, fail-payment, refund;
// with --provider the system's own confirmations and shipments are not counted, which
// makes a transition look dearer than it is).

// Process names a process whose cost the run reports.
type Process struct {
	Name string `json:"name"` // e.g. "node 0", "baseline", "postgres", "bench"
	PID  int    `json:"pid"`
	// Tree adds the process's descendants, the live ones and those it has reaped
	// (PostgreSQL: the postmaster and its backends).
	Tree bool `json:"tree,omitempty"`
}

// DBSample is a reading of the database's counters; each grows over the database's life.
type DBSample struct {
	XID      int64 // the next transaction id: one is used by each transaction that writes
	WALBytes int64 // the write-ahead log's position
	Commits  int64 // pg_stat_database.xact_commit (read-only transactions included)
	Rows     int64 // pg_stat_database tup_inserted + tup_updated + tup_deleted
}

// DBStats reads the database's counters (cmd/ordermesh implements it for PostgreSQL).
type DBStats interface {
	// Sample reads the counters now. final is true for the reading at the end of a run,
	// which may wait for statistics that the server reports late.
	Sample(ctx context.Context, final bool) (DBSample, error)
}

// CostSources are what Config.Cost measures; the zero value measures only the harness.
type CostSources struct {
	Processes []Process
	DB        DBStats
	// Proc is the proc filesystem; "" is /proc. Tests point it at a fake one.
	Proc string
}

// ProcessCost is one process's share of a run.
type ProcessCost struct {
	Name       string  `json:"name"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// CPUMsPerRequest: CPU milliseconds per measured request (= CPU seconds per 1,000 requests).
	CPUMsPerRequest float64 `json:"cpu_ms_per_request"`
	// CPUMicrosPerTransition: CPU microseconds per committed transition.
	CPUMicrosPerTransition float64 `json:"cpu_us_per_transition"`
	// PeakRSSBytes: the most resident memory the process had (VmHWM) by the end of the
	// window; for a tree, the sum over its live processes (so shared memory, such as
	// PostgreSQL's buffers, counts once per process that touched it: an upper bound).
	PeakRSSBytes int64  `json:"peak_rss_bytes"`
	Error        string `json:"error,omitempty"` // why it could not be measured
}

// DBCost is what the database wrote during the window.
type DBCost struct {
	WriteTransactions int64   `json:"write_transactions"`
	Commits           int64   `json:"commits"`
	RowsWritten       int64   `json:"rows_written"`
	WALBytes          int64   `json:"wal_bytes"`
	WritesPerTrans    float64 `json:"write_transactions_per_transition"`
	CommitsPerTrans   float64 `json:"commits_per_transition"`
	RowsPerTrans      float64 `json:"rows_per_transition"`
	WALBytesPerTrans  float64 `json:"wal_bytes_per_transition"`
	Error             string  `json:"error,omitempty"`
}

// CostReport is the cost of the measured window of a run.
type CostReport struct {
	WindowSeconds float64       `json:"window_seconds"`
	Requests      int64         `json:"requests"`
	Transitions   int64         `json:"transitions"`
	Processes     []ProcessCost `json:"processes"`
	DB            *DBCost       `json:"db,omitempty"`
}

// Process returns the cost of the process named name, and whether there is one.
func (c *CostReport) Process(name string) (ProcessCost, bool) {
	for _, p := range c.Processes {
		if p.Name == name {
			return p, true
		}
	}
	return ProcessCost{}, false
}

// costMeter takes the readings at the start and the end of the window.
type costMeter struct {
	src   CostSources
	procs []Process // src.Processes and the harness
	tick  time.Duration

	start   time.Time
	before  []procReading
	dbStart *DBSample
	dbErr   error
}

type procReading struct {
	cpu     time.Duration
	peakRSS int64
	err     error
}

func newCostMeter(src CostSources) *costMeter {
	if src.Proc == "" {
		src.Proc = "/proc"
	}
	procs := append([]Process{}, src.Processes...)
	if !src.hasSelf() {
		procs = append(procs, Process{Name: "bench", PID: os.Getpid()})
	}
	return &costMeter{src: src, procs: procs, tick: clockTick(src.Proc)}
}

// hasSelf reports whether the harness is among the processes already (tests name theirs).
func (s CostSources) hasSelf() bool {
	for _, p := range s.Processes {
		if p.Name == "bench" {
			return true
		}
	}
	return false
}

// begin takes the readings at the start of the window.
func (m *costMeter) begin(ctx context.Context, now time.Time) {
	m.start = now
	m.before = m.read()
	if m.src.DB != nil {
		s, err := m.src.DB.Sample(ctx, false)
		m.dbStart, m.dbErr = &s, err
	}
}

// end takes the readings at the end of the window and makes the report.
func (m *costMeter) end(ctx context.Context, now time.Time, requests, transitions int64) *CostReport {
	if m.before == nil { // the window never started (a run shorter than its warm-up)
		return nil
	}
	after := m.read()
	rep := &CostReport{WindowSeconds: now.Sub(m.start).Seconds(), Requests: requests, Transitions: transitions}
	for i, p := range m.procs {
		pc := ProcessCost{Name: p.Name}
		switch b, a := m.before[i], after[i]; {
		case b.err != nil:
			pc.Error = b.err.Error()
		case a.err != nil:
			pc.Error = a.err.Error()
		default:
			pc.CPUSeconds = (a.cpu - b.cpu).Seconds()
			pc.PeakRSSBytes = a.peakRSS
		}
		rep.Processes = append(rep.Processes, pc)
	}
	if m.src.DB != nil {
		rep.DB = &DBCost{}
		end, err := m.src.DB.Sample(ctx, true)
		switch {
		case m.dbErr != nil:
			rep.DB.Error = m.dbErr.Error()
		case err != nil:
			rep.DB.Error = err.Error()
		default:
			d := rep.DB
			d.WriteTransactions = end.XID - m.dbStart.XID
			d.Commits = end.Commits - m.dbStart.Commits
			d.RowsWritten = end.Rows - m.dbStart.Rows
			d.WALBytes = end.WALBytes - m.dbStart.WALBytes
		}
	}
	rep.perUnit()
	return rep
}

// perUnit works out the per-request and per-transition figures from the totals.
func (c *CostReport) perUnit() {
	for i := range c.Processes {
		p := &c.Processes[i]
		if c.Requests > 0 {
			p.CPUMsPerRequest = p.CPUSeconds * 1e3 / float64(c.Requests)
		}
		if c.Transitions > 0 {
			p.CPUMicrosPerTransition = p.CPUSeconds * 1e6 / float64(c.Transitions)
		}
	}
	if d := c.DB; d != nil && d.Error == "" && c.Transitions > 0 {
		n := float64(c.Transitions)
		d.WritesPerTrans = float64(d.WriteTransactions) / n
		d.CommitsPerTrans = float64(d.Commits) / n
		d.RowsPerTrans = float64(d.RowsWritten) / n
		d.WALBytesPerTrans = float64(d.WALBytes) / n
	}
}

func (m *costMeter) read() []procReading {
	out := make([]procReading, len(m.procs))
	for i, p := range m.procs {
		cpu, rss, err := readProcess(m.src.Proc, p, m.tick)
		out[i] = procReading{cpu: cpu, peakRSS: rss, err: err}
	}
	return out
}

// readProcess returns the CPU time a process (with Tree, and its descendants) has used
// so far, and its peak resident memory.
func readProcess(proc string, p Process, tick time.Duration) (time.Duration, int64, error) {
	pids := []int{p.PID}
	if p.Tree {
		var err error
		if pids, err = descendants(proc, p.PID); err != nil {
			return 0, 0, err
		}
	}
	var ticks, rss int64
	for i, pid := range pids {
		st, err := readStat(proc, pid)
		if err != nil {
			if i > 0 && errors.Is(err, os.ErrNotExist) {
				continue // a backend that ended since the listing: its parent has its time
			}
			return 0, 0, fmt.Errorf("%s (pid %d): %w", p.Name, pid, err)
		}
		// Reaped children's time is in cutime/cstime: a backend that ended during the
		// window moves from its own stat into its parent's.
		ticks += st.utime + st.stime + st.cutime + st.cstime
		hwm, err := readHWM(proc, pid)
		if err == nil {
			rss += hwm
		}
	}
	return time.Duration(ticks) * tick, rss, nil
}

type procStat struct {
	ppid                         int
	utime, stime, cutime, cstime int64
}

// readStat parses /proc/<pid>/stat (proc(5)): the command name is in parentheses and may
// hold spaces or parentheses, so the fields are counted from the last ')'.
func readStat(proc string, pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("stat of pid %d: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17.
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("stat of pid %d: %d fields", pid, len(f)+2)
	}
	var st procStat
	var perr error
	num := func(s string) int64 {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil && perr == nil {
			perr = fmt.Errorf("stat of pid %d: %w", pid, err)
		}
		return n
	}
	st.ppid = int(num(f[1]))
	st.utime, st.stime, st.cutime, st.cstime = num(f[11]), num(f[12]), num(f[13]), num(f[14])
	return st, perr
}

// readHWM returns VmHWM of /proc/<pid>/status in bytes.
func readHWM(proc string, pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("status of pid %d: no VmHWM", pid)
}

// descendants lists root and every live process under it, root first.
func descendants(proc string, root int) ([]int, error) {
	entries, err := os.ReadDir(proc)
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == root {
			continue
		}
		st, err := readStat(proc, pid)
		if err != nil {
			continue // gone since the listing
		}
		children[st.ppid] = append(children[st.ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out, nil
}

// clockTick is the unit of /proc's CPU times (USER_HZ), from the kernel's auxiliary
// vector (AT_CLKTCK); 10 ms, the value on every common Linux build, if it cannot be read.
func clockTick(proc string) time.Duration {
	const atClkTck = 17
	b, err := os.ReadFile(filepath.Join(proc, "self", "auxv"))
	if err == nil {
		for i := 0; i+16 <= len(b); i += 16 {
			k, v := binary.NativeEndian.Uint64(b[i:]), binary.NativeEndian.Uint64(b[i+8:])
			if k == atClkTck && v > 0 {
				return time.Second / time.Duration(v)
			}
		}
	}
	return 10 * time.Millisecond
}

// WriteText writes the cost table of the text report.
func (c *CostReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "\ncost over %.1f s: %d requests, %d transitions\n", c.WindowSeconds, c.Requests, c.Transitions)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "process\tCPU s\tCPU s/1k req\tCPU µs/transition\tpeak RSS MiB\t")
	for _, p := range c.Processes {
		if p.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t(%s)\n", p.Name, p.Error)
			continue
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%.3f\t%.0f\t%.1f\t\n", p.Name, p.CPUSeconds, p.CPUMsPerRequest, p.CPUMicrosPerTransition,
			float64(p.PeakRSSBytes)/(1<<20))
	}
	_ = tw.Flush()
	if d := c.DB; d != nil {
		if d.Error != "" {
			fmt.Fprintf(w, "database: not measured (%s)\n", d.Error)
			return
		}
		fmt.Fprintf(w, "database: %d write transactions (%.2f per transition), %d commits (%.2f), %d rows written (%.2f), %d WAL bytes (%.0f)\n",
			d.WriteTransactions, d.WritesPerTrans, d.Commits, d.CommitsPerTrans, d.RowsWritten, d.RowsPerTrans, d.WALBytes, d.WALBytesPerTrans)
	}
}

// WriteSVG writes the cost chart: CPU microseconds per transition of each process as
// horizontal bars (per request for a run of mostly reads), with CPU seconds and peak
// memory beside them.
func (c *CostReport) WriteSVG(w io.Writer) error {
	const rowH, left, barW = 34, 110, 560
	h := padT + rowH*len(c.Processes) + 60
	per, unit := func(p ProcessCost) float64 { return p.CPUMicrosPerTransition }, "committed transition"
	if c.Transitions*2 < c.Requests {
		per, unit = func(p ProcessCost) float64 { return p.CPUMsPerRequest * 1e3 }, "request"
	}
	top := 1.0
	for _, p := range c.Processes {
		top = max(top, per(p))
	}
	top = niceCeil(top)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", svgW, h, svgW, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15">CPU per %s over %.1f s (%d requests, %d transitions)</text>`+"\n",
		padL, unit, c.WindowSeconds, c.Requests, c.Transitions)
	for i, p := range c.Processes {
		y := padT + i*rowH
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, y+rowH/2+4, html.EscapeString(p.Name))
		if p.Error != "" {
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">not measured: %s</text>`+"\n", left, y+rowH/2+4, gry, html.EscapeString(p.Error))
			continue
		}
		bw := per(p) / top * barW
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", left, y+6, bw, rowH-12, colorRate)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%.0f µs · %.2f CPU s · %.1f MiB peak</text>`+"\n",
			float64(left)+bw+6, y+rowH/2+4, per(p), p.CPUSeconds, float64(p.PeakRSSBytes)/(1<<20))
	}
	axisY := padT + rowH*len(c.Processes) + 4
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", left, axisY, left+barW, axisY)
	for i := 0; i <= 4; i++ {
		f := float64(i) / 4
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="%s">%.0f µs</text>`+"\n", float64(left)+f*barW, axisY+16, gry, f*top)
	}
	if d := c.DB; d != nil && d.Error == "" {
		fmt.Fprintf(&b, `<text x="%d" y="%d">database per transition: %.2f write transactions, %.2f rows written, %.0f WAL bytes</text>`+"\n",
			left, axisY+40, d.WritesPerTrans, d.RowsPerTrans, d.WALBytesPerTrans)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// PoolCost adds up the cost of several runs (windows, requests, transitions, CPU, database
// counts; peak memory is the highest) and works out the per-unit figures of the whole:
// total CPU over total work, not a mean of ratios. Nil reports are skipped; nil if none.
func PoolCost(rs ...*CostReport) *CostReport {
	var out *CostReport
	for _, r := range rs {
		if r == nil {
			continue
		}
		if out == nil {
			out = &CostReport{}
			for _, p := range r.Processes {
				out.Processes = append(out.Processes, ProcessCost{Name: p.Name})
			}
			if r.DB != nil {
				out.DB = &DBCost{}
			}
		}
		out.WindowSeconds += r.WindowSeconds
		out.Requests += r.Requests
		out.Transitions += r.Transitions
		for i := range out.Processes {
			p, ok := r.Process(out.Processes[i].Name)
			switch {
			case !ok:
				out.Processes[i].Error = "not in every run"
			case p.Error != "":
				out.Processes[i].Error = p.Error
			}
			out.Processes[i].CPUSeconds += p.CPUSeconds
			out.Processes[i].PeakRSSBytes = max(out.Processes[i].PeakRSSBytes, p.PeakRSSBytes)
		}
		if out.DB != nil {
			switch d := r.DB; {
			case d == nil:
				out.DB.Error = "not in every run"
			case d.Error != "":
				out.DB.Error = d.Error
			default:
				out.DB.WriteTransactions += d.WriteTransactions
				out.DB.Commits += d.Commits
				out.DB.RowsWritten += d.RowsWritten
				out.DB.WALBytes += d.WALBytes
			}
		}
	}
	if out != nil {
		out.perUnit()
	}
	return out
}
