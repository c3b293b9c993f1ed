package sanity

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// want is the verdict expected for one torture message. parse means sipgo
// itself refuses the message, so Check never sees it.
type want struct {
	ok    bool
	parse bool
	code  int
	drop  bool
}

// torture lists every RFC 4475 message in testdata (copied from sipgo's
// corpus, RFC names kept). sipgo files everything outside RFC 4475 3.1.1
// under invalid/, including the 3.2-3.4 semantic tests; cparam01 and
// cparam02 are valid REGISTERs there (RFC 4475 3.3.12, 3.3.13) and sipgo
// reads their contact parameters correctly, so they pass.
var torture = map[string]want{
	"invalid/badaspec":   {parse: true},
	"invalid/badbranch":  {code: 400, drop: true},
	"invalid/baddate":    {code: 400},
	"invalid/baddn":      {parse: true},
	"invalid/badinv01":   {parse: true},
	"invalid/badvers":    {code: 505, drop: true}, // its Via is SIP/7.0 too: nothing to answer to
	"invalid/bcast":      {code: 400, drop: true}, // a response: never answered
	"invalid/bext01":     {code: 420},
	"invalid/bigcode":    {parse: true},
	"invalid/clerr":      {parse: true},
	"invalid/cparam01":   {ok: true},
	"invalid/cparam02":   {ok: true},
	"invalid/escruri":    {code: 400},
	"invalid/insuf":      {code: 400, drop: true},
	"invalid/inv2543":    {code: 400, drop: true},
	"invalid/invut":      {code: 415},
	"invalid/ltgtruri":   {parse: true},
	"invalid/lwsruri":    {parse: true},
	"invalid/lwsstart":   {parse: true},
	"invalid/mcl01":      {code: 400},
	"invalid/mismatch01": {code: 400},
	"invalid/mismatch02": {code: 400},
	"invalid/multi01":    {code: 400, drop: true},
	"invalid/ncl":        {parse: true},
	"invalid/novelsc":    {parse: true},
	"invalid/quotbal":    {parse: true},
	"invalid/regaut01":   {code: 400},
	"invalid/regbadct":   {code: 400},
	"invalid/regescrt":   {code: 400},
	"invalid/scalar02":   {parse: true},
	"invalid/scalarlg":   {parse: true},
	"invalid/sdp01":      {code: 406},
	"invalid/test":       {parse: true},
	"invalid/trws":       {parse: true},
	"invalid/unkscm":     {code: 416},
	"invalid/unksm2":     {code: 400},
	"invalid/zeromf":     {code: 483},

	"valid/dblreq":     {ok: true},
	"valid/esc01":      {ok: true},
	"valid/esc02":      {code: 405}, // RE%47IST%45R is an unknown method, not REGISTER
	"valid/escnull":    {ok: true},
	"valid/intmeth":    {code: 405}, // unknown method; see TestTortureValidExceptions
	"valid/longreq":    {code: 400, drop: true},
	"valid/lwsdisp":    {ok: true},
	"valid/mpart01":    {ok: true},
	"valid/noreason":   {ok: true},
	"valid/semiuri":    {ok: true},
	"valid/transports": {ok: true},
	"valid/unreason":   {ok: true},
	"valid/wsinv":      {code: 400, drop: true},
}

func TestTorture(t *testing.T) {
	files, err := filepath.Glob("testdata/torture/*/*.dat")
	if err != nil || len(files) == 0 {
		t.Fatalf("no torture corpus: %v", err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.ToSlash(f), "testdata/torture/"), ".dat")
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			w, ok := torture[name]
			if !ok {
				t.Fatalf("no expectation for %s", name)
			}
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := sip.NewParser().ParseSIP(raw)
			if err != nil {
				if !w.parse {
					t.Fatalf("sipgo refused it: %v", err)
				}
				if strings.HasPrefix(name, "valid/") {
					t.Fatalf("valid message refused by sipgo: %v", err)
				}
				// sipgo may hand back what it read so far; if so, Check
				// must refuse it too (defence in depth for a laxer sipgo).
				if msg != nil {
					if r := Check(raw, msg, DefaultOptions()); r.OK {
						t.Errorf("partial parse accepted: %+v", r)
					}
				}
				return
			}
			if w.parse {
				t.Fatalf("sipgo now parses it; set an expectation")
			}
			r := Check(raw, msg, DefaultOptions())
			if r.OK != w.ok || r.Code != w.code || r.Drop != w.drop {
				t.Fatalf("got %+v, want %+v", r, w)
			}
			if strings.HasPrefix(name, "invalid/") && r.OK && name != "invalid/cparam01" && name != "invalid/cparam02" {
				t.Fatalf("invalid message accepted")
			}
		})
	}
	for name := range torture {
		if !seen[name] {
			t.Errorf("expectation for missing file %s", name)
		}
	}
}

