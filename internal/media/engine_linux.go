//go:build linux

package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"golang.org/x/sys/unix"
)

const (
	batch     = 32   // datagrams per recvmmsg/sendmmsg
	recvSize  = 2048 // larger datagrams are truncated and dropped
	sendSize  = recvSize + 64
	maxRounds = 4 // recvmmsg calls per ready socket per wake-up, for fairness

	sweepEvery  = int64(250 * time.Millisecond)
	burstWindow = int64(time.Second)
	injQuiet    = int64(30 * time.Second) // one injection event per leg per this
	maxSSRCs    = 8                       // distinct SSRCs a leg may introduce (bounds pion's state)
)

// sockaddr is a raw sockaddr_in or sockaddr_in6, kept ready for sendmmsg.
type sockaddr struct {
	b [unix.SizeofSockaddrInet6]byte
	n uint32
}

func (s *sockaddr) set(ap netip.AddrPort, v6 bool) {
	*s = sockaddr{}
	if !ap.IsValid() {
		return
	}
	a := ap.Addr()
	binary.BigEndian.PutUint16(s.b[2:], ap.Port())
	if !v6 && a.Is4() {
		binary.NativeEndian.PutUint16(s.b[0:], unix.AF_INET)
		a4 := a.As4()
		copy(s.b[4:8], a4[:])
		s.n = unix.SizeofSockaddrInet4
		return
	}
	if !v6 {
		return // a v6 peer on a v4 relay: unreachable, nothing is sent
	}
	binary.NativeEndian.PutUint16(s.b[0:], unix.AF_INET6)
	a16 := a.As16()
	copy(s.b[8:24], a16[:])
	s.n = unix.SizeofSockaddrInet6
}

func parseSockaddr(b *[unix.SizeofSockaddrInet6]byte) netip.AddrPort {
	port := binary.BigEndian.Uint16(b[2:])
	switch binary.NativeEndian.Uint16(b[0:]) {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port)
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])).Unmap(), port)
	}
	return netip.AddrPort{}
}

// mmsghdr is struct mmsghdr; Go pads it like C on 32- and 64-bit.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// recvmmsg and sendmmsg are non-blocking (MSG_DONTWAIT), so the raw form
// (no scheduler hand-off) is safe and saves the syscall bookkeeping.
func recvmmsg(fd int, msgs []mmsghdr) (int, unix.Errno) {
	n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])),
		uintptr(len(msgs)), unix.MSG_DONTWAIT, 0, 0)
	return int(n), e
}

// epollPoll is epoll_wait with a zero timeout, also raw: a busy relay polls
// after every round, and the scheduler bookkeeping of a normal system call
// let Go's sysmon take the P away during the poll (it takes tens of µs with
// hundreds of ready sockets), which kept sysmon waking every 20 µs and
// preempting the relay thread thousands of times a second.
func epollPoll(epfd int, events []unix.EpollEvent) (int, unix.Errno) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), 0, 0, 0)
	return int(n), e
}

func sendmmsg(fd int, msgs []mmsghdr) (int, unix.Errno) {
	n, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])),
		uintptr(len(msgs)), unix.MSG_DONTWAIT, 0, 0)
	return int(n), e
}

