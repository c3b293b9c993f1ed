package sipedge

import (
	"sync"
	"time"
)

// cork holds writes until uncork; the read loop brackets the handling of
// each read with the two.
func (c *streamConn) cork() {
	c.mu.Lock()
	c.corked++
	c.mu.Unlock()
}

func (c *streamConn) uncork() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked--; c.corked > 0 {
		return
	}
	c.corked = 0
	c.heldSince = time.Time{}
	if c.closed.Load() || c.w == nil {
		return
	}
	if c.w.Buffered() == 0 {
		c.releaseWriter()
		return
	}
	_ = c.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	_ = c.flushLocked()
}

// flushHeld writes what the cork has held since before limit and reports
// whether anything is still held.
func (c *streamConn) flushHeld(now time.Time, limit time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.heldSince.IsZero() || c.closed.Load() {
		c.heldSince = time.Time{}
		return false
	}
	if now.Sub(c.heldSince) < limit {
		return true
	}
	c.heldSince = time.Time{}
	if c.w != nil && c.w.Buffered() > 0 {
		_ = c.c.SetWriteDeadline(now.Add(writeTimeout))
		_ = c.flushLocked()
	}
	return false
}

// heldConns tracks the connections whose cork holds writes, so a flusher
// can write what waited maxHold: the reader of a connection may sit in a
// long handler (an outbound call dialling its carrier) while other
// goroutines send to that connection.
type heldConns struct {
	mu sync.Mutex
	m  map[*streamConn]struct{}
}

func (h *heldConns) add(c *streamConn) {
	h.mu.Lock()
	if h.m == nil {
		h.m = make(map[*streamConn]struct{})
	}
	h.m[c] = struct{}{}
	h.mu.Unlock()
}

// flush writes held messages older than maxHold and forgets connections
// that hold nothing. A connection that becomes held meanwhile adds itself
// again after this pass, since add waits for mu.
func (h *heldConns) flush(now time.Time) {
	h.mu.Lock()
	cs := make([]*streamConn, 0, len(h.m))
	for c := range h.m {
		cs = append(cs, c)
	}
	h.mu.Unlock()
	if len(cs) == 0 {
		return
	}
	var idle []*streamConn
	for _, c := range cs {
		if !c.flushHeld(now, maxHold) {
			idle = append(idle, c)
		}
	}
	h.mu.Lock()
	for _, c := range idle {
		c.mu.Lock()
		if c.heldSince.IsZero() {
			delete(h.m, c)
		}
		c.mu.Unlock()
	}
	h.mu.Unlock()
}

// Hold keeps what is sent on conns from now until the returned release
// is called, so that answers sent together (a batch of registrations
// just committed) leave in as few writes as possible: one TLS record per
// connection, one sendmmsg per UDP socket. Nothing waits longer than
// maxHold either way.
func Hold(conns ...Conn) (release func()) {
	streams := make(map[*streamConn]struct{})
	outs := make(map[*udpOut]struct{})
	for _, c := range conns {
		switch c := c.(type) {
		case *streamConn:
			if _, ok := streams[c]; !ok {
				streams[c] = struct{}{}
				c.cork()
			}
		case *udpConn:
			if _, ok := outs[c.out]; !ok && c.out != nil {
				outs[c.out] = struct{}{}
				c.out.begin()
			}
		}
	}
	return func() {
		for c := range streams {
			c.uncork()
		}
		for o := range outs {
			o.flush()
		}
	}
}
