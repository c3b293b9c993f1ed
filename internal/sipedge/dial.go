package sipedge

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Dial opens a connection to a configured peer (a carrier trunk), never to
// a host named in a received message: addr is an address the operator
// configured. Messages the peer sends on it enter the same chain as any
// other; the connection closes when ctx ends or it stays idle (the caller
// keeps it alive with requests such as REGISTER or OPTIONS). For "udp" it
// returns the UDP listener's socket towards addr.
func (e *Edge) Dial(ctx context.Context, transport string, addr netip.AddrPort, tc *tls.Config) (Conn, error) {
	if transport == "udp" {
		c, ok := e.ConnFor("", "udp", addr)
		if !ok {
			return nil, fmt.Errorf("dial udp %s: no UDP listener (set sip.udp_listen)", addr)
		}
		return c, nil
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("dial %s %s: %w", transport, addr, err)
	}
	if transport == "tls" {
		c := tls.Client(nc, tc)
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("dial tls %s: %w", addr, err)
		}
		nc = c
	}
	sc := e.newStreamConn(nc, transport, normalize(addr))
	go func() {
		defer sc.Close()
		e.readLoop(context.WithoutCancel(ctx), sc, 10*time.Minute)
	}()
	go func() {
		<-ctx.Done()
		sc.Close()
	}()
	return sc, nil
}