func openUDP(addr netip.Addr, port int, v6 bool) (int, error) {
	fam := unix.AF_INET
	if v6 {
		fam = unix.AF_INET6
	}
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	var sa unix.Sockaddr
	if v6 {
		// Dual stack when bound to "::", so v4 devices reach a v6 relay.
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
		sa = &unix.SockaddrInet6{Port: port, Addr: addr.As16()}
	} else {
		sa = &unix.SockaddrInet4{Port: port, Addr: addr.Unmap().As4()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		closeFD(fd)
		return -1, fmt.Errorf("bind %s port %d: %w", addr, port, err)
	}
	return fd, nil
}

func closeFD(fd int) { _ = unix.Close(fd) }

// sock is one bound UDP port in a worker's epoll set.
type sock struct {
	fd       int
	slot     int32
	gen      int32
	leg      *Leg
	rtcpOnly bool // the separate RTCP port of a non-muxing device
}

// shard is one worker: an epoll loop, the sockets and sessions it serves and
// its reusable packet buffers. mu guards all of it; the loop holds it while
// it serves one epoll batch, control calls take it briefly.
type shard struct {
	r    *Relay
	epfd int
	// epf wraps epfd for Go's netpoller: the loop parks on it like on any
	// socket. A blocking epoll_wait would instead make the runtime hand
	// the P to another thread on every wait and back on every wake-up,
	// which cost more than the packets themselves (measured: ~17 µs per
	// packet against ~6 µs).
	epf  *os.File
	epRC syscall.RawConn
	base time.Time
	done chan struct{}

	mu       sync.Mutex
	socks    []*sock
	freeSl   []int32
	gen      int32
	sessions map[*Session]struct{}
	stopping bool

	// Loop-owned.
	events []unix.EpollEvent
	nev    int
	waitFn func(fd uintptr) bool

	// Packet buffers, used only with mu held.
	rbuf    [batch][recvSize]byte
	rname   [batch][unix.SizeofSockaddrInet6]byte
	riov    [batch]unix.Iovec
	rmsg    [batch]mmsghdr
	sbuf    [batch][sendSize]byte
	sname   [batch]sockaddr
	siov    [batch]unix.Iovec
	smsg    [batch]mmsghdr
	sfd     [batch]int
	sleg    [batch]*Leg
	srtcp   [batch]bool
	scratch [sendSize]byte
	rtpHdr  rtp.Header
	rtcpHdr rtcp.Header

	// ring, when the kernel offers io_uring, carries the receives of one
	// epoll round in one system call and the sends in another; nil means
	// recvmmsg/sendmmsg per socket. Its slots are below.
	ring  *uring
	rg    *ringSlots
	reapF func(tag uint64, res int32)
	rnow  int64
}

// ringSlots are the buffers of operations in the ring. A slot is owned by
// the kernel from submission until its completion is reaped.
type ringSlots struct {
	rbuf  [ringBatch][recvSize + 1]byte // one spare byte tells an oversized datagram
	rname [ringBatch][unix.SizeofSockaddrInet6]byte
	riov  [ringBatch]unix.Iovec
	rhdr  [ringBatch]unix.Msghdr
	rsock [ringBatch]*sock
	rgen  [ringBatch]int32
	rfree []int

	sbuf  [ringBatch][sendSize]byte
	sname [ringBatch]sockaddr
	siov  [ringBatch]unix.Iovec
	shdr  [ringBatch]unix.Msghdr
	sleg  [ringBatch]*Leg
	srtcp [ringBatch]bool
	sfree []int
}

const (
	ringBatch = 256 // sockets served per epoll round, and sends in flight
	ringSend  = 1 << 62
)

func newShard(r *Relay) (*shard, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("media: epoll: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		closeFD(epfd)
		return nil, fmt.Errorf("media: epoll nonblock: %w", err)
	}
	epf := os.NewFile(uintptr(epfd), "media-epoll")
	rc, err := epf.SyscallConn()
	if err != nil {
		epf.Close()
		return nil, fmt.Errorf("media: epoll rawconn: %w", err)
	}
	sh := &shard{r: r, epfd: epfd, epf: epf, epRC: rc, base: time.Now(), done: make(chan struct{}),
		events: make([]unix.EpollEvent, 256)}
	sh.waitFn = func(uintptr) bool {
		n, e := epollPoll(sh.epfd, sh.events)
		if e != 0 || n <= 0 {
			sh.nev = 0
			return false // park in the netpoller until epfd is readable
		}
		sh.nev = n
		return true
	}
	for i := range batch {
		sh.riov[i].Base = &sh.rbuf[i][0]
		sh.riov[i].SetLen(recvSize)
		sh.rmsg[i].hdr.Iov = &sh.riov[i]
		sh.rmsg[i].hdr.SetIovlen(1)
		sh.rmsg[i].hdr.Name = &sh.rname[i][0]
		sh.rmsg[i].hdr.Namelen = unix.SizeofSockaddrInet6
		sh.siov[i].Base = &sh.sbuf[i][0]
		sh.smsg[i].hdr.Iov = &sh.siov[i]
		sh.smsg[i].hdr.SetIovlen(1)
		sh.smsg[i].hdr.Name = &sh.sname[i].b[0]
	}
	if !r.opt.NoURing {
		if u, err := newURing(2 * ringBatch); err == nil {
			sh.ring, sh.rg = u, newRingSlots()
			sh.reapF = sh.completed
		} else {
			r.log.Info("io_uring unavailable, batching per socket", "err", err)
		}
	}
	return sh, nil
}

func newRingSlots() *ringSlots {
	g := &ringSlots{rfree: make([]int, 0, ringBatch), sfree: make([]int, 0, ringBatch)}
	for i := range ringBatch {
		g.riov[i].Base = &g.rbuf[i][0]
		g.riov[i].SetLen(recvSize + 1)
		g.rhdr[i].Iov = &g.riov[i]
		g.rhdr[i].SetIovlen(1)
		g.rhdr[i].Name = &g.rname[i][0]
		g.siov[i].Base = &g.sbuf[i][0]
		g.shdr[i].Iov = &g.siov[i]
		g.shdr[i].SetIovlen(1)
		g.shdr[i].Name = &g.sname[i].b[0]
		g.rfree = append(g.rfree, ringBatch-1-i)
		g.sfree = append(g.sfree, ringBatch-1-i)
	}
	return g
}

// now is the worker clock: monotonic nanoseconds since the shard started.
func (sh *shard) now() int64 { return int64(time.Since(sh.base)) }

// register adds fd to the epoll set. Caller holds mu.
func (sh *shard) register(fd int, l *Leg, rtcpOnly bool) (*sock, error) {
	var slot int32
	if n := len(sh.freeSl); n > 0 {
		slot = sh.freeSl[n-1]
		sh.freeSl = sh.freeSl[:n-1]
	} else {
		slot = int32(len(sh.socks))
		sh.socks = append(sh.socks, nil)
	}
	sh.gen++
	s := &sock{fd: fd, slot: slot, gen: sh.gen, leg: l, rtcpOnly: rtcpOnly}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: slot, Pad: s.gen}
	if err := unix.EpollCtl(sh.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		sh.freeSl = append(sh.freeSl, slot)
		return nil, fmt.Errorf("epoll add: %w", err)
	}
	sh.socks[slot] = s
	return s, nil
}

