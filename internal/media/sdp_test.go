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

func devSDP(port int, proto, fmts string, extra ...string) []byte {
	s := "v=0\r\no=dev 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		fmt.Sprintf("m=audio %d %s %s\r\n", port, proto, fmts) +
		"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n"
	for _, e := range extra {
		s += e + "\r\n"
	}
	return []byte(s)
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
	r, _ := testRelay(t, Options{})
	s, err := r.NewSession("sdp")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := newDevice(t, "127.0.0.1", SuiteAES128SHA1_80)
	b := newDevice(t, "127.0.0.1", SuiteAES128SHA1_32)

	// A (baresip-like: no rtcp-mux) offers _80 only.
	offer := devSDP(int(a.addr().Port()), "RTP/SAVP", "0 8 101", "a=sendrecv", "a=crypto:1 "+string(a.own.Suite)+" "+a.own.Inline())
	toB, err := s.RewriteOffer(LegA, offer, []string{"pcma", "PCMU"})
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
	var err2 error
	if a.rx, err2 = back[0].context(); err2 != nil {
		t.Fatal(err2)
	}
	if b.rx, err2 = pick.context(); err2 != nil {
		t.Fatal(err2)
	}
	a.relay = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(s.A().Port()))
	b.relay = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(s.B().Port()))
	a.send(10)
	checkPayloads(t, b.recv(200*time.Millisecond), a, 10)
	b.send(10)
	checkPayloads(t, a.recv(200*time.Millisecond), b, 10)

	// Hold and resume from B: same ports, same keys, media still flows.
	hold := devSDP(int(b.addr().Port()), "RTP/SAVP", "8 101", "a=sendonly", "a=rtcp-mux", "a=crypto:"+b.own.Attr())
	toA2, err := s.RewriteOffer(LegB, hold, nil)
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
	r, _ := testRelay(t, Options{})
	s, err := r.NewSession("488")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key, _ := NewCrypto(1, SuiteAES128SHA1_80)
	for name, tc := range map[string]struct {
		sdp    []byte
		codecs []string
	}{
		"plain from extension": {devSDP(4000, "RTP/AVP", "0"), nil},
		"no common codec":      {devSDP(4000, "RTP/SAVP", "0", "a=crypto:"+key.Attr()), []string{"G722"}},
		"only unsupported":     {devSDP(4000, "RTP/SAVP", "0", "a=crypto:1 F8_128_HMAC_SHA1_80 inline:"+key.Inline()[7:]), nil},
		"DTLS":                 {devSDP(4000, "UDP/TLS/RTP/SAVP", "0"), nil},
		"garbage":              {[]byte("not sdp"), nil},
	} {
		if _, err := s.RewriteOffer(LegA, tc.sdp, tc.codecs); !errors.Is(err, ErrNotAcceptable) {
			t.Errorf("%s: %v, want ErrNotAcceptable", name, err)
		}
	}
	// A trunk leg allowed plain RTP gets best-effort SRTP offered and may
	// answer plain.
	s.B().SetAllowPlain(true)
	toB, err := s.RewriteOffer(LegA, devSDP(4000, "RTP/SAVP", "0", "a=crypto:"+key.Attr()), nil)
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