// TestTortureValidExceptions pins down why the RFC 4475 3.1.1 messages that
// Check refuses are refused, and that nothing else in them is at fault.
func TestTortureValidExceptions(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile("testdata/torture/valid/" + name + ".dat")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	run := func(raw []byte, o Options) Result {
		t.Helper()
		msg, err := sip.NewParser().ParseSIP(raw)
		if err != nil {
			t.Fatal(err)
		}
		return Check(raw, msg, o)
	}
	o := DefaultOptions()
	o.AllowedMethods = append([]string{"RE%47IST%45R", "!interesting-Method0123456789_*+`.%indeed'~"}, defaultMethods...)

	// longreq: its Vias carry RFC 2543 branches. With RFC 3261 ones it passes.
	lr := read("longreq")
	if r := run(lr, o); r.Reason != "Missing RFC 3261 Branch" {
		t.Errorf("longreq: %+v", r)
	}
	lr = regexp.MustCompile(`(?m)(sip\d+\.example\.com)\r$`).ReplaceAll(lr, []byte("$1;branch=z9hG4bKx\r"))
	lr = bytes.Replace(lr, []byte("branch=verylong"), []byte("branch=z9hG4bKverylong"), 1)
	if r := run(lr, o); !r.OK {
		t.Errorf("longreq with RFC 3261 branches: %+v", r)
	}

	// wsinv: RFC 2543 top branch; and sipgo keeps the LWS around "=" in
	// ";   tag    = x", so it sees no tag where the grammar has one.
	ws := read("wsinv")
	if r := run(ws, o); r.Reason != "Missing RFC 3261 Branch" {
		t.Errorf("wsinv: %+v", r)
	}
	ws = bytes.Replace(ws, []byte("branch=390"), []byte("branch=z9hG4bK390"), 1)
	if r := run(ws, o); r.Reason != "Ambiguous Tag" {
		t.Errorf("wsinv with RFC 3261 branch: %+v", r)
	}

	// esc02 passes once its unknown method is allowed.
	if r := run(read("esc02"), o); !r.OK {
		t.Errorf("esc02 allowed: %+v", r)
	}
	// intmeth: sipgo upper-cases the method, so routing would see another
	// method than the one sent (methods are case-sensitive).
	if r := run(read("intmeth"), o); r.Reason != "Ambiguous Method" {
		t.Errorf("intmeth allowed: %+v", r)
	}
}

const register = "REGISTER sip:veilig.example.com SIP/2.0\r\n" +
	"Via: SIP/2.0/TLS 192.0.2.10:49152;branch=z9hG4bK1b2c3d4e5f;rport;alias\r\n" +
	"Max-Forwards: 70\r\n" +
	"To: <sip:1001@veilig.example.com>\r\n" +
	"From: \"Agent Anna\" <sip:1001@veilig.example.com>;tag=84c7e1f0a9\r\n" +
	"Call-ID: 7f3a91c2d5e84b60a1f2c3d4e5f60718\r\n" +
	"CSeq: 2 REGISTER\r\n" +
	"User-Agent: baresip v3.10.1 (x86_64/linux)\r\n" +
	"Authorization: Digest username=\"1001\",realm=\"veilig\",nonce=\"d2f7a0c1e9b84f2a\",uri=\"sip:veilig.example.com\",response=\"5b2c0e8f6d1a4b3c9e7f0a2d4c6b8e1f\",algorithm=SHA-256,qop=auth,nc=00000001,cnonce=\"a1b2c3d4\"\r\n" +
	"Contact: <sip:1001-0x55d1@192.0.2.10:49152;transport=tls>;expires=3600;+sip.instance=\"<urn:uuid:0e4c1f2a-3b5d-4c6e-8f70-91a2b3c4d5e6>\";reg-id=1\r\n" +
	"Supported: gruu,path,outbound\r\n" +
	"Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,UPDATE,REFER\r\n" +
	"Expires: 3600\r\n" +
	"Content-Length: 0\r\n" +
	"\r\n"

