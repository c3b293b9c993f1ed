package sipedge

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is where a message came from and where its answer must go. Veilig
// answers only on the connection or socket source a request arrived on and
// never resolves or dials a host named inside a message (sipgo falls back to
// the Via host when a connection closes early; we drop the response instead).
type Conn interface {
	// ID identifies the transport connection: "tls:1.2.3.4:5678#17" for a
	// stream, "udp:1.2.3.4:5678" for a datagram source.
	ID() string
	Transport() string // "udp", "tcp" or "tls"
	Peer() netip.AddrPort
	Local() netip.AddrPort
	Reliable() bool
	// Send writes one whole message. It fails with ErrConnClosed once the
	// connection is gone; it never reconnects.
	Send(b []byte) error
}

// ErrConnClosed reports a send on a connection that no longer exists.
var ErrConnClosed = errors.New("connection closed")

// udpConn is the pseudo-connection of one datagram source.
type udpConn struct {
	pc    *net.UDPConn
	peer  netip.AddrPort
	local netip.AddrPort
	out   *udpOut // the socket's send batch (see udpOut); nil sends at once
}

func (c *udpConn) ID() string            { return "udp:" + c.peer.String() }
func (c *udpConn) Transport() string     { return "udp" }
func (c *udpConn) Peer() netip.AddrPort  { return c.peer }
func (c *udpConn) Local() netip.AddrPort { return c.local }
func (c *udpConn) Reliable() bool        { return false }
func (c *udpConn) Send(b []byte) error {
	if c.out != nil && c.out.queue(c.peer, b) {
		return nil
	}
	_, err := c.pc.WriteToUDPAddrPort(b, c.peer)
	return err
}

// streamConn is one accepted TCP or TLS connection. Writes are serialised
// and buffered; a write that cannot finish within writeTimeout closes the
// connection so one stalled peer never holds a sender. The write buffer
// is taken from a pool only while writes are held (see cork) and given
// back once flushed, so an idle connection keeps none.
type streamConn struct {
	c         net.Conn
	id        string
	transport string
	peer      netip.AddrPort
	local     netip.AddrPort

	mu sync.Mutex
	w  *bufio.Writer // nil unless writes are held
	// corked counts holders of the cork (the reader while it works
	// through what one read brought, a batch of answers): meanwhile
	// writes stay in w, so the answers to a burst of requests leave in
	// one TLS record and one system call instead of one each.
	corked int
	// heldSince is when the oldest write now held by the cork was made
	// (zero: nothing held); onHeld hears when it becomes non-zero, so that
	// a reader stuck in a long handler cannot hold other senders' messages
	// for long (see heldConns).
	heldSince time.Time
	onHeld    func(*streamConn)
	closed    atomic.Bool
	onGone    func(*streamConn)
	// lastRead is unix seconds of the last received byte (keep-alives
	// included), for idle accounting.
	lastRead atomic.Int64

	// authed is set once a request on the connection has authenticated
	// (digest or a trusted trunk); until then authBy, when not zero, is
	// the deadline for that, and the admission may evict it.
	authed atomic.Bool
	authBy time.Time
	slot   *slot // its place in the admission; nil for dialled connections
}

const writeTimeout = 5 * time.Second

func (c *streamConn) ID() string            { return c.id }
func (c *streamConn) Transport() string     { return c.transport }
func (c *streamConn) Peer() netip.AddrPort  { return c.peer }
func (c *streamConn) Local() netip.AddrPort { return c.local }
func (c *streamConn) Reliable() bool        { return true }

func (c *streamConn) Send(b []byte) error {
	held, err := c.send(b)
	if held && c.onHeld != nil {
		c.onHeld(c) // outside mu: heldConns locks its table, then c.mu
	}
	return err
}

var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 8192) }}

// send writes b, or keeps it in the buffer while corked; held reports that
// b is the first write the cork holds.
func (c *streamConn) send(b []byte) (held bool, err error) {
	if c.closed.Load() {
		return false, ErrConnClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return false, ErrConnClosed
	}
	now := time.Now()
	_ = c.c.SetWriteDeadline(now.Add(writeTimeout))
	if c.corked == 0 && c.w == nil {
		if _, err := c.c.Write(b); err != nil {
			c.closeLocked()
			return false, err
		}
		return false, nil
	}
	if c.w == nil {
		c.w = newWriter(c.c)
	}
	if _, err := c.w.Write(b); err != nil {
		c.closeLocked()
		return false, err
	}
	if c.corked > 0 {
		if c.heldSince.IsZero() && c.w.Buffered() > 0 {
			c.heldSince = now
			return true, nil
		}
		return false, nil
	}
	return false, c.flushLocked()
}

// flushLocked writes what w holds and gives w back to the pool.
func (c *streamConn) flushLocked() error {
	if c.w == nil {
		return nil
	}
	if err := c.w.Flush(); err != nil {
		c.closeLocked()
		return err
	}
	c.releaseWriter()
	return nil
}

func (c *streamConn) releaseWriter() {
	if c.w != nil {
		c.w.Reset(nil)
		writerPool.Put(c.w)
		c.w = nil
	}
}

func (c *streamConn) Close() {
	c.mu.Lock()
	c.closeLocked()
	c.mu.Unlock()
}

func (c *streamConn) closeLocked() {
	if c.closed.Swap(true) {
		return
	}
	_ = c.c.Close()
	c.heldSince = time.Time{}
	c.releaseWriter()
	if c.onGone != nil {
		c.onGone(c)
	}
}

// authenticated records that a request on c authenticated: its deadline
// for that ends and the admission no longer evicts it for newcomers.
func (c *streamConn) authenticated() {
	if c.authed.Swap(true) {
		return
	}
	if c.slot != nil {
		c.slot.adm.authenticated(c.slot)
	}
}

// connTable finds live stream connections by ID, so requests to a device
// behind NAT go back over the connection it registered on.
type connTable struct {
	mu sync.RWMutex
	m  map[string]*streamConn
}

func newConnTable() *connTable { return &connTable{m: make(map[string]*streamConn)} }

func (t *connTable) add(c *streamConn) {
	t.mu.Lock()
	t.m[c.id] = c
	t.mu.Unlock()
}

func (t *connTable) remove(c *streamConn) {
	t.mu.Lock()
	if t.m[c.id] == c {
		delete(t.m, c.id)
	}
	t.mu.Unlock()
}

func (t *connTable) get(id string) (*streamConn, bool) {
	t.mu.RLock()
	c, ok := t.m[id]
	t.mu.RUnlock()
	return c, ok
}

func (t *connTable) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}

func (t *connTable) closeAll() {
	t.mu.RLock()
	cs := make([]*streamConn, 0, len(t.m))
	for _, c := range t.m {
		cs = append(cs, c)
	}
	t.mu.RUnlock()
	for _, c := range cs {
		c.Close()
	}
}
