package test

// Media relay tests: injection, media timeout, hold/resume and DTMF across
// Veilig's SRTP relay. The injection, timeout and exact-DTMF tests drive
// both legs with the raw SIP/TLS user agent (uaflow_test.go) and Go SRTP
// endpoints (pion/srtp) defined here, so every packet that reaches a device
// can be decrypted and checked; hold/resume and DTMF also run with baresip.

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// ---------------------------------------------------------------- SDP

// sdpMedia is what the tests need from an audio SDP.
type sdpMedia struct {
	ip      string
	port    int
	proto   string
	formats []string
	cryptos []string // a=crypto values
	dir     string   // sendrecv, sendonly, recvonly, inactive or ""
	rtpmaps []string // a=rtpmap values
}

func parseSDPMedia(t *testing.T, body string) sdpMedia {
	t.Helper()
	var m sdpMedia
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "c=IN IP4 "):
			m.ip = strings.TrimPrefix(line, "c=IN IP4 ")
		case strings.HasPrefix(line, "m=audio "):
			f := strings.Fields(line)
			if len(f) >= 4 {
				m.port, _ = strconv.Atoi(f[1])
				m.proto, m.formats = f[2], f[3:]
			}
		case strings.HasPrefix(line, "a=crypto:"):
			m.cryptos = append(m.cryptos, strings.TrimPrefix(line, "a=crypto:"))
		case strings.HasPrefix(line, "a=rtpmap:"):
			m.rtpmaps = append(m.rtpmaps, strings.TrimPrefix(line, "a=rtpmap:"))
		case slices.Contains([]string{"a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"}, line):
			m.dir = strings.TrimPrefix(line, "a=")
		}
	}
	if m.ip == "" || m.port == 0 {
		t.Fatalf("SDP without c=IN IP4 or m=audio:\n%s", body)
	}
	return m
}

func (m sdpMedia) addr() *net.UDPAddr {
	return &net.UDPAddr{IP: net.ParseIP(m.ip).To4(), Port: m.port}
}

// srtpProfiles maps SDES suites to pion profiles (key, salt lengths).
var srtpProfiles = map[string]struct {
	p         srtp.ProtectionProfile
	key, salt int
}{
	"AES_CM_128_HMAC_SHA1_80": {srtp.ProtectionProfileAes128CmHmacSha1_80, 16, 14},
	"AES_CM_128_HMAC_SHA1_32": {srtp.ProtectionProfileAes128CmHmacSha1_32, 16, 14},
	"AEAD_AES_128_GCM":        {srtp.ProtectionProfileAeadAes128Gcm, 16, 12},
	"AEAD_AES_256_GCM":        {srtp.ProtectionProfileAeadAes256Gcm, 32, 12},
}

// sdesKeyOf parses "tag suite inline:key[|...]".
func sdesKeyOf(t *testing.T, attr string) (tag, suite string, key []byte) {
	t.Helper()
	f := strings.Fields(attr)
	if len(f) < 3 || !strings.HasPrefix(f[2], "inline:") {
		t.Fatalf("malformed a=crypto %q", attr)
	}
	b64, _, _ := strings.Cut(strings.TrimPrefix(f[2], "inline:"), "|")
	k, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		if k, err = base64.RawStdEncoding.DecodeString(b64); err != nil {
			t.Fatalf("a=crypto %q: bad base64: %v", attr, err)
		}
	}
	return f[0], f[1], k
}

func srtpContext(t *testing.T, suite string, key []byte) *srtp.Context {
	t.Helper()
	pr, ok := srtpProfiles[suite]
	if !ok {
		t.Fatalf("suite %s not supported by the test endpoint", suite)
	}
	if len(key) != pr.key+pr.salt {
		t.Fatalf("suite %s: key+salt is %d bytes, want %d", suite, len(key), pr.key+pr.salt)
	}
	c, err := srtp.CreateContext(key[:pr.key], key[pr.key:], pr.p, srtp.SRTPReplayProtection(1024))
	if err != nil {
		t.Fatalf("srtp context %s: %v", suite, err)
	}
	return c
}

func randomKey(suite string) []byte {
	pr := srtpProfiles[suite]
	k := make([]byte, pr.key+pr.salt)
	_, _ = rand.Read(k)
	return k
}

// ---------------------------------------------------------------- SRTP endpoint

// rxPacket is one authenticated packet an endpoint received.
type rxPacket struct {
	from    netip.AddrPort
	hdr     rtp.Header
	payload []byte
}

// srtpEndpoint is a device's media: one UDP socket (RTP with rtcp-mux),
// its own SDES key, the key from the SDP it received, a 20 ms PCMU sender
// and a receiver that decrypts and keeps everything it gets.
type srtpEndpoint struct {
	t     *testing.T
	name  string
	conn  *net.UDPConn
	ssrc  uint32
	suite string
	key   []byte // this endpoint's key (what it sends)
	tag   string

	mu       sync.Mutex
	tx       *srtp.Context
	rx       *srtp.Context
	peer     *net.UDPAddr // the relay port from the SDP it received
	seq      uint16
	ts       uint32
	sentN    int
	sentCT   [][]byte // ciphertexts sent (for replays)
	got      []rxPacket
	bad      []netip.AddrPort // sources of packets that did not authenticate
	rtcp     int
	sending  chan struct{} // closed to stop the sender
	sendDone chan struct{}
	closed   bool
}

