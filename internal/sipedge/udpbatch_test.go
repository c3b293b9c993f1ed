package sipedge

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// A batch written on a wildcard (dual-stack) socket reaches an IPv4 peer, and
// sends outside a batch go at once.
func TestUDPOutWildcardSocket(t *testing.T) {
	for _, bind := range []string{"0.0.0.0:0", "127.0.0.1:0"} {
		pc, err := net.ListenUDP("udp", mustUDPAddr(t, bind))
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		peer, err := net.ListenUDP("udp4", mustUDPAddr(t, "127.0.0.1:0"))
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		dst := peer.LocalAddr().(*net.UDPAddr).AddrPort()
		out := newUDPOut(pc, 4)
		c := &udpConn{pc: pc, peer: netip.AddrPortFrom(dst.Addr(), dst.Port()), out: out}
		out.begin()
		for _, m := range []string{"one", "two"} {
			if err := c.Send([]byte(m)); err != nil {
				t.Fatal(err)
			}
		}
		out.flush()
		if err := c.Send([]byte("three")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		for _, want := range []string{"one", "two", "three"} {
			_ = peer.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := peer.Read(buf)
			if err != nil || string(buf[:n]) != want {
				t.Fatalf("%s: got %q, %v; want %q", bind, buf[:n], err, want)
			}
		}
	}
}

func mustUDPAddr(t *testing.T, s string) *net.UDPAddr {
	t.Helper()
	a, err := net.ResolveUDPAddr("udp", s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
