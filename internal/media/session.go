//go:build linux

package media

import (
	"fmt"
	"net/netip"
	"sync"
	"time"
	"unsafe"

	"github.com/pion/srtp/v3"
)

// LegID names one side of a call.
type LegID int

// The two legs: A faces the caller, B the callee (by convention only).
const (
	LegA LegID = 0
	LegB LegID = 1
)

func (id LegID) String() string {
	if id == LegA {
		return "A"
	}
	return "B"
}

// Session is one relayed call. All its mutable state is guarded by the mutex
// of the worker that serves it.
type Session struct {
	// The fields every packet touches come first, in one cache line: a
	// busy relay serves thousands of sessions and misses the cache on most.
	legs [2]*Leg
	// Guarded by sh.mu.
	last     int64 // worker clock of the last authenticated packet
	closed   bool
	armed    bool // media timeout runs (both legs negotiated)
	hold     bool // a re-INVITE put the call on hold: no timeout
	timedOut bool

	r       *Relay
	sh      *shard
	callID  string
	created time.Time

	sdpMu sync.Mutex // serialises RewriteOffer/RewriteAnswer
	sdp   sdpState
}

// CallID is the identifier given to NewSession.
func (s *Session) CallID() string { return s.callID }

// Leg returns leg id (LegA or LegB).
func (s *Session) Leg(id LegID) *Leg { return s.legs[id&1] }

// A is the caller's leg.
func (s *Session) A() *Leg { return s.legs[LegA] }

// B is the callee's leg.
func (s *Session) B() *Leg { return s.legs[LegB] }

// Arm starts the media timeout clock; the SDP helpers call it once both legs
// have negotiated media, so that ringing is not mistaken for dead media.
func (s *Session) Arm() {
	s.sh.mu.Lock()
	if !s.armed {
		s.armed = true
		s.last = s.sh.now()
	}
	s.sh.mu.Unlock()
}

// SetHold suspends (true) or resumes the media timeout; many devices send
// nothing while on hold.
func (s *Session) SetHold(hold bool) {
	s.sh.mu.Lock()
	s.hold = hold
	s.last = s.sh.now()
	s.sh.mu.Unlock()
}

// Close releases both legs' ports. It is idempotent.
func (s *Session) Close() error {
	s.sh.mu.Lock()
	if s.closed {
		s.sh.mu.Unlock()
		return nil
	}
	s.closed = true
	delete(s.sh.sessions, s)
	for _, l := range s.legs {
		s.sh.unregisterLeg(l)
	}
	s.sh.mu.Unlock()
	s.r.sessions.Add(-1)
	return nil
}

// SessionStats is the per-call media record.
type SessionStats struct {
	CallID string
	A, B   LegStats
	// Idle is the time since the last authenticated packet on either leg.
	Idle time.Duration
	// ClearOnNetwork is true when audio crossed any hop unencrypted.
	ClearOnNetwork bool
	// MemoryBytes estimates the relay's heap for this call (the kernel's
	// socket buffers are extra and only used by queued packets).
	MemoryBytes int
}

// Stats snapshots the call's counters.
func (s *Session) Stats() SessionStats {
	s.sh.mu.Lock()
	defer s.sh.mu.Unlock()
	st := SessionStats{
		CallID: s.callID,
		A:      s.legs[0].statsLocked(),
		B:      s.legs[1].statsLocked(),
		Idle:   time.Duration(s.sh.now() - s.last),
	}
	st.ClearOnNetwork = st.A.ClearOnNetwork || st.B.ClearOnNetwork
	st.MemoryBytes = int(unsafe.Sizeof(Session{})) + 2*int(unsafe.Sizeof(Leg{})) + s.legs[0].ctxBytes() + s.legs[1].ctxBytes()
	return st
}

