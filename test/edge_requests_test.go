package test

// Requests at the SIP edge that are not calls: out-of-dialog methods from
// an unauthenticated sender, malformed and oversized messages, and a bad
// config file.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOutOfDialogRequestsChallenged: MESSAGE, SUBSCRIBE, OPTIONS, INFO and
// REFER sent outside a dialog by a sender without credentials are all
// challenged with 407, and nothing reaches the registered device they name.
// With valid credentials they are still not relayed (Veilig answers them
// itself).
func TestOutOfDialogRequestsChallenged(t *testing.T) {
	srv := startServer(t, serverOptions{})
	secretA := srv.addExtension(t, "1001")
	secretB := srv.addExtension(t, "1002")
	device := newUA(t, srv, "127.0.0.52", "1002", secretB)
	anon := newUA(t, srv, "127.0.0.51", "1001", "")
	anon.secret = secretA

	extras := map[string][]string{
		"MESSAGE":   nil,
		"SUBSCRIBE": {"Event: presence", "Expires: 60", "Accept: application/pidf+xml"},
		"OPTIONS":   {"Accept: application/sdp"},
		"INFO":      nil,
		"REFER":     {"Refer-To: <sip:1002@" + srv.domain + ">"},
	}
	bodies := map[string]string{"MESSAGE": "hello 1002", "INFO": "Signal=5\r\nDuration=160\r\n"}
	for _, method := range []string{"MESSAGE", "SUBSCRIBE", "OPTIONS", "INFO", "REFER"} {
		anon.outOfDialog(method, "1002", extras[method], bodies[method])
		res := anon.waitFinal(5*time.Second, method)
		if res.status() != 407 || len(res.all("Proxy-Authenticate")) == 0 {
			t.Errorf("unauthenticated out-of-dialog %s: got %q, want 407 with Proxy-Authenticate\n%s", method, res.start, res.raw)
			continue
		}
		// With valid credentials: answered by Veilig, never relayed.
		ch := pickChallenge(t, res.all("Proxy-Authenticate"), "SHA-256")
		auth := "Proxy-Authorization: " + ch.Authorization("1001", secretA, method, "sip:1002@"+srv.domain)
		anon.outOfDialog(method, "1002", append(append([]string(nil), extras[method]...), auth), bodies[method])
		res = anon.waitFinal(5*time.Second, method)
		t.Logf("authenticated out-of-dialog %s: %s", method, res.start)
		if res.status() == 407 || (method != "OPTIONS" && res.status() < 300) {
			t.Errorf("authenticated out-of-dialog %s: got %q, want it answered by Veilig and not accepted for relay", method, res.start)
		}
	}
	device.expectSilence(2*time.Second, "no out-of-dialog request may be relayed to a device")
}

// TestMalformedRequestsGet400: over TLS, a request whose CSeq names another
// method and one whose Via branch lacks the RFC 3261 cookie get 400. A
// request without Call-ID cannot be answered with a well-formed response:
// Veilig drops it (sipedge.badRequest answers only when Via, Call-ID,
// CSeq, From and To are present); the test accepts 400 or silence, never
// anything else. The connection stays usable throughout.
func TestMalformedRequestsGet400(t *testing.T) {
	srv := startServer(t, serverOptions{})
	u := newUA(t, srv, "127.0.0.53", "1001", "")
	base := func(method, cseqMethod string, withCallID bool, branch string) string {
		hdrs := []string{
			fmt.Sprintf("Via: SIP/2.0/TLS %s;branch=%s;rport", u.hostport(), branch),
			"Max-Forwards: 70",
			fmt.Sprintf("From: <sip:1001@%s>;tag=%s", srv.domain, randHex(4)),
			fmt.Sprintf("To: <sip:1002@%s>", srv.domain),
		}
		if withCallID {
			hdrs = append(hdrs, "Call-ID: "+randHex(8)+"@veilig-e2e")
		}
		hdrs = append(hdrs, "CSeq: 1 "+cseqMethod)
		return buildRequest(method, "sip:1002@"+srv.domain, hdrs, "")
	}
	cases := []struct {
		name      string
		msg       string
		silenceOK bool
	}{
		{"CSeq method mismatch", base("OPTIONS", "INVITE", true, "z9hG4bK"+randHex(8)), false},
		{"Via branch without z9hG4bK", base("OPTIONS", "OPTIONS", true, "old"+randHex(8)), false},
		{"missing Call-ID", base("OPTIONS", "OPTIONS", false, "z9hG4bK"+randHex(8)), true},
	}
	for _, tc := range cases {
		u.send(t, tc.msg)
		res, err := u.next(3 * time.Second)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() && tc.silenceOK {
				t.Logf("%s: no answer (dropped)", tc.name)
				continue
			}
			t.Errorf("%s: no response: %v", tc.name, err)
			continue
		}
		t.Logf("%s: %s", tc.name, res.start)
		if res.status() != 400 {
			t.Errorf("%s: got %q, want 400\n%s", tc.name, res.start, res.raw)
		}
	}
	// The connection still works.
	u.outOfDialog("OPTIONS", "1002", nil, "")
	if res := u.waitFinal(5*time.Second, "OPTIONS"); res.status() != 407 {
		t.Errorf("well-formed OPTIONS after the malformed ones: got %q, want 407", res.start)
	}
}

