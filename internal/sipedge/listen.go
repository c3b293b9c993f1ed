package sipedge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// listener is one bound socket of the edge.
type listener struct {
	transport string
	addr      netip.AddrPort
	udp       *net.UDPConn
	out       *udpOut      // udp: batched sends of the socket
	ln        net.Listener // tcp; tls wraps it at accept time
}

// connSeq numbers stream connections so an ID is never reused by a later
// connection from the same ephemeral port.
var connSeq atomic.Uint64

func (e *Edge) listen() error {
	bind := func(transport, hostport string) error {
		if hostport == "" {
			return nil
		}
		switch transport {
		case "udp":
			ua, err := net.ResolveUDPAddr("udp", hostport)
			if err != nil {
				return fmt.Errorf("sip udp listen %s: %w", hostport, err)
			}
			pc, err := net.ListenUDP("udp", ua)
			if err != nil {
				return fmt.Errorf("sip udp listen %s: %w", hostport, err)
			}
			if e.opts.UDPReadBuffer > 0 {
				_ = pc.SetReadBuffer(e.opts.UDPReadBuffer)
				_ = pc.SetWriteBuffer(e.opts.UDPReadBuffer)
			}
			e.listeners = append(e.listeners, &listener{transport: "udp", addr: addrPortOf(pc.LocalAddr()), udp: pc,
				out: newUDPOut(pc, 4*udpBatch)})
		default:
			ln, err := net.Listen("tcp", hostport)
			if err != nil {
				return fmt.Errorf("sip %s listen %s: %w", transport, hostport, err)
			}
			e.listeners = append(e.listeners, &listener{transport: transport, addr: addrPortOf(ln.Addr()), ln: ln})
		}
		return nil
	}
	if err := bind("tls", e.opts.TLSListen); err != nil {
		return err
	}
	if err := bind("tcp", e.opts.TCPListen); err != nil {
		return err
	}
	return bind("udp", e.opts.UDPListen)
}

func addrPortOf(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.UDPAddr:
		return v.AddrPort()
	case *net.TCPAddr:
		return v.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

func normalize(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// serveUDP reads datagrams on several goroutines; each parses and handles
// its messages inline, so work is bounded by the number of readers instead
// of a goroutine per packet. Reads are batched (recvmmsg) where the
// platform has it: under load one system call brings many messages.
func (e *Edge) serveUDP(ctx context.Context, l *listener) {
	workers := e.opts.UDPWorkers
	go l.out.flusher(ctx)
	done := make(chan struct{})
	for i := 0; i < workers; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			e.readUDP(ctx, l)
		}()
	}
	<-ctx.Done()
	_ = l.udp.Close()
	for i := 0; i < workers; i++ {
		<-done
	}
}

// udpBatch is how many datagrams one read may return.
const udpBatch = 16

type batchReader interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
}

func (e *Edge) readUDP(ctx context.Context, l *listener) {
	var br batchReader
	if l.addr.Addr().Is4() {
		br = ipv4.NewPacketConn(l.udp)
	} else {
		br = ipv6.NewPacketConn(l.udp)
	}
	out := l.out
	msgs := make([]ipv4.Message, udpBatch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, 65536)}
	}
	for {
		n, err := br.ReadBatch(msgs, 0)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		out.begin()
		for i := 0; i < n; i++ {
			m := &msgs[i]
			ua, ok := m.Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			peer := normalize(ua.AddrPort())
			if e.opts.Guard != nil && !e.opts.Guard.Admit(peer.Addr(), "udp", false) {
				e.metrics.dropped.Add(1)
				continue
			}
			c := &udpConn{pc: l.udp, peer: peer, local: l.addr, out: out}
			e.receiveDatagram(ctx, c, m.Buffers[0][:m.N])
		}
		out.flush()
	}
}

func (e *Edge) receiveDatagram(ctx context.Context, c Conn, data []byte) {
	if isKeepAlive(data) {
		// RFC 5626 CRLF keep-alive over UDP: answer with a single CRLF pong.
		if len(data) >= 4 {
			_ = c.Send([]byte("\r\n"))
		}
		return
	}
	if len(data) > e.opts.MaxMessageSize {
		e.metrics.oversized.Add(1)
		return
	}
	msg, err := e.parser.ParseSIP(data)
	if err != nil {
		e.metrics.malformed.Add(1)
		if req, ok := msg.(*sip.Request); ok && errors.Is(err, sip.ErrParseReadBodyIncomplete) {
			// The headers parsed; only the body is shorter than
			// Content-Length says. That request can be answered.
			req.SetSource(c.Peer().String())
			e.badRequest(c, req, "Content-Length Mismatch")
		}
		return
	}
	e.dispatch(ctx, c, msg, data)
}