// Leg is one side of a call: the relay's port(s) facing one device.
type Leg struct {
	// The forward path reads the fields up to st, so they come first.
	sess *Session
	peer *Leg // the other leg of the call
	id   LegID

	// Guarded by sess.sh.mu.
	rtp, rtcp *sock
	plain     bool
	mux       bool
	// txKey and rxKey say local and remote are installed; tx and rx are
	// their contexts, built by the worker at the first packet that needs
	// them. Deriving session keys costs more than the rest of call set-up,
	// and many calls end before any media flows.
	txKey, rxKey bool
	ptMapped     bool
	tx, rx       *srtp.Context
	// knownSSRC was authenticated by knownCtx: a packet with it needs no
	// lookup in pion's per-SSRC state to be counted against maxSSRCs.
	knownSSRC uint32
	knownCtx  *srtp.Context
	ssrcs     int            // SSRCs seen, bounds pion's per-SSRC state
	dstRTP    sockaddr       // where RTP (and muxed RTCP) goes now
	dstRTCP   sockaddr       // where RTCP goes when not muxed
	latRTP    netip.AddrPort // learned from an authenticated packet
	latRTCP   netip.AddrPort
	st        legCounters

	port     int // even port: RTP + muxed RTCP
	rtcpPort int // separate RTCP port when bound: port+1, or rtcpPair
	rtcpPair int // base of an extra pair taken when port+1 was busy

	allowPlain bool
	local      Crypto         // Veilig's key: encrypts towards the device
	remote     Crypto         // the device's key: authenticates what it sends
	offered    []Crypto       // Veilig's keys offered to this device, awaiting its answer
	hintRTP    netip.AddrPort // from SDP: a hint, never proof
	hintRTCP   netip.AddrPort
	direction  string // last negotiated a=sendrecv etc. from this device
	burstStart int64
	burstN     uint32
	injAt      int64
	injSent    bool
	// ptOut, when ptMapped, renumbers the payload type of RTP sent to
	// this device: the two devices may number the same codec differently
	// (RFC 3264 only says SHOULD keep the offer's numbers), and the relay
	// does not transcode, so it only rewrites the number.
	ptOut [128]uint8
}

type legCounters struct {
	packetsIn, packetsOut, bytesIn, bytesOut uint64
	rtcpIn, rtcpOut                          uint64
	dropAuth, dropReplay, dropForeign        uint64
	dropMalformed, dropNoPeer, dropNoKey     uint64
	sendErrors, latchMoves                   uint64
}

// ID is LegA or LegB.
func (l *Leg) ID() LegID { return l.id }

// Port is the relay's RTP port for this leg (RTCP too when muxed).
func (l *Leg) Port() int { return l.port }

// RTCPPort binds the leg's separate RTCP port if it is not bound yet and
// returns it: Port()+1 when free (devices that ignore a=rtcp assume it),
// else the even port of another pair (announced with a=rtcp). Call it when
// the device does not do rtcp-mux, or when offering mux to a device that
// may refuse it.
func (l *Leg) RTCPPort() (int, error) {
	sh := l.sess.sh
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if l.sess.closed {
		return 0, ErrClosed
	}
	if l.rtcp != nil {
		return l.rtcpPort, nil
	}
	r := l.sess.r
	port, pair := l.port+1, 0
	fd, err := openUDP(r.opt.Address, port, r.v6)
	if err != nil {
		if pair, fd, err = r.bindPair(); err != nil {
			return 0, fmt.Errorf("media: leg %s RTCP port: %w", l.id, err)
		}
		port = pair
	}
	l.rtcp, err = sh.register(fd, l, true)
	if err != nil {
		closeFD(fd)
		if pair != 0 {
			r.pool.put(pair)
		}
		return 0, fmt.Errorf("media: leg %s RTCP port: %w", l.id, err)
	}
	l.rtcpPort, l.rtcpPair = port, pair
	return port, nil
}

// ReleaseRTCPPort closes the separate RTCP port once the device has agreed
// to rtcp-mux.
func (l *Leg) ReleaseRTCPPort() {
	sh := l.sess.sh
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.releaseRTCP(l)
}

