package sipua

import (
	"bufio"
	"strings"
	"testing"
)

// TestDigestRFC7616: the SHA-256 example of RFC 7616 section 3.9.1.
func TestDigestRFC7616(t *testing.T) {
	c, ok := PickChallenge([]string{
		`Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
		`Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
	}, "SHA-256")
	if !ok || c.Params["realm"] != "http-auth@example.org" || c.Params["qop"] != "auth, auth-int" {
		t.Fatalf("challenge = %+v %v", c, ok)
	}
	ha1 := c.HashHex("Mufasa:http-auth@example.org:Circle of Life")
	ha2 := c.HashHex("GET:/dir/index.html")
	resp := c.HashHex(ha1 + ":" + c.Params["nonce"] + ":00000001:f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ:auth:" + ha2)
	if want := "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"; resp != want {
		t.Fatalf("response %s, want %s", resp, want)
	}
	// The credentials Authorization writes check out with their own cnonce.
	cr, ok := ParseChallenge(c.Authorization("Mufasa", "Circle of Life", "GET", "/dir/index.html"))
	if !ok {
		t.Fatal("Authorization is not a Digest value")
	}
	p := cr.Params
	want := c.HashHex(ha1 + ":" + p["nonce"] + ":" + p["nc"] + ":" + p["cnonce"] + ":auth:" + ha2)
	if p["response"] != want || p["opaque"] != c.Params["opaque"] || p["algorithm"] != "SHA-256" || p["username"] != "Mufasa" {
		t.Fatalf("credentials %+v", p)
	}
	if _, ok := PickChallenge([]string{`Basic realm="x"`}, "MD5"); ok {
		t.Fatal("a Basic challenge is not a Digest one")
	}
	if c, _ := ParseChallenge(`Digest realm="r", nonce="n"`); c.Algorithm() != "MD5" {
		t.Fatal("no algorithm means MD5")
	}
}

func TestReadMsgRawKeepsBytes(t *testing.T) {
	raw := "SIP/2.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"r\"\r\nl: 2\r\n\r\nhi"
	m, err := ParseMsg([]byte("\r\n\r\n" + raw))
	if err != nil || m.Code != 401 || m.Header("Content-Length") != "2" || m.Header("www-authenticate") == "" {
		t.Fatalf("ParseMsg = %+v, %v", m, err)
	}
	if m.Raw != nil {
		t.Fatal("ParseMsg keeps no raw bytes")
	}
	r, err := ReadMsgRaw(bufio.NewReader(strings.NewReader("\r\n" + raw + raw)))
	if err != nil || string(r.Raw) != raw {
		t.Fatalf("ReadMsgRaw kept %q, %v; want %q", r.Raw, err, raw)
	}
	if StatusOf(raw) != 401 || StatusOf("INVITE sip:a SIP/2.0\r\n") != 0 {
		t.Fatal("StatusOf wrong")
	}
}

func TestRegisterString(t *testing.T) {
	got := Register{Transport: "UDP", Via: "127.0.0.2:5070", Branch: "z9hG4bK1", User: "1001", Domain: "d", CallID: "c@x", FromTag: "f",
		CSeq: 2, Contact: "<sip:1001@127.0.0.2:5070>", Expires: 60, Auth: `Digest username="1001"`, Agent: "ua"}.String()
	want := "REGISTER sip:d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK1;rport\r\nMax-Forwards: 70\r\n" +
		"From: <sip:1001@d>;tag=f\r\nTo: <sip:1001@d>\r\nCall-ID: c@x\r\nCSeq: 2 REGISTER\r\nContact: <sip:1001@127.0.0.2:5070>\r\n" +
		"Expires: 60\r\nAuthorization: Digest username=\"1001\"\r\nUser-Agent: ua\r\nContent-Length: 0\r\n\r\n"
	if got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	if _, err := ParseMsg([]byte(got)); err != nil {
		t.Fatal(err)
	}
}
