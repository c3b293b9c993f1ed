//go:build linux

package media

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// testRelay starts a relay on 127.0.0.1 with a port range private to the
// test process.
func testRelay(t *testing.T, opt Options) (*Relay, chan Event) {
	t.Helper()
	evs := make(chan Event, 256)
	opt.Address = netip.MustParseAddr("127.0.0.1")
	if opt.PortMin == 0 {
		base := 20000 + (os.Getpid()%200)*100
		opt.PortMin, opt.PortMax = base, base+99
	}
	opt.OnEvent = func(e Event) {
		select {
		case evs <- e:
		default:
		}
	}
	r, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r, evs
}

// device is a pion/srtp endpoint standing in for a phone.
type device struct {
	t     testing.TB
	conn  *net.UDPConn
	own   Crypto        // the device's key (it encrypts with it)
	tx    *srtp.Context // own
	rx    *srtp.Context // Veilig's key for this leg
	relay netip.AddrPort
	ssrc  uint32
	seq   uint16
	sent  [][]byte
}

func newDevice(t testing.TB, ip string, s Suite) *device {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	own, err := NewCrypto(1, s)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := own.context()
	if err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &device{t: t, conn: c, own: own, tx: tx, ssrc: uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), seq: 1000}
}

func (d *device) addr() netip.AddrPort { return d.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// join attaches the device to leg l: Veilig's fresh key for the leg, the
// device's key, and the device's address as the SDP hint.
func (d *device) join(l *Leg, s Suite) {
	d.t.Helper()
	local, err := NewCrypto(1, s)
	if err != nil {
		d.t.Fatal(err)
	}
	if err := l.SetCrypto(local, d.own); err != nil {
		d.t.Fatal(err)
	}
	if d.rx, err = local.context(); err != nil {
		d.t.Fatal(err)
	}
	l.SetRemote(d.addr(), netip.AddrPort{})
	d.relay = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(l.Port()))
}

func payloadFor(ssrc uint32, seq uint16) []byte {
	p := make([]byte, 160)
	for i := range p {
		p[i] = byte(uint32(i)*31 + ssrc + uint32(seq)*7)
	}
	return p
}

func (d *device) packet(pt uint8, marker bool, payload []byte) []byte {
	d.t.Helper()
	d.seq++
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, Marker: marker, SequenceNumber: d.seq,
		Timestamp: uint32(d.seq) * 160, SSRC: d.ssrc}, Payload: payload}
	raw, err := p.Marshal()
	if err != nil {
		d.t.Fatal(err)
	}
	enc, err := d.tx.EncryptRTP(nil, raw, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	d.sent = append(d.sent, enc)
	return enc
}

func (d *device) send(n int) {
	d.t.Helper()
	for range n {
		d.write(d.packet(0, false, payloadFor(d.ssrc, d.seq+1)))
	}
}

func (d *device) write(b []byte) {
	d.t.Helper()
	if _, err := d.conn.WriteToUDPAddrPort(b, d.relay); err != nil {
		d.t.Fatal(err)
	}
}

// recv returns decrypted RTP packets until none arrives for wait.
func (d *device) recv(wait time.Duration) []rtp.Packet {
	d.t.Helper()
	var out []rtp.Packet
	buf := make([]byte, 2048)
	for {
		_ = d.conn.SetReadDeadline(time.Now().Add(wait))
		n, _, err := d.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return out
		}
		dec, err := d.rx.DecryptRTP(nil, buf[:n], nil)
		if err != nil {
			d.t.Errorf("device could not decrypt relayed packet: %v", err)
			continue
		}
		var p rtp.Packet
		if err := p.Unmarshal(dec); err != nil {
			d.t.Fatal(err)
		}
		out = append(out, p)
	}
}

