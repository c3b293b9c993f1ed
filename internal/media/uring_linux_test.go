//go:build linux

package media

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// The relay relies on non-blocking ring operations completing during
// submission: an empty socket answers -EAGAIN at once, a datagram is
// received, and a send leaves, each with its completion ready right after
// io_uring_enter returns.
func TestURingCompletesDuringSubmit(t *testing.T) {
	u, err := newURing(64)
	if err != nil {
		t.Skipf("io_uring unavailable: %v", err)
	}
	defer u.close()
	lo := netip.MustParseAddr("127.0.0.1")
	a, err := openUDP(lo, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFD(a)
	b, err := openUDP(lo, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFD(b)
	sb, _ := unix.Getsockname(b)
	bPort := sb.(*unix.SockaddrInet4).Port

	var rbuf [64]byte
	var rname sockaddr
	riov := unix.Iovec{Base: &rbuf[0]}
	riov.SetLen(len(rbuf))
	rh := unix.Msghdr{Name: &rname.b[0], Namelen: uint32(len(rname.b)), Iov: &riov}
	rh.SetIovlen(1)

	got := map[uint64]int32{}
	collect := func(tag uint64, res int32) { got[tag] = res }

	if err := u.msg(opRecvmsg, b, &rh, 1); err != nil {
		t.Fatal(err)
	}
	if err := u.submit(); err != nil {
		t.Fatal(err)
	}
	u.reap(collect)
	if res, ok := got[1]; !ok || res != -int32(unix.EAGAIN) {
		t.Fatalf("recv on an empty socket: completion %v (present %v), want -EAGAIN at once", res, ok)
	}

	payload := []byte("veilig-uring")
	siov := unix.Iovec{Base: &payload[0]}
	siov.SetLen(len(payload))
	var dst sockaddr
	dst.set(netip.AddrPortFrom(lo, uint16(bPort)), false)
	sh := unix.Msghdr{Name: &dst.b[0], Namelen: dst.n, Iov: &siov}
	sh.SetIovlen(1)
	if err := u.msg(opSendmsg, a, &sh, 2); err != nil {
		t.Fatal(err)
	}
	if err := u.submit(); err != nil {
		t.Fatal(err)
	}
	u.reap(collect)
	if got[2] != int32(len(payload)) {
		t.Fatalf("send completion %d, want %d", got[2], len(payload))
	}
	rh.Namelen = uint32(len(rname.b))
	if err := u.msg(opRecvmsg, b, &rh, 3); err != nil {
		t.Fatal(err)
	}
	if err := u.submit(); err != nil {
		t.Fatal(err)
	}
	u.reap(collect)
	if got[3] != int32(len(payload)) || string(rbuf[:len(payload)]) != string(payload) {
		t.Fatalf("recv completion %d %q", got[3], rbuf[:max(got[3], 0)])
	}
	if src := parseSockaddr(&rname.b); src.Addr() != lo {
		t.Fatalf("source %v", src)
	}
}