// unregister removes and closes s. Caller holds mu. A stale event for the
// slot in the current batch is ignored through the generation check.
func (sh *shard) unregister(s *sock) {
	// Closing the only descriptor of a socket also takes it out of the
	// epoll set; an explicit EPOLL_CTL_DEL would cost one more system call
	// per port and call.
	closeFD(s.fd)
	sh.socks[s.slot] = nil
	sh.freeSl = append(sh.freeSl, s.slot)
	s.leg = nil
}

// unregisterLeg closes a leg's sockets and returns its port pair. Caller
// holds mu.
func (sh *shard) unregisterLeg(l *Leg) {
	if l.rtp != nil {
		sh.unregister(l.rtp)
		l.rtp = nil
	}
	sh.releaseRTCP(l)
	if l.port != 0 {
		sh.r.pool.put(l.port)
		l.port = 0
	}
	l.tx, l.rx, l.txKey, l.rxKey = nil, nil, false, false
}

// releaseRTCP closes a leg's separate RTCP socket. Caller holds mu.
func (sh *shard) releaseRTCP(l *Leg) {
	if l.rtcp != nil {
		sh.unregister(l.rtcp)
		l.rtcp = nil
	}
	if l.rtcpPair != 0 {
		sh.r.pool.put(l.rtcpPair)
	}
	l.rtcpPort, l.rtcpPair = 0, 0
}

