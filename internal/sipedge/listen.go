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
		now := time.Now()
		known := e.opts.Guard != nil && e.opts.Guard.Known(peer.Addr())
		s, victim, ok := e.adm.admit(nc, peer, known, now)
		if !ok {
			// Full of connections that have all authenticated.
			if e.opts.Guard != nil {
				e.opts.Guard.Release(peer.Addr())
			}
			_ = nc.Close()
			e.connEvent(ConnEvent{Kind: ConnRefused, Peer: peer, At: now})
			continue
		}
		if victim != nil {
			_ = victim.nc.Close() // its goroutine ends and releases the rest
			e.connEvent(ConnEvent{Kind: ConnEvicted, Peer: victim.peer, Newcomer: peer, Age: now.Sub(victim.at), At: now})
		}
		go e.serveConn(ctx, l, nc, peer, s)
	}
}

// connEvent counts ev and tells the guard.
func (e *Edge) connEvent(ev ConnEvent) {
	switch ev.Kind {
	case ConnMessageTimeout:
		e.metrics.messageTimeouts.Add(1)
	case ConnAuthTimeout:
		e.metrics.authTimeouts.Add(1)
	}
	if e.opts.Guard == nil {
		return
	}
	st := e.adm.stats()
	ev.Open, ev.Limit = st.Open, st.Limit
	e.opts.Guard.Connection(ev)
}

func (e *Edge) serveConn(ctx context.Context, l *listener, nc net.Conn, peer netip.AddrPort, s *slot) {
	defer e.adm.release(s)
	if e.opts.Guard != nil {
		defer e.opts.Guard.Release(peer.Addr())
	}
	if l.transport == "tls" {
		tc := tls.Server(nc, e.opts.TLSConfig)
		hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
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
	sc.slot = s
	if e.opts.Auth != nil {
		sc.authBy = time.Now().Add(e.opts.AuthTimeout)
	}
	defer sc.Close()
	e.readLoop(ctx, sc, e.opts.IdleTimeout)
}

// handshakeTimeout bounds a TLS handshake.
const handshakeTimeout = 10 * time.Second

// readSize is what one read asks for. A connection holds only this while
// idle (the framer and writer hold nothing then); TLS hands out a record
// in as many reads as it takes, from memory.
const readSize = 2048

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
	e.conns.add(sc)
	return sc
}

// readLoop frames, parses and handles messages until the connection ends,
// stays silent for idle, takes longer than the message timeout to finish a
// message, or (an accepted connection) has not authenticated a request by
// its deadline. Keep-alives count as traffic for idle only.
func (e *Edge) readLoop(ctx context.Context, sc *streamConn, idle time.Duration) {
	nc := sc.c
	fr := framer{max: e.opts.MaxMessageSize}
	buf := make([]byte, readSize)
	for {
		now := time.Now()
		deadline, why := now.Add(idle), ConnEventKind(0)
		if fr.pending() {
			if d := fr.started.Add(e.opts.MessageTimeout); d.Before(deadline) {
				deadline, why = d, ConnMessageTimeout
			}
		}
		if !sc.authBy.IsZero() && !sc.authed.Load() && sc.authBy.Before(deadline) {
			deadline, why = sc.authBy, ConnAuthTimeout
		}
		_ = nc.SetReadDeadline(deadline)
		n, err := nc.Read(buf)
		if n > 0 {
			now = time.Now()
			sc.lastRead.Store(now.Unix())
			sc.cork()
			ok := e.consume(ctx, sc, &fr, buf[:n], now)
			sc.uncork()
			if !ok {
				return
			}
		}
		if err != nil {
			var ne net.Error
			if why != 0 && errors.As(err, &ne) && ne.Timeout() {
				e.log.Debug("connection closed", "conn", sc.id, "why", why.String())
				age := time.Duration(0)
				if sc.slot != nil {
					age = now.Sub(sc.slot.at)
				}
				e.connEvent(ConnEvent{Kind: why, Peer: sc.peer, Age: age, At: time.Now()})
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				e.log.Debug("connection read ended", "conn", sc.id, "err", err)
			}
			return
		}
	}
}

// consume handles every whole message the new bytes complete. It returns
// false when the connection must be closed (framing lost, a message too
// large, or the source banned).
func (e *Edge) consume(ctx context.Context, sc *streamConn, fr *framer, data []byte, now time.Time) bool {
	// RFC 5626 double-CRLF ping between messages: answer with a CRLF pong.
	if !fr.pending() && isKeepAlive(data) {
		if len(data) >= 4 {
			_ = sc.Send([]byte("\r\n"))
		}
		return true
	}
	fr.push(data)
	defer fr.compact(now)
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
