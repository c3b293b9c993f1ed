package sipedge

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/lifecycle"
)

// A batch written on a wildcard (dual-stack) socket reaches an IPv4 peer, and
// sends outside a batch go at once.
func TestUDPOutWildcardSocket(t *testing.T) {
	for _, bind := range []string{"0.0.0.0:0", "127.0.0.1:0"} {
		pc := listenUDP(t, "udp", bind)
		peer := listenUDP(t, "udp4", "127.0.0.1:0")
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

// listenUDP binds a UDP socket on addr ("127.0.0.1:0") for the test.
func listenUDP(t *testing.T, network, addr string) *net.UDPConn {
	t.Helper()
	a, err := net.ResolveUDPAddr(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP(network, a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A batch whose reader is stuck (a handler dialling a carrier, say) does not
// hold other senders' datagrams for longer than maxHold and a tick.
func TestUDPOutStuckBatchIsFlushed(t *testing.T) {
	pc := listenUDP(t, "udp4", "127.0.0.1:0")
	peer := listenUDP(t, "udp4", "127.0.0.1:0")
	out := newUDPOut(pc, 4)
	go out.flusher(t.Context())
	c := &udpConn{pc: pc, peer: peer.LocalAddr().(*net.UDPAddr).AddrPort(), out: out}
	out.begin() // never flushed by its reader
	arrivesSoon(t, c, peer, "trying")
}

// arrivesSoon sends msg on c and expects it at r well before the 2 s a
// message held for good would take to fail the read.
func arrivesSoon(t *testing.T, c Conn, r net.Conn, msg string) {
	t.Helper()
	start := time.Now()
	if err := c.Send([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = r.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := r.Read(buf)
	if err != nil || string(buf[:n]) != msg {
		t.Fatalf("got %q, %v; want %q", buf[:n], err, msg)
	}
	if waited := time.Since(start); waited > 200*time.Millisecond {
		t.Fatalf("%q waited %v while held", msg, waited)
	}
}

// A corked stream connection whose reader is stuck still delivers what
// other goroutines send to it, within maxHold and a tick.
func TestCorkedStreamIsFlushed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	var held heldConns
	sc := &streamConn{c: server, w: newWriter(server), onHeld: held.add}
	defer sc.Close()
	go lifecycle.Every(t.Context(), maxHold, held.flush)
	sc.cork() // the reader never uncorks: stuck in a handler
	arrivesSoon(t, sc, client, "INVITE")
	held.mu.Lock()
	left := len(held.m)
	held.mu.Unlock()
	for i := 0; left != 0 && i < 100; i++ {
		time.Sleep(maxHold)
		held.mu.Lock()
		left = len(held.m)
		held.mu.Unlock()
	}
	if left != 0 {
		t.Fatalf("%d connections still tracked as held", left)
	}
}
