package main

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"time"
	"unsafe"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/veilig/veilig/internal/media"
	"golang.org/x/sys/unix"
)

const (
	ssrcBase   = 0x10000000
	payloadLen = 160 // 20 ms of G.711
	pktEvery   = 20 * time.Millisecond
	histRes    = 10 * time.Microsecond
	histN      = 20000 // 200 ms
	numSocks   = 7     // local sockets per side (coprime with the slot counts)
)

// legSetup is what the device on one leg of a call needs to stream: the
// relay's address for it, its own key and the relay's key for that leg.
type legSetup struct {
	dst   netip.AddrPort
	own   media.Crypto
	relay media.Crypto
}

// target is a relay under test.
type target interface {
	// setup establishes n calls. Call i's caller (leg A) receives on
	// ports[0][i%numSocks] and its callee (leg B) on ports[1][i%numSocks].
	setup(n int, ports *[2][numSocks]int, tag string) ([][2]legSetup, error)
	// teardown ends the calls of the last setup.
	teardown() error
	// note describes the last step's signalling, "" for nothing to say.
	note() string
}

type legDev struct {
	sock  int
	dst   [unix.SizeofSockaddrInet4]byte
	tx    *srtp.Context // the device's own key
	rx    *srtp.Context // the relay's key for this leg
	ssrc  uint32
	seq   uint16
	hdr   rtp.Header
	plain [12 + payloadLen]byte
}

type stepResult struct {
	Calls               int
	Sent, Recv          uint64
	VerifyOK, VerifyBad uint64
	P50, P99, Max       time.Duration
	RelayCPU, LoadCPU   float64 // fraction of one core
	LateTicks           int
	RelayRSSKB          int64
	SetupTime           time.Duration
	RelayRSSBeforeKB    int64
	SendErrs            uint64
	MinFaults           int64 // the relay's page faults over the measured window
	MajFaults           int64
	TeardownErr         error
}

func (r stepResult) Loss() float64 {
	if r.Sent == 0 {
		return 1
	}
	if r.Recv >= r.Sent {
		return 0
	}
	return float64(r.Sent-r.Recv) / float64(r.Sent)
}

var (
	reMLine = regexp.MustCompile(`(?m)^m=audio (\d+) `)
	reCLine = regexp.MustCompile(`(?m)^a=crypto:(.*?)\r?$`)
	reConn  = regexp.MustCompile(`(?m)^c=IN IP4 (\S+)`)
)

func parseRelaySDP(s string) (netip.AddrPort, []media.Crypto, error) {
	m := reMLine.FindStringSubmatch(s)
	c := reConn.FindStringSubmatch(s)
	if m == nil || c == nil {
		return netip.AddrPort{}, nil, fmt.Errorf("no m=/c= in relay SDP:\n%s", s)
	}
	port, _ := strconv.Atoi(m[1])
	ip, err := netip.ParseAddr(c[1])
	if err != nil {
		return netip.AddrPort{}, nil, err
	}
	var out []media.Crypto
	for _, l := range reCLine.FindAllStringSubmatch(s, -1) {
		if cr, err := media.ParseCrypto(l[1]); err == nil {
			out = append(out, cr)
		}
	}
	return netip.AddrPortFrom(ip, uint16(port)), out, nil
}

// devSDP is a device's description: PCMU over RTP/SAVP on 127.0.0.1:port
// with one a=crypto line, and a=rtcp-mux when mux is set.
func devSDP(origin string, port int, c media.Crypto, mux bool) string {
	s := "v=0\r\no=" + origin + " 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio " + strconv.Itoa(port) + " RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
	if mux {
		s += "a=rtcp-mux\r\n"
	}
	return s + "a=crypto:" + c.Attr() + "\r\n"
}

func ctxOf(c media.Crypto) (*srtp.Context, error) {
	kl := 16
	p := srtp.ProtectionProfileAes128CmHmacSha1_80
	switch c.Suite {
	case media.SuiteAES128SHA1_32:
		p = srtp.ProtectionProfileAes128CmHmacSha1_32
	case media.SuiteAEADAES128GCM:
		p = srtp.ProtectionProfileAeadAes128Gcm
	case media.SuiteAEADAES256GCM:
		p, kl = srtp.ProtectionProfileAeadAes256Gcm, 32
	}
	return srtp.CreateContext(c.Key[:kl], c.Key[kl:], p)
}

