package test

import (
	"bufio"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
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
	raw     string
	start   string
	headers []sipHeader
	body    string
}

type sipHeader struct{ name, value string }

// status returns the status code of a response (0 for requests).
func (m *sipMessage) status() int {
	f := strings.Fields(m.start)
	if len(f) < 2 || !strings.HasPrefix(f[0], "SIP/") {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// header returns the first value of the named header (case-insensitive).
func (m *sipMessage) header(name string) string {
	for _, h := range m.headers {
		if strings.EqualFold(h.name, name) {
			return h.value
		}
	}
	return ""
}

// all returns every value of the named header.
func (m *sipMessage) all(name string) []string {
	var vs []string
	for _, h := range m.headers {
		if strings.EqualFold(h.name, name) {
			vs = append(vs, h.value)
		}
	}
	return vs
}

// read reads one SIP message (skipping keep-alive CRLFs) within d.
func (c *sipConn) read(d time.Duration) (*sipMessage, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	var raw strings.Builder
	m := &sipMessage{}
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if m.start == "" && strings.TrimSpace(line) == "" {
			continue
		}
		raw.WriteString(line)
		line = strings.TrimRight(line, "\r\n")
		if m.start == "" {
			m.start = line
			continue
		}
		if line == "" {
			break
		}
		name, value, _ := strings.Cut(line, ":")
		m.headers = append(m.headers, sipHeader{strings.TrimSpace(name), strings.TrimSpace(value)})
	}
	n, _ := strconv.Atoi(firstNonEmpty(m.header("Content-Length"), m.header("l")))
	if n > 0 {
		body := make([]byte, n)
		if _, err := io.ReadFull(c.r, body); err != nil {
			return nil, err
		}
		m.body = string(body)
		raw.Write(body)
	}
	m.raw = raw.String()
	return m, nil
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

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// randHex returns n random bytes as hex.
func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// digestChallenge is one parsed WWW-/Proxy-Authenticate header.
type digestChallenge struct {
	params map[string]string
}

func (c digestChallenge) algorithm() string {
	a := c.params["algorithm"]
	if a == "" {
		return "MD5"
	}
	return a
}

// parseDigest parses `Digest k=v, k="v", ...`.
func parseDigest(h string) (digestChallenge, bool) {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Digest") {
		return digestChallenge{}, false
	}
	params := map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; {
		key, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		key = strings.ToLower(strings.TrimSpace(key))
		after = strings.TrimSpace(after)
		var val string
		if strings.HasPrefix(after, `"`) {
			end := strings.Index(after[1:], `"`)
			if end < 0 {
				break
			}
			val, after = after[1:end+1], after[end+2:]
		} else {
			val, after, _ = strings.Cut(after, ",")
			after = "," + after
		}
		params[key] = strings.TrimSpace(val)
		_, after, _ = strings.Cut(after, ",")
		rest = strings.TrimSpace(after)
	}
	return digestChallenge{params: params}, true
}

// pickChallenge returns the challenge with the wanted algorithm
// ("SHA-256" or "MD5") from the given header values.
func pickChallenge(t *testing.T, headers []string, alg string) digestChallenge {
	t.Helper()
	for _, h := range headers {
		if c, ok := parseDigest(h); ok && strings.EqualFold(c.algorithm(), alg) {
			return c
		}
	}
	t.Fatalf("no Digest challenge with algorithm %s in %q", alg, headers)
	return digestChallenge{}
}

// authorization builds a Digest credentials value (qop=auth when offered).
func (c digestChallenge) authorization(user, pass, method, uri string) string {
	var h func() hash.Hash = md5.New
	if strings.EqualFold(c.algorithm(), "SHA-256") {
		h = sha256.New
	}
	hx := func(s string) string {
		d := h()
		d.Write([]byte(s))
		return hex.EncodeToString(d.Sum(nil))
	}
	realm, nonce := c.params["realm"], c.params["nonce"]
	ha1 := hx(user + ":" + realm + ":" + pass)
	ha2 := hx(method + ":" + uri)
	out := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", algorithm=%s`,
		user, realm, nonce, uri, c.algorithm())
	if strings.Contains(c.params["qop"], "auth") {
		cnonce, nc := randHex(8), "00000001"
		resp := hx(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":auth:" + ha2)
		out += fmt.Sprintf(`, qop=auth, nc=%s, cnonce="%s", response="%s"`, nc, cnonce, resp)
	} else {
		out += fmt.Sprintf(`, response="%s"`, hx(ha1+":"+nonce+":"+ha2))
	}
	if op, ok := c.params["opaque"]; ok {
		out += fmt.Sprintf(`, opaque="%s"`, op)
	}
	return out
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
	var b strings.Builder
	fmt.Fprintf(&b, "REGISTER sip:%s SIP/2.0\r\n", r.domain)
	fmt.Fprintf(&b, "Via: SIP/2.0/TLS %s;branch=%s;rport\r\n", via, r.branch)
	fmt.Fprintf(&b, "Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <sip:%s@%s>;tag=%s\r\n", r.user, r.domain, r.fromTag)
	fmt.Fprintf(&b, "To: <sip:%s@%s>\r\n", r.user, r.domain)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", r.callID)
	fmt.Fprintf(&b, "CSeq: %d REGISTER\r\n", r.cseq)
	fmt.Fprintf(&b, "Contact: %s\r\n", r.contact)
	fmt.Fprintf(&b, "Expires: %d\r\n", r.expires)
	if r.auth != "" {
		fmt.Fprintf(&b, "Authorization: %s\r\n", r.auth)
	}
	fmt.Fprintf(&b, "User-Agent: veilig-e2e\r\n")
	fmt.Fprintf(&b, "Content-Length: 0\r\n\r\n")
	return b.String()
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
	req.auth = ch.authorization(user, pass, "REGISTER", "sip:"+domain)
	c.send(t, req.build(la.String()))
	return challenge, c.readFinal(t, 5*time.Second)
}