func checkString(t testing.TB, s string, o Options) Result {
	t.Helper()
	msg, err := sip.NewParser().ParseSIP([]byte(s))
	if err != nil {
		return Result{Code: -1, Reason: "sipgo: " + err.Error()}
	}
	return Check([]byte(s), msg, o)
}

// TestRules runs one rule at a time against an otherwise clean REGISTER.
func TestRules(t *testing.T) {
	o := DefaultOptions()
	if r := checkString(t, register, o); !r.OK {
		t.Fatalf("base REGISTER: %+v", r)
	}
	sub := func(old, new string) string {
		if !strings.Contains(register, old) {
			t.Fatalf("%q not in base", old)
		}
		return strings.Replace(register, old, new, 1)
	}
	invite := func(body, ct string) string {
		s := strings.Replace(register, "REGISTER sip:veilig.example.com", "INVITE sip:1002@veilig.example.com", 1)
		s = strings.Replace(s, "CSeq: 2 REGISTER", "CSeq: 2 INVITE", 1)
		s = strings.Replace(s, "Content-Length: 0\r\n", ct+"Content-Length: "+itoa(len(body))+"\r\n", 1)
		return s + body
	}
	sdp := "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\n"
	cases := []struct {
		name string
		msg  string
		code int // 0: OK; -1: sipgo refuses
		drop bool
	}{
		{"invite with sdp", invite(sdp, "Content-Type: application/sdp\r\n"), 0, false},
		{"invite text body", invite("hello", "Content-Type: text/plain\r\n"), 415, false},
		{"body without type", invite(sdp, ""), 400, false},
		{"ack with sdp", strings.Replace(strings.Replace(invite(sdp, "Content-Type: application/sdp\r\n"), "INVITE sip", "ACK sip", 1), "2 INVITE", "2 ACK", 1), 0, false},
		{"ack fault drops", strings.Replace(strings.Replace(register, "REGISTER sip", "ACK sip", 1), "2 REGISTER", "2 INVITE", 1), 400, true},
		{"lower-case method", strings.Replace(sub("REGISTER sip", "register sip"), "2 REGISTER", "2 register", 1), 405, false},
		{"unknown method", strings.Replace(sub("REGISTER sip", "FOO sip"), "2 REGISTER", "2 FOO", 1), 405, false},
		{"cseq mismatch", sub("2 REGISTER", "2 INVITE"), 400, false},
		{"cseq 2^31", sub("CSeq: 2 ", "CSeq: 2147483648 "), -1, false},
		{"cseq 2^31-1", sub("CSeq: 2 ", "CSeq: 2147483647 "), 0, false},
		{"cseq two spaces", sub("CSeq: 2 ", "CSeq: 2  "), 400, true},
		{"version", sub("SIP/2.0\r\n", "SIP/2.1\r\n"), -1, false},
		{"max-forwards 0", sub("Max-Forwards: 70", "Max-Forwards: 0"), 483, false},
		{"max-forwards 256", sub("Max-Forwards: 70", "Max-Forwards: 256"), 400, false},
		{"max-forwards missing", sub("Max-Forwards: 70\r\n", ""), 400, false},
		{"max-forwards twice", sub("Max-Forwards: 70\r\n", "Max-Forwards: 70\r\nMax-Forwards: 69\r\n"), 400, false},
		{"content-length long", sub("Content-Length: 0", "Content-Length: 5"), -1, false},
		{"content-length huge", sub("Content-Length: 0", "Content-Length: 99999999999"), -1, false},
		{"content-length short (datagram tail ignored)", register + "junk", 0, false},
		{"no content-length: rest is body", sub("Content-Length: 0\r\n", "") + "junk", 400, false},
		{"via no branch", sub(";branch=z9hG4bK1b2c3d4e5f", ""), 400, true},
		{"via 2543 branch", sub("branch=z9hG4bK1b2c3d4e5f", "branch=1b2c3d4e5f"), 400, true},
		{"via port 0", sub("192.0.2.10:49152;", "192.0.2.10:0;"), 400, true},
		{"via port 65536", sub("192.0.2.10:49152;", "192.0.2.10:65536;"), -1, false},
		{"via broadcast", sub("Via: SIP/2.0/TLS 192.0.2.10", "Via: SIP/2.0/TLS 255.255.255.255"), 400, true},
		{"via multicast", sub("Via: SIP/2.0/TLS 192.0.2.10", "Via: SIP/2.0/TLS 224.0.0.1"), 400, true},
		{"via bad host", sub("Via: SIP/2.0/TLS 192.0.2.10", "Via: SIP/2.0/TLS 192.0.2.300"), 400, true},
		{"via ipv6", sub("Via: SIP/2.0/TLS 192.0.2.10", "Via: SIP/2.0/TLS [2001:db8::1]"), 0, false},
		{"via hostname", sub("Via: SIP/2.0/TLS 192.0.2.10", "Via: SIP/2.0/TLS pc1.example.com"), 0, false},
		{"via second", sub("Max-Forwards", "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKabc\r\nMax-Forwards"), 0, false},
		{"from tag twice", sub(";tag=84c7e1f0a9", ";tag=84c7e1f0a9;tag=x"), 400, true},
		{"from tag missing", sub(";tag=84c7e1f0a9", ""), 400, false},
		{"from twice", sub("Call-ID", "From: <sip:x@example.com>;tag=1\r\nCall-ID"), 400, true},
		{"to missing", sub("To: <sip:1001@veilig.example.com>\r\n", ""), 400, true},
		{"call-id missing", sub("Call-ID: 7f3a91c2d5e84b60a1f2c3d4e5f60718\r\n", ""), 400, true},
		{"call-id space", sub("Call-ID: 7f3a91c2", "Call-ID: 7f3a 91c2"), 400, true},
		{"from unknown scheme", sub("From: \"Agent Anna\" <sip:", "From: \"Agent Anna\" <http:"), 400, false},
		{"to tel", sub("To: <sip:1001@veilig.example.com>", "To: <tel:+31201234567>"), 0, false},
		{"ruri tel", sub("REGISTER sip:veilig.example.com", "REGISTER tel:+31201234567"), 0, false},
		{"ruri bad escape", sub("REGISTER sip:veilig.example.com", "REGISTER sip:a%4@veilig.example.com"), 400, false},
		{"ruri headers", sub("REGISTER sip:veilig.example.com", "REGISTER sip:veilig.example.com?Route=x"), 400, false},
		{"ruri too long", sub("REGISTER sip:veilig.example.com", "REGISTER sip:"+strings.Repeat("a", 1100)+"@veilig.example.com"), 414, false},
		{"nul in header", sub("baresip v3", "baresip\x00v3"), 400, false},
		{"ctl in header", sub("baresip v3", "baresip\x01v3"), 400, false},
		{"bad utf-8", sub("baresip v3", "baresip\xff\xfev3"), 400, false},
		{"utf-8 display name", sub("Agent Anna", "Agent Ännä"), 0, false},
		{"quoted-pair nul", sub("Agent Anna", "Agent\\\x00Anna"), 0, false},
		{"folded header", sub("User-Agent: baresip", "User-Agent:\r\n  baresip"), 0, false},
		{"bad header name", sub("User-Agent:", "User Agent:"), -1, false},
		{"header too long", sub("baresip v3", "baresip "+strings.Repeat("x", 5000)), 513, false},
		{"too many headers", sub("Expires: 3600\r\n", strings.Repeat("X-A: b\r\n", 120)+"Expires: 3600\r\n"), 513, true},
		{"contact star", sub("Contact: <sip:1001-0x55d1@192.0.2.10:49152;transport=tls>;expires=3600;+sip.instance=\"<urn:uuid:0e4c1f2a-3b5d-4c6e-8f70-91a2b3c4d5e6>\";reg-id=1", "Contact: *"), 0, false},
		{"contact bad expires", sub(";expires=3600;+sip", ";expires=99999999999;+sip"), 400, false},
		{"contact bad q", sub(";expires=3600;+sip", ";q=1.5;+sip"), 400, false},
		{"contact unknown scheme", sub("Contact: <sip:", "Contact: <mailto:"), 400, false},
		{"contact list", sub(";reg-id=1", ";reg-id=1, <sips:1001@pc.example.com>;q=0.5"), 0, false},
		{"contact headers", sub(";transport=tls>", ";transport=tls?Route=%3Csip:evil%3E>"), 400, false},
		{"require unknown", sub("Expires: 3600", "Require: foo\r\nExpires: 3600"), 420, false},
		{"proxy-require unknown", sub("Expires: 3600", "Proxy-Require: foo\r\nExpires: 3600"), 420, false},
		{"date gmt", sub("Expires: 3600", "Date: Sat, 13 Nov 2010 23:29:00 GMT\r\nExpires: 3600"), 0, false},
		{"date est", sub("Expires: 3600", "Date: Sat, 13 Nov 2010 23:29:00 EST\r\nExpires: 3600"), 400, false},
		{"expires huge", sub("Expires: 3600", "Expires: 4294967296"), 400, false},
		{"route ok", sub("Expires: 3600", "Route: <sip:veilig.example.com;lr>\r\nExpires: 3600"), 0, false},
		{"route unbracketed", sub("Expires: 3600", "Route: sip:veilig.example.com\r\nExpires: 3600"), 400, false},
		{"auth basic", sub("Authorization: Digest", "Authorization: Basic"), 400, false},
		{"leading crlf", "\r\n\r\n" + register, -1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := checkString(t, tc.msg, o)
			switch {
			case tc.code == -1:
				if r.Code != -1 && r.OK {
					t.Fatalf("sipgo parsed it and Check accepted it: %+v", r)
				}
			case tc.code == 0:
				if !r.OK {
					t.Fatalf("want OK, got %+v", r)
				}
			default:
				if r.OK || r.Code != tc.code || r.Drop != tc.drop {
					t.Fatalf("want %d drop=%v, got %+v", tc.code, tc.drop, r)
				}
			}
		})
	}
}