func (sh *shard) stop() {
	sh.mu.Lock()
	sh.stopping = true
	sh.mu.Unlock()
	close(sh.done)
	_ = sh.epf.Close() // wakes the parked loop with an error
}

func (sh *shard) closeAll() {
	sh.mu.Lock()
	for s := range sh.sessions {
		s.closed = true
		for _, l := range s.legs {
			sh.unregisterLeg(l)
		}
		sh.r.sessions.Add(-1)
	}
	sh.sessions = nil
	sh.mu.Unlock()
	sh.closeFDs()
}

func (sh *shard) closeFDs() {
	_ = sh.epf.Close()
	if sh.ring != nil {
		sh.ring.close()
		sh.ring = nil
	}
}

// loop is the worker: park until sockets are ready, serve them.
func (sh *shard) loop() {
	go sh.sweeper()
	for {
		if err := sh.epRC.Read(sh.waitFn); err != nil {
			return // epf closed by stop
		}
		now := sh.now()
		sh.mu.Lock()
		if sh.stopping {
			sh.mu.Unlock()
			return
		}
		if sh.ring != nil {
			sh.serveRing(now)
		} else {
			for i := 0; i < sh.nev; i++ {
				if s := sh.ready(i); s != nil {
					sh.serve(s, now)
				}
			}
		}
		sh.mu.Unlock()
	}
}

// ready returns the live socket of epoll event i, nil for a stale one.
func (sh *shard) ready(i int) *sock {
	ev := &sh.events[i]
	if ev.Fd < 0 || int(ev.Fd) >= len(sh.socks) {
		return nil
	}
	s := sh.socks[ev.Fd]
	if s == nil || s.gen != ev.Pad {
		return nil
	}
	return s
}

// serveRing serves one epoll round through the ring: one receive per ready
// socket in one submission, then every forwarded packet in another. A
// socket with more queued stays readable and comes back next round. Caller
// holds mu.
func (sh *shard) serveRing(now int64) {
	g := sh.rg
	sh.rnow = now
	if len(g.rfree) == 0 {
		// Every receive is still with the kernel: it did not complete them
		// during submission as it should. Serving on through the ring
		// would spin on sockets that stay readable.
		sh.ringFailed(errors.New("io_uring receives did not complete during submission"))
		for i := 0; i < sh.nev; i++ {
			if s := sh.ready(i); s != nil {
				sh.serve(s, now)
			}
		}
		return
	}
	for i := 0; i < sh.nev && len(g.rfree) > 0; i++ {
		s := sh.ready(i)
		if s == nil {
			continue
		}
		j := g.rfree[len(g.rfree)-1]
		g.rhdr[j].Namelen = unix.SizeofSockaddrInet6
		g.rhdr[j].Flags = 0
		if sh.ring.msg(opRecvmsg, s.fd, &g.rhdr[j], uint64(j)) != nil {
			break
		}
		g.rfree = g.rfree[:len(g.rfree)-1]
		g.rsock[j], g.rgen[j] = s, s.gen
	}
	if err := sh.ring.submit(); err != nil {
		sh.ringFailed(err)
		return
	}
	sh.ring.reap(sh.reapF) // receives, each queueing its send
	if err := sh.ring.submit(); err != nil {
		sh.ringFailed(err)
		return
	}
	sh.ring.reap(sh.reapF) // sends
}

// ringFailed falls back to per-socket batching for good. Operations still
// in the ring keep their slots, which are never reused.
func (sh *shard) ringFailed(err error) {
	sh.r.log.Error("io_uring failed, batching per socket from now on", "err", err)
	sh.ring = nil
}