func newSRTPEndpoint(t *testing.T, name, ip string) *srtpEndpoint {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatalf("%s: listen UDP on %s: %v", name, ip, err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	e := &srtpEndpoint{t: t, name: name, conn: conn, ssrc: binary.BigEndian.Uint32(b[:]), seq: uint16(b[0]) << 4}
	go e.readLoop()
	t.Cleanup(e.close)
	return e
}

func (e *srtpEndpoint) addr() netip.AddrPort { return e.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (e *srtpEndpoint) close() {
	e.stopSending()
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.conn.Close()
}

// offer is an SRTP offer with this endpoint's key in suite.
func (e *srtpEndpoint) offer(suite, dir string) string {
	e.t.Helper()
	e.mu.Lock()
	e.suite, e.key, e.tag = suite, randomKey(suite), "1"
	e.tx = srtpContext(e.t, suite, e.key)
	e.mu.Unlock()
	return e.sdp([]string{"0", "101"}, dir)
}

func (e *srtpEndpoint) sdp(formats []string, dir string) string {
	ip := e.addr().Addr().String()
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=- %d 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n", time.Now().UnixNano()%1e9, ip, ip)
	fmt.Fprintf(&b, "m=audio %d RTP/SAVP %s\r\n", e.addr().Port(), strings.Join(formats, " "))
	for _, f := range formats {
		switch f {
		case "0":
			b.WriteString("a=rtpmap:0 PCMU/8000\r\n")
		case "101":
			b.WriteString("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n")
		}
	}
	fmt.Fprintf(&b, "a=%s\r\na=rtcp-mux\r\n", dir)
	fmt.Fprintf(&b, "a=crypto:%s %s inline:%s\r\n", e.tag, e.suite, base64.StdEncoding.EncodeToString(e.key))
	return b.String()
}

// answer answers an offer (Veilig's): it takes the offer's first crypto
// line (Veilig offers its preferred suite first), answers with a fresh key
// in that suite, and sends to the offer's address.
func (e *srtpEndpoint) answer(offer, dir string) string {
	e.t.Helper()
	m := parseSDPMedia(e.t, offer)
	if len(m.cryptos) == 0 {
		e.t.Fatalf("%s: offer without a=crypto:\n%s", e.name, offer)
	}
	tag, suite, key := sdesKeyOf(e.t, m.cryptos[0])
	var formats []string
	for _, f := range m.formats {
		if f == "0" || f == "101" {
			formats = append(formats, f)
		}
	}
	e.mu.Lock()
	e.suite, e.tag, e.key = suite, tag, randomKey(suite)
	e.tx = srtpContext(e.t, suite, e.key)
	e.rx = srtpContext(e.t, suite, key)
	e.peer = m.addr()
	e.mu.Unlock()
	return e.sdp(formats, dir)
}

// answered takes the answer (Veilig's) to this endpoint's offer.
func (e *srtpEndpoint) answered(answer string) {
	e.t.Helper()
	m := parseSDPMedia(e.t, answer)
	if len(m.cryptos) != 1 {
		e.t.Fatalf("%s: answer must carry exactly one a=crypto:\n%s", e.name, answer)
	}
	_, suite, key := sdesKeyOf(e.t, m.cryptos[0])
	if suite != e.suite {
		e.t.Fatalf("%s: answer suite %s, offered %s", e.name, suite, e.suite)
	}
	e.mu.Lock()
	e.rx = srtpContext(e.t, suite, key)
	e.peer = m.addr()
	e.mu.Unlock()
}

// packet builds and encrypts the next RTP packet (payload type pt).
func (e *srtpEndpoint) packet(pt uint8, marker bool, payload []byte, tsStep uint32) []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq++
	e.ts += tsStep
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, Marker: marker, SequenceNumber: e.seq,
		Timestamp: e.ts, SSRC: e.ssrc}, Payload: payload}
	raw, err := p.Marshal()
	if err != nil {
		panic(err)
	}
	ct, err := e.tx.EncryptRTP(nil, raw, nil)
	if err != nil {
		panic(err)
	}
	e.sentN++
	e.sentCT = append(e.sentCT, ct)
	if len(e.sentCT) > 400 {
		e.sentCT = e.sentCT[len(e.sentCT)-400:]
	}
	return ct
}

// voicePayload is a PCMU frame whose first bytes name the sender and count.
func voicePayload(name string, n int) []byte {
	p := make([]byte, 160)
	for i := range p {
		p[i] = 0xff
	}
	copy(p, "VOICE:"+name+":"+strconv.Itoa(n)+":")
	return p
}

// startSending sends a PCMU frame every 20 ms until stopSending.
func (e *srtpEndpoint) startSending() {
	e.mu.Lock()
	if e.sending != nil {
		e.mu.Unlock()
		return
	}
	e.sending, e.sendDone = make(chan struct{}), make(chan struct{})
	stop, done, peer := e.sending, e.sendDone, e.peer
	e.mu.Unlock()
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for n := 0; n < 50*600; n++ { // bounded: 10 minutes
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			_, _ = e.conn.WriteToUDP(e.packet(0, n == 0, voicePayload(e.name, n), 160), peer)
		}
	}()
}

func (e *srtpEndpoint) stopSending() {
	e.mu.Lock()
	stop, done := e.sending, e.sendDone
	e.sending = nil
	e.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

func (e *srtpEndpoint) readLoop() {
	buf := make([]byte, 2048)
	for {
		n, from, err := e.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		pkt := append([]byte(nil), buf[:n]...)
		e.mu.Lock()
		rx := e.rx
		switch {
		case rx == nil || n < 12:
			e.bad = append(e.bad, from)
		case pkt[1] >= 192 && pkt[1] <= 223: // RTCP (rtcp-mux)
			if _, err := rx.DecryptRTCP(nil, pkt, nil); err != nil {
				e.bad = append(e.bad, from)
			} else {
				e.rtcp++
			}
		default:
			var h rtp.Header
			plain, err := rx.DecryptRTP(nil, pkt, &h)
			if err != nil {
				e.bad = append(e.bad, from)
				break
			}
			e.got = append(e.got, rxPacket{from: from, hdr: h, payload: plain[h.MarshalSize():]})
		}
		e.mu.Unlock()
	}
}

// received returns a copy of the authenticated packets received so far.
func (e *srtpEndpoint) received() []rxPacket {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.got)
}

