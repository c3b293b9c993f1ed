// Package sipedge is Veilig's SIP front: listeners, the transaction layer
// and the guard chain in front of the method handlers. It uses sipgo only
// for parsing and message types; transports and transactions are our own,
// because sipgo's would resolve and dial hosts named in received messages,
// start a goroutine per message and keep unbounded dialog state.
package sipedge

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/veilig/veilig/internal/lifecycle"
)

// Options configure an Edge. Listen addresses left empty are off.
type Options struct {
	TLSListen, TCPListen, UDPListen string
	TLSConfig                       *tls.Config
	// AdvertiseHost goes into Via and Contact when a listener is bound to
	// an unspecified address.
	AdvertiseHost string
	UserAgent     string
	IdleTimeout   time.Duration
	// MessageTimeout bounds the time from a message's first byte on a
	// stream to its last (5 s when zero); keep-alives do not extend it.
	MessageTimeout time.Duration
	// AuthTimeout closes an accepted stream connection on which no
	// request has authenticated this long after its handshake (30 s when
	// zero; only with Auth set); keep-alives do not extend it.
	AuthTimeout time.Duration
	// MaxConnections bounds the accepted stream connections (see
	// Admission); zero means no bound. Ignored when Admission is set.
	MaxConnections int
	// Admission is the connection table, when others must ask it before
	// the edge exists (the defences ask which sources hold authenticated
	// connections); nil makes one of MaxConnections.
	Admission      *Admission
	MaxMessageSize int
	UDPWorkers     int
	UDPReadBuffer  int
	// Guard is the edge-defence policy the chain consults; nil admits
	// everything (tests, tools).
	Guard Guard
	// Sanity, when set, is the strict sanity check run on every request
	// after the basic one (RFC 4475 rules the parser lets through).
	Sanity func(raw []byte, r *sip.Request) (code int, reason string, drop bool)
	// Auth is the authentication stage, run before a transaction exists
	// (see stages in chain.go); it answers challenges with r.Send.
	Auth    Middleware
	Handler Handler
	Logger  *slog.Logger
}

// Edge runs the listeners and the transaction layer.
type Edge struct {
	opts      Options
	log       *slog.Logger
	parser    *sip.Parser
	listeners []*listener
	// serving counts listener loops running (Serving).
	serving atomic.Int32
	conns   *connTable
	held    heldConns
	txs     *txTable
	metrics Metrics
	adm     *Admission
	routeIP sync.Map // netip.Addr -> netip.Addr: local address facing a peer
	chain   Handler  // the guard chain in front of opts.Handler
}

// Metrics are the edge's counters.
type Metrics struct {
	received, malformed, oversized, tlsFailures, sendErrors, panics, stray, dropped, rejected atomic.Uint64
	messageTimeouts, authTimeouts                                                             atomic.Uint64
}

// New validates options and binds the listeners, so configuration errors
// surface before Serve.
func New(opts Options) (*Edge, error) {
	if opts.Handler == nil {
		return nil, fmt.Errorf("sipedge: no handler")
	}
	if opts.TLSListen != "" && opts.TLSConfig == nil {
		return nil, fmt.Errorf("sipedge: tls listener without tls config")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 5 * time.Minute
	}
	if opts.MessageTimeout <= 0 {
		opts.MessageTimeout = 5 * time.Second
	}
	if opts.AuthTimeout <= 0 {
		opts.AuthTimeout = 30 * time.Second
	}
	if opts.MaxMessageSize <= 0 || opts.MaxMessageSize > 65535 {
		opts.MaxMessageSize = 65535
	}
	if opts.UDPWorkers <= 0 {
		opts.UDPWorkers = 2 * runtime.GOMAXPROCS(0)
	}
	if opts.UserAgent == "" {
		opts.UserAgent = DefaultUserAgent
	}
	p := sip.NewParser()
	p.MaxMessageLength = opts.MaxMessageSize
	e := &Edge{
		opts:   opts,
		log:    opts.Logger,
		parser: p,
		conns:  newConnTable(),
		txs:    newTxTable(),
		adm:    cmp.Or(opts.Admission, NewAdmission(opts.MaxConnections)),
	}
	e.chain = Chain(opts.Handler, e.stages()...)
	if err := e.listen(); err != nil {
		e.closeListeners()
		return nil, err
	}
	return e, nil
}

