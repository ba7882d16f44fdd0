package edge

import (
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordermesh/ordermesh/actors/order"
)

// LimitConnections wraps the edge's listener so that one client address (an IPv4
// address, or an IPv6 /64) holds at most perAddress connections at once; perAddress 0
// returns ln unchanged. A connection over the cap is answered with a 429 envelope and
// closed before any request is read. fasthttp's own MaxConnsPerIP does the same for IPv4
// only and answers in plain text, which would break the rule that every answer is an
// envelope. Refusals are counted in ordermesh_http_connections_refused_total in reg.
func LimitConnections(ln net.Listener, perAddress int, reg prometheus.Registerer) (net.Listener, error) {
	if perAddress <= 0 {
		return ln, nil
	}
	refused := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ordermesh_http_connections_refused_total",
		Help: "Connections closed at once because their client address already held the most connections allowed (--max-conns-per-address).",
	})
	if reg != nil {
		if err := reg.Register(refused); err != nil {
			return nil, fmt.Errorf("edge: registering the connection metric: %w", err)
		}
	}
	return &connLimiter{Listener: ln, max: perAddress, open: map[string]int{}, refused: refused}, nil
}

// connLimiter counts the open connections per address. The map holds only addresses
// with open connections, so it is bounded by the connections the process has.
type connLimiter struct {
	net.Listener
	max     int
	refused prometheus.Counter

	mu   sync.Mutex
	open map[string]int
}

// Accept returns the next connection within the cap, answering and closing the others.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := connKey(c.RemoteAddr())
		l.mu.Lock()
		ok := l.open[key] < l.max
		if ok {
			l.open[key]++
		}
		l.mu.Unlock()
		if ok {
			return &limitedConn{Conn: c, release: func() { l.release(key) }}, nil
		}
		l.refused.Inc()
		// Not on the accept loop: a client that does not read must not stall the others.
		go refuseConn(c)
	}
}

func (l *connLimiter) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
}

// connKey is the address a connection counts against (see addressKey).
func connKey(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if ip4 := tcp.IP.To4(); ip4 != nil {
		return ip4.String()
	}
	return tcp.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// limitedConn gives its slot back once, when it is closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// refuseConn writes the 429 envelope with the headers every answer carries, then closes.
func refuseConn(c net.Conn) {
	defer c.Close()
	body, _ := json.Marshal(envelope{Code: order.CodeRateLimited, Message: "too many connections from this address"})
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = fmt.Fprintf(c, "HTTP/1.1 429 Too Many Requests\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\nRetry-After: 1\r\n"+
		"%s: %s\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n"+
		"Content-Security-Policy: frame-ancestors 'none'\r\n\r\n%s",
		len(body), HeaderRequestID, newRequestID(), body)
}
