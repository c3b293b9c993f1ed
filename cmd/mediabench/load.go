package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/veilig/veilig/internal/media"
	"golang.org/x/sys/unix"
)

const (
	ssrcBase   = 0x10000000
	payloadLen = 160 // 20 ms of G.711
	pktSlots   = 20  // calls are spread over the 20 ms packet interval, 1 ms apart
	histRes    = 10 * time.Microsecond
	histN      = 20000 // 200 ms
	numSocks   = 7     // local sockets per side (coprime with pktSlots)
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

// runStep sets up n calls on t, streams 20 ms SRTP both ways on every leg
// for dur, and measures loss, latency and CPU.
func runStep(t target, n int, dur time.Duration, relayPID int, tag string) (res stepResult, err error) {
	res = stepResult{Calls: n}
	var socks [2][numSocks]*net.UDPConn
	var ports [2][numSocks]int
	for side := range 2 {
		for k := range numSocks {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				return res, err
			}
			_ = c.SetReadBuffer(4 << 20)
			_ = c.SetWriteBuffer(4 << 20)
			if rc, err := c.SyscallConn(); err == nil {
				_ = rc.Control(func(fd uintptr) {
					_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
				})
			}
			defer c.Close()
			socks[side][k] = c
			ports[side][k] = c.LocalAddr().(*net.UDPAddr).Port
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

	sendAt := make([]atomic.Int64, 2*n*64)
	base := time.Now()
	mono := func() int64 { return int64(time.Since(base)) }

	// Receivers: one goroutine per local socket, recvmmsg batches.
	var wg sync.WaitGroup
	hists := make([][]uint32, 2*numSocks)
	var recv, vOK, vBad atomic.Uint64
	for side := range 2 {
		for k := range numSocks {
			h := make([]uint32, histN+1)
			hists[side*numSocks+k] = h
			wg.Add(1)
			go func(c *net.UDPConn, verify bool) {
				defer wg.Done()
				rc, err := c.SyscallConn()
				if err != nil {
					return
				}
				const B = 64
				var bufs [B][256]byte
				var iov [B]unix.Iovec
				var msgs [B]mmsghdr
				for j := range B {
					iov[j].Base = &bufs[j][0]
					iov[j].SetLen(len(bufs[j]))
					msgs[j].hdr.Iov = &iov[j]
					msgs[j].hdr.SetIovlen(1)
				}
				var dec [256]byte
				var hdr rtp.Header
				var got int
				var errno unix.Errno
				read := func(fd uintptr) bool {
					got, errno = recvmmsg(fd, msgs[:])
					return errno != unix.EAGAIN
				}
				for {
					if err := rc.Read(read); err != nil || errno != 0 {
						return
					}
					now := mono()
					for j := 0; j < got; j++ {
						p := bufs[j][:msgs[j].n]
						if len(p) < 12 {
							continue
						}
						idx := int(binary.BigEndian.Uint32(p[8:]) - ssrcBase)
						if idx < 0 || idx >= 2*n {
							continue
						}
						// The packet came back on the other side: idx is
						// the sender's leg.
						seq := binary.BigEndian.Uint16(p[2:])
						at := sendAt[idx*64+int(seq&63)].Load()
						recv.Add(1)
						if at > 0 {
							b := (now - at) / int64(histRes)
							if b > histN {
								b = histN
							}
							h[b]++
						}
						if verify && idx/2 == 0 {
							recvLeg := &legs[0][1-idx%2]
							if _, err := recvLeg.rx.DecryptRTP(dec[:0], p, &hdr); err == nil {
								vOK.Add(1)
							} else {
								vBad.Add(1)
							}
						}
					}
				}
			}(socks[side][k], k == 0)
		}
	}

	// Pacer: 1 ms ticks; calls with i%20 == tick%20 send on both legs.
	type out struct {
		msgs []mmsghdr
		iov  []unix.Iovec
		bufs [][]byte
		idx  []int32
		fd   uintptr
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
			rc, _ := socks[side][k].SyscallConn()
			_ = rc.Control(func(fd uintptr) { o.fd = fd })
			outs[side][k] = o
		}
	}
	cpu0, load0 := procCPU(relayPID), procCPU(0)
	wall0 := time.Now()
	ticks := int(dur / time.Millisecond)
	var sent, sendErrs uint64
	fill := make([]int, 2*numSocks)
	for tick := 0; tick < ticks; tick++ {
		due := base.Add(time.Duration(tick) * time.Millisecond)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		} else if d < -2*time.Millisecond {
			res.LateTicks++
		}
		for j := range fill {
			fill[j] = 0
		}
		for i := tick % pktSlots; i < n; i += pktSlots {
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
				now := mono()
				for j := 0; j < f; j++ {
					sendAt[o.idx[j]].Store(now)
				}
				for s := 0; s < f; {
					k2, e := sendmmsg(o.fd, o.msgs[s:f])
					if e != 0 || k2 <= 0 {
						sendErrs += uint64(f - s)
						break
					}
					s += k2
					sent += uint64(k2)
				}
			}
		}
	}
	wall := time.Since(wall0).Seconds()
	res.RelayCPU = (procCPU(relayPID) - cpu0) / wall
	res.LoadCPU = (procCPU(0) - load0) / wall
	res.RelayRSSKB = procRSS(relayPID)
	time.Sleep(300 * time.Millisecond)
	for side := range 2 {
		for k := range numSocks {
			socks[side][k].Close()
		}
	}
	wg.Wait()
	res.Sent, res.Recv, res.SendErrs = sent, recv.Load(), sendErrs
	res.VerifyOK, res.VerifyBad = vOK.Load(), vBad.Load()
	total := make([]uint64, histN+1)
	var cnt uint64
	for _, h := range hists {
		for b, v := range h {
			total[b] += uint64(v)
			cnt += uint64(v)
		}
	}
	pct := func(q float64) time.Duration {
		want := uint64(q * float64(cnt))
		var c uint64
		for b, v := range total {
			c += v
			if c > want {
				return time.Duration(b) * histRes
			}
		}
		return histN * histRes
	}
	res.P50, res.P99, res.Max = pct(0.50), pct(0.99), pct(0.99999)
	return res, nil
}