func TestSupportedExtension(t *testing.T) {
	s := strings.Replace(register, "Expires: 3600", "Require: path, Outbound\r\nExpires: 3600", 1)
	o := DefaultOptions()
	if r := checkString(t, s, o); r.Code != 420 || r.Unsupported != "path" {
		t.Fatalf("got %+v", r)
	}
	o.SupportedExtensions = []string{"outbound", "path"}
	if r := checkString(t, s, o); !r.OK {
		t.Fatalf("got %+v", r)
	}
}

func TestResponse(t *testing.T) {
	resp := "SIP/2.0 200 OK\r\n" +
		"Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bKabc;received=192.0.2.1\r\n" +
		"To: <sip:1002@veilig.example.com>;tag=99\r\n" +
		"From: <sip:1001@veilig.example.com>;tag=88\r\n" +
		"Call-ID: abc@192.0.2.1\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Contact: <sip:1002@192.0.2.7:5061;transport=tls>\r\n" +
		"Content-Length: 0\r\n\r\n"
	if r := checkString(t, resp, Options{}); !r.OK {
		t.Fatalf("response: %+v", r)
	}
	bad := strings.Replace(resp, "Call-ID: abc@", "Call-ID: abc @", 1)
	if r := checkString(t, bad, Options{}); r.OK || !r.Drop {
		t.Fatalf("bad response: %+v", r)
	}
	bad = strings.Replace(resp, "received=192.0.2.1", "received=0.0.0.0", 1)
	if r := checkString(t, bad, Options{}); r.OK || !r.Drop {
		t.Fatalf("bad received: %+v", r)
	}
}