// completed handles one ring completion: a received datagram is processed
// and its forward queued; a finished send is counted.
func (sh *shard) completed(tag uint64, res int32) {
	g := sh.rg
	if tag&ringSend != 0 {
		j := int(tag &^ ringSend)
		if l := g.sleg[j]; l != nil {
			if res >= 0 {
				l.st.bytesOut += uint64(res)
				if g.srtcp[j] {
					l.st.rtcpOut++
				} else {
					l.st.packetsOut++
				}
			} else {
				// Full socket buffer or unreachable peer: dropped, as a
				// router would, and counted.
				l.st.sendErrors++
			}
		}
		g.sleg[j] = nil
		g.sfree = append(g.sfree, j)
		return
	}
	j := int(tag)
	s, gen := g.rsock[j], g.rgen[j]
	g.rsock[j] = nil
	// The slot's buffer stays valid below: slots are taken only when a
	// round submits, never while completions are handled.
	g.rfree = append(g.rfree, j)
	if res < 0 || s == nil || s.gen != gen || s.leg == nil {
		return // EAGAIN (another round took it) or the socket closed
	}
	if int(res) > recvSize {
		s.leg.st.dropMalformed++
		return
	}
	if len(g.sfree) == 0 {
		s.leg.st.sendErrors++
		return
	}
	o := g.sfree[len(g.sfree)-1]
	src := parseSockaddr(&g.rname[j])
	k, via, dst, isRTCP := sh.process(s, g.rbuf[j][:res], src, sh.rnow, g.sbuf[o][:])
	if k == 0 {
		return
	}
	g.siov[o].SetLen(k)
	g.sname[o] = *dst
	g.shdr[o].Namelen = dst.n
	if sh.ring.msg(opSendmsg, via.fd, &g.shdr[o], ringSend|uint64(o)) != nil {
		via.leg.st.sendErrors++
		return
	}
	g.sfree = g.sfree[:len(g.sfree)-1]
	g.sleg[o], g.srtcp[o] = via.leg, isRTCP
}

// sweeper raises media timeouts.
func (sh *shard) sweeper() {
	t := time.NewTicker(time.Duration(sweepEvery))
	defer t.Stop()
	for {
		select {
		case <-sh.done:
			return
		case <-t.C:
		}
		to := sh.r.timeout
		if to == 0 {
			continue
		}
		sh.mu.Lock()
		now := sh.now()
		for s := range sh.sessions {
			if s.armed && !s.hold && !s.timedOut && now-s.last > to {
				s.timedOut = true
				sh.r.emit(Event{Kind: EventTimeout, CallID: s.callID})
			}
		}
		sh.mu.Unlock()
	}
}

// serve drains one ready socket in batches and sends what it forwards, one
// sendmmsg per output socket run. Caller holds mu.
func (sh *shard) serve(s *sock, now int64) {
	for range maxRounds {
		n, e := recvmmsg(s.fd, sh.rmsg[:])
		if e != 0 || n <= 0 {
			return
		}
		out := 0
		for i := 0; i < n; i++ {
			m := &sh.rmsg[i]
			trunc := m.hdr.Flags&unix.MSG_TRUNC != 0
			size := m.n
			m.hdr.Namelen = unix.SizeofSockaddrInet6 // recvmmsg overwrote both
			m.hdr.Flags = 0
			if s.leg == nil {
				return // closed by a callback earlier in this batch
			}
			if trunc || size > recvSize {
				s.leg.st.dropMalformed++
				continue
			}
			src := parseSockaddr(&sh.rname[i])
			k, via, dst, isRTCP := sh.process(s, sh.rbuf[i][:size], src, now, sh.sbuf[out][:])
			if k == 0 {
				continue
			}
			sh.srtcp[out] = isRTCP
			sh.siov[out].SetLen(k)
			sh.sname[out] = *dst
			sh.smsg[out].hdr.Namelen = dst.n
			sh.sfd[out] = via.fd
			sh.sleg[out] = via.leg
			out++
		}
		sh.flush(out)
		if n < batch {
			return
		}
	}
}

