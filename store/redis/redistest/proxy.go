package redistest

import (
	"bytes"
	"net"
	"strings"
	"sync"
	"testing"
)

// Mode is how a Proxy misbehaves.
type Mode int

const (
	// DropScriptReply relays everything, but once closes the client's
	// connection instead of relaying the reply to a script call (EVALSHA
	// or EVAL, not a NOSCRIPT answer): the server ran the buy, its reply
	// is lost.
	DropScriptReply Mode = iota
	// HoldScriptReply relays a script call to the server but never
	// relays its reply: the client waits for it as long as it waits.
	HoldScriptReply
	// Blackhole accepts connections and reads what comes, but relays
	// nothing and answers nothing: the client never gets past its
	// handshake (HELLO).
	Blackhole
	// Relay relays everything until Freeze.
	Relay
)

// Proxy is a TCP relay on a free loopback port in front of a server,
// that misbehaves as its Mode says. It stops when the test ends.
type Proxy struct {
	ln      net.Listener
	backend string
	mode    Mode

	mu       sync.Mutex
	dropped  bool
	conns    []net.Conn
	frozen   bool
	held     chan struct{} // closed once the reply to a script was held back
	received chan struct{} // closed once anything arrived
	hOnce    sync.Once
	rOnce    sync.Once
}

// Freeze stops relaying, in both directions, without closing anything:
// what arrives from then on is dropped, as on a link that stalled.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = true
}

func (p *Proxy) isFrozen() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frozen
}

// Cut closes every connection through the proxy and takes no more: a cut
// link stays cut, so a client that reconnects (a replica does, every
// second) cannot reach whatever server comes to listen on the backend's
// port after it, such as another test's.
func (p *Proxy) Cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// StartProxy starts a proxy in front of backend (host:port).
func StartProxy(t testing.TB, backend string, mode Mode) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, backend: backend, mode: mode, held: make(chan struct{}), received: make(chan struct{})}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.track(c)
			go p.relay(c)
		}
	}()
	return p
}

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL returns spec (a URL of the backend) with the proxy's address instead.
func (p *Proxy) URL(spec string) string { return strings.Replace(spec, p.backend, p.Addr(), 1) }

// Held is closed once HoldScriptReply has held back the server's reply to
// a script: the server has run it.
func (p *Proxy) Held() <-chan struct{} { return p.held }

// Received is closed once anything has arrived from a client.
func (p *Proxy) Received() <-chan struct{} { return p.received }

func (p *Proxy) track(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns = append(p.conns, c)
}

func (p *Proxy) relay(client net.Conn) {
	defer client.Close()
	if p.mode == Blackhole {
		buf := make([]byte, 4096)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				p.rOnce.Do(func() { close(p.received) })
			}
			if err != nil {
				return
			}
		}
	}
	server, err := net.Dial("tcp", p.backend)
	if err != nil {
		return
	}
	p.track(server)
	defer server.Close()
	scripted := make(chan struct{}, 1)
	go func() { // client to server, watching for a script call
		buf := make([]byte, 64<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				p.rOnce.Do(func() { close(p.received) })
				up := bytes.ToUpper(buf[:n])
				script := bytes.Contains(up, []byte("EVALSHA")) || bytes.Contains(up, []byte("\r\nEVAL\r\n"))
				if script { // before the server can answer it
					select {
					case scripted <- struct{}{}:
					default:
					}
				}
				if p.isFrozen() {
					continue
				}
				if _, werr := server.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				server.Close()
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	held := false
	for {
		n, err := server.Read(buf)
		select {
		case <-scripted:
			reply := n > 0 && !bytes.HasPrefix(buf[:n], []byte("-NOSCRIPT"))
			switch {
			case reply && p.mode == HoldScriptReply:
				held = true
				p.hOnce.Do(func() { close(p.held) })
			case reply && p.mode == DropScriptReply:
				p.mu.Lock()
				drop := !p.dropped
				p.dropped = true
				p.mu.Unlock()
				if drop {
					return // the answer to the script is lost with the connection
				}
			}
		default:
		}
		if n > 0 && !held && !p.isFrozen() {
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
