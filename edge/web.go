package edge

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/ordermesh/ordermesh/actors/order"
)

// The web app (vue-app/, built into Config.WebDir) is served by every node from /: its
// files as they are, and index.html for any other GET or HEAD, so that a deep link such
// as /orders/42 opens the app, whose router then shows the page. The API's own prefixes
// are never answered with the app: an unknown /api path stays a JSON 404.

// webCSP is the policy of the app's HTML. Element Plus sets inline styles, hence
// 'unsafe-inline' for styles only; scripts come from our own origin alone, and the app
// talks to its own node over HTTP and WebSocket.
const webCSP = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; " +
	"style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'"

// Cache policies: Vite names every file under assets/ after a hash of its content, so
// those never change; everything else (index.html above all) must be revalidated, or a
// browser would keep loading the chunks of an old build.
const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cacheRevalidate = "no-cache"
)

// webIndex is the file every app route answers with.
const webIndex = "index.html"

// maxWebFile bounds what one request reads into memory; a built asset is far smaller.
const maxWebFile = 32 << 20

// notBuilt is the answer while the web dir has no index.html.
var notBuilt = order.Errorf(order.CodeRouteNotFound, "the web app is not built: run `go tool task web` and reload")

// apiPrefixes are the paths that belong to the API; the app never answers under them.
var apiPrefixes = []string{"/api", "/auth", "/ws", "/metrics", "/healthz", "/readyz"}

// webFiles serves the app from a directory through os.Root, so that no request path,
// symlink included, can reach a file outside it.
type webFiles struct {
	dir string
	mu  sync.Mutex
	// root is opened on first use and kept: a dir that does not exist yet (the app is
	// built after the node started) is tried again on the next request.
	root *os.Root
	// files caches what was read, with its gzip form: a build's files never change, so
	// a page load costs a stat per file rather than a read and a compression. An entry
	// whose file changed on disk (a new build) is read again; cached bytes are bounded.
	files map[string]*webFile
	size  int
}

// webFile is one file of the app as it is answered.
type webFile struct {
	body    []byte
	gz      []byte // nil when compressing does not pay (small or already compressed)
	modTime time.Time
	size    int64
	etag    string
	ctype   string
}

// maxWebCache bounds the cached bytes (raw and gzip); a build is a few megabytes, so
// only a web dir rebuilt very many times under a running node reaches it, and then the
// cache starts over.
const maxWebCache = 64 << 20

// minGzip is the size under which a file is sent as it is.
const minGzip = 1024

func newWebFiles(dir string) *webFiles {
	if dir == "" {
		return nil
	}
	return &webFiles{dir: dir}
}

// fsys returns the directory as an fs.FS, or nil while it cannot be opened.
func (w *webFiles) fsys() fs.FS {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.root == nil {
		r, err := os.OpenRoot(w.dir)
		if err != nil {
			return nil
		}
		w.root = r
	}
	return w.root.FS()
}

// Built reports whether the dir holds the app; the node logs it at start.
func (w *webFiles) built() bool {
	f := w.fsys()
	if f == nil {
		return false
	}
	st, err := fs.Stat(f, webIndex)
	return err == nil && st.Mode().IsRegular()
}

// logWebDir says at start whether the app will be served, and from where.
func (s *server) logWebDir() {
	switch {
	case s.web == nil:
		return
	case s.web.built():
		s.log.Info("serving the web app", slog.String("dir", s.web.dir))
	default:
		s.log.Warn("the web app is not built: / answers 404 until it is (go tool task web)", slog.String("dir", s.web.dir))
	}
}

// isAPIPath reports whether p is one of apiPrefixes or under one.
func isAPIPath(p string) bool {
	for _, pre := range apiPrefixes {
		if p == pre || strings.HasPrefix(p, pre+"/") {
			return true
		}
	}
	return false
}

// serveWeb is the last handler of the app: what no route took. Anything that is not a GET
// or HEAD of an app path goes on to Fiber's 404 or 405, which handleError answers.
func (s *server) serveWeb(c *fiber.Ctx) error {
	if c.Method() != fiber.MethodGet && c.Method() != fiber.MethodHead {
		return c.Next()
	}
	raw := c.Path()
	if isAPIPath(raw) {
		return c.Next()
	}
	name, ok := webName(raw)
	if !ok {
		return c.Next()
	}
	c.Locals(localRoute, "web")
	fsys := s.web.fsys()
	if fsys == nil {
		return notBuilt
	}
	if name != webIndex {
		f, err := s.web.file(fsys, name)
		switch {
		case err == nil:
			cache := cacheRevalidate
			if strings.HasPrefix(name, "assets/") {
				cache = cacheImmutable
			}
			return sendWebFile(c, f, cache)
		case strings.HasPrefix(name, "assets/"):
			// A hashed file that is gone (a tab still running an older build asks for
			// its chunk): the app's HTML in its place would be run as a script, and
			// cached for a year.
			return order.Errorf(order.CodeRouteNotFound, "no such file")
		}
		// Not a file we serve (missing, a directory, a link out of the dir that the
		// root refuses): one of the app's routes.
	}
	// The app's own routes: index.html, whose router shows the page.
	f, err := s.web.file(fsys, webIndex)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return notBuilt
		}
		return err
	}
	c.Set(fiber.HeaderContentSecurityPolicy, webCSP)
	return sendWebFile(c, f, cacheRevalidate)
}

