package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNodesServeTheWebAppAndReportTheirLoad: two nodes on one embedded store serve the
// built app from / (deep links included), and each member's recent requests reach the
// other's cluster view.
func TestNodesServeTheWebAppAndReportTheirLoad(t *testing.T) {
	dist := filepath.Join(t.TempDir(), "dist")
	const shell = `<!doctype html><title>ordermesh</title><div id="app"></div>`
	if err := os.MkdirAll(dist, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dist, "index.html"), []byte(shell), 0o644); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(t.TempDir(), "om.db")
	first := startFresh(t, store, "--web-dir", dist)
	// The second takes the directory from its environment variable.
	second := startFresh(t, store, "--join", first.addrs.gossip, envArg+"ORDERMESH_WEB_DIR="+dist)

	for _, u := range []string{first.base + "/", second.base + "/orders/some-id"} {
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(body) != shell || !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("GET %s: %d %q, CSP %q", u, res.StatusCode, body, res.Header.Get("Content-Security-Policy"))
		}
	}

	for range 20 {
		if res, err := http.Get(second.base + "/healthz"); err == nil {
			res.Body.Close()
		}
	}
	op := login(t, first.base, "olga")
	type load struct {
		ID   string  `json:"id"`
		HTTP string  `json:"http"`
		RPS  float64 `json:"requests_per_second"`
		P50  float64 `json:"latency_p50_ms"`
		P99  float64 `json:"latency_p99_ms"`
	}
	var last []load
	waitFor(t, 20*time.Second, "both members' requests in the cluster view", func() bool {
		status, env, err := op.do("GET", "/api/v1/cluster", "", nil)
		if err != nil || status != 200 {
			return false
		}
		var st struct{ Members []load }
		if err := json.Unmarshal(env.Data, &st); err != nil {
			t.Fatal(err)
		}
		last = st.Members
		if len(st.Members) != 2 {
			return false
		}
		for _, m := range st.Members {
			if m.RPS <= 0 || m.P50 <= 0 || m.P99 < m.P50 {
				return false
			}
		}
		return true
	})
	t.Logf("members: %+v", last)
}