func (sh *shard) flush(out int) {
	for i := 0; i < out; {
		j := i + 1
		for j < out && sh.sfd[j] == sh.sfd[i] {
			j++
		}
		for i < j {
			k, e := sendmmsg(sh.sfd[i], sh.smsg[i:j])
			if e != 0 || k <= 0 {
				// Full socket buffer or unreachable peer: drop, as a
				// router would, and count it.
				for ; i < j; i++ {
					if l := sh.sleg[i]; l != nil {
						l.st.sendErrors++
					}
				}
				break
			}
			for end := i + k; i < end; i++ {
				if l := sh.sleg[i]; l != nil {
					l.st.bytesOut += uint64(sh.siov[i].Len)
					if sh.srtcp[i] {
						l.st.rtcpOut++
					} else {
						l.st.packetsOut++
					}
				}
			}
		}
	}
	for i := 0; i < out; i++ {
		sh.sleg[i] = nil
	}
}

// process authenticates one datagram that arrived on s from src and, if it
// is good, re-protects it for the other leg into out. It returns the length
// to send, the socket to send it from and the destination, or 0 to drop.
// Caller holds mu. It never allocates on the forward path.
func (sh *shard) process(s *sock, pkt []byte, src netip.AddrPort, now int64, out []byte) (int, *sock, *sockaddr, bool) {
	l := s.leg
	sess := l.sess
	if sess.closed {
		return 0, nil, nil, false
	}
	if len(pkt) < 12 || pkt[0]>>6 != 2 {
		l.st.dropMalformed++
		sh.noteDrop(l, src, now)
		return 0, nil, nil, false
	}
	isRTCP := s.rtcpOnly || (pkt[1] >= 192 && pkt[1] <= 223) // RFC 5761 demux
	var plain []byte
	switch {
	case l.plain:
		// Nothing to authenticate: accept only the signalled IP.
		want := l.hintRTP
		if s.rtcpOnly && l.hintRTCP.IsValid() {
			want = l.hintRTCP
		}
		if !want.IsValid() || src.Addr() != want.Addr() {
			l.st.dropForeign++
			sh.noteDrop(l, src, now)
			return 0, nil, nil, false
		}
		plain = pkt
	case !l.rxKey || !sh.contexts(l):
		l.st.dropNoKey++
		return 0, nil, nil, false
	case isRTCP:
		p, err := l.rx.DecryptRTCP(sh.scratch[:0], pkt, &sh.rtcpHdr)
		if err != nil {
			sh.authFailed(l, err, src, now)
			return 0, nil, nil, false
		}
		plain = p
	default:
		// A key holder could mint SSRCs without end, each costing pion a
		// replay window: bound them.
		ssrc := binary.BigEndian.Uint32(pkt[8:12])
		known := ssrc == l.knownSSRC && l.rx == l.knownCtx
		if !known {
			_, known = l.rx.ROC(ssrc)
		}
		if !known && l.ssrcs >= maxSSRCs {
			l.st.dropAuth++
			sh.noteDrop(l, src, now)
			return 0, nil, nil, false
		}
		p, err := l.rx.DecryptRTP(sh.scratch[:0], pkt, &sh.rtpHdr)
		if err != nil {
			sh.authFailed(l, err, src, now)
			return 0, nil, nil, false
		}
		if !known {
			l.ssrcs++
		}
		l.knownSSRC, l.knownCtx = ssrc, l.rx
		plain = p
	}

	// The packet is authentic (or plain from the signalled IP): it may
	// move the latch.
	sh.learn(l, s, src, now)
	sess.last = now
	l.st.bytesIn += uint64(len(pkt))
	if isRTCP {
		l.st.rtcpIn++
	} else {
		l.st.packetsIn++
	}

	peer := l.peer
	var via *sock
	var dst *sockaddr
	if isRTCP && !peer.mux && peer.rtcp != nil {
		via, dst = peer.rtcp, &peer.dstRTCP
	} else {
		via, dst = peer.rtp, &peer.dstRTP
		if isRTCP && !peer.mux {
			dst = &peer.dstRTCP
		}
	}
	if via == nil || dst.n == 0 || (!peer.plain && (!peer.txKey || !sh.contexts(peer))) {
		l.st.dropNoPeer++
		return 0, nil, nil, false
	}
	if peer.ptMapped && !isRTCP {
		// plain is Veilig's own buffer (scratch, or the receive buffer of
		// a plain leg), so the header can be rewritten in place; the
		// marker bit stays.
		plain[1] = plain[1]&0x80 | peer.ptOut[plain[1]&0x7f]
	}
	var o []byte
	var err error
	switch {
	case peer.plain:
		if len(plain) > len(out) {
			l.st.dropMalformed++
			return 0, nil, nil, false
		}
		o = out[:copy(out, plain)]
	case isRTCP:
		o, err = peer.tx.EncryptRTCP(out[:0], plain, &sh.rtcpHdr)
	default:
		o, err = peer.tx.EncryptRTP(out[:0], plain, &sh.rtpHdr)
	}
	if err != nil || len(o) == 0 || &o[0] != &out[0] {
		peer.st.sendErrors++
		return 0, nil, nil, false
	}
	return len(o), via, dst, isRTCP
}