func call(t *testing.T, r *Relay, sa, sb Suite) (*Session, *device, *device) {
	t.Helper()
	s, err := r.NewSession("call-" + t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	a, b := newDevice(t, "127.0.0.1", sa), newDevice(t, "127.0.0.1", sb)
	a.join(s.A(), sa)
	b.join(s.B(), sb)
	return s, a, b
}

func checkPayloads(t *testing.T, got []rtp.Packet, from *device, want int) {
	t.Helper()
	if len(got) != want {
		t.Fatalf("received %d packets, want %d", len(got), want)
	}
	for _, p := range got {
		if p.SSRC != from.ssrc || !bytes.Equal(p.Payload, payloadFor(p.SSRC, p.SequenceNumber)) {
			t.Fatalf("payload/SSRC mismatch at seq %d", p.SequenceNumber)
		}
	}
}

// TestRoundTripDifferentSuites runs on both socket paths: the io_uring one
// (where the kernel has it) and per-socket recvmmsg/sendmmsg.
func TestRoundTripDifferentSuites(t *testing.T) {
	for _, noURing := range []bool{false, true} {
		name := "uring"
		if noURing {
			name = "mmsg"
		}
		t.Run(name, func(t *testing.T) { roundTripDifferentSuites(t, noURing) })
	}
}

func roundTripDifferentSuites(t *testing.T, noURing bool) {
	r, _ := testRelay(t, Options{NoURing: noURing})
	for _, tc := range [][2]Suite{
		{SuiteAES128SHA1_80, SuiteAEADAES128GCM},
		{SuiteAES128SHA1_32, SuiteAEADAES256GCM},
		{SuiteAES128SHA1_80, SuiteAES128SHA1_32},
	} {
		s, a, b := call(t, r, tc[0], tc[1])
		a.send(50)
		checkPayloads(t, b.recv(200*time.Millisecond), a, 50)
		b.send(50)
		checkPayloads(t, a.recv(200*time.Millisecond), b, 50)
		st := s.Stats()
		if st.A.Suite != tc[0] || st.B.Suite != tc[1] || st.ClearOnNetwork {
			t.Fatalf("stats suites %s/%s clear=%v", st.A.Suite, st.B.Suite, st.ClearOnNetwork)
		}
		if st.A.PacketsIn != 50 || st.B.PacketsOut != 50 || st.B.PacketsIn != 50 || st.A.PacketsOut != 50 {
			t.Fatalf("counters: %+v", st)
		}
		if !st.A.Latched || st.A.Remote != a.addr() {
			t.Fatalf("A not latched to %s: %+v", a.addr(), st.A)
		}
		s.Close()
	}
}

func TestRolloverWrap(t *testing.T) {
	r, _ := testRelay(t, Options{})
	_, a, b := call(t, r, SuiteAES128SHA1_80, SuiteAEADAES128GCM)
	a.seq = 65500
	var got []rtp.Packet
	for range 4 { // 200 packets, in bursts the socket buffers comfortably hold
		a.send(50)
		got = append(got, b.recv(100*time.Millisecond)...)
	}
	checkPayloads(t, got, a, 200)
	if last := got[len(got)-1].SequenceNumber; last != uint16(65500+200-65536) {
		t.Fatalf("last seq %d", last)
	}
	if roc, _ := b.rx.ROC(a.ssrc); roc != 1 {
		t.Fatalf("receiver ROC %d, want 1", roc)
	}
}

func TestInjectionFromOtherAddress(t *testing.T) {
	r, evs := testRelay(t, Options{InjectionBurst: 20})
	s, a, b := call(t, r, SuiteAES128SHA1_80, SuiteAES128SHA1_80)
	attacker := newDevice(t, "127.0.0.2", SuiteAES128SHA1_80)
	attacker.relay = a.relay

	// Before A sends anything (the RTP-bleed window): the attacker's packets
	// must not win the latch, so B's audio keeps going to A.
	attacker.ssrc = a.ssrc
	for range 30 {
		attacker.write(attacker.packet(0, false, payloadFor(a.ssrc, attacker.seq+1)))
	}
	b.send(10)
	checkPayloads(t, a.recv(200*time.Millisecond), b, 10)
	if n := len(b.recv(50 * time.Millisecond)); n != 0 {
		t.Fatalf("B received %d injected packets", n)
	}

	a.send(5)
	checkPayloads(t, b.recv(200*time.Millisecond), a, 5)
	// Valid-looking: A's SSRC, the next sequence numbers, random tag.
	for i := range 30 {
		p := append([]byte(nil), a.sent[len(a.sent)-1]...)
		p[2], p[3] = byte((a.seq+uint16(i)+1)>>8), byte(a.seq+uint16(i)+1)
		_, _ = rand.Read(p[12:])
		attacker.write(p)
	}
	if n := len(b.recv(100 * time.Millisecond)); n != 0 {
		t.Fatalf("B received %d injected packets", n)
	}
	st := s.A().Stats()
	if st.Remote != a.addr() || st.LatchMoves != 0 {
		t.Fatalf("latch moved to %s", st.Remote)
	}
	if st.DroppedUnauthenticated != 60 {
		t.Fatalf("dropped-unauthenticated %d, want 60", st.DroppedUnauthenticated)
	}
	b.send(3)
	checkPayloads(t, a.recv(200*time.Millisecond), b, 3)
	if n := len(attacker.rawRecv(50 * time.Millisecond)); n != 0 {
		t.Fatalf("attacker received %d packets", n)
	}
	select {
	case e := <-evs:
		if e.Kind != EventInjection || e.Leg != LegA || e.Source.Addr().String() != "127.0.0.2" {
			t.Fatalf("event %+v", e)
		}
	case <-time.After(time.Second):
		t.Fatal("no injection event")
	}
	select { // deduplicated: one event for the burst
	case e := <-evs:
		t.Fatalf("second event %+v", e)
	case <-time.After(100 * time.Millisecond):
	}
}

func (d *device) rawRecv(wait time.Duration) [][]byte {
	var out [][]byte
	buf := make([]byte, 2048)
	for {
		_ = d.conn.SetReadDeadline(time.Now().Add(wait))
		n, _, err := d.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return out
		}
		out = append(out, append([]byte(nil), buf[:n]...))
	}
}