// TestOversizedMessageClosesConnection: a message larger than 65535 bytes
// makes Veilig close that connection (it may answer 513 first); the server
// keeps running and answers on a new connection.
func TestOversizedMessageClosesConnection(t *testing.T) {
	srv := startServer(t, serverOptions{})
	u := newUA(t, srv, "127.0.0.54", "1001", "")
	pad := strings.Repeat("a", 70000)
	msg := buildRequest("OPTIONS", "sip:1002@"+srv.domain, []string{
		"Via: " + u.via("z9hG4bK"+randHex(8)),
		"Max-Forwards: 70",
		fmt.Sprintf("From: <sip:1001@%s>;tag=%s", srv.domain, randHex(4)),
		fmt.Sprintf("To: <sip:1002@%s>", srv.domain),
		"Call-ID: " + randHex(8) + "@veilig-e2e",
		"CSeq: 1 OPTIONS",
		"X-Pad: " + pad,
	}, "")
	_ = u.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, werr := u.conn.Write([]byte(msg)) // may fail once the server closes
	closed := false
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		m, err := u.read(time.Until(deadline))
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				break
			}
			closed = true
			t.Logf("connection ended: %v (write error: %v)", err, werr)
			break
		}
		t.Logf("before close, Veilig sent: %s", m.start)
		if m.status() >= 200 && m.status() < 300 {
			t.Errorf("oversized message was accepted: %s", m.start)
		}
	}
	if !closed {
		t.Errorf("connection still open 10 s after a %d-byte message", len(msg))
	}
	if srv.proc.Exited() {
		t.Fatalf("veilig exited after the oversized message:\n%s", tail(srv.proc.Output(), 40))
	}
	v := newUA(t, srv, "127.0.0.55", "1001", "")
	v.outOfDialog("OPTIONS", "1002", nil, "")
	if res := v.waitFinal(5*time.Second, "OPTIONS"); res.status() != 407 {
		t.Errorf("OPTIONS on a new connection after the oversized message: got %q, want 407", res.start)
	}
}

// TestBadConfigUnknownKey: `veilig serve` with an unknown key in the config
// file exits non-zero and names the key.
func TestBadConfigUnknownKey(t *testing.T) {
	bin := requireVeilig(t)
	dir := artifactDir(t)
	cfg := filepath.Join(dir, "bad.yaml")
	yaml := fmt.Sprintf("data_dir: %q\nsip:\n  domain: 127.0.0.1\n  tls_listen: 127.0.0.1:%d\n  tls_lisen_typo: 127.0.0.1:5099\n",
		filepath.Join(dir, "data"), freePort(t, "tcp", "127.0.0.1"))
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := runProc(t, procSpec{name: "veilig-bad-config", args: []string{bin, "serve", "--config", cfg},
		timeout: 20 * time.Second, dropEnv: "VEILIG_"})
	t.Logf("exit %d, output:\n%s", code, out)
	if code == 0 {
		t.Errorf("veilig serve with an unknown key exited 0")
	}
	if !strings.Contains(out, "tls_lisen_typo") {
		t.Errorf("the error does not name the unknown key tls_lisen_typo:\n%s", out)
	}
	if strings.Contains(out, serverReadyLine) {
		t.Errorf("veilig got ready despite the bad config")
	}
}