// contexts builds the leg's missing SRTP contexts from its installed keys
// (checked when installed, so this fails only on a pion error). Caller
// holds mu.
func (sh *shard) contexts(l *Leg) bool {
	var err error
	if l.txKey && l.tx == nil {
		if l.tx, err = l.local.context(); err != nil {
			sh.r.log.Error("srtp context", "call", l.sess.callID, "leg", l.id, "err", err)
			l.txKey = false
			return false
		}
	}
	if l.rxKey && l.rx == nil {
		if l.rx, err = l.remote.context(); err != nil {
			sh.r.log.Error("srtp context", "call", l.sess.callID, "leg", l.id, "err", err)
			l.rxKey = false
			return false
		}
	}
	return true
}

// errReplay is pion/srtp's (unexported) sentinel for a replayed packet,
// found once by replaying a packet, so drops can be classified without
// allocating.
var errReplay = func() error {
	c := Crypto{Suite: SuiteAES128SHA1_80, Key: make([]byte, 30)}
	tx, err1 := c.context()
	rx, err2 := c.context()
	if err1 != nil || err2 != nil {
		return nil
	}
	enc, err := tx.EncryptRTP(nil, []byte{0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0}, nil)
	if err != nil {
		return nil
	}
	if _, err := rx.DecryptRTP(nil, enc, nil); err != nil {
		return nil
	}
	_, err = rx.DecryptRTP(nil, enc, nil)
	return errors.Unwrap(err)
}()

func (sh *shard) authFailed(l *Leg, err error, src netip.AddrPort, now int64) {
	if errReplay != nil && errors.Is(err, errReplay) {
		l.st.dropReplay++
	} else {
		l.st.dropAuth++
	}
	sh.noteDrop(l, src, now)
}

// noteDrop counts a dropped packet towards an injection burst and queues one
// (deduplicated) event when a burst is reached.
func (sh *shard) noteDrop(l *Leg, src netip.AddrPort, now int64) {
	if now-l.burstStart > burstWindow {
		l.burstStart, l.burstN = now, 0
	}
	l.burstN++
	if l.burstN < sh.r.burst || (l.injSent && now-l.injAt < injQuiet) {
		return
	}
	l.injSent, l.injAt = true, now
	total := l.st.dropAuth + l.st.dropReplay + l.st.dropForeign + l.st.dropMalformed
	sh.r.emit(Event{Kind: EventInjection, CallID: l.sess.callID, Leg: l.id, Source: src, Count: total})
}

// learn latches the leg to src after an authenticated packet.
func (sh *shard) learn(l *Leg, s *sock, src netip.AddrPort, now int64) {
	if s.rtcpOnly {
		if l.latRTCP == src {
			return
		}
		l.latRTCP = src
	} else {
		if l.latRTP == src {
			return
		}
		if l.latRTP.IsValid() {
			l.st.latchMoves++
			sh.r.emit(Event{Kind: EventLatch, CallID: l.sess.callID, Leg: l.id, Source: src})
		}
		l.latRTP = src
	}
	_ = now
	l.refreshDst()
}