func (e *srtpEndpoint) unauthenticated() []netip.AddrPort {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.bad)
}

// waitReceived waits up to d until at least n authenticated packets arrived.
func (e *srtpEndpoint) waitReceived(n int, d time.Duration) int {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := len(e.received())
		if got >= n {
			return got
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s (%s): %d authenticated packets received within %v, want >= %d (%d unauthenticated)",
				e.name, e.addr(), got, d, n, len(e.unauthenticated()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---------------------------------------------------------------- anchored call

// goCall is an established call between two raw UAs with Go SRTP media.
type goCall struct {
	srv       *server
	a, b      *sipUA
	ea, eb    *srtpEndpoint
	c         *uacCall
	in        *uasCall
	relayA    netip.AddrPort // Veilig's port facing A (from its 200 OK to A)
	relayB    netip.AddrPort // Veilig's port facing B (from its INVITE to B)
	offerToB  sdpMedia
	answerToA sdpMedia
}

// startGoCall starts a server with extra YAML, registers 1001 on aIP and
// 1002 on bIP and sets up an SRTP call 1001 -> 1002 with Go media
// endpoints on the same IPs (not yet sending).
func startGoCall(t *testing.T, extra, aIP, bIP string) *goCall {
	t.Helper()
	srv := startServer(t, serverOptions{Extra: extra})
	secretA := srv.addExtension(t, "1001")
	secretB := srv.addExtension(t, "1002")
	g := &goCall{srv: srv}
	g.a = newUA(t, srv, aIP, "1001", secretA)
	g.b = newUA(t, srv, bIP, "1002", secretB)
	g.ea = newSRTPEndpoint(t, "A", aIP)
	g.eb = newSRTPEndpoint(t, "B", bIP)

	g.c = g.a.invite("1002", g.ea.offer("AES_CM_128_HMAC_SHA1_80", "sendrecv"))
	g.in = g.b.acceptInvite(5 * time.Second)
	requireSRTPBody(t, "INVITE at the callee", g.in.invite.body)
	g.offerToB = parseSDPMedia(t, g.in.invite.body)
	g.in.reply(200, "OK", g.eb.answer(g.in.invite.body, "sendrecv"))
	res := g.c.waitAnswer(5 * time.Second)
	requireStatus(t, "caller's INVITE", res, 200)
	requireSRTPBody(t, "200 OK at the caller", res.body)
	g.answerToA = parseSDPMedia(t, res.body)
	g.ea.answered(res.body)
	g.c.ack("")
	g.b.waitRequest(5*time.Second, "ACK")
	g.relayA = g.ea.peer.AddrPort()
	g.relayB = g.eb.peer.AddrPort()
	t.Logf("call %s: A %s <-> relay %s | relay %s <-> B %s (suites %s / %s)",
		g.c.callID, g.ea.addr(), g.relayA, g.relayB, g.eb.addr(), g.ea.suite, g.eb.suite)
	if g.relayA.Addr().String() != srv.tlsHost() || g.relayB.Addr().String() != srv.tlsHost() {
		t.Errorf("SDP does not anchor media on Veilig (%s): A is told %s, B is told %s", srv.tlsHost(), g.relayA, g.relayB)
	}
	if g.relayA == g.ea.addr() || g.relayB == g.eb.addr() || g.relayA == g.eb.addr() || g.relayB == g.ea.addr() {
		t.Errorf("a device was given a device's address instead of the relay's")
	}
	return g
}

// mediaYAML is the media section with a port range and more "key: value" lines.
func mediaYAML(portRange string, more ...string) string {
	s := "media:\n  port_range: " + portRange + "\n"
	for _, m := range more {
		s += "  " + m + "\n"
	}
	return s
}

// requireCleanStream checks what endpoint dst received from src through
// the relay: every packet authenticated under the relay's key, came from
// relayPort, carries src's SSRC and one of src's frames, and no sequence
// number arrived twice.
func requireCleanStream(t *testing.T, dst, src *srtpEndpoint, relayPort netip.AddrPort) {
	t.Helper()
	if bad := dst.unauthenticated(); len(bad) > 0 {
		t.Errorf("%s received %d packets that do not authenticate under Veilig's key (forwarded raw?), from %v",
			dst.name, len(bad), bad[:min(5, len(bad))])
	}
	seen := map[uint16]bool{}
	wrong := 0
	for _, p := range dst.received() {
		problem := ""
		switch {
		case p.from != relayPort:
			problem = "from " + p.from.String() + ", not the relay port " + relayPort.String()
		case p.hdr.SSRC != src.ssrc:
			problem = fmt.Sprintf("SSRC %08x, not %s's %08x", p.hdr.SSRC, src.name, src.ssrc)
		case p.hdr.PayloadType == 0 && !strings.HasPrefix(string(p.payload), "VOICE:"+src.name+":"):
			problem = fmt.Sprintf("payload %q is not one of %s's frames", p.payload[:min(20, len(p.payload))], src.name)
		case seen[p.hdr.SequenceNumber]:
			problem = fmt.Sprintf("sequence %d arrived twice (a replay passed)", p.hdr.SequenceNumber)
		}
		seen[p.hdr.SequenceNumber] = true
		if problem != "" {
			wrong++
			if wrong <= 5 {
				t.Errorf("%s received a packet that %s did not send: %s", dst.name, src.name, problem)
			}
		}
	}
	if wrong > 5 {
		t.Errorf("%s: %d foreign packets in all", dst.name, wrong)
	}
}

// ---------------------------------------------------------------- tests

// TestMediaInjection: during an anchored SRTP call between Go endpoints,
// (a) an attacker on 127.0.0.99 sends SRTP-looking packets (the caller's
// SSRC with later sequence numbers, random SSRCs, and replays of the
// caller's own genuine packets) to the caller leg's relay port, and (b) the
// callee's own media address sends packets with a forged SSRC, with its own
// SSRC far ahead under a wrong key, and replays of its own packets, to the
// callee leg's port. Nothing of it reaches the other device (each device
// decrypts everything it gets: only the peer's frames, once each, from the
// relay port), the latch does not move (audio keeps flowing to both
// devices, the attacker gets nothing, no media.latch event), and a
// media.injection alert is raised for each leg naming the source.
func TestMediaInjection(t *testing.T) {
	g := startGoCall(t, mediaYAML("43000-43099"), "127.0.0.81", "127.0.0.82")
	g.ea.startSending()
	g.eb.startSending()
	g.ea.waitReceived(50, 5*time.Second)
	g.eb.waitReceived(50, 5*time.Second)

	// (a) attacker on another address -> caller leg.
	atk, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("127.0.0.99")})
	if err != nil {
		t.Fatal(err)
	}
	defer atk.Close()
	atkGot := make(chan int, 1)
	go func() {
		n := 0
		buf := make([]byte, 2048)
		for {
			_ = atk.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, _, err := atk.ReadFromUDP(buf); err != nil {
				atkGot <- n
				return
			}
			n++
		}
	}()
	relayA := net.UDPAddrFromAddrPort(g.relayA)
	g.ea.mu.Lock()
	seqA, replaysA := g.ea.seq, slices.Clone(g.ea.sentCT[len(g.ea.sentCT)-30:])
	g.ea.mu.Unlock()
	for i := range 40 { // the caller's SSRC, sequence numbers just ahead, random "ciphertext" + tag
		_, _ = atk.WriteToUDP(fakeSRTP(g.ea.ssrc, seqA+uint16(i)+3, 170), relayA)
		time.Sleep(2 * time.Millisecond)
	}
	for range 20 { // random SSRCs
		_, _ = atk.WriteToUDP(fakeSRTP(randU32(), uint16(randU32()), 170), relayA)
	}
	for _, ct := range replaysA { // the caller's genuine packets, replayed from elsewhere
		_, _ = atk.WriteToUDP(ct, relayA)
	}
	evA := g.srv.waitEvent(t, 5*time.Second, "media.injection", func(e event) bool {
		return forCall(g.c.callID)(e) && fmt.Sprint(e.Fields["leg"]) == "A"
	})
	t.Logf("event: %s", evA)
	if !strings.HasPrefix(evA.Source, "127.0.0.99:") {
		t.Errorf("media.injection for leg A names source %q, want the attacker 127.0.0.99", evA.Source)
	}
	if evA.Severity != "alert" {
		t.Errorf("media.injection severity %q, want alert", evA.Severity)
	}

	// (b) forged packets from the callee's own media address -> callee leg.
	relayB := net.UDPAddrFromAddrPort(g.relayB)
	g.eb.mu.Lock()
	seqB, replaysB := g.eb.seq, slices.Clone(g.eb.sentCT[len(g.eb.sentCT)-30:])
	g.eb.mu.Unlock()
	wrongKey := srtpContext(t, g.eb.suite, randomKey(g.eb.suite))
	for i := range 20 { // forged SSRC
		_, _ = g.eb.conn.WriteToUDP(fakeSRTP(randU32(), seqB+uint16(i), 170), relayB)
	}
	for i := range 20 { // own SSRC, sequence far ahead, wrong key
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seqB + 1000 + uint16(i),
			Timestamp: uint32(i) * 160, SSRC: g.eb.ssrc}, Payload: []byte(strings.Repeat("EVIL", 40))}
		raw, _ := p.Marshal()
		ct, _ := wrongKey.EncryptRTP(nil, raw, nil)
		_, _ = g.eb.conn.WriteToUDP(ct, relayB)
	}
	for _, ct := range replaysB { // own packets again
		_, _ = g.eb.conn.WriteToUDP(ct, relayB)
	}
	evB := g.srv.waitEvent(t, 5*time.Second, "media.injection", func(e event) bool {
		return forCall(g.c.callID)(e) && fmt.Sprint(e.Fields["leg"]) == "B"
	})
	t.Logf("event: %s", evB)
	if evB.Source != g.eb.addr().String() {
		t.Errorf("media.injection for leg B names source %q, want the callee's media address %s", evB.Source, g.eb.addr())
	}

	// Audio keeps flowing to the right devices.
	nA, nB := len(g.ea.received()), len(g.eb.received())
	g.ea.waitReceived(nA+50, 5*time.Second)
	g.eb.waitReceived(nB+50, 5*time.Second)
	g.ea.stopSending()
	g.eb.stopSending()
	time.Sleep(300 * time.Millisecond)

	g.c.bye()
	bye := g.b.waitRequest(5*time.Second, "BYE")
	g.b.respond(bye, 200, "OK", "", "")
	atk.Close()
	if n := <-atkGot; n > 0 {
		t.Errorf("the attacker on 127.0.0.99 received %d packets: the caller leg latched to it", n)
	}
	requireCleanStream(t, g.eb, g.ea, g.relayB)
	requireCleanStream(t, g.ea, g.eb, g.relayA)
	for _, e := range g.srv.events(t) {
		if e.Type == "media.latch" {
			t.Errorf("the latch moved: %s", e)
		}
	}
	t.Logf("A sent %d, received %d; B sent %d, received %d", g.ea.sentN, len(g.ea.received()), g.eb.sentN, len(g.eb.received()))
	rec := g.srv.waitRecordFor(t, 10*time.Second, g.c.callID)
	if rec.Disposition != "answered" {
		t.Errorf("record: %s", describeCall(rec.callRecord))
	}
}