func TestNilAndMismatch(t *testing.T) {
	if r := Check(nil, nil, Options{}); r.OK || !r.Drop {
		t.Fatalf("nil: %+v", r)
	}
	msg, err := sip.NewParser().ParseSIP([]byte(register))
	if err != nil {
		t.Fatal(err)
	}
	other := strings.Replace(register, "Call-ID: 7f3a", "Call-ID: 8f3a", 1)
	if r := Check([]byte(other), msg, Options{}); r.OK || !r.Drop {
		t.Fatalf("raw and parse disagree: %+v", r)
	}
	if r := Check([]byte(register[:200]), msg, Options{}); r.OK || !r.Drop {
		t.Fatalf("truncated: %+v", r)
	}
	for _, s := range []string{"\r\n", "SIP/2.0 200 OK\r\n\r\n", "REGISTER sip:a SIP/2.0\r\nVia: x\n\r\n"} {
		if r := Check([]byte(s), msg, Options{}); r.OK || !r.Drop {
			t.Fatalf("%q: %+v", s, r)
		}
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

func BenchmarkCheckRegister(b *testing.B) {
	raw := []byte(register)
	msg, err := sip.NewParser().ParseSIP(raw)
	if err != nil {
		b.Fatal(err)
	}
	o := DefaultOptions()
	if r := Check(raw, msg, o); !r.OK {
		b.Fatalf("%+v", r)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		Check(raw, msg, o)
	}
}