func TestForgedAndReplayed(t *testing.T) {
	r, _ := testRelay(t, Options{})
	s, a, b := call(t, r, SuiteAEADAES128GCM, SuiteAES128SHA1_80)
	a.send(5)
	checkPayloads(t, b.recv(200*time.Millisecond), a, 5)

	// Forged SSRC and sequence from A's own address, with another key.
	forger := newDevice(t, "127.0.0.1", SuiteAEADAES128GCM)
	forger.ssrc, forger.seq = a.ssrc+1, a.seq+500
	for range 10 {
		a.write(forger.packet(0, false, payloadFor(forger.ssrc, forger.seq+1)))
	}
	forger.ssrc = a.ssrc
	for range 10 {
		a.write(forger.packet(0, false, payloadFor(forger.ssrc, forger.seq+1)))
	}
	// Replays of authentic packets, from A and from another address.
	other := newDevice(t, "127.0.0.2", SuiteAEADAES128GCM)
	other.relay = a.relay
	for _, p := range a.sent {
		a.write(p)
		other.write(p)
	}
	if n := len(b.recv(150 * time.Millisecond)); n != 0 {
		t.Fatalf("B received %d forged/replayed packets", n)
	}
	st := s.A().Stats()
	if st.DroppedUnauthenticated != 20 || st.DroppedReplay != 10 || st.Remote != a.addr() {
		t.Fatalf("stats %+v", st)
	}
	a.send(5)
	checkPayloads(t, b.recv(200*time.Millisecond), a, 5)
}

func TestRelatchAfterMove(t *testing.T) {
	r, evs := testRelay(t, Options{})
	s, a, b := call(t, r, SuiteAES128SHA1_80, SuiteAEADAES128GCM)
	a.send(3)
	b.recv(100 * time.Millisecond)

	// The device moves (NAT rebinding): same keys, new socket.
	moved, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("127.0.0.3")})
	if err != nil {
		t.Fatal(err)
	}
	old := a.conn
	a.conn = moved
	defer moved.Close()
	a.send(3)
	checkPayloads(t, b.recv(200*time.Millisecond), a, 3)
	if st := s.A().Stats(); st.Remote != a.addr() || st.LatchMoves != 1 {
		t.Fatalf("not re-latched: %+v", st)
	}
	b.send(4)
	checkPayloads(t, a.recv(200*time.Millisecond), b, 4)
	_ = old.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _, err := old.ReadFromUDP(make([]byte, 2048)); err == nil {
		t.Fatalf("old address still got %d bytes", n)
	}
	select {
	case e := <-evs:
		if e.Kind != EventLatch || e.Source != a.addr() {
			t.Fatalf("event %+v", e)
		}
	case <-time.After(time.Second):
		t.Fatal("no latch event")
	}

	// A re-INVITE moves it again: the new SDP address is used at once and
	// confirmed by the first authenticated packet from there.
	moved2, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("127.0.0.4")})
	if err != nil {
		t.Fatal(err)
	}
	defer moved2.Close()
	a.conn = moved2
	s.A().SetRemote(a.addr(), netip.AddrPort{})
	b.send(2)
	checkPayloads(t, a.recv(200*time.Millisecond), b, 2)
	a.send(2)
	checkPayloads(t, b.recv(200*time.Millisecond), a, 2)
	if st := s.A().Stats(); st.Remote != a.addr() || !st.Latched {
		t.Fatalf("not latched after re-INVITE: %+v", st)
	}
}