// fakeSRTP is an RTP header with ssrc/seq and n random bytes of "payload
// and tag": what an off-path attacker can produce.
func fakeSRTP(ssrc uint32, seq uint16, n int) []byte {
	b := make([]byte, 12+n)
	_, _ = rand.Read(b[12:])
	b[0], b[1] = 0x80, 0
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], uint32(seq)*160)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	return b
}

func randU32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// TestMediaTimeout: media.timeout 5s. An SRTP call between Go endpoints
// stays up for 7 s while media flows (longer than the timeout); once both
// stop sending, Veilig sends BYE to both legs 5 s (plus its 250 ms sweep)
// later, emits media.timeout for the call, and the record ends answered
// with a cause naming the media timeout.
func TestMediaTimeout(t *testing.T) {
	g := startGoCall(t, mediaYAML("43100-43199", "timeout: 5s"), "127.0.0.83", "127.0.0.84")
	g.ea.startSending()
	g.eb.startSending()
	g.ea.waitReceived(20, 5*time.Second)
	g.eb.waitReceived(20, 5*time.Second)
	g.a.expectSilence(7*time.Second, "media is flowing (no timeout yet)")
	g.b.expectSilence(100*time.Millisecond, "media is flowing (no timeout yet)")
	if t.Failed() {
		t.FailNow()
	}

	g.ea.stopSending()
	g.eb.stopSending()
	stopped := time.Now()
	byeA := g.a.waitRequest(15*time.Second, "BYE")
	elapsed := time.Since(stopped)
	g.a.respond(byeA, 200, "OK", "", "")
	byeB := g.b.waitRequest(3*time.Second, "BYE")
	g.b.respond(byeB, 200, "OK", "", "")
	t.Logf("BYE %v after the media stopped", elapsed.Round(10*time.Millisecond))
	if elapsed < 4500*time.Millisecond || elapsed > 8*time.Second {
		t.Errorf("BYE came %v after the media stopped, want about 5 s (media.timeout)", elapsed)
	}
	if byeA.header("Call-ID") != g.c.callID || tagOf(byeA.header("From")) != g.c.toTag {
		t.Errorf("BYE to the caller is not in its dialog:\n%s", byeA.raw)
	}
	if byeB.header("Call-ID") != g.in.invite.header("Call-ID") || tagOf(byeB.header("From")) != g.in.toTag && tagOf(byeB.header("To")) != g.in.toTag {
		t.Errorf("BYE to the callee is not in its dialog:\n%s", byeB.raw)
	}
	ev := g.srv.waitEvent(t, 5*time.Second, "media.timeout", forCall(g.c.callID))
	t.Logf("event: %s", ev)
	rec := g.srv.waitRecordFor(t, 10*time.Second, g.c.callID)
	if rec.Disposition != "answered" || !strings.Contains(strings.ToLower(toString(rec.Cause)), "media timeout") {
		t.Errorf("record: want answered with cause naming the media timeout, got %s", describeCall(rec.callRecord))
	}
}

