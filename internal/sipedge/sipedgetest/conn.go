// Package sipedgetest has fakes of the SIP edge's types for the tests of
// the layers above it (call, registrar, trunk), which run without sockets.
package sipedgetest

import (
	"net/netip"
	"sync"

	"github.com/veilig/veilig/internal/sipedge"
)

// Conn is a connection that goes nowhere: a test hands it to a layer as
// the connection a message came on, and reads back what was written to it.
type Conn struct {
	transport   string
	peer, local netip.AddrPort

	mu   sync.Mutex
	sent [][]byte
}

var _ sipedge.Conn = (*Conn)(nil)

// NewConn is a connection over transport ("tls", "tcp", "udp") from peer
// (host:port) to Veilig's 127.0.0.1:5061.
func NewConn(transport, peer string) *Conn {
	return &Conn{transport: transport, peer: netip.MustParseAddrPort(peer), local: netip.MustParseAddrPort("127.0.0.1:5061")}
}

// ID names the connection as the edge does.
func (c *Conn) ID() string {
	if c.transport == "udp" {
		return "udp:" + c.peer.String()
	}
	return c.transport + ":" + c.peer.String() + "#1"
}

func (c *Conn) Transport() string     { return c.transport }
func (c *Conn) Peer() netip.AddrPort  { return c.peer }
func (c *Conn) Local() netip.AddrPort { return c.local }
func (c *Conn) Reliable() bool        { return c.transport != "udp" }

// Send keeps b.
func (c *Conn) Send(b []byte) error {
	c.mu.Lock()
	c.sent = append(c.sent, append([]byte(nil), b...))
	c.mu.Unlock()
	return nil
}

// Sent is how many messages were written to the connection.
func (c *Conn) Sent() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sent)
}
