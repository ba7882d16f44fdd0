package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// scrape returns the body of GET url, with a bearer token if one is given.
func scrape(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(body)
}

// sampleNames are the names of the samples in a Prometheus text exposition: a
// histogram X shows as X_bucket, X_sum and X_count.
func sampleNames(exposition string) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(exposition, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// metricNamePattern finds the metric names in PromQL: ours and protoactor-go's.
var metricNamePattern = regexp.MustCompile(`\b(?:ordermesh|protoactor)_[a-z0-9_]+`)

// TestMetricsOfARealNode runs a node with --actor-metrics, sends it the requests that make
// every kind of metric appear, and checks its /metrics: protoactor-go's metrics are there, promtool
// accepts the exposition (when promtool is installed; CI installs it), and every metric
// that deploy/grafana/ordermesh.json queries is exported.
func TestMetricsOfARealNode(t *testing.T) {
	p := startFresh(t, filepath.Join(t.TempDir(), "om.db"), "--actor-metrics")
	alice := login(t, p.base, "alice")
	status, env, err := alice.do("POST", "/api/v1/orders", "m1", map[string]any{"items": []map[string]any{{"sku": "tea-sencha", "qty": 1}}})
	if err != nil || status != 201 {
		t.Fatalf("create: %d %+v %v", status, env, err)
	}
	alice.do("GET", "/api/v1/orders", "", nil)

	status, metrics := scrape(t, p.base+"/metrics", "")
	if status != 200 {
		t.Fatalf("/metrics: %d", status)
	}
	names := sampleNames(metrics)
	for _, want := range []string{"protoactor_actor_spawn_count_total", "protoactor_actor_message_receive_duration_seconds_bucket",
		"ordermesh_grain_commands_total", "ordermesh_store_batch_seconds_bucket", "ordermesh_active_grains", "ordermesh_cluster_members"} {
		if !names[want] {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	t.Run("promtool", func(t *testing.T) {
		promtool, err := exec.LookPath("promtool")
		if err != nil {
			t.Skip("promtool is not installed (apt-get install prometheus); CI installs it")
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(metrics)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("promtool check metrics: %v\n%s", err, out.String())
		}
	})

	t.Run("dashboard", func(t *testing.T) {
		dashboard, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", "ordermesh.json"))
		if err != nil {
			t.Fatal(err)
		}
		queried := metricNamePattern.FindAllString(string(dashboard), -1)
		slices.Sort(queried)
		queried = slices.Compact(queried)
		if len(queried) < 20 {
			t.Fatalf("found only %d metric names in the dashboard: %v", len(queried), queried)
		}
		for _, name := range queried {
			if !names[name] {
				t.Errorf("the dashboard queries %s, which /metrics does not export", name)
			}
		}
	})
}

// TestMetricsAccessFlags: --metrics-listen moves /metrics off the API port, and
// --metrics-token is required there.
func TestMetricsAccessFlags(t *testing.T) {
	metricsAddr := freeAddr(t)
	p := startFresh(t, filepath.Join(t.TempDir(), "om.db"), "--metrics-listen", metricsAddr, "--metrics-token", "scrape-me")
	if status, _ := scrape(t, p.base+"/metrics", "scrape-me"); status != 404 {
		t.Errorf("/metrics on the API port: %d, want 404", status)
	}
	if status, _ := scrape(t, "http://"+metricsAddr+"/metrics", ""); status != 401 {
		t.Errorf("/metrics without the token: %d, want 401", status)
	}
	status, body := scrape(t, "http://"+metricsAddr+"/metrics", "scrape-me")
	if status != 200 || !strings.Contains(body, "ordermesh_http_requests_total") {
		t.Errorf("/metrics with the token: %d", status)
	}
	// Without --actor-metrics protoactor-go times no message.
	if names := sampleNames(body); names["protoactor_actor_spawn_count_total"] || names["protoactor_actor_message_receive_duration_seconds_bucket"] {
		t.Error("protoactor_* metrics exported without --actor-metrics")
	}
}

// TestWrongPasswordsAreLimitedByDefault is the acceptance test on a node with the
// default limits: 30 wrong passwords for one user from one address meet a 429 with
// Retry-After before the 30th.
func TestWrongPasswordsAreLimitedByDefault(t *testing.T) {
	p := startFresh(t, filepath.Join(t.TempDir(), "om.db"), "--auth-rate", "10") // the default; launch turns it off
	c := &client{base: p.base, http: http.DefaultClient}
	for i := 1; i <= 30; i++ {
		status, env, err := c.do("POST", "/auth/login", "", map[string]string{"username": "alice", "password": "wrong"})
		if err != nil {
			t.Fatal(err)
		}
		if status == 429 {
			if env.Code != 42900 {
				t.Errorf("code %d, want 42900", env.Code)
			}
			if i == 30 {
				t.Fatal("limited only at the 30th attempt")
			}
			return
		}
		if status != 401 {
			t.Fatalf("attempt %d: %d %+v", i, status, env)
		}
	}
	t.Fatal("30 wrong passwords were not limited")
}