// TestDTMFExact: RFC 4733 telephone-events (PT 101) from the caller's Go
// endpoint cross the relay: the callee decrypts exactly the events sent
// (same payload bytes, marker, timestamp), in between voice frames.
func TestDTMFExact(t *testing.T) {
	g := startGoCall(t, mediaYAML("43200-43299"), "127.0.0.85", "127.0.0.86")
	if !slices.ContainsFunc(g.offerToB.rtpmaps, func(s string) bool { return strings.Contains(s, "telephone-event") }) ||
		!slices.ContainsFunc(g.answerToA.rtpmaps, func(s string) bool { return strings.Contains(s, "telephone-event") }) {
		t.Errorf("telephone-event lost in the SDP: offer to B %v, answer to A %v", g.offerToB.rtpmaps, g.answerToA.rtpmaps)
	}
	peer := net.UDPAddrFromAddrPort(g.relayA)
	type sent struct {
		payload []byte
		marker  bool
		ts      uint32
	}
	var events []sent
	send := func(pt uint8, marker bool, payload []byte, step uint32) {
		ct := g.ea.packet(pt, marker, payload, step)
		g.ea.mu.Lock()
		ts := g.ea.ts
		g.ea.mu.Unlock()
		if pt == 101 {
			events = append(events, sent{append([]byte(nil), payload...), marker, ts})
		}
		_, _ = g.ea.conn.WriteToUDP(ct, peer)
		time.Sleep(20 * time.Millisecond)
	}
	for n := range 10 {
		send(0, false, voicePayload("A", n), 160)
	}
	for _, digit := range []byte{5, 11, 1} { // "5", "#", "1"
		for i := range 6 { // 3 updates, 3 end packets (same timestamp)
			dur := uint16(160 * min(i+1, 4))
			flags := byte(10) // volume 10
			if i >= 3 {
				flags |= 0x80 // E bit
			}
			step := uint32(0)
			if i == 0 {
				step = 160
			}
			send(101, i == 0, []byte{digit, flags, byte(dur >> 8), byte(dur)}, step)
		}
		for n := range 5 {
			send(0, false, voicePayload("A", 100+n), 160)
		}
	}
	time.Sleep(500 * time.Millisecond)
	var got []rxPacket
	for _, p := range g.eb.received() {
		if p.hdr.PayloadType == 101 {
			got = append(got, p)
		}
	}
	if len(got) != len(events) {
		t.Errorf("callee decrypted %d telephone-event packets, want %d", len(got), len(events))
	}
	for i := range min(len(got), len(events)) {
		p, w := got[i], events[i]
		if string(p.payload) != string(w.payload) || p.hdr.Marker != w.marker || p.hdr.Timestamp != w.ts || p.hdr.SSRC != g.ea.ssrc {
			t.Errorf("event %d: got payload %x marker %v ts %d ssrc %08x, want %x %v %d %08x",
				i, p.payload, p.hdr.Marker, p.hdr.Timestamp, p.hdr.SSRC, w.payload, w.marker, w.ts, g.ea.ssrc)
		}
	}
	if bad := g.eb.unauthenticated(); len(bad) > 0 {
		t.Errorf("callee got %d packets that do not authenticate", len(bad))
	}
	g.c.bye()
	bye := g.b.waitRequest(5*time.Second, "BYE")
	g.b.respond(bye, 200, "OK", "", "")
}