func isKeepAlive(b []byte) bool {
	for _, ch := range b {
		if ch != '\r' && ch != '\n' {
			return false
		}
	}
	return true
}

// serveStream accepts TCP or TLS connections. A refused peer is closed
// before any handshake; accept errors are retried so one bad connection
// never ends the listener.
func (e *Edge) serveStream(ctx context.Context, l *listener) {
	go func() { <-ctx.Done(); _ = l.ln.Close() }()
	var delay time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay *= 2; delay > time.Second {
				delay = time.Second
			}
			time.Sleep(delay)
			continue
		}
		delay = 0
		peer := normalize(addrPortOf(nc.RemoteAddr()))
		if e.opts.Guard != nil && !e.opts.Guard.Admit(peer.Addr(), l.transport, true) {
			// Refused before any byte is read or any handshake made.
			e.metrics.dropped.Add(1)
			_ = nc.Close()
			continue
		}
		go e.serveConn(ctx, l, nc, peer)
	}
}

func (e *Edge) serveConn(ctx context.Context, l *listener, nc net.Conn, peer netip.AddrPort) {
	if e.opts.Guard != nil {
		defer e.opts.Guard.Release(peer.Addr())
	}
	if l.transport == "tls" {
		tc := tls.Server(nc, e.opts.TLSConfig)
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			e.metrics.tlsFailures.Add(1)
			e.log.Debug("tls handshake failed", "peer", peer.String(), "err", err)
			_ = nc.Close()
			return
		}
		nc = tc
	}
	sc := e.newStreamConn(nc, l.transport, peer)
	defer sc.Close()
	e.readLoop(ctx, sc, e.opts.IdleTimeout)
}

func (e *Edge) newStreamConn(nc net.Conn, transport string, peer netip.AddrPort) *streamConn {
	sc := &streamConn{
		c:         nc,
		id:        transport + ":" + peer.String() + "#" + strconv.FormatUint(connSeq.Add(1), 10),
		transport: transport,
		peer:      peer,
		local:     normalize(addrPortOf(nc.LocalAddr())),
		onGone:    e.conns.remove,
		onHeld:    e.held.add,
	}
	sc.w = newWriter(nc)
	e.conns.add(sc)
	return sc
}

// readLoop frames, parses and handles messages until the connection ends
// or stays silent for idle.
func (e *Edge) readLoop(ctx context.Context, sc *streamConn, idle time.Duration) {
	nc := sc.c
	fr := framer{max: e.opts.MaxMessageSize}
	buf := make([]byte, 16384)
	for {
		_ = nc.SetReadDeadline(time.Now().Add(idle))
		n, err := nc.Read(buf)
		if n > 0 {
			sc.lastRead.Store(time.Now().Unix())
			sc.cork()
			ok := e.consume(ctx, sc, &fr, buf[:n])
			sc.uncork()
			if !ok {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				e.log.Debug("connection read ended", "conn", sc.id, "err", err)
			}
			return
		}
	}
}

// consume handles every whole message the new bytes complete. It returns
// false when the connection must be closed (framing lost, a message too
// large, or the source banned).
func (e *Edge) consume(ctx context.Context, sc *streamConn, fr *framer, data []byte) bool {
	// RFC 5626 double-CRLF ping between messages: answer with a CRLF pong.
	if len(fr.buf) == 0 && isKeepAlive(data) {
		if len(data) >= 4 {
			_ = sc.Send([]byte("\r\n"))
		}
		return true
	}
	fr.push(data)
	defer fr.compact()
	for {
		raw, err := fr.next()
		switch {
		case errors.Is(err, errFrameTooLarge):
			e.metrics.oversized.Add(1)
			return false
		case err != nil:
			e.metrics.malformed.Add(1)
			return false
		case raw == nil:
			return true
		}
		if e.opts.Guard != nil && !e.opts.Guard.Admit(sc.peer.Addr(), sc.transport, false) {
			// A source banned or over its budget mid-connection.
			e.metrics.dropped.Add(1)
			if e.opts.Guard.Banned(sc.peer.Addr()) {
				return false
			}
			continue
		}
		msg, err := e.parser.ParseSIP(raw)
		if err != nil {
			e.metrics.malformed.Add(1)
			if req, ok := msg.(*sip.Request); ok {
				req.SetSource(sc.peer.String())
				e.badRequest(sc, req, "Malformed message")
			}
			continue
		}
		e.dispatch(ctx, sc, msg, raw)
	}
}
