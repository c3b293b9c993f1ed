package test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/testkit/sipua"
)

// sipConn is a minimal SIP client over one TLS (or TCP) connection, for
// checks that need exact bytes or a connection the test controls.
type sipConn struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialSIPTLS opens a TLS connection from localIP to addr. The server's
// certificate is not verified: the test pins nothing, it inspects SIP.
func dialSIPTLS(t *testing.T, localIP, addr string) *sipConn {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test client
	if err != nil {
		t.Fatalf("TLS dial %s from %s: %v", addr, localIP, err)
	}
	c := &sipConn{conn: conn, r: bufio.NewReader(conn)}
	t.Cleanup(func() { c.conn.Close() })
	return c
}

func (c *sipConn) localAddr() *net.TCPAddr { return c.conn.LocalAddr().(*net.TCPAddr) }

func (c *sipConn) send(t *testing.T, msg string) {
	t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.conn, msg); err != nil {
		t.Fatalf("send SIP: %v", err)
	}
}

// sipMessage is a parsed SIP message; raw keeps the exact bytes.
type sipMessage struct {
	msg   *sipua.Msg
	raw   string
	start string
	body  string
}

// status returns the status code of a response (0 for requests).
func (m *sipMessage) status() int { return m.msg.Code }

// header returns the first value of the named header (any case, long or
// compact form).
func (m *sipMessage) header(name string) string { return m.msg.Header(name) }

// all returns every value of the named header.
func (m *sipMessage) all(name string) []string { return m.msg.All(sipua.Canon(name)) }

// read reads one SIP message (skipping keep-alive CRLFs) within d.
func (c *sipConn) read(d time.Duration) (*sipMessage, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	m, err := sipua.ReadMsgRaw(c.r)
	if err != nil {
		return nil, err
	}
	return &sipMessage{msg: m, raw: string(m.Raw), start: m.First, body: string(m.Body)}, nil
}

// readFinal reads responses until a final (>=200) one arrives within d.
func (c *sipConn) readFinal(t *testing.T, d time.Duration) *sipMessage {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		m, err := c.read(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for a final SIP response: %v", err)
		}
		if m.status() >= 200 {
			return m
		}
	}
}

// randHex returns n random bytes as hex.
func randHex(n int) string { return sipua.RandHex(n) }

// pickChallenge returns the challenge with the wanted algorithm
// ("SHA-256" or "MD5") from the given header values.
func pickChallenge(t *testing.T, headers []string, alg string) sipua.Challenge {
	t.Helper()
	c, ok := sipua.PickChallenge(headers, alg)
	if !ok {
		t.Fatalf("no Digest challenge with algorithm %s in %q", alg, headers)
	}
	return c
}

// registerRequest is the data of one REGISTER this client sends.
type registerRequest struct {
	user, domain, callID, fromTag, branch string
	cseq                                  int
	contact                               string // full Contact value
	expires                               int
	auth                                  string // Authorization value, or ""
}

// build renders the request; via is the sent-by (ip:port) of this client.
func (r registerRequest) build(via string) string {
	return sipua.Register{
		Transport: "TLS", Via: via, Branch: r.branch, User: r.user, Domain: r.domain, CallID: r.callID, FromTag: r.fromTag,
		CSeq: r.cseq, Contact: r.contact, Expires: r.expires, Auth: r.auth, Agent: "veilig-e2e",
	}.String()
}

// register sends REGISTER, answers the 401 with digest credentials for
// (user, pass) using algorithm alg, and returns both responses.
func (c *sipConn) register(t *testing.T, domain, user, pass, alg string) (challenge, final *sipMessage) {
	t.Helper()
	la := c.localAddr()
	req := registerRequest{
		user: user, domain: domain, callID: randHex(12) + "@veilig-e2e", fromTag: randHex(6),
		branch: "z9hG4bK" + randHex(8), cseq: 1, expires: 300,
		contact: fmt.Sprintf("<sip:%s@%s;transport=tls>", user, la.String()),
	}
	c.send(t, req.build(la.String()))
	challenge = c.readFinal(t, 5*time.Second)
	if challenge.status() != 401 {
		return challenge, challenge
	}
	ch := pickChallenge(t, challenge.all("WWW-Authenticate"), alg)
	req.cseq, req.branch = 2, "z9hG4bK"+randHex(8)
	req.auth = ch.Authorization(user, pass, "REGISTER", "sip:"+domain)
	c.send(t, req.build(la.String()))
	return challenge, c.readFinal(t, 5*time.Second)
}