// webName turns a request path into a name inside the web dir: unescaped, cleaned,
// without its leading slash; "" (the root) is index.html. ok is false for a path that no
// file can have (a NUL, a backslash, a bad escape).
func webName(raw string) (string, bool) {
	p, err := url.PathUnescape(raw)
	if err != nil || strings.ContainsAny(p, "\x00\\") {
		return "", false
	}
	name := strings.TrimPrefix(path.Clean("/"+p), "/")
	if name == "" {
		return webIndex, true
	}
	// Clean of a rooted path leaves no "..": ValidPath is the fs.FS rule, checked anyway.
	return name, fs.ValidPath(name)
}

var errIsDir = errors.New("is a directory")

// file returns one regular file of the app, from the cache while the file on disk is
// the one cached (same size and modification time).
func (w *webFiles) file(fsys fs.FS, name string) (*webFile, error) {
	st, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, errIsDir
	}
	w.mu.Lock()
	f := w.files[name]
	w.mu.Unlock()
	if f != nil && f.size == st.Size() && f.modTime.Equal(st.ModTime()) {
		return f, nil
	}
	body, st, err := readWebFile(fsys, name)
	if err != nil {
		return nil, err
	}
	f = &webFile{
		body:    body,
		modTime: st.ModTime(),
		size:    st.Size(),
		etag:    `"` + strconv.FormatInt(st.ModTime().UnixNano(), 36) + "-" + strconv.FormatInt(st.Size(), 36) + `"`,
		ctype:   utils.GetMIME(path.Ext(name)),
	}
	if strings.HasPrefix(f.ctype, "text/") || f.ctype == fiber.MIMEApplicationJavaScript {
		f.ctype += "; charset=utf-8"
	}
	if compressible(f.ctype) && len(body) >= minGzip {
		f.gz = gzipped(body)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.files == nil || w.size+len(f.body)+len(f.gz) > maxWebCache {
		w.files, w.size = map[string]*webFile{}, 0
	}
	if old := w.files[name]; old != nil {
		w.size -= len(old.body) + len(old.gz)
	}
	w.files[name] = f
	w.size += len(f.body) + len(f.gz)
	return f, nil
}

// compressible reports whether a type is text-like (images and fonts are compressed already).
func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || strings.HasPrefix(ctype, fiber.MIMEApplicationJavaScript) ||
		strings.HasPrefix(ctype, fiber.MIMEApplicationJSON) || strings.HasPrefix(ctype, "image/svg+xml")
}

// gzipped compresses b at the best level: done once per file, so the cost is paid once.
func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // the level is valid
	_, _ = zw.Write(b)                                       // a bytes.Buffer does not fail
	_ = zw.Close()
	return buf.Bytes()
}

// readWebFile reads one regular file of the app.
func readWebFile(fsys fs.FS, name string) ([]byte, fs.FileInfo, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if st.IsDir() {
		return nil, nil, errIsDir
	}
	if !st.Mode().IsRegular() || st.Size() > maxWebFile {
		return nil, nil, fs.ErrNotExist
	}
	body, err := io.ReadAll(io.LimitReader(f, maxWebFile))
	return body, st, err
}

// sendWebFile answers with one file, gzipped when the client takes it, or 304 if the
// client's copy is current.
func sendWebFile(c *fiber.Ctx, f *webFile, cache string) error {
	c.Set(fiber.HeaderCacheControl, cache)
	c.Set(fiber.HeaderETag, f.etag)
	c.Set(fiber.HeaderLastModified, f.modTime.UTC().Format(http.TimeFormat))
	c.Set(fiber.HeaderVary, fiber.HeaderAcceptEncoding)
	if inm := c.Get(fiber.HeaderIfNoneMatch); inm != "" && etagMatches(inm, f.etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	c.Set(fiber.HeaderContentType, f.ctype)
	if f.gz != nil && acceptsGzip(c.Get(fiber.HeaderAcceptEncoding)) {
		c.Set(fiber.HeaderContentEncoding, "gzip")
		return c.Status(fiber.StatusOK).Send(f.gz)
	}
	return c.Status(fiber.StatusOK).Send(f.body)
}

// acceptsGzip reports whether an Accept-Encoding header takes gzip (and not with q=0).
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

// etagMatches reports whether an If-None-Match header names etag (or is "*").
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