// ---------------------------------------------------------------- baresip

// startBaresipPair starts a server with the relay on portRange, registers
// baresip 1001 (ip 127.0.0.x, ausine 1000 Hz) and 1002 (auto-answer, a
// 700 Hz file) and returns them.
func startBaresipPair(t *testing.T, portRange, ipA, ipB string) (*server, *phone, *phone) {
	t.Helper()
	requireTools(t, "baresip", "sox")
	srv := startServer(t, serverOptions{Extra: mediaYAML(portRange)})
	secretA := srv.addExtension(t, "1001")
	secretB := srv.addExtension(t, "1002")
	tone := artifactDir(t) + "/tone700.wav"
	makeTone(t, tone, 700, 90)
	loA := freeUDPRange(t, ipA, phoneRTPPorts)
	loB := freeUDPRange(t, ipB, phoneRTPPorts)
	for loB/phoneRTPPorts == loA/phoneRTPPorts {
		loB = freeUDPRange(t, ipB, phoneRTPPorts)
	}
	b := startPhone(t, srv, phoneConfig{name: "b", ext: "1002", secret: secretB, ip: ipB,
		proxy: srv.tlsAddr, audioSource: "aufile," + tone, autoAnswer: true, rtpLo: loB})
	b.waitRegistered(t, 20*time.Second)
	a := startPhone(t, srv, phoneConfig{name: "a", ext: "1001", secret: secretA, ip: ipA,
		proxy: srv.tlsAddr, audioSource: "ausine,1000", rtpLo: loA})
	a.waitRegistered(t, 20*time.Second)
	return srv, a, b
}

var reMAudio = regexp.MustCompile(`(?m)^m=audio (\d+) `)

// relayPortsSeen returns, in order, the m=audio ports within lo..hi in a
// phone's SIP trace (the relay's ports in SDP Veilig sent to it).
func relayPortsSeen(out string, lo, hi int) []int {
	var ports []int
	for _, m := range reMAudio.FindAllStringSubmatch(strings.ReplaceAll(out, "\r", ""), -1) {
		if p, _ := strconv.Atoi(m[1]); p >= lo && p <= hi {
			ports = append(ports, p)
		}
	}
	return ports
}

// wirePacket is one UDP datagram from a capture.
type wirePacket struct {
	at               time.Time
	src, dst         string // ip:port
	srcPort, dstPort int
	data             []byte
}

// capturedUDP reads every UDP datagram of a pcap with its time.
func capturedUDP(t *testing.T, pcap string) []wirePacket {
	t.Helper()
	var out []wirePacket
	for _, r := range tsharkFields(t, pcap, nil, "udp", "frame.time_epoch", "ip.src", "udp.srcport", "ip.dst", "udp.dstport", "udp.payload") {
		sec, err := strconv.ParseFloat(r[0], 64)
		if err != nil {
			continue
		}
		sp, _ := strconv.Atoi(r[2])
		dp, _ := strconv.Atoi(r[4])
		out = append(out, wirePacket{at: time.Unix(0, int64(sec*1e9)), src: r[1] + ":" + r[2], dst: r[3] + ":" + r[4],
			srcPort: sp, dstPort: dp, data: hexBytes(r[5])})
	}
	return out
}

// relayCryptos returns the a=crypto values of the SDP bodies in a phone's
// SIP trace whose m=audio port is within lo..hi: Veilig's keys towards it.
func relayCryptos(out string, lo, hi int) []string {
	var keys []string
	in := false
	for _, line := range strings.Split(strings.ReplaceAll(out, "\r", ""), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "m="):
			in = false
			if m := reMAudio.FindStringSubmatch(line); m != nil {
				p, _ := strconv.Atoi(m[1])
				in = p >= lo && p <= hi
			}
		case in && strings.HasPrefix(line, "a=crypto:"):
			if v := strings.TrimPrefix(line, "a=crypto:"); !slices.Contains(keys, v) {
				keys = append(keys, v)
			}
		case !strings.HasPrefix(line, "a="):
			in = false
		}
	}
	return keys
}