func TestMediaTimeout(t *testing.T) {
	r, evs := testRelay(t, Options{Timeout: 600 * time.Millisecond})
	s, a, b := call(t, r, SuiteAES128SHA1_80, SuiteAES128SHA1_80)
	s.Arm()
	a.send(2)
	b.recv(50 * time.Millisecond)
	start := time.Now()
	select {
	case e := <-evs:
		if e.Kind != EventTimeout || e.CallID != s.CallID() {
			t.Fatalf("event %+v", e)
		}
		if d := time.Since(start); d < 400*time.Millisecond || d > 1500*time.Millisecond {
			t.Fatalf("timeout after %v", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no timeout event")
	}
	// On hold no timeout fires.
	s2, _, _ := call(t, r, SuiteAES128SHA1_80, SuiteAES128SHA1_80)
	s2.Arm()
	s2.SetHold(true)
	select {
	case e := <-evs:
		t.Fatalf("event while on hold: %+v", e)
	case <-time.After(1200 * time.Millisecond):
	}
}

func TestRTCPMuxedAndSeparate(t *testing.T) {
	r, _ := testRelay(t, Options{})
	s, a, b := call(t, r, SuiteAES128SHA1_80, SuiteAES128SHA1_32)
	// B does not mux: its RTCP socket is another port.
	bRTCP, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	defer bRTCP.Close()
	rport, err := s.B().RTCPPort()
	if err != nil {
		t.Fatal(err)
	}
	s.B().SetRemote(b.addr(), bRTCP.LocalAddr().(*net.UDPAddr).AddrPort())

	sr := &rtcp.SenderReport{SSRC: a.ssrc, NTPTime: 42, RTPTime: 7, PacketCount: 3, OctetCount: 480}
	raw, _ := sr.Marshal()
	enc, err := a.tx.EncryptRTCP(nil, raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.write(enc) // muxed on A's RTP port
	buf := make([]byte, 2048)
	_ = bRTCP.SetReadDeadline(time.Now().Add(time.Second))
	n, _, err := bRTCP.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("B got no RTCP on its RTCP port: %v", err)
	}
	dec, err := b.rx.DecryptRTCP(nil, buf[:n], nil)
	if err != nil || !bytes.Equal(dec, raw) {
		t.Fatalf("B RTCP decrypt: %v", err)
	}

	rr := &rtcp.ReceiverReport{SSRC: b.ssrc}
	raw2, _ := rr.Marshal()
	enc2, err := b.tx.EncryptRTCP(nil, raw2, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = bRTCP.WriteToUDPAddrPort(enc2, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(rport)))
	_ = a.conn.SetReadDeadline(time.Now().Add(time.Second))
	n, _, err = a.conn.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("A got no muxed RTCP: %v", err)
	}
	dec, err = a.rx.DecryptRTCP(nil, buf[:n], nil)
	if err != nil || !bytes.Equal(dec, raw2) {
		t.Fatalf("A RTCP decrypt: %v", err)
	}
	st := s.Stats()
	if st.A.RTCPIn != 1 || st.B.RTCPOut != 1 || st.B.RTCPIn != 1 || st.A.RTCPOut != 1 || st.B.LocalRTCPPort != rport {
		t.Fatalf("stats %+v", st)
	}
}

func TestDTMFPassesUntouched(t *testing.T) {
	r, _ := testRelay(t, Options{})
	_, a, b := call(t, r, SuiteAEADAES256GCM, SuiteAES128SHA1_80)
	ev := []byte{5, 0x8a, 0x03, 0x20} // digit 5, end bit, volume 10, duration 800
	a.write(a.packet(101, true, ev))
	got := b.recv(200 * time.Millisecond)
	if len(got) != 1 || got[0].PayloadType != 101 || !got[0].Marker || !bytes.Equal(got[0].Payload, ev) {
		t.Fatalf("DTMF not relayed intact: %+v", got)
	}
}

func TestPlainLegOnlyWhenAllowed(t *testing.T) {
	r, _ := testRelay(t, Options{})
	s, err := r.NewSession("plain")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.B().SetPlain(); !errors.Is(err, ErrPlainNotAllowed) {
		t.Fatalf("SetPlain without permission: %v", err)
	}
	a := newDevice(t, "127.0.0.1", SuiteAES128SHA1_80)
	a.join(s.A(), SuiteAES128SHA1_80)
	s.B().SetAllowPlain(true)
	if err := s.B().SetPlain(); err != nil {
		t.Fatal(err)
	}
	trunk, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("127.0.0.1")})
	defer trunk.Close()
	s.B().SetRemote(trunk.LocalAddr().(*net.UDPAddr).AddrPort(), netip.AddrPort{})
	a.send(1)
	buf := make([]byte, 2048)
	_ = trunk.SetReadDeadline(time.Now().Add(time.Second))
	n, _, err := trunk.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	var p rtp.Packet
	if err := p.Unmarshal(buf[:n]); err != nil || !bytes.Equal(p.Payload, payloadFor(a.ssrc, a.seq)) {
		t.Fatalf("plain leg got %v", err)
	}
	// Plain from another IP is refused.
	spoof, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("127.0.0.2")})
	defer spoof.Close()
	_, _ = spoof.WriteToUDPAddrPort(buf[:n], netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(s.B().Port())))
	// And the trunk's own plain RTP reaches A encrypted.
	_, _ = trunk.WriteToUDPAddrPort(buf[:n], netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(s.B().Port())))
	if got := a.recv(200 * time.Millisecond); len(got) != 1 {
		t.Fatalf("A got %d packets", len(got))
	}
	st := s.Stats()
	if !st.ClearOnNetwork || st.B.Suite != SuitePlain || st.B.DroppedForeign != 1 || st.A.ClearOnNetwork {
		t.Fatalf("stats %+v", st)
	}
}