// Listener describes one bound socket.
type Listener struct {
	Transport string
	Addr      netip.AddrPort
}

// Listeners reports what the edge is bound to.
func (e *Edge) Listeners() []Listener {
	out := make([]Listener, 0, len(e.listeners))
	for _, l := range e.listeners {
		out = append(out, Listener{Transport: l.transport, Addr: l.addr})
	}
	return out
}

func (e *Edge) closeListeners() {
	for _, l := range e.listeners {
		if l.udp != nil {
			_ = l.udp.Close()
		}
		if l.ln != nil {
			_ = l.ln.Close()
		}
	}
}

// Serve runs until ctx ends, then closes listeners and connections.
func (e *Edge) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, l := range e.listeners {
		wg.Add(1)
		e.serving.Add(1)
		go func() {
			defer wg.Done()
			defer e.serving.Add(-1)
			if l.udp != nil {
				e.serveUDP(ctx, l)
			} else {
				e.serveStream(ctx, l)
			}
		}()
	}
	wg.Add(2)
	go func() { defer wg.Done(); _ = lifecycle.Every(ctx, maxHold, e.held.flush) }()
	go func() {
		defer wg.Done()
		_ = lifecycle.Every(ctx, time.Second, func(now time.Time) { e.txs.sweep(now) })
	}()
	<-ctx.Done()
	e.conns.closeAll()
	wg.Wait()
	return nil
}

// Serving reports whether every listener is accepting (for a readiness
// probe): false before Serve, after it, and once any listener's loop has
// ended.
func (e *Edge) Serving() bool {
	return len(e.listeners) > 0 && int(e.serving.Load()) == len(e.listeners)
}

// Stats reports live transactions and connections.
func (e *Edge) Stats() (serverTx, clientTx, conns int) {
	s, c := e.txs.counts()
	return s, c, e.conns.len()
}

// MetricsSnapshot returns the counters by name.
func (e *Edge) MetricsSnapshot() map[string]uint64 {
	m := &e.metrics
	return map[string]uint64{
		"received": m.received.Load(), "malformed": m.malformed.Load(), "oversized": m.oversized.Load(),
		"tls_failures": m.tlsFailures.Load(), "send_errors": m.sendErrors.Load(), "panics": m.panics.Load(),
		"stray": m.stray.Load(), "dropped": m.dropped.Load(), "rejected": m.rejected.Load(),
		"message_timeouts": m.messageTimeouts.Load(), "auth_timeouts": m.authTimeouts.Load(),
		"connections_evicted": e.adm.evicted.Load(), "connections_refused": e.adm.refused.Load(),
	}
}

// AuthenticatedFrom reports whether a stream connection from addr has
// authenticated a request (a device registered or calling on it).
func (e *Edge) AuthenticatedFrom(addr netip.Addr) bool { return e.adm.authenticatedFrom(addr.Unmap()) }

// Admission reports the connection limit and what it has done.
func (e *Edge) Admission() AdmissionStats { return e.adm.stats() }

// ConnFor finds the way back to a device: its own stream connection by ID,
// or the UDP socket towards its source. It never dials; ok is false when
// the connection is gone.
func (e *Edge) ConnFor(connID, transport string, peer netip.AddrPort) (Conn, bool) {
	if transport == "udp" {
		for _, l := range e.listeners {
			if l.udp != nil {
				return &udpConn{pc: l.udp, peer: peer, local: l.addr, out: l.out}, true
			}
		}
		return nil, false
	}
	c, ok := e.conns.get(connID)
	if !ok || c.closed.Load() {
		return nil, false
	}
	return c, true
}

// sentBy is the host and port Veilig names itself by on conn.
func (e *Edge) sentBy(conn Conn) (string, int) {
	local := conn.Local()
	ip := local.Addr()
	if ip.IsUnspecified() || !ip.IsValid() {
		if e.opts.AdvertiseHost != "" {
			return e.opts.AdvertiseHost, int(local.Port())
		}
		ip = e.localFor(conn.Peer().Addr())
	}
	if ip.Is6() {
		return "[" + ip.String() + "]", int(local.Port())
	}
	return ip.String(), int(local.Port())
}

