package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// Chart geometry: one plot area with throughput on the left axis and p99 on the right.
const (
	svgW, svgH               = 960, 420
	padL, padR, padT, padB   = 70, 80, 50, 50
	colorRate, colorP99, gry = "#1f77b4", "#d62728", "#999"
)

// WriteSVG writes the chart: completed requests per second and p99 per second over the
// run (warm-up shaded), with chaos events as vertical lines. Hand-written SVG keeps the
// harness free of a plotting dependency.
func (r *Report) WriteSVG(w io.Writer) error {
	n := len(r.Timeline)
	maxRate, maxP99 := 1.0, 1.0
	for _, p := range r.Timeline {
		maxRate = math.Max(maxRate, float64(p.Count))
		maxP99 = math.Max(maxP99, p.P99Ms)
	}
	maxRate, maxP99 = niceCeil(maxRate), niceCeil(maxP99)
	plotW, plotH := float64(svgW-padL-padR), float64(svgH-padT-padB)
	span := math.Max(float64(n), 1)
	x := func(sec float64) float64 { return padL + sec/span*plotW }
	yRate := func(v float64) float64 { return padT + plotH - v/maxRate*plotH }
	yP99 := func(v float64) float64 { return padT + plotH - v/maxP99*plotH }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", svgW, svgH, svgW, svgH)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15">%s: %.0f req/s intended, p99 %.2f ms, %.1f req/s achieved</text>`+"\n",
		padL, html.EscapeString(r.Scenario), r.Rate, r.Total.P99Ms, r.Total.Throughput)
	if w := r.Warmup.Seconds(); w > 0 {
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%.1f" fill="#f2f2f2"/><text x="%.1f" y="%d" fill="%s">warm-up</text>`+"\n",
			x(0), padT, x(math.Min(w, span))-x(0), plotH, x(0)+4, padT+14, gry)
	}
	for i := 0; i <= 4; i++ { // grid and axis labels
		f := float64(i) / 4
		y := padT + plotH - f*plotH
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e5e5e5"/>`+"\n", padL, y, svgW-padR, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="%s">%.0f</text>`+"\n", padL-6, y+4, colorRate, f*maxRate)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" fill="%s">%.3g</text>`+"\n", svgW-padR+6, y+4, colorP99, f*maxP99)
	}
	step := max(1, n/10)
	for s := 0; s <= n; s += step {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="%s">%ds</text>`+"\n", x(float64(s)), svgH-padB+18, gry, s)
	}
	fmt.Fprintf(&b, `<text x="14" y="%d" fill="%s" transform="rotate(-90 14 %d)">requests/s</text>`+"\n", padT+int(plotH)/2, colorRate, padT+int(plotH)/2)
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s" transform="rotate(90 %d %d)">p99 ms</text>`+"\n", svgW-20, padT+int(plotH)/2, colorP99, svgW-20, padT+int(plotH)/2)
	for _, c := range r.Chaos {
		cx := x(c.At.Seconds())
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#555" stroke-dasharray="4 3"/><text x="%.1f" y="%d" fill="#555">%s %d</text>`+"\n",
			cx, padT, cx, padT+plotH, cx+3, padT-4, c.Action, c.Node)
	}
	rate := make([]string, 0, n)
	p99 := make([]string, 0, n)
	for _, p := range r.Timeline {
		mid := float64(p.Second) + 0.5
		rate = append(rate, fmt.Sprintf("%.1f,%.1f", x(mid), yRate(float64(p.Count))))
		if p.Count > 0 {
			p99 = append(p99, fmt.Sprintf("%.1f,%.1f", x(mid), yP99(p.P99Ms)))
		}
	}
	fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", colorRate, strings.Join(rate, " "))
	fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", colorP99, strings.Join(p99, " "))
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%.1f" fill="none" stroke="#333"/>`+"\n", padL, padT, plotW, plotH)
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">— throughput (req/s)</text><text x="%d" y="%d" fill="%s">— p99 latency (ms)</text>`+"\n",
		padL+360, 40, colorRate, padL+560, 40, colorP99)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, for readable axes.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