// SetRemote records where the device said (in SDP) it receives RTP and
// RTCP; rtcp zero or equal to rtp means rtcp-mux. This is only where the
// relay sends until the device's first authenticated packet shows its real
// address; it is never used to accept packets. A changed address (a
// re-INVITE that moves the device) forgets the learned address, so the leg
// re-learns it from the first authenticated packet from the new place.
func (l *Leg) SetRemote(rtp, rtcp netip.AddrPort) {
	rtp = unmapAP(rtp)
	rtcp = unmapAP(rtcp)
	sh := l.sess.sh
	sh.mu.Lock()
	defer sh.mu.Unlock()
	mux := !rtcp.IsValid() || rtcp == rtp
	if rtp != l.hintRTP {
		l.latRTP = netip.AddrPort{}
		l.latRTCP = netip.AddrPort{}
	}
	l.hintRTP, l.mux = rtp, mux
	if mux {
		l.hintRTCP = netip.AddrPort{}
	} else {
		if rtcp != l.hintRTCP {
			l.latRTCP = netip.AddrPort{}
		}
		l.hintRTCP = rtcp
	}
	l.refreshDst()
}

// SetAllowPlain permits plain RTP on this leg. Only a peer configured for it
// (a trunk) may be allowed; extensions never are.
func (l *Leg) SetAllowPlain(allow bool) {
	l.sess.sh.mu.Lock()
	l.allowPlain = allow
	l.sess.sh.mu.Unlock()
}

// SetPlain switches the leg to plain RTP. It fails unless SetAllowPlain(true).
// Plain packets cannot be authenticated, so they are accepted only from the
// IP address given by SetRemote.
func (l *Leg) SetPlain() error {
	sh := l.sess.sh
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if !l.allowPlain {
		return ErrPlainNotAllowed
	}
	l.plain = true
	l.tx, l.rx, l.txKey, l.rxKey = nil, nil, false, false
	l.local, l.remote = Crypto{}, Crypto{}
	return nil
}

// SetCrypto installs Veilig's key for this leg (local: encrypts what the
// relay sends to the device) and the device's key (remote: authenticates and
// decrypts what it sends). Installing the same keys again (hold, resume, a
// re-INVITE without rekey) keeps the SRTP state, including the rollover
// counter; a new key starts fresh contexts.
func (l *Leg) SetCrypto(local, remote Crypto) error {
	if local.Suite != remote.Suite {
		return fmt.Errorf("media: leg %s: local suite %s differs from remote %s", l.id, local.Suite, remote.Suite)
	}
	if err := local.check(); err != nil {
		return fmt.Errorf("media: leg %s local key: %w", l.id, err)
	}
	if err := remote.check(); err != nil {
		return fmt.Errorf("media: leg %s remote key: %w", l.id, err)
	}
	sh := l.sess.sh
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if l.sess.closed {
		return ErrClosed
	}
	l.plain = false
	if !l.txKey || !l.local.Equal(local) {
		l.tx, l.local, l.txKey = nil, clone(local), true
	}
	if !l.rxKey || !l.remote.Equal(remote) {
		l.rx, l.remote, l.rxKey = nil, clone(remote), true
		l.ssrcs = 0
	}
	return nil
}

// LocalCrypto returns Veilig's installed key for this leg, if any.
func (l *Leg) LocalCrypto() (Crypto, bool) {
	l.sess.sh.mu.Lock()
	defer l.sess.sh.mu.Unlock()
	return clone(l.local), l.txKey
}

func clone(c Crypto) Crypto {
	c.Key = append([]byte(nil), c.Key...)
	if c.MKI != nil {
		c.MKI = append([]byte(nil), c.MKI...)
	}
	return c
}

