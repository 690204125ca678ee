package sqlstore_test

import (
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"
)

// tcpProxy forwards TCP connections from a port of 127.0.0.1 to a target,
// and can simulate the target going away:
//
//   - Cut: the current connections are closed and new ones are rejected
//     (accepted and closed at once): the database is down or restarting.
//   - Stall: the current connections stay open but nothing comes back, and
//     new ones are accepted and never answered: a hung server or a network
//     partition, where only timeouts end a call.
//   - Restore: connections are forwarded again, on the same port.
//
// It stops, closing every connection, when the test ends.
type tcpProxy struct {
	t      testing.TB
	target string
	ln     net.Listener
	wg     sync.WaitGroup // the accept loop and every connection's goroutines

	mu       sync.Mutex
	mode     proxyMode
	conns    map[net.Conn]struct{} // every open connection, both sides
	rejected int                   // connections refused while cut
	closed   bool
}

type proxyMode int

const (
	proxyForward proxyMode = iota
	proxyCut
	proxyStall
)

// startProxy listens on 127.0.0.1:0 and forwards to target ("host:port").
func startProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{t: t, target: target, ln: ln, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's "127.0.0.1:port".
func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

// DSN returns dsn with its host and port replaced by the proxy's, and a
// connect timeout of 1 s unless dsn has one.
func (p *tcpProxy) DSN(dsn string) string {
	p.t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme != "postgres" && u.Scheme != "postgresql" {
		p.t.Fatalf("DSN %q: want a postgres:// URL (%v)", dsn, err)
	}
	u.Host = p.Addr()
	q := u.Query()
	if q.Get("connect_timeout") == "" {
		q.Set("connect_timeout", "1")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Cut closes every connection and rejects new ones until Restore.
func (p *tcpProxy) Cut() { p.setMode(proxyCut, true) }

// Stall stops answering on every connection, current and new, until
// Restore, which closes them.
func (p *tcpProxy) Stall() { p.setMode(proxyStall, false) }

// Restore forwards new connections again. Connections held by Stall are
// closed: their state is unknown to both ends.
func (p *tcpProxy) Restore() { p.setMode(proxyForward, true) }

// Rejected returns how many connections Cut has rejected so far.
func (p *tcpProxy) Rejected() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rejected
}

func (p *tcpProxy) setMode(m proxyMode, closeAll bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	if closeAll {
		for c := range p.conns {
			c.Close()
		}
	}
}

func (p *tcpProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.t.Errorf("proxy: accept: %v", err)
			}
			return
		}
		p.mu.Lock()
		mode, closed := p.mode, p.closed
		switch {
		case closed:
			c.Close()
		case mode == proxyCut:
			p.rejected++
			c.Close()
		case mode == proxyStall:
			p.track(c)
			p.wg.Add(1)
			go p.discard(c)
		default:
			p.track(c)
			p.wg.Add(1)
			go p.forward(c)
		}
		p.mu.Unlock()
	}
}

// track registers c, to be closed by Cut, Restore or the test's end.
// p.mu is held.
func (p *tcpProxy) track(c net.Conn) { p.conns[c] = struct{}{} }

func (p *tcpProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

// discard reads c without ever answering, until c is closed.
func (p *tcpProxy) discard(c net.Conn) {
	defer p.wg.Done()
	io.Copy(io.Discard, c)
	p.untrack(c)
}

// forward connects c to the target and copies both ways until either side
// ends, or, once stalled, keeps c open and unanswered.
func (p *tcpProxy) forward(c net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		p.untrack(c)
		return
	}
	p.mu.Lock()
	if mode := p.mode; mode != proxyForward || p.closed {
		// Cut, stalled or closed while dialing.
		p.mu.Unlock()
		up.Close()
		if mode == proxyStall {
			p.hold(c)
			return
		}
		p.untrack(c)
		return
	}
	p.track(up)
	p.mu.Unlock()

	done := make(chan struct{}, 2)
	p.wg.Add(2)
	go func() { defer p.wg.Done(); p.pipe(up, c); done <- struct{}{} }()
	go func() { defer p.wg.Done(); p.pipe(c, up); done <- struct{}{} }()
	<-done
	// One direction ended. Unless stalled, end the other: close both.
	p.mu.Lock()
	stalled := p.mode == proxyStall && !p.closed
	p.mu.Unlock()
	if stalled {
		p.untrack(up)
		<-done
		// c stays open and unanswered until Restore or the test's end.
		p.hold(c)
		return
	}
	p.untrack(c, up)
	<-done
}

// hold is discard for a connection whose goroutine is already counted.
func (p *tcpProxy) hold(c net.Conn) {
	p.wg.Add(1)
	p.discard(c)
}

// pipe copies from src to dst. Once the proxy is stalled it stops: data
// read from src then is dropped, and nothing more is written to dst.
func (p *tcpProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			stalled := p.mode == proxyStall
			p.mu.Unlock()
			if stalled {
				io.Copy(io.Discard, src) // until Restore or the end closes src
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