// localFor finds the local address the kernel would use towards peer
// (a connected UDP socket sends nothing). Cached per peer.
func (e *Edge) localFor(peer netip.Addr) netip.Addr {
	if peer.IsLoopback() {
		if peer.Is4() {
			return netip.MustParseAddr("127.0.0.1")
		}
		return netip.IPv6Loopback()
	}
	if v, ok := e.routeIP.Load(peer); ok {
		return v.(netip.Addr)
	}
	ip := netip.IPv4Unspecified()
	if c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(peer, 9))); err == nil {
		ip = addrPortOf(c.LocalAddr()).Addr().Unmap()
		_ = c.Close()
	}
	e.routeIP.Store(peer, ip)
	return ip
}

// Contact is the Contact URI Veilig puts in its own dialogs on conn.
func (e *Edge) Contact(conn Conn, user string) sip.Uri {
	host, port := e.sentBy(conn)
	u := sip.Uri{Scheme: "sip", User: user, Host: trimBrackets(host), Port: port, UriParams: sip.NewParams(), Headers: sip.NewParams()}
	if conn.Transport() != "udp" {
		u.UriParams.Add("transport", conn.Transport())
	}
	return u
}

func trimBrackets(h string) string {
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		return h[1 : len(h)-1]
	}
	return h
}

// DefaultUserAgent names Veilig in Server and User-Agent headers when the
// configuration names nothing.
const DefaultUserAgent = "Veilig"

// UserAgent is the Server/User-Agent header value.
func (e *Edge) UserAgent() string { return e.opts.UserAgent }

func (e *Edge) dispatch(ctx context.Context, c Conn, msg sip.Message, raw []byte) {
	e.metrics.received.Add(1)
	defer func() {
		if p := recover(); p != nil {
			e.metrics.panics.Add(1)
			e.log.Error("panic while handling message", "peer", c.Peer().String(), "panic", fmt.Sprint(p), "stack", stack())
		}
	}()
	switch m := msg.(type) {
	case *sip.Request:
		m.SetSource(c.Peer().String())
		m.SetTransport(transportToken(c.Transport()))
		e.handleRequest(ctx, c, m, raw)
	case *sip.Response:
		e.handleResponse(c, m)
	}
}

func stack() string {
	b := make([]byte, 4096)
	return string(b[:runtime.Stack(b, false)])
}

func (e *Edge) handleResponse(c Conn, res *sip.Response) {
	if len(res.GetHeaders("Via")) != 1 {
		// A response for us carries exactly our one Via.
		e.metrics.stray.Add(1)
		return
	}
	tx := e.txs.clientTx(clientKey(res))
	if tx == nil || tx.conn.Peer().Addr() != c.Peer().Addr() {
		e.metrics.stray.Add(1)
		return
	}
	tx.receive(res)
}

func (e *Edge) handleRequest(ctx context.Context, c Conn, req *sip.Request, raw []byte) {
	r := &Request{Request: req, Conn: c, Received: time.Now(), Raw: raw, edge: e}
	if err := e.chain.ServeSIP(ctx, r); err != nil {
		e.log.Debug("request handling failed", "method", string(req.Method), "peer", c.Peer().String(), "err", err)
		if r.Tx != nil && !r.Tx.Final() {
			_ = r.Respond(500, "Server Internal Error")
		}
	}
}

// stateless answers without a transaction (CANCEL, 400s).
func (e *Edge) stateless(c Conn, req *sip.Request, code int, reason string) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	res.AppendHeader(sip.NewHeader("Server", e.opts.UserAgent))
	markReceived(res, c.Peer())
	_ = send(c, res)
}

// badRequest answers a malformed request with 400 when it carries enough
// to route a response (the Via we answer on is only echoed, never used).
func (e *Edge) badRequest(c Conn, req *sip.Request, reason string) {
	if req.Via() == nil || req.CallID() == nil || req.CSeq() == nil || req.From() == nil || req.To() == nil {
		return
	}
	e.stateless(c, req, 400, reason)
}

func newTag() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// NewTag makes a random dialog tag.
func NewTag() string { return newTag() }

// NewCallID makes a random Call-ID for a leg Veilig originates.
func NewCallID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Connected reports whether the stream connection a binding was made on
// is still open (UDP "connections" always are).
func (e *Edge) Connected(connID, transport string) bool {
	if transport == "udp" {
		return true
	}
	c, ok := e.conns.get(connID)
	return ok && !c.closed.Load()
}
