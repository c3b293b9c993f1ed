//go:build linux

package media

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sdpWith is a device's SDP: one audio stream with exactly attrs.
func sdpWith(port int, proto, fmts string, attrs ...string) []byte {
	s := "v=0\r\no=dev 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		fmt.Sprintf("m=audio %d %s %s\r\n", port, proto, fmts)
	for _, a := range attrs {
		s += a + "\r\n"
	}
	return []byte(s)
}

// devSDP is sdpWith with the usual PCMU/PCMA/telephone-event 101 lines.
func devSDP(port int, proto, fmts string, extra ...string) []byte {
	std := []string{"a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=ptime:20"}
	return sdpWith(port, proto, fmts, append(std, extra...)...)
}

// testSession is one relay session on a relay of its own.
func testSession(t *testing.T, opt Options, name string) *Session {
	t.Helper()
	r, _ := testRelay(t, opt)
	s, err := r.NewSession(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var (
	reM      = regexp.MustCompile(`(?m)^m=audio (\d+) (\S+) (.*?)\r?$`)
	reCrypto = regexp.MustCompile(`(?m)^a=crypto:(.*?)\r?$`)
)

func cryptoLines(t *testing.T, b []byte) []Crypto {
	t.Helper()
	var out []Crypto
	for _, m := range reCrypto.FindAllStringSubmatch(string(b), -1) {
		c, err := ParseCrypto(m[1])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func TestSDPOfferAnswerAndMedia(t *testing.T) {
	s := testSession(t, Options{Codecs: []string{"pcma", "PCMU"}}, "sdp")
	a := newDevice(t, "127.0.0.1", SuiteAES128SHA1_80)
	b := newDevice(t, "127.0.0.1", SuiteAES128SHA1_32)

	// A (baresip-like: no rtcp-mux) offers _80 only.
	offer := devSDP(int(a.addr().Port()), "RTP/SAVP", "0 8 101", "a=sendrecv", "a=crypto:1 "+string(a.own.Suite)+" "+a.own.Inline())
	toB, err := s.RewriteOffer(LegA, offer)
	if err != nil {
		t.Fatal(err)
	}
	m := reM.FindStringSubmatch(string(toB))
	if m == nil || m[1] != strconv.Itoa(s.B().Port()) || m[2] != "RTP/SAVP" || m[3] != "0 8 101" {
		t.Fatalf("offer to B:\n%s", toB)
	}
	if !strings.Contains(string(toB), "c=IN IP4 127.0.0.1") || !strings.Contains(string(toB), "a=rtcp-mux") ||
		!strings.Contains(string(toB), fmt.Sprintf("a=rtcp:%d", s.B().Port()+1)) {
		t.Fatalf("offer to B:\n%s", toB)
	}
	offered := cryptoLines(t, toB)
	if len(offered) != len(DefaultSuites) {
		t.Fatalf("offered %d crypto lines", len(offered))
	}
	var pick Crypto
	for _, c := range offered {
		if c.Suite == SuiteAES128SHA1_32 {
			pick = c
		}
		if c.Suite == SuiteAES128SHA1_80 && c.Equal(Crypto{Suite: c.Suite, Key: a.own.Key}) {
			t.Fatal("A's key leaked into the offer to B")
		}
	}
	// B answers with _32 and mux.
	b.own.Tag = pick.Tag
	ans := devSDP(int(b.addr().Port()), "RTP/SAVP", "8 101", "a=sendrecv", "a=rtcp-mux", "a=crypto:"+b.own.Attr())
	toA, err := s.RewriteAnswer(LegB, ans)
	if err != nil {
		t.Fatal(err)
	}
	m = reM.FindStringSubmatch(string(toA))
	if m == nil || m[1] != strconv.Itoa(s.A().Port()) || m[3] != "8 101" ||
		!strings.Contains(string(toA), fmt.Sprintf("a=rtcp:%d", s.A().Port()+1)) || strings.Contains(string(toA), "rtcp-mux") {
		t.Fatalf("answer to A:\n%s", toA)
	}
	back := cryptoLines(t, toA)
	if len(back) != 1 || back[0].Tag != 1 || back[0].Suite != SuiteAES128SHA1_80 {
		t.Fatalf("answer crypto %+v", back)
	}
	if st := s.B().Stats(); st.LocalRTCPPort != 0 || !st.Mux {
		t.Fatalf("B RTCP port not released: %+v", st)
	}

	// Media with the keys from the SDP.
	connectDevices(t, s, a, b, back[0], pick)
	a.send(10)
	checkPayloads(t, b.recv(200*time.Millisecond), a, 10)
	b.send(10)
	checkPayloads(t, a.recv(200*time.Millisecond), b, 10)

	// Hold and resume from B: same ports, same keys, media still flows.
	hold := devSDP(int(b.addr().Port()), "RTP/SAVP", "8 101", "a=sendonly", "a=rtcp-mux", "a=crypto:"+b.own.Attr())
	toA2, err := s.RewriteOffer(LegB, hold)
	if err != nil {
		t.Fatal(err)
	}
	if c := cryptoLines(t, toA2); len(c) != 1 || !c[0].Equal(back[0]) || !strings.Contains(string(toA2), "a=sendonly") {
		t.Fatalf("re-offer to A rekeyed or lost direction:\n%s", toA2)
	}
	a.own.Tag = 1
	if _, err := s.RewriteAnswer(LegA, devSDP(int(a.addr().Port()), "RTP/SAVP", "8 101", "a=recvonly", "a=crypto:"+a.own.Attr())); err != nil {
		t.Fatal(err)
	}
	if !s.isHeld() {
		t.Fatal("not on hold")
	}
	b.send(5)
	checkPayloads(t, a.recv(200*time.Millisecond), b, 5)
}

func TestSDPNotAcceptable(t *testing.T) {
	s := testSession(t, Options{}, "488")
	key, _ := NewCrypto(1, SuiteAES128SHA1_80)
	for name, sdp := range map[string][]byte{
		"plain from extension": devSDP(4000, "RTP/AVP", "0"),
		"only unsupported":     devSDP(4000, "RTP/SAVP", "0", "a=crypto:1 F8_128_HMAC_SHA1_80 inline:"+key.Inline()[7:]),
		"DTLS":                 devSDP(4000, "UDP/TLS/RTP/SAVP", "0"),
		"garbage":              []byte("not sdp"),
	} {
		if _, err := s.RewriteOffer(LegA, sdp); !errors.Is(err, ErrNotAcceptable) {
			t.Errorf("%s: %v, want ErrNotAcceptable", name, err)
		}
	}
	// media.codecs: only G722 allowed, the device offers PCMU and PCMA.
	s2 := testSession(t, Options{Codecs: []string{"G722"}, PortMin: 39000, PortMax: 39010}, "488-codecs")
	if _, err := s2.RewriteOffer(LegA, devSDP(4000, "RTP/SAVP", "0 8 101", "a=crypto:"+key.Attr())); !errors.Is(err, ErrNotAcceptable) ||
		!strings.Contains(err.Error(), "no codec in common") {
		t.Errorf("no common codec: %v, want ErrNotAcceptable", err)
	}
	// A trunk leg allowed plain RTP gets best-effort SRTP offered and may
	// answer plain.
	s.B().SetAllowPlain(true)
	toB, err := s.RewriteOffer(LegA, devSDP(4000, "RTP/SAVP", "0", "a=crypto:"+key.Attr()))
	if err != nil || !strings.Contains(string(toB), "RTP/AVP") {
		t.Fatalf("%v\n%s", err, toB)
	}
	if _, err := s.RewriteAnswer(LegB, devSDP(5000, "RTP/AVP", "0")); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); !st.ClearOnNetwork || st.B.Suite != SuitePlain || st.A.Suite != SuiteAES128SHA1_80 {
		t.Fatalf("%+v", st)
	}
}

func TestParseCrypto(t *testing.T) {
	good := []string{
		"1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4",
		"2 AEAD_AES_256_GCM inline:" + strings.Repeat("A", 59),
	}
	for _, v := range good {
		if _, err := ParseCrypto(v); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
	bad := []string{"", "1 AES_CM_128_HMAC_SHA1_80", "x AES_CM_128_HMAC_SHA1_80 inline:AAAA",
		"1 AES_CM_128_HMAC_SHA1_80 inline:AAAA", "1 NULL_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
		"1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR UNENCRYPTED_SRTP"}
	for _, v := range bad {
		if _, err := ParseCrypto(v); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
}

// TestSDPPayloadTypeMapping: the callee numbers telephone-event (and a
// dynamic codec) differently from the caller's offer. The answer to the
// caller keeps the caller's numbers, and the relay renumbers RTP both ways.
func TestSDPPayloadTypeMapping(t *testing.T) {
	s := testSession(t, Options{}, "ptmap")
	a := newDevice(t, "127.0.0.1", SuiteAES128SHA1_80)
	b := newDevice(t, "127.0.0.1", SuiteAES128SHA1_80)
	offer := sdpWith(int(a.addr().Port()), "RTP/SAVP", "111 0 101", "a=rtpmap:111 opus/48000/2", "a=fmtp:111 useinbandfec=1",
		"a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=rtcp-mux",
		"a=crypto:1 "+string(a.own.Suite)+" "+a.own.Inline())
	toB, err := s.RewriteOffer(LegA, offer)
	if err != nil {
		t.Fatal(err)
	}
	if m := reM.FindStringSubmatch(string(toB)); m == nil || m[3] != "111 0 101" {
		t.Fatalf("offer to B:\n%s", toB)
	}
	var pick Crypto
	for _, c := range cryptoLines(t, toB) {
		if c.Suite == SuiteAES128SHA1_80 {
			pick = c
		}
	}
	b.own.Tag = pick.Tag
	// B: opus as 96, telephone-event as 111 (reusing an offered number for
	// another codec), and PCMU as offered.
	ans := sdpWith(int(b.addr().Port()), "RTP/SAVP", "96 0 111", "a=rtpmap:96 opus/48000/2", "a=fmtp:96 useinbandfec=0",
		"a=rtpmap:111 telephone-event/8000", "a=fmtp:111 0-15", "a=rtcp-mux", "a=crypto:"+b.own.Attr())
	toA, err := s.RewriteAnswer(LegB, ans)
	if err != nil {
		t.Fatal(err)
	}
	m := reM.FindStringSubmatch(string(toA))
	if m == nil || m[3] != "111 0 101" {
		t.Fatalf("answer to A does not keep A's numbers:\n%s", toA)
	}
	for _, want := range []string{"a=rtpmap:111 opus/48000/2", "a=fmtp:111 useinbandfec=0", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15"} {
		if !strings.Contains(string(toA), want+"\r\n") {
			t.Fatalf("answer to A lacks %q:\n%s", want, toA)
		}
	}
	if strings.Contains(string(toA), "rtpmap:96") {
		t.Fatalf("B's numbering leaked to A:\n%s", toA)
	}
	back := cryptoLines(t, toA)
	connectDevices(t, s, a, b, back[0], pick)

	type step struct {
		pt     uint8
		marker bool
		want   uint8
	}
	send := func(from, to *device, steps []step) {
		t.Helper()
		for _, st := range steps {
			from.write(from.packet(st.pt, st.marker, payloadFor(from.ssrc, from.seq+1)))
		}
		got := to.recv(200 * time.Millisecond)
		if len(got) != len(steps) {
			t.Fatalf("received %d packets, want %d", len(got), len(steps))
		}
		for i, p := range got {
			if p.PayloadType != steps[i].want || p.Marker != steps[i].marker {
				t.Errorf("packet %d: PT %d marker %v, want PT %d marker %v", i, p.PayloadType, p.Marker, steps[i].want, steps[i].marker)
			}
		}
	}
	send(a, b, []step{{111, false, 96}, {0, false, 0}, {101, true, 111}, {101, false, 111}})
	send(b, a, []step{{96, true, 111}, {0, false, 0}, {111, true, 101}})

	// Re-offers reach each device in its own numbering (RFC 3264 section
	// 8.3.2: a payload type keeps its meaning within a session), and the
	// renumbering survives them.
	a.own.Tag = 1
	toB2, err := s.RewriteOffer(LegA, offer)
	if err != nil {
		t.Fatal(err)
	}
	if m := reM.FindStringSubmatch(string(toB2)); m == nil || m[3] != "96 0 111" ||
		!strings.Contains(string(toB2), "a=rtpmap:96 opus/48000/2\r\n") || !strings.Contains(string(toB2), "a=rtpmap:111 telephone-event/8000\r\n") {
		t.Fatalf("re-offer to B not in B's numbering:\n%s", toB2)
	}
	if _, err := s.RewriteAnswer(LegB, ans); err != nil {
		t.Fatal(err)
	}
	send(a, b, []step{{111, false, 96}, {101, true, 111}})
	send(b, a, []step{{96, false, 111}, {111, true, 101}})

	bOffer := sdpWith(int(b.addr().Port()), "RTP/SAVP", "96 0 111", "a=rtpmap:96 opus/48000/2", "a=rtpmap:111 telephone-event/8000",
		"a=sendonly", "a=rtcp-mux", "a=crypto:"+b.own.Attr())
	toA2, err := s.RewriteOffer(LegB, bOffer)
	if err != nil {
		t.Fatal(err)
	}
	if m := reM.FindStringSubmatch(string(toA2)); m == nil || m[3] != "111 0 101" ||
		!strings.Contains(string(toA2), "a=rtpmap:111 opus/48000/2\r\n") || !strings.Contains(string(toA2), "a=rtpmap:101 telephone-event/8000\r\n") {
		t.Fatalf("re-offer to A not in A's numbering:\n%s", toA2)
	}
	aAns := sdpWith(int(a.addr().Port()), "RTP/SAVP", "111 0 101", "a=rtpmap:111 opus/48000/2", "a=rtpmap:101 telephone-event/8000",
		"a=recvonly", "a=rtcp-mux", "a=crypto:"+a.own.Attr())
	toB3, err := s.RewriteAnswer(LegA, aAns)
	if err != nil {
		t.Fatal(err)
	}
	if m := reM.FindStringSubmatch(string(toB3)); m == nil || m[3] != "96 0 111" {
		t.Fatalf("answer to B not in B's numbering:\n%s", toB3)
	}
	send(b, a, []step{{96, false, 111}, {111, true, 101}})

	// An answerer that now numbers like the offerer switches the
	// renumbering off.
	if _, err := s.RewriteOffer(LegB, bOffer); err != nil {
		t.Fatal(err)
	}
	same := sdpWith(int(a.addr().Port()), "RTP/SAVP", "96 0 111", "a=rtpmap:96 opus/48000/2", "a=rtpmap:111 telephone-event/8000",
		"a=recvonly", "a=rtcp-mux", "a=crypto:"+a.own.Attr())
	if _, err := s.RewriteAnswer(LegA, same); err != nil {
		t.Fatal(err)
	}
	send(b, a, []step{{96, false, 96}, {111, true, 111}})
}

// TestSDPExtraStreamsDeclined: Veilig anchors one audio stream per call. Any
// other stream in an offer (video, a second audio) is not offered onward and
// is declined with port 0 in the answer (RFC 3264 section 6), so nothing
// flows outside the relay.
func TestSDPExtraStreamsDeclined(t *testing.T) {
	s := testSession(t, Options{}, "streams")
	a := newDevice(t, "127.0.0.1", SuiteAES128SHA1_80)
	b := newDevice(t, "127.0.0.1", SuiteAES128SHA1_80)
	key := "a=crypto:1 " + string(a.own.Suite) + " " + a.own.Inline()
	offer := devSDP(int(a.addr().Port()), "RTP/SAVP", "0 101", "a=rtcp-mux", key,
		"m=video 5002 RTP/SAVP 96", "a=rtpmap:96 H264/90000", key,
		"m=audio 5004 RTP/SAVP 8", key)
	toB, err := s.RewriteOffer(LegA, offer)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(toB), "\r\nm="); n != 1 || strings.Contains(string(toB), "5002") || strings.Contains(string(toB), "5004") {
		t.Fatalf("offer to B carries %d streams:\n%s", n, toB)
	}
	var pick Crypto
	for _, c := range cryptoLines(t, toB) {
		if c.Suite == SuiteAES128SHA1_80 {
			pick = c
		}
	}
	b.own.Tag = pick.Tag
	toA, err := s.RewriteAnswer(LegB, devSDP(int(b.addr().Port()), "RTP/SAVP", "0 101", "a=rtcp-mux", "a=crypto:"+b.own.Attr()))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf("m=audio %d RTP/SAVP 0 101", s.A().Port()),
		"m=video 0 RTP/SAVP 96",
		"m=audio 0 RTP/SAVP 8",
	}
	got := regexp.MustCompile(`(?m)^m=.*?\r?$`).FindAllString(string(toA), -1)
	if len(got) != len(want) {
		t.Fatalf("answer to A has %d m-lines, want %d:\n%s", len(got), len(want), toA)
	}
	for i := range want {
		if strings.TrimSpace(got[i]) != want[i] {
			t.Fatalf("m-line %d = %q, want %q", i, got[i], want[i])
		}
	}
}

// connectDevices points the test devices at the session's relay ports, each
// decrypting with the relay key its SDP exchange gave it.
func connectDevices(t testing.TB, s *Session, a, b *device, aKey, bKey Crypto) {
	t.Helper()
	var err error
	if a.rx, err = aKey.context(); err != nil {
		t.Fatal(err)
	}
	if b.rx, err = bKey.context(); err != nil {
		t.Fatal(err)
	}
	a.relay = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(s.A().Port()))
	b.relay = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(s.B().Port()))
}