// devSock is one of the load tool's device sockets. It is a raw non-blocking
// descriptor outside Go's netpoller and nobody ever sleeps on it: the loop
// polls it. A sleeping receiver would make every packet the relay sends
// wake it (a cross-CPU interrupt, paid on the relay's core) and would add
// the tool's own scheduling delays to the measured latency.
type devSock struct {
	fd   int
	port int

	msgs [rxBatch]mmsghdr
	iov  [rxBatch]unix.Iovec
	bufs [rxBatch][256]byte
	ctl  [rxBatch][64]byte
}

const rxBatch = 64

func openDevSock() (*devSock, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	d := &devSock{fd: fd}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		d.close()
		return nil, fmt.Errorf("bind: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	// The kernel stamps each datagram as it is queued to the socket, which
	// on loopback is the moment the relay sent it.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		d.close()
		return nil, fmt.Errorf("SO_TIMESTAMPNS: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		d.close()
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	d.port = sa.(*unix.SockaddrInet4).Port
	for j := range rxBatch {
		d.iov[j].Base = &d.bufs[j][0]
		d.iov[j].SetLen(len(d.bufs[j]))
		d.msgs[j].hdr.Iov = &d.iov[j]
		d.msgs[j].hdr.SetIovlen(1)
		d.msgs[j].hdr.Control = &d.ctl[j][0]
	}
	return d, nil
}

func (d *devSock) close() { _ = unix.Close(d.fd) }

// recv takes what is queued (one batch) and hands each datagram with its
// kernel arrival time (Unix ns) to f.
func (d *devSock) recv(f func(p []byte, at int64)) int {
	for j := range rxBatch {
		d.msgs[j].hdr.SetControllen(len(d.ctl[j]))
	}
	n, e := recvmmsg(uintptr(d.fd), d.msgs[:])
	if e != 0 || n <= 0 {
		return 0
	}
	for j := range n {
		f(d.bufs[j][:d.msgs[j].n], rxStamp(&d.msgs[j].hdr, &d.ctl[j]))
	}
	return n
}

// rxStamp reads the SCM_TIMESTAMPNS control message, 0 if there is none.
func rxStamp(h *unix.Msghdr, ctl *[64]byte) int64 {
	hl := unix.CmsgLen(0)
	if int(h.Controllen) < hl+16 {
		return 0
	}
	c := (*unix.Cmsghdr)(unsafe.Pointer(&ctl[0]))
	if c.Level != unix.SOL_SOCKET || c.Type != unix.SCM_TIMESTAMPNS {
		return 0
	}
	sec := int64(binary.NativeEndian.Uint64(ctl[hl:]))
	nsec := int64(binary.NativeEndian.Uint64(ctl[hl+8:]))
	return sec*1e9 + nsec
}

// runStep sets up n calls on t, streams 20 ms SRTP both ways on every leg
// for dur, and measures loss, latency and CPU.
func runStep(t target, n, slots int, dur, warmup time.Duration, relayPID int, tag string) (res stepResult, err error) {
	res = stepResult{Calls: n}
	var socks [2][numSocks]*devSock
	var ports [2][numSocks]int
	for side := range 2 {
		for k := range numSocks {
			d, err := openDevSock()
			if err != nil {
				return res, err
			}
			defer d.close()
			socks[side][k] = d
			ports[side][k] = d.port
		}
	}

	legs := make([][2]legDev, n)
	setupStart := time.Now()
	calls, err := t.setup(n, &ports, tag)
	defer func() { res.TeardownErr = t.teardown() }()
	if err != nil {
		return res, err
	}
	for i := range n {
		c := calls[i]
		if string(c[0].relay.Key) == string(c[1].own.Key) || string(c[1].relay.Key) == string(c[0].own.Key) {
			return res, fmt.Errorf("relay passed a device key through: not re-encrypting")
		}
		for side := range 2 {
			l := &legs[i][side]
			l.sock = i % numSocks
			l.dst = sockaddr4(c[side].dst)
			if l.tx, err = ctxOf(c[side].own); err != nil {
				return res, err
			}
			if l.rx, err = ctxOf(c[side].relay); err != nil {
				return res, err
			}
			l.ssrc = ssrcBase + uint32(i*2+side)
			l.seq = uint16(i * 7)
			binary.BigEndian.PutUint16(l.plain[0:], 0x8000) // V=2, PT 0
			binary.BigEndian.PutUint32(l.plain[8:], l.ssrc)
			for j := 12; j < len(l.plain); j++ {
				l.plain[j] = 0xff // PCMU silence
			}
		}
	}
	res.SetupTime = time.Since(setupStart)
	time.Sleep(200 * time.Millisecond)

	// One thread does everything from here: it sends each 1 ms tick's
	// packets and in between polls every device socket.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	sendAt := make([]int64, 2*n*64) // Unix ns, by sender leg and seq%64
	var series []int64              // worst latency per 10 ms of send time
	if seriesFile != "" {
		series = make([]int64, int((warmup+dur)/(10*time.Millisecond))+1)
	}
	baseNS := time.Now().UnixNano()
	var baseMono unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &baseMono)
	// Latency counts from the end of the warm-up, over which the calls'
	// media starts one after the other: started all within one 20 ms,
	// every call's first packets would make the relay derive all the
	// session keys at once, a burst calls starting over time do not make.
	measureFrom := baseNS + int64(warmup)
	hist := make([]uint32, histN+1)
	var recv, vOK, vBad uint64
	var dec [256]byte
	var hdr rtp.Header
	onRecv := func(p []byte, at int64) {
		if len(p) < 12 {
			return
		}
		idx := int(binary.BigEndian.Uint32(p[8:]) - ssrcBase)
		if idx < 0 || idx >= 2*n {
			return
		}
		// The packet came back on the other side: idx is the sender's leg.
		seq := binary.BigEndian.Uint16(p[2:])
		sent := sendAt[idx*64+int(seq&63)]
		recv++
		if sent >= measureFrom && at > 0 {
			b := max(0, (at-sent)/int64(histRes))
			hist[min(b, histN)]++
			if series != nil {
				if w := int((sent - baseNS) / int64(10*time.Millisecond)); w >= 0 && w < len(series) && at-sent > series[w] {
					series[w] = at - sent
				}
			}
		}
		if idx/2 == 0 {
			// Call 0: check that the relay's key really decrypts it.
			if _, err := legs[0][1-idx%2].rx.DecryptRTP(dec[:0], p, &hdr); err == nil {
				vOK++
			} else {
				vBad++
			}
		}
	}
	poll := func() {
		for side := range 2 {
			for k := range numSocks {
				for socks[side][k].recv(onRecv) == rxBatch {
				}
			}
		}
	}

	// Pacer: the 20 ms packet interval is cut into slots ticks; calls with
	// i%slots == tick%slots send on both legs.
	type out struct {
		msgs []mmsghdr
		iov  []unix.Iovec
		bufs [][]byte
		idx  []int32
	}
	var outs [2][numSocks]*out
	for side := range 2 {
		for k := range numSocks {
			m := n/numSocks + 2
			o := &out{msgs: make([]mmsghdr, m), iov: make([]unix.Iovec, m), bufs: make([][]byte, m), idx: make([]int32, m)}
			for j := range m {
				o.bufs[j] = make([]byte, 256)
				o.iov[j].Base = &o.bufs[j][0]
				o.msgs[j].hdr.Iov = &o.iov[j]
				o.msgs[j].hdr.SetIovlen(1)
			}
			outs[side][k] = o
		}
	}
	var cpu0, load0 float64
	var wall0 time.Time
	tickDur := pktEvery / time.Duration(slots)
	warmTicks := int(warmup / tickDur)
	base := time.Now()
	ticks := warmTicks + int(dur/tickDur)
	var sent, sendErrs uint64
	fill := make([]int, 2*numSocks)
	for tick := 0; tick < ticks; tick++ {
		due := base.Add(time.Duration(tick) * tickDur)
		for time.Now().Before(due) {
			poll()
		}
		if time.Since(due) > 2*time.Millisecond {
			res.LateTicks++
		}
		if tick == warmTicks {
			// CPU is measured over the same window as latency.
			cpu0, load0, wall0 = procCPU(relayPID), procCPU(0), time.Now()
			res.MinFaults, res.MajFaults = procFaults(relayPID)
		}
		clear(fill)
		for i := tick % slots; i < n; i += slots {
			if tick < warmTicks*i/n {
				// Calls join over the warm-up, as calls do over time,
				// rather than all in one 20 ms.
				continue
			}
			for side := range 2 {
				l := &legs[i][side]
				l.seq++
				binary.BigEndian.PutUint16(l.plain[2:], l.seq)
				binary.BigEndian.PutUint32(l.plain[4:], uint32(l.seq)*payloadLen)
				o := outs[side][l.sock]
				f := fill[side*numSocks+l.sock]
				enc, err := l.tx.EncryptRTP(o.bufs[f][:0], l.plain[:], &l.hdr)
				if err != nil {
					continue
				}
				o.iov[f].SetLen(len(enc))
				o.msgs[f].hdr.Name = &l.dst[0]
				o.msgs[f].hdr.Namelen = unix.SizeofSockaddrInet4
				o.idx[f] = int32((i*2+side)*64 + int(l.seq&63))
				fill[side*numSocks+l.sock] = f + 1
			}
		}
		for side := range 2 {
			for k := range numSocks {
				o, f := outs[side][k], fill[side*numSocks+k]
				if f == 0 {
					continue
				}
				now := time.Now().UnixNano()
				for j := 0; j < f; j++ {
					sendAt[o.idx[j]] = now
				}
				for s := 0; s < f; {
					k2, e := sendmmsg(uintptr(socks[side][k].fd), o.msgs[s:f])
					if e != 0 || k2 <= 0 {
						sendErrs += uint64(f - s)
						break
					}
					s += k2
					sent += uint64(k2)
				}
			}
		}
		poll()
	}
	wall := time.Since(wall0).Seconds()
	res.RelayCPU = (procCPU(relayPID) - cpu0) / wall
	res.LoadCPU = (procCPU(0) - load0) / wall
	res.RelayRSSKB = procRSS(relayPID)
	minf, majf := procFaults(relayPID)
	res.MinFaults, res.MajFaults = minf-res.MinFaults, majf-res.MajFaults
	// Stragglers: anything later than this is lost anyway.
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
		poll()
	}
	res.Sent, res.Recv, res.SendErrs = sent, recv, sendErrs
	res.VerifyOK, res.VerifyBad = vOK, vBad
	var cnt uint64
	for _, v := range hist {
		cnt += uint64(v)
	}
	pct := func(q float64) time.Duration {
		want := uint64(q * float64(cnt))
		var c uint64
		for b, v := range hist {
			c += uint64(v)
			if c > want {
				return time.Duration(b) * histRes
			}
		}
		return histN * histRes
	}
	res.P50, res.P99, res.Max = pct(0.50), pct(0.99), pct(0.99999)
	if series != nil {
		writeSeries(fmt.Sprintf("%s.%s-%d", seriesFile, tag, n), series, baseMono.Nano())
	}
	return res, nil
}

// seriesFile, when set (-series), receives per step the worst latency of
// each 10 ms of the streaming window, to tell stalls from queueing.
var seriesFile string

func writeSeries(path string, s []int64, baseMono int64) {
	// The monotonic start lets the series be lined up with a trace taken
	// with "perf record -k CLOCK_MONOTONIC".
	b := fmt.Appendf(nil, "# start CLOCK_MONOTONIC %.6f s\n", float64(baseMono)/1e9)
	for w, v := range s {
		b = fmt.Appendf(b, "%d %.3f\n", w*10, float64(v)/1e6)
	}
	_ = os.WriteFile(path, b, 0o644)
}