// LegStats is the per-leg media record.
type LegStats struct {
	Leg           LegID
	LocalPort     int
	LocalRTCPPort int // 0 when muxed
	// Suite is the protection used on this hop: an SRTP suite, SuitePlain, or
	// "" before negotiation.
	Suite Suite
	// ClearOnNetwork is true when this hop carries plain RTP.
	ClearOnNetwork bool
	// Remote is where the relay sends RTP now; Latched says whether it was
	// learned from an authenticated packet (else it is the SDP address).
	Remote, RemoteRTCP netip.AddrPort
	Latched            bool
	Mux                bool

	PacketsIn, PacketsOut, BytesIn, BytesOut uint64
	RTCPIn, RTCPOut                          uint64
	// DroppedUnauthenticated counts packets failing SRTP/SRTCP
	// authentication: forged, from the wrong key, or injected.
	DroppedUnauthenticated uint64
	// DroppedReplay counts packets rejected by the replay window.
	DroppedReplay uint64
	// DroppedForeign counts plain-RTP packets from an address other than
	// the signalled one.
	DroppedForeign   uint64
	DroppedMalformed uint64
	// DroppedNoPeer counts authenticated packets that had nowhere to go yet
	// (the other leg not negotiated).
	DroppedNoPeer uint64
	// DroppedNoKey counts packets that arrived before this leg had keys.
	DroppedNoKey uint64
	SendErrors   uint64
	LatchMoves   uint64
}

// Stats snapshots this leg's counters.
func (l *Leg) Stats() LegStats {
	l.sess.sh.mu.Lock()
	defer l.sess.sh.mu.Unlock()
	return l.statsLocked()
}

// setPTMap installs the payload-type renumbering for RTP sent to this
// device (indexed by the number the other device uses); nil is identity.
func (l *Leg) setPTMap(m map[uint8]uint8) {
	sh := l.sess.sh
	sh.mu.Lock()
	defer sh.mu.Unlock()
	l.ptMapped = len(m) > 0
	for i := range l.ptOut {
		l.ptOut[i] = uint8(i)
	}
	for from, to := range m {
		l.ptOut[from&0x7f] = to & 0x7f
	}
}

func (l *Leg) statsLocked() LegStats {
	s := LegStats{
		Leg: l.id, LocalPort: l.port, Mux: l.mux,
		PacketsIn: l.st.packetsIn, PacketsOut: l.st.packetsOut, BytesIn: l.st.bytesIn, BytesOut: l.st.bytesOut,
		RTCPIn: l.st.rtcpIn, RTCPOut: l.st.rtcpOut,
		DroppedUnauthenticated: l.st.dropAuth, DroppedReplay: l.st.dropReplay, DroppedForeign: l.st.dropForeign,
		DroppedMalformed: l.st.dropMalformed, DroppedNoPeer: l.st.dropNoPeer, DroppedNoKey: l.st.dropNoKey,
		SendErrors: l.st.sendErrors, LatchMoves: l.st.latchMoves,
	}
	if l.rtcp != nil {
		s.LocalRTCPPort = l.rtcpPort
	}
	switch {
	case l.plain:
		s.Suite, s.ClearOnNetwork = SuitePlain, true
	case l.txKey:
		s.Suite = l.local.Suite
	}
	s.Remote, s.Latched = l.hintRTP, l.latRTP.IsValid()
	if s.Latched {
		s.Remote = l.latRTP
	}
	s.RemoteRTCP = l.hintRTCP
	if l.latRTCP.IsValid() {
		s.RemoteRTCP = l.latRTCP
	}
	return s
}

// ctxBytes estimates the heap held by the leg's SRTP contexts: pion keeps a
// cipher per context and a replay window per SSRC.
func (l *Leg) ctxBytes() int {
	n := 0
	if l.txKey {
		n += 1500
	}
	if l.rxKey {
		n += 1500 + 200*l.ssrcs
	}
	return n
}

// refreshDst recomputes the send addresses: learned if authenticated, else
// the SDP hint.
func (l *Leg) refreshDst() {
	v6 := l.sess.r.v6
	rtp := l.hintRTP
	if l.latRTP.IsValid() {
		rtp = l.latRTP
	}
	l.dstRTP.set(rtp, v6)
	rtcp := l.hintRTCP
	if l.latRTCP.IsValid() {
		rtcp = l.latRTCP
	}
	if l.mux || !rtcp.IsValid() {
		rtcp = rtp
	}
	l.dstRTCP.set(rtcp, v6)
}

func unmapAP(ap netip.AddrPort) netip.AddrPort {
	if !ap.IsValid() {
		return ap
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