// decryptRelayToPhone decrypts, with the one of Veilig's keys that works,
// the SRTP the relay sent to a phone (src port in lo..hi, dst port not),
// and returns the PCMU payloads with their capture times.
func decryptRelayToPhone(t *testing.T, ph *phone, pkts []wirePacket, lo, hi int) (times []time.Time, pays [][]byte) {
	t.Helper()
	var flow []wirePacket
	for _, p := range pkts {
		if p.srcPort >= lo && p.srcPort <= hi && (p.dstPort < lo || p.dstPort > hi) &&
			p.dstPort >= ph.cfg.rtpLo && p.dstPort < ph.cfg.rtpLo+phoneRTPPorts && len(p.data) > 12 && (p.data[1] < 192 || p.data[1] > 223) {
			flow = append(flow, p)
		}
	}
	if len(flow) == 0 {
		t.Errorf("phone %s: no RTP from the relay in the capture", ph.cfg.name)
		return nil, nil
	}
	keys := relayCryptos(ph.proc.Output(), lo, hi)
	for _, k := range keys {
		_, suite, key := sdesKeyOf(t, k)
		if _, ok := srtpProfiles[suite]; !ok {
			continue
		}
		ctx := srtpContext(t, suite, key)
		if _, err := ctx.DecryptRTP(nil, flow[0].data, nil); err != nil {
			continue
		}
		ctx = srtpContext(t, suite, key)
		bad := 0
		for _, p := range flow {
			var h rtp.Header
			plain, err := ctx.DecryptRTP(nil, p.data, &h)
			if err != nil {
				bad++
				continue
			}
			if h.PayloadType == 0 {
				times = append(times, p.at)
				pays = append(pays, plain[h.MarshalSize():])
			}
		}
		if bad > 0 {
			t.Errorf("phone %s: %d of %d packets from the relay do not authenticate under Veilig's key %s", ph.cfg.name, bad, len(flow), suite)
		}
		return times, pays
	}
	t.Errorf("phone %s: none of Veilig's keys in its trace (%d) decrypts the relay's packets", ph.cfg.name, len(keys))
	return nil, nil
}

// requireWireTone checks the PCMU the relay sent to a phone between from
// and to: at least 80 % of the packets of that time (50/s) and freq Hz.
func requireWireTone(t *testing.T, ph *phone, times []time.Time, pays [][]byte, from, to time.Time, freq int) {
	t.Helper()
	var x []float64
	n := 0
	for i, at := range times {
		if at.Before(from) || at.After(to) {
			continue
		}
		n++
		for _, b := range pays[i][:min(160, len(pays[i]))] {
			x = append(x, float64(ulawDecode(b)))
		}
	}
	want := int(to.Sub(from).Seconds() * 50 * 0.8)
	hz, share := dominantTone(x, 8000, 100, 3000, 5)
	t.Logf("relay -> phone %s: %d PCMU packets in %v, decrypted: %d Hz (share %.2f)", ph.cfg.name, n, to.Sub(from).Round(time.Millisecond), hz, share)
	if n < want {
		t.Errorf("relay -> phone %s: %d packets in %v, want >= %d", ph.cfg.name, n, to.Sub(from).Round(time.Millisecond), want)
	}
	if n > 0 && (hz < freq-15 || hz > freq+15 || share < 0.5) {
		t.Errorf("relay -> phone %s: decrypted audio is %d Hz (share %.2f), want the %d Hz tone", ph.cfg.name, hz, share, freq)
	}
}

// TestHoldResume: baresip 1001 calls 1002 through the relay, puts the call
// on hold and resumes it (ctrl_tcp hold/resume). Both re-INVITEs cross
// Veilig: the callee gets three INVITEs (the hold one with a=sendonly or
// inactive), the call stays up (no CALL_CLOSED until the hang-up), and
// every SDP Veilig sends a phone names the same relay port as the first
// one. Audio resumes: the SRTP the relay sends each phone after the resume,
// decrypted from a capture with Veilig's keys from the phones' SIP traces,
// authenticates and carries the other phone's tone.
//
// The phones' own recordings cannot show this: baresip 1.0.0 stops writing
// its decoded-audio dump after a hold/resume re-INVITE even in a direct
// phone-to-phone call without Veilig (checked by hand: 4.3 s recorded of a
// 16 s call while its RTP counters show all 827 packets received).
func TestHoldResume(t *testing.T) {
	const lo, hi = 43300, 43399
	requireRoot(t, "packet capture")
	srv, a, b := startBaresipPair(t, fmt.Sprintf("%d-%d", lo, hi), "127.0.0.87", "127.0.0.88")
	capt := startCapture(t, "holdresume", "lo", fmt.Sprintf("udp and portrange %d-%d", lo, hi))
	a.do(t, "dial", "sip:1002@"+srv.tlsAddr)
	a.waitEvent(t, "CALL_ESTABLISHED", 20*time.Second)
	b.waitEvent(t, "CALL_ESTABLISHED", 10*time.Second)
	time.Sleep(3 * time.Second)

	a.do(t, "hold", "")
	held := time.Now()
	time.Sleep(3 * time.Second)
	a.do(t, "resume", "")
	resumed := time.Now()
	time.Sleep(6 * time.Second)
	for _, ph := range []*phone{a, b} {
		if _, closed := ph.ctrl.waitFor(0, func(m ctrlMessage) bool { return m.Event && m.Type == "CALL_CLOSED" }); closed {
			t.Fatalf("phone %s: the call closed during hold/resume; events: %s", ph.cfg.name, ph.ctrl.eventTypes())
		}
	}
	hangup := time.Now()
	a.do(t, "hangup", "")
	a.waitEvent(t, "CALL_CLOSED", 10*time.Second)
	b.waitEvent(t, "CALL_CLOSED", 10*time.Second)
	a.quit(t)
	b.quit(t)
	pcap := capt.stop(t)

	outA, outB := a.proc.Output(), b.proc.Output()
	invites := len(regexp.MustCompile(`(?m)^INVITE sip:`).FindAllString(outB, -1))
	t.Logf("callee's trace holds %d INVITE requests", invites)
	if invites < 3 {
		t.Errorf("callee saw %d INVITEs, want 3 (call, hold, resume)", invites)
	}
	if !strings.Contains(outB, "a=sendonly") && !strings.Contains(outB, "a=inactive") {
		t.Errorf("no a=sendonly/a=inactive in the callee's trace: the hold did not reach it")
	}
	for _, x := range []struct {
		name string
		out  string
	}{{"a", outA}, {"b", outB}} {
		ports := relayPortsSeen(x.out, lo, hi)
		t.Logf("relay ports in SDP Veilig sent to phone %s: %v", x.name, ports)
		if len(ports) < 3 {
			t.Errorf("phone %s: %d SDP bodies from Veilig with a relay port, want >= 3 (answer/offer, hold, resume)", x.name, len(ports))
			continue
		}
		for _, p := range ports {
			if p != ports[0] {
				t.Errorf("phone %s: relay port changed from %d to %d across hold/resume", x.name, ports[0], p)
				break
			}
		}
	}
	pkts := capturedUDP(t, pcap)
	from, to := resumed.Add(2*time.Second), hangup.Add(-500*time.Millisecond)
	tb, pb := decryptRelayToPhone(t, b, pkts, lo, hi)
	requireWireTone(t, b, tb, pb, from, to, 1000)
	ta, pa := decryptRelayToPhone(t, a, pkts, lo, hi)
	requireWireTone(t, a, ta, pa, from, to, 700)
	// On hold the callee answered recvonly: its audio to the caller stops,
	// which is what makes "resumes" above mean something.
	onHold := 0
	for _, at := range ta {
		if at.After(held.Add(time.Second)) && at.Before(resumed) {
			onHold++
		}
	}
	t.Logf("relay -> phone a during the hold: %d PCMU packets", onHold)
	if onHold > 10 {
		t.Errorf("the callee's audio kept reaching the caller while on hold (%d packets): the hold did not take effect", onHold)
	}
	rec := srv.waitCallRecord(t, 10*time.Second, "1001", "1002")
	if rec.Disposition != "answered" {
		t.Errorf("record: %s", describeCall(rec))
	}
}

