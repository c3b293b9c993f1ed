package sipua

import (
	"bufio"
	"strings"
	"testing"
)

func TestReadMsgFramesAStream(t *testing.T) {
	stream := "\r\n\r\n" + // keep-alives before the first message
		"INVITE sip:user0001@bench.test SIP/2.0\r\n" +
		"v: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK1\r\n" +
		"Via: SIP/2.0/TLS 127.0.0.1:6000;branch=z9hG4bK2\r\n" +
		"Record-Route: <sip:127.0.0.1:5061;transport=tls;lr>\r\n" +
		"f: <sip:user0000@bench.test>;tag=a\r\n" +
		"To: <sip:user0001@bench.test>\r\n" +
		"i: c1\r\n" +
		"Subject: folded\r\n  over two lines\r\n" +
		"l: 4\r\n\r\nv=0\n" +
		"SIP/2.0 180 Ringing\r\nContent-Length: 0\r\n\r\n"
	r := bufio.NewReader(strings.NewReader(stream))
	m, err := ReadMsg(r)
	if err != nil {
		t.Fatal(err)
	}
	if m.Method != "INVITE" || m.RURI != "sip:user0001@bench.test" || m.Code != 0 {
		t.Errorf("start line parsed as %q %q %d", m.Method, m.RURI, m.Code)
	}
	if v := m.All("via"); len(v) != 2 || !strings.HasSuffix(v[0], "z9hG4bK1") {
		t.Errorf("vias %q", v)
	}
	if m.Get("call-id") != "c1" || HeaderParam(m.Get("from"), "tag") != "a" || m.Get("subject") != "folded over two lines" {
		t.Errorf("headers %q", m.Hdrs)
	}
	if string(m.Body) != "v=0\n" {
		t.Errorf("body %q", m.Body)
	}
	m2, err := ReadMsg(r)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Code != 180 || m2.Reason != "Ringing" || len(m2.Body) != 0 {
		t.Errorf("second message %q", m2.First)
	}
}

func TestReadMsgRefusesLostFraming(t *testing.T) {
	for name, in := range map[string]string{
		"negative length": "SIP/2.0 200 OK\r\nContent-Length: -1\r\n\r\n",
		"huge length":     "SIP/2.0 200 OK\r\nContent-Length: 70000\r\n\r\n",
		"no colon":        "SIP/2.0 200 OK\r\nbroken\r\n\r\n",
		"bad status":      "SIP/2.0 99 Early\r\nContent-Length: 0\r\n\r\n",
		"short body":      "SIP/2.0 200 OK\r\nContent-Length: 10\r\n\r\nabc",
	} {
		if _, err := ReadMsg(bufio.NewReader(strings.NewReader(in))); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestResponseCopiesWhatTheProxyNeeds(t *testing.T) {
	in := "INVITE sip:user0001@127.0.0.1:40000;transport=tls SIP/2.0\r\n" +
		"Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK1\r\nVia: SIP/2.0/TLS 127.0.0.1:6000;branch=z9hG4bK2\r\n" +
		"Record-Route: <sip:127.0.0.1:5061;transport=tls;lr>\r\n" +
		"From: <sip:user0000@bench.test>;tag=a\r\nTo: <sip:user0001@bench.test>\r\nCall-ID: c1\r\nCSeq: 2 INVITE\r\n" +
		"Content-Length: 0\r\n\r\n"
	m, err := ReadMsg(bufio.NewReader(strings.NewReader(in)))
	if err != nil {
		t.Fatal(err)
	}
	u := &UA{agent: "test"}
	got := string(u.Response(m, 200, "OK", "b", []string{"Contact: <sip:x@127.0.0.1:40000;transport=tls>"}, "v=0\r\n"))
	for _, want := range []string{
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK1\r\nVia: SIP/2.0/TLS 127.0.0.1:6000;branch=z9hG4bK2\r\n",
		"Record-Route: <sip:127.0.0.1:5061;transport=tls;lr>\r\n",
		"To: <sip:user0001@bench.test>;tag=b\r\n", "CSeq: 2 INVITE\r\n",
		"Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("response lacks %q:\n%s", want, got)
		}
	}
	bye := string(u.Response(m, 487, "Request Terminated", "b", nil, ""))
	if strings.Contains(bye, "Record-Route") {
		t.Errorf("a final non-2xx carries no Record-Route:\n%s", bye)
	}
}

func TestURIHelpers(t *testing.T) {
	v := `"Alice" <sip:user0000@bench.test;transport=tls>;tag=abc;expires=60`
	if URIOf(v) != "sip:user0000@bench.test;transport=tls" || UserOf(URIOf(v)) != "user0000" ||
		HeaderParam(v, "TAG") != "abc" || HeaderParam(v, "transport") != "" {
		t.Errorf("URIOf %q UserOf %q tag %q", URIOf(v), UserOf(URIOf(v)), HeaderParam(v, "tag"))
	}
	if URIOf("sip:bench.test;lr") != "sip:bench.test" || UserOf("sip:bench.test") != "" {
		t.Error("addr-spec without name-addr")
	}
}
