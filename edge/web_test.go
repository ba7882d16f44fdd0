package edge

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/actors/order"
)

const (
	testIndex = `<!doctype html><html><body><div id="app"></div><script type="module" src="/assets/index-abc123.js"></script></body></html>`
	testAsset = `console.log("app")`
	secret    = "outside the web dir"
)

// webDir builds a dist like Vite's in a temp dir, with a secret beside it that no path
// may reach, and a symlink pointing at that secret.
func webDir(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	dir := filepath.Join(base, "dist")
	files := map[string]string{
		"index.html":              testIndex,
		"assets/index-abc123.js":  testAsset,
		"assets/index-abc123.css": "body{}",
		"robots.txt":              "User-agent: *",
		"docs/readme.txt":         "a file in a directory",
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "secret.txt"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(base, "secret.txt"), filepath.Join(dir, "leak.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(base, "secret.txt"), filepath.Join(dir, "assets", "leak.js")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func withWebDir(dir string) option { return func(c *Config, _ *Deps) { c.WebDir = dir } }

type webResponse struct {
	status int
	header http.Header
	body   string
}

// web sends one request straight to the app: the app's files are no operations of the
// API document, so the harness's contract check does not apply.
func web(t *testing.T, h *harness, method, path string, header map[string]string) webResponse {
	t.Helper()
	hr := httptest.NewRequest(method, "/", nil)
	hr.URL.RawPath, hr.URL.Path = path, path // as sent, escapes and dots included
	hr.RequestURI = path
	for k, v := range header {
		hr.Header.Set(k, v)
	}
	res, err := h.app.Test(hr, -1)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return webResponse{status: res.StatusCode, header: res.Header, body: string(body)}
}

func TestWebServesTheApp(t *testing.T) {
	h := newHarness(t, withWebDir(webDir(t)))
	const (
		index = "index"
		asset = "asset"
		text  = "text"
		api   = "api404" // the JSON 404 envelope of an unknown endpoint
		file  = "file404"
	)
	tests := []struct {
		method, path string
		want         string
	}{
		{"GET", "/", index},
		{"HEAD", "/", index},
		{"GET", "/index.html", index},
		{"GET", "/orders/xyz", index}, // a deep link: the app's router shows it
		{"HEAD", "/orders/xyz", index},
		{"GET", "/admin/users?page=2", index},
		{"GET", "/docs", index}, // a directory is no file
		{"GET", "/docs/", index},
		{"GET", "/wsx", index}, // only /ws and below belong to the API
		{"GET", "/apis", index},
		{"GET", "/assets/index-abc123.js", asset},
		{"HEAD", "/assets/index-abc123.js", asset},
		{"GET", "/robots.txt", text},
		{"GET", "/docs/readme.txt", text},
		{"GET", "/assets/missing-123.js", file}, // an old build's chunk: no HTML in its place
		// Nothing outside the dir: dots, escaped dots and slashes, a symlink out.
		{"GET", "/../secret.txt", index},
		{"GET", "/%2e%2e/secret.txt", index},
		{"GET", "/assets/..%2f..%2fsecret.txt", index},
		{"GET", "/assets/%2e%2e/%2e%2e/secret.txt", index},
		{"GET", "/leak.txt", index},
		{"GET", "/assets/leak.js", file},
		{"GET", "/%00", api},
		// The API's prefixes never answer with the app.
		{"GET", "/api/v1/nope", api},
		{"GET", "/api", api},
		{"GET", "/auth/whoami", api},
		{"GET", "/ws/x", api},
		{"GET", "/healthz/x", api},
		{"POST", "/orders/xyz", api}, // only GET and HEAD, and a 404 rather than a 405
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := web(t, h, tt.method, tt.path, nil)
			if strings.Contains(r.body, secret) {
				t.Fatalf("served the file outside the web dir")
			}
			body := func(want string) {
				t.Helper()
				if tt.method == "HEAD" {
					want = ""
				}
				if r.body != want {
					t.Errorf("body %q, want %q", r.body, want)
				}
			}
			switch tt.want {
			case index:
				expectHeaders(t, r, 200, map[string]string{
					"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache", "Content-Security-Policy": webCSP,
				})
				body(testIndex)
			case asset:
				expectHeaders(t, r, 200, map[string]string{
					"Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "public, max-age=31536000, immutable",
					"Content-Security-Policy": "frame-ancestors 'none'",
				})
				body(testAsset)
			case text:
				expectHeaders(t, r, 200, map[string]string{"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-cache"})
			case api, file:
				expectHeaders(t, r, 404, map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"})
				if !strings.Contains(r.body, `"code":40401`) {
					t.Errorf("body %s, want the 40401 envelope", r.body)
				}
			}
		})
	}
}

func expectHeaders(t *testing.T, r webResponse, status int, want map[string]string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	for k, v := range want {
		if got := r.header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
}

// A browser revalidating its copy of index.html gets 304 while the file is unchanged.
func TestWebRevalidates(t *testing.T) {
	h := newHarness(t, withWebDir(webDir(t)))
	first := web(t, h, "GET", "/", nil)
	etag := first.header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if r := web(t, h, "GET", "/orders/1", map[string]string{"If-None-Match": etag}); r.status != 304 || r.body != "" {
		t.Errorf("revalidation: %d %q, want 304 without a body", r.status, r.body)
	}
	if r := web(t, h, "GET", "/", map[string]string{"If-None-Match": `"other"`}); r.status != 200 {
		t.Errorf("another etag: %d, want 200", r.status)
	}
}

// Without a build, / says how to make one, and the node says so when it starts.
func TestWebNotBuilt(t *testing.T) {
	for name, dir := range map[string]string{
		"empty dir":   t.TempDir(),
		"missing dir": filepath.Join(t.TempDir(), "dist"),
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, withWebDir(dir))
			if lines := h.logs.lines(t, "msg", "the web app is not built: / answers 404 until it is (go tool task web)"); len(lines) != 1 {
				t.Errorf("start-up log: %d lines, want 1: %s", len(lines), h.logs.String())
			}
			for _, path := range []string{"/", "/orders/xyz"} {
				r := h.do(req{method: "GET", path: path}).expect(t, 404, order.CodeRouteNotFound)
				if !strings.Contains(r.Message, "go tool task web") {
					t.Errorf("GET %s: %q, want how to build the app", path, r.Message)
				}
			}
			// Built later, without a restart: served from then on.
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(testIndex), 0o644); err != nil {
				t.Fatal(err)
			}
			if r := web(t, h, "GET", "/orders/xyz", nil); r.status != 200 || r.body != testIndex {
				t.Errorf("after the build: %d %q", r.status, r.body)
			}
		})
	}
}