// TestDTMF: baresip 1001 sends "1#5" with ctrl_tcp sndcode during a call
// through the relay; baresip 1002 reports each digit (CALL_DTMF_START) in
// order, and the capture shows telephone-event (PT 101) packets on both
// relay legs (from A to the relay and from the relay to B), as SRTP.
func TestDTMF(t *testing.T) {
	requireRoot(t, "packet capture")
	const relay, relayLo = "43400-43499", 43400
	srv, a, b := startBaresipPair(t, relay, "127.0.0.89", "127.0.0.90")
	capt := startCapture(t, "dtmf", "lo", "udp and portrange "+relay)
	a.do(t, "dial", "sip:1002@"+srv.tlsAddr)
	a.waitEvent(t, "CALL_ESTABLISHED", 20*time.Second)
	b.waitEvent(t, "CALL_ESTABLISHED", 10*time.Second)
	time.Sleep(2 * time.Second)
	for _, d := range "1#5" {
		a.do(t, "sndcode", string(d))
		time.Sleep(700 * time.Millisecond)
	}
	time.Sleep(time.Second)
	var digits []string
	b.ctrl.mu.Lock()
	for _, m := range b.ctrl.msgs {
		if m.Event && m.Type == "CALL_DTMF_START" {
			digits = append(digits, m.Param)
		}
	}
	b.ctrl.mu.Unlock()
	t.Logf("callee reported DTMF %q", digits)
	if strings.Join(digits, "") != "1#5" {
		t.Errorf("callee reported DTMF %q, want 1 # 5; events: %s", digits, b.ctrl.eventTypes())
	}
	a.do(t, "hangup", "")
	a.waitEvent(t, "CALL_CLOSED", 10*time.Second)
	b.waitEvent(t, "CALL_CLOSED", 10*time.Second)
	pcap := capt.stop(t)

	rows := tsharkFields(t, pcap, []string{"udp.port==" + relay + ",rtp"}, "rtp.p_type == 101",
		"ip.src", "udp.srcport", "ip.dst", "udp.dstport", "rtp.payload")
	flows := map[string]int{}
	lens := map[int]int{}
	inRange := func(port string, lo, n int) bool {
		p, _ := strconv.Atoi(port)
		return p >= lo && p < lo+n
	}
	var toRelay, fromRelay int
	for _, r := range rows {
		flows[fmt.Sprintf("%s:%s -> %s:%s", r[0], r[1], r[2], r[3])]++
		lens[len(hexBytes(r[4]))]++
		if inRange(r[1], a.cfg.rtpLo, phoneRTPPorts) && inRange(r[3], relayLo, 100) {
			toRelay++
		}
		if inRange(r[1], relayLo, 100) && inRange(r[3], b.cfg.rtpLo, phoneRTPPorts) {
			fromRelay++
		}
	}
	t.Logf("PT 101 flows: %v, payload lengths %v", flows, lens)
	if toRelay < 3 || fromRelay < 3 {
		t.Errorf("telephone-event packets: %d from A to the relay, %d from the relay to B; want both >= 3", toRelay, fromRelay)
	}
	if lens[4] > 0 {
		t.Errorf("%d PT 101 packets have a bare 4-byte payload (no SRTP tag): DTMF in the clear", lens[4])
	}
}