// TestForwardPathAllocs checks the per-packet path (authenticate, latch,
// re-encrypt) allocates nothing once an SSRC is known.
func TestForwardPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	for _, tc := range [][2]Suite{{SuiteAES128SHA1_80, SuiteAES128SHA1_32}, {SuiteAEADAES128GCM, SuiteAEADAES256GCM}} {
		r, _ := testRelay(t, Options{})
		s, a, _ := call(t, r, tc[0], tc[1])
		pkts := make([][]byte, 1100)
		for i := range pkts {
			pkts[i] = a.packet(0, false, payloadFor(a.ssrc, a.seq+1))
		}
		sh := s.sh
		src := a.addr()
		i := 0
		sh.mu.Lock()
		sock := s.A().rtp
		out := make([]byte, sendSize)
		if n, _, _, _ := sh.process(sock, pkts[i], src, 1, out); n == 0 {
			t.Fatal("first packet not forwarded")
		}
		i++
		allocs := testing.AllocsPerRun(1000, func() {
			if n, _, _, _ := sh.process(sock, pkts[i], src, 2, out); n == 0 {
				t.Fatal("packet not forwarded")
			}
			i++
		})
		sh.mu.Unlock()
		if allocs != 0 {
			t.Fatalf("%v: %v allocations per packet", tc, allocs)
		}
	}
}