// A node without a web dir answers every unknown path with the API's 404.
func TestWebOff(t *testing.T) {
	h := newHarness(t)
	h.do(req{method: "GET", path: "/"}).expect(t, 404, order.CodeRouteNotFound)
	h.do(req{method: "GET", path: "/orders/xyz"}).expect(t, 404, order.CodeRouteNotFound)
	if lines := h.logs.lines(t, "msg", "serving the web app"); len(lines) != 0 {
		t.Errorf("logged serving an app: %v", lines)
	}
}

func TestWebLogsItsDir(t *testing.T) {
	dir := webDir(t)
	h := newHarness(t, withWebDir(dir))
	lines := h.logs.lines(t, "msg", "serving the web app")
	if len(lines) != 1 || lines[0]["dir"] != dir {
		t.Errorf("start-up log: %v, want one line with dir %s", lines, dir)
	}
}

// Text files go gzipped to a browser that takes gzip, once compressed and then from memory;
// a new build on disk is served as soon as it is there.
func TestWebGzipAndRebuild(t *testing.T) {
	dir := webDir(t)
	big := strings.Repeat(`export const x = "some javascript";`+"\n", 200)
	name := filepath.Join(dir, "assets", "big-1.js")
	if err := os.WriteFile(name, []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, withWebDir(dir))

	for _, ae := range []string{"gzip", "gzip, deflate, br", "br;q=1.0, gzip;q=0.8"} {
		r := web(t, h, "GET", "/assets/big-1.js", map[string]string{"Accept-Encoding": ae})
		if r.status != 200 || r.header.Get("Content-Encoding") != "gzip" || r.header.Get("Vary") != "Accept-Encoding" {
			t.Fatalf("Accept-Encoding %q: %d %v", ae, r.status, r.header)
		}
		zr, err := gzip.NewReader(strings.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil || string(plain) != big {
			t.Fatalf("Accept-Encoding %q: gunzipped %d bytes (%v), want the file", ae, len(plain), err)
		}
		if len(r.body) >= len(big)/2 {
			t.Errorf("gzip body %d bytes for %d", len(r.body), len(big))
		}
	}
	for _, ae := range []string{"", "identity", "gzip;q=0", "br"} {
		r := web(t, h, "GET", "/assets/big-1.js", map[string]string{"Accept-Encoding": ae})
		if r.header.Get("Content-Encoding") != "" || r.body != big {
			t.Errorf("Accept-Encoding %q: encoding %q, %d bytes; want the file as it is", ae, r.header.Get("Content-Encoding"), len(r.body))
		}
	}
	// Small files are not worth it.
	if r := web(t, h, "GET", "/", map[string]string{"Accept-Encoding": "gzip"}); r.header.Get("Content-Encoding") != "" || r.body != testIndex {
		t.Errorf("small index: encoding %q", r.header.Get("Content-Encoding"))
	}

	// A rebuild replaces index.html: the next request gets the new one and a new ETag.
	before := web(t, h, "GET", "/", nil)
	index := filepath.Join(dir, "index.html")
	if err := os.WriteFile(index, []byte(testIndex+"<!-- v2 -->"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(index, later, later); err != nil {
		t.Fatal(err)
	}
	after := web(t, h, "GET", "/orders/7", nil)
	if !strings.HasSuffix(after.body, "<!-- v2 -->") || after.header.Get("ETag") == before.header.Get("ETag") {
		t.Errorf("after a rebuild: %q etag %q (before %q)", after.body, after.header.Get("ETag"), before.header.Get("ETag"))
	}
}