// TestSocketPathAllocs runs packets through the real sockets and the worker
// loop and counts every allocation in the process meanwhile.
func TestSocketPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	r, _ := testRelay(t, Options{})
	_, a, b := call(t, r, SuiteAES128SHA1_80, SuiteAEADAES128GCM)
	pkts := make([][]byte, 700)
	for i := range pkts {
		pkts[i] = a.packet(0, false, payloadFor(a.ssrc, a.seq+1))
	}
	conn := a.conn
	dst := net.UDPAddrFromAddrPort(a.relay)
	buf := make([]byte, 2048)
	_ = b.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	i := 0
	var mu sync.Mutex
	step := func() {
		mu.Lock()
		defer mu.Unlock()
		if _, err := conn.WriteToUDP(pkts[i], dst); err != nil {
			t.Fatal(err)
		}
		i++
		if _, err := b.conn.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 { // warm up: SSRC state, runtime caches
		step()
	}
	allocs := testing.AllocsPerRun(500, step)
	if allocs > 0.05 {
		t.Fatalf("%v allocations per relayed packet", allocs)
	}
}

func TestMemoryPerCall(t *testing.T) {
	r, _ := testRelay(t, Options{PortMin: 30000, PortMax: 30000 + 4*200 + 10})
	var sessions []*Session
	for range 200 {
		s, err := r.NewSession("m")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range s.legs {
			c, _ := NewCrypto(1, SuiteAES128SHA1_80)
			if err := l.SetCrypto(c, c); err != nil {
				t.Fatal(err)
			}
		}
		sessions = append(sessions, s)
	}
	t.Logf("estimated heap per call: %d bytes", sessions[0].Stats().MemoryBytes)
	for _, s := range sessions {
		s.Close()
	}
	if r.Stats().Sessions != 0 || r.Stats().FreePortPairs < 400 {
		t.Fatalf("leak: %+v", r.Stats())
	}
}

// TestGarbageNeverPanics feeds random and truncated datagrams to the packet
// path.
func TestGarbageNeverPanics(t *testing.T) {
	r, _ := testRelay(t, Options{})
	s, a, _ := call(t, r, SuiteAES128SHA1_80, SuiteAEADAES128GCM)
	good := a.packet(0, false, payloadFor(a.ssrc, a.seq+1))
	s.B().SetAllowPlain(true)
	sh := s.sh
	out := make([]byte, sendSize)
	buf := make([]byte, 1500)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for i := range 20000 {
		n := i % 300
		_, _ = rand.Read(buf[:n])
		if n > 1 && i%3 == 0 {
			buf[0] = 0x80 | buf[0]&0x3f // version 2, random flags/CSRC count
		}
		if i%5 == 0 && n >= 2 {
			buf[1] = 200 // RTCP
		}
		if i%7 == 0 {
			n = copy(buf, good[:i%len(good)])
		}
		for _, sk := range []*sock{s.A().rtp, s.B().rtp} {
			sh.process(sk, buf[:n], a.addr(), int64(i), out)
		}
	}
}

// BenchmarkProcess measures the per-packet forward work without sockets:
// authenticate + replay check + latch + re-encrypt.
func BenchmarkProcess(b *testing.B) {
	for _, tc := range [][2]Suite{{SuiteAES128SHA1_80, SuiteAES128SHA1_32}, {SuiteAEADAES128GCM, SuiteAEADAES128GCM}} {
		b.Run(string(tc[0])+"->"+string(tc[1]), func(b *testing.B) {
			r, err := New(Options{Address: netip.MustParseAddr("127.0.0.1"), PortMin: 35000, PortMax: 35099})
			if err != nil {
				b.Fatal(err)
			}
			s, err := r.NewSession("bench")
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			a, bd := newDevice(b, "127.0.0.1", tc[0]), newDevice(b, "127.0.0.1", tc[1])
			a.join(s.A(), tc[0])
			bd.join(s.B(), tc[1])
			pkts := make([][]byte, b.N+1)
			for i := range pkts {
				pkts[i] = a.packet(0, false, payloadFor(a.ssrc, 0))
			}
			a.sent = nil
			out := make([]byte, sendSize)
			sh := s.sh
			sh.mu.Lock()
			defer sh.mu.Unlock()
			sh.process(s.A().rtp, pkts[0], a.addr(), 1, out)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 1; i <= b.N; i++ {
				sh.process(s.A().rtp, pkts[i], a.addr(), 1, out)
			}
		})
	}
}
