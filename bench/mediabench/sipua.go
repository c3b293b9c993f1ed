package main

// A minimal SIP user agent over TLS, enough to register to Veilig and to
// place and answer calls through it: digest auth (SHA-256 or MD5, qop=auth),
// client transactions matched by Via branch, ACK of non-2xx answers in the
// INVITE transaction and of 2xx as a request of its own, and answers to what
// the server may send inside a dialog (ACK, BYE, re-INVITE, OPTIONS).

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/veilig/veilig/internal/auth"
)

const uaName = "veilig-mediabench"

// sipTrace, when set, receives every SIP message sent and received.
var (
	sipTrace   io.Writer
	sipTraceMu sync.Mutex
)

func trace(dir, peer string, b []byte) {
	if sipTrace == nil {
		return
	}
	sipTraceMu.Lock()
	fmt.Fprintf(sipTrace, "--- %s %s %s\n%s\n", time.Now().Format("15:04:05.000000"), dir, peer, b)
	sipTraceMu.Unlock()
}

// sipMsg is one received SIP message.
type sipMsg struct {
	first        string
	hdrs         [][2]string // lower-case long header name, value; in order
	body         []byte
	method, ruri string // requests
	code         int    // responses
	reason       string
}

var compactHdr = map[string]string{"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
	"l": "content-length", "c": "content-type", "k": "supported"}

func (m *sipMsg) get(name string) string {
	for _, h := range m.hdrs {
		if h[0] == name {
			return h[1]
		}
	}
	return ""
}

func (m *sipMsg) all(name string) []string {
	var out []string
	for _, h := range m.hdrs {
		if h[0] == name {
			out = append(out, h[1])
		}
	}
	return out
}

// readMsg reads one message from a stream (RFC 3261 18.3: Content-Length
// frames the body). Empty lines before a start line are keep-alives.
func readMsg(r *bufio.Reader) (*sipMsg, error) {
	m := &sipMsg{}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if m.first == "" {
			m.first = line
			continue
		}
		if line == "" {
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && len(m.hdrs) > 0 {
			m.hdrs[len(m.hdrs)-1][1] += " " + strings.TrimSpace(line)
			continue
		}
		name, val, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("bad header line %q", line)
		}
		n := strings.ToLower(strings.TrimSpace(name))
		if c, ok := compactHdr[n]; ok {
			n = c
		}
		m.hdrs = append(m.hdrs, [2]string{n, strings.TrimSpace(val)})
	}
	cl := 0
	if v := m.get("content-length"); v != "" {
		var err error
		if cl, err = strconv.Atoi(v); err != nil || cl < 0 || cl > 1<<16 {
			return nil, fmt.Errorf("bad Content-Length %q", v)
		}
	}
	m.body = make([]byte, cl)
	if _, err := io.ReadFull(r, m.body); err != nil {
		return nil, err
	}
	f := strings.SplitN(m.first, " ", 3)
	if len(f) < 3 {
		return nil, fmt.Errorf("bad start line %q", m.first)
	}
	if f[0] == "SIP/2.0" {
		m.code, _ = strconv.Atoi(f[1])
		m.reason = f[2]
		if m.code < 100 || m.code > 699 {
			return nil, fmt.Errorf("bad status line %q", m.first)
		}
	} else {
		m.method, m.ruri = f[0], f[1]
	}
	return m, nil
}

// hdrParam returns a header parameter (after the name-addr, if any).
func hdrParam(v, name string) string {
	if i := strings.LastIndexByte(v, '>'); i >= 0 {
		v = v[i+1:]
	}
	for _, p := range strings.Split(v, ";")[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, name) {
			return val
		}
	}
	return ""
}

// uriOf returns the URI of a name-addr or addr-spec header value.
func uriOf(v string) string {
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return v[i+1 : i+j]
		}
	}
	u, _, _ := strings.Cut(v, ";")
	return strings.TrimSpace(u)
}

// userOf returns the user part of a sip: URI.
func userOf(uri string) string {
	_, rest, ok := strings.Cut(uri, ":")
	if !ok {
		return ""
	}
	u, _, ok := strings.Cut(rest, "@")
	if !ok {
		return ""
	}
	return u
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// sigStats counts the signalling a target saw in one step, to show it.
type sigStats struct {
	mu sync.Mutex
	m  map[string]int
}

func (s *sigStats) add(k string) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[string]int{}
	}
	s.m[k]++
	s.mu.Unlock()
}

// take returns the counts as "key xN, ..." and resets them.
func (s *sigStats) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s x%d", k, s.m[k])
	}
	s.m = nil
	return b.String()
}

// dialog is our side of a dialog, as far as answering the server needs.
type dialog struct {
	callID   string
	localTag string
	sdp      string // our current session description
	res200   []byte // our 2xx to the INVITE, resent if the INVITE is
	acked    chan struct{}
	ended    chan struct{}
	ackOnce  sync.Once
	endOnce  sync.Once
}

func newDialog(callID, tag, sdp string) *dialog {
	return &dialog{callID: callID, localTag: tag, sdp: sdp, acked: make(chan struct{}), ended: make(chan struct{})}
}

// sipUA is one device: one extension on one TLS connection.
type sipUA struct {
	user, secret, domain string
	conn                 net.Conn
	rd                   *bufio.Reader
	local                string // our host:port, for Via and Contact
	stats                *sigStats
	// onInvite answers a new INVITE from the server (the callee).
	onInvite func(u *sipUA, m *sipMsg)

	wmu     sync.Mutex
	mu      sync.Mutex
	txs     map[string]chan *sipMsg // by Via branch
	dialogs map[string]*dialog      // by Call-ID
	closed  chan struct{}
	rdErr   error
}

func dialUA(addr string, tc *tls.Config, user, secret, domain string, st *sigStats) (*sipUA, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(&d, "tcp", addr, tc)
	if err != nil {
		return nil, err
	}
	u := &sipUA{user: user, secret: secret, domain: domain, conn: c, rd: bufio.NewReaderSize(c, 64<<10),
		local: c.LocalAddr().String(), stats: st, txs: map[string]chan *sipMsg{},
		dialogs: map[string]*dialog{}, closed: make(chan struct{})}
	go u.readLoop()
	return u, nil
}

func (u *sipUA) close() { u.conn.Close() }

func (u *sipUA) contact() string {
	return "<sip:" + u.user + "@" + u.local + ";transport=tls>"
}

func (u *sipUA) send(b []byte) error {
	u.wmu.Lock()
	defer u.wmu.Unlock()
	_ = u.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := u.conn.Write(b)
	trace("send", u.local, b)
	return err
}

func (u *sipUA) readLoop() {
	defer close(u.closed)
	for {
		m, err := readMsg(u.rd)
		if err != nil {
			u.mu.Lock()
			u.rdErr = err
			u.mu.Unlock()
			return
		}
		if sipTrace != nil {
			var b strings.Builder
			b.WriteString(m.first + "\r\n")
			for _, h := range m.hdrs {
				b.WriteString(h[0] + ": " + h[1] + "\r\n")
			}
			b.WriteString("\r\n" + string(m.body))
			trace("recv", u.local, []byte(b.String()))
		}
		if m.code != 0 {
			br := hdrParam(m.get("via"), "branch")
			u.mu.Lock()
			ch := u.txs[br]
			u.mu.Unlock()
			if ch != nil {
				select {
				case ch <- m:
				default: // a provisional the transaction does not read
				}
			}
			continue
		}
		u.serve(m)
	}
}

func (u *sipUA) dialog(callID string) *dialog {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.dialogs[callID]
}

func (u *sipUA) addDialog(d *dialog) {
	u.mu.Lock()
	u.dialogs[d.callID] = d
	u.mu.Unlock()
}

func (u *sipUA) dropDialog(callID string) {
	u.mu.Lock()
	delete(u.dialogs, callID)
	u.mu.Unlock()
}

// serve answers a request from the server.
func (u *sipUA) serve(m *sipMsg) {
	u.stats.add("rx " + m.method)
	cid := m.get("call-id")
	d := u.dialog(cid)
	inDialog := hdrParam(m.get("to"), "tag") != ""
	switch m.method {
	case "ACK":
		if d != nil {
			d.ackOnce.Do(func() { close(d.acked) })
		}
	case "BYE":
		if d == nil {
			_ = u.send(u.response(m, 481, "Call/Transaction Does Not Exist", "", nil, ""))
			return
		}
		_ = u.send(u.response(m, 200, "OK", "", nil, ""))
		d.endOnce.Do(func() { close(d.ended) })
	case "OPTIONS":
		_ = u.send(u.response(m, 200, "OK", "", []string{"Allow: INVITE, ACK, BYE, CANCEL, OPTIONS"}, ""))
	case "CANCEL":
		// Every INVITE is answered at once, so there is nothing to cancel.
		_ = u.send(u.response(m, 481, "Call/Transaction Does Not Exist", "", nil, ""))
	case "INVITE":
		switch {
		case inDialog && d == nil:
			_ = u.send(u.response(m, 481, "Call/Transaction Does Not Exist", "", nil, ""))
		case inDialog:
			// A re-INVITE (session refresh, hold...): answer with our
			// current description.
			_ = u.send(u.response(m, 200, "OK", "", []string{"Contact: " + u.contact()}, d.sdp))
		case d != nil && d.res200 != nil:
			_ = u.send(d.res200) // a retransmitted INVITE
		case u.onInvite != nil:
			u.onInvite(u, m)
		default:
			_ = u.send(u.response(m, 480, "Temporarily Unavailable", "", nil, ""))
		}
	default:
		_ = u.send(u.response(m, 405, "Method Not Allowed", "", []string{"Allow: INVITE, ACK, BYE, CANCEL, OPTIONS"}, ""))
	}
}

// response builds a response to m (RFC 3261 8.2.6). toTag is added to To
// when it has none.
func (u *sipUA) response(m *sipMsg, code int, reason, toTag string, extra []string, body string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, reason)
	for _, v := range m.all("via") {
		b.WriteString("Via: " + v + "\r\n")
	}
	if m.method == "INVITE" && code > 100 && code < 300 {
		for _, v := range m.all("record-route") {
			b.WriteString("Record-Route: " + v + "\r\n")
		}
	}
	to := m.get("to")
	if toTag != "" && hdrParam(to, "tag") == "" {
		to += ";tag=" + toTag
	}
	b.WriteString("From: " + m.get("from") + "\r\n")
	b.WriteString("To: " + to + "\r\n")
	b.WriteString("Call-ID: " + m.get("call-id") + "\r\n")
	b.WriteString("CSeq: " + m.get("cseq") + "\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Server: " + uaName + "\r\n")
	if body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return []byte(b.String())
}

// sipReq describes a request to send.
type sipReq struct {
	method, ruri, from, to, callID string
	cseq                           uint32
	route                          []string
	contact                        bool
	extra                          []string // whole header lines
	body                           string
}

func (u *sipUA) build(q *sipReq, branch string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", q.method, q.ruri)
	fmt.Fprintf(&b, "Via: SIP/2.0/TLS %s;branch=%s\r\n", u.local, branch)
	b.WriteString("Max-Forwards: 70\r\n")
	for _, r := range q.route {
		b.WriteString("Route: " + r + "\r\n")
	}
	b.WriteString("From: " + q.from + "\r\n")
	b.WriteString("To: " + q.to + "\r\n")
	b.WriteString("Call-ID: " + q.callID + "\r\n")
	fmt.Fprintf(&b, "CSeq: %d %s\r\n", q.cseq, q.method)
	if q.contact {
		b.WriteString("Contact: " + u.contact() + "\r\n")
	}
	for _, h := range q.extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("User-Agent: " + uaName + "\r\n")
	if q.body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(q.body), q.body)
	return []byte(b.String())
}

func newBranch() string { return "z9hG4bK" + randHex(10) }

var errConnClosed = errors.New("SIP connection closed")

// transact sends q as a client transaction and returns its final response.
// A non-2xx final response to an INVITE is acknowledged in the transaction.
func (u *sipUA) transact(q *sipReq, timeout time.Duration) (*sipMsg, error) {
	br := newBranch()
	ch := make(chan *sipMsg, 8)
	u.mu.Lock()
	u.txs[br] = ch
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		delete(u.txs, br)
		u.mu.Unlock()
	}()
	if err := u.send(u.build(q, br)); err != nil {
		return nil, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case m := <-ch:
			if m.code < 200 {
				continue
			}
			u.stats.add(fmt.Sprintf("%s %d", q.method, m.code))
			if q.method == "INVITE" && m.code >= 300 {
				ack := *q
				ack.method, ack.to, ack.body, ack.contact, ack.extra = "ACK", m.get("to"), "", false, nil
				_ = u.send(u.build(&ack, br))
			}
			return m, nil
		case <-t.C:
			u.stats.add(q.method + " timeout")
			return nil, fmt.Errorf("%s %s: no final response within %s", q.method, q.ruri, timeout)
		case <-u.closed:
			u.mu.Lock()
			why := u.rdErr
			u.mu.Unlock()
			return nil, fmt.Errorf("%s %s: %w (%v)", q.method, q.ruri, errConnClosed, why)
		}
	}
}

// transactAuth is transact, answering one 401/407 digest challenge.
func (u *sipUA) transactAuth(q *sipReq, timeout time.Duration) (*sipMsg, error) {
	res, err := u.transact(q, timeout)
	if err != nil || (res.code != 401 && res.code != 407) {
		return res, err
	}
	chHdr, authHdr := "www-authenticate", "Authorization"
	if res.code == 407 {
		chHdr, authHdr = "proxy-authenticate", "Proxy-Authorization"
	}
	ch, err := auth.PickChallenge(res.all(chHdr))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q.method, err)
	}
	q2 := *q
	q2.cseq++
	q2.extra = append(append([]string(nil), q.extra...), authHdr+": "+ch.Authorization(u.user, u.secret, q.method, q.ruri))
	res, err = u.transact(&q2, timeout)
	q.cseq = q2.cseq
	if err == nil && (res.code == 401 || res.code == 407) {
		return res, fmt.Errorf("%s: credentials of %s refused (%d again)", q.method, u.user, res.code)
	}
	return res, err
}

// sendReq sends a request outside any transaction (the ACK of a 2xx).
func (u *sipUA) sendReq(q *sipReq) error { return u.send(u.build(q, newBranch())) }

// register binds this device's Contact to its extension for expires.
func (u *sipUA) register(expires int, timeout time.Duration) error {
	aor := "<sip:" + u.user + "@" + u.domain + ">"
	q := &sipReq{method: "REGISTER", ruri: "sip:" + u.domain, from: aor + ";tag=" + randHex(6), to: aor,
		callID: randHex(12) + "@mediabench", cseq: 1, contact: true, extra: []string{"Expires: " + strconv.Itoa(expires)}}
	res, err := u.transactAuth(q, timeout)
	if err != nil {
		return fmt.Errorf("REGISTER %s: %w", u.user, err)
	}
	if res.code != 200 {
		return fmt.Errorf("REGISTER %s: %s", u.user, res.first)
	}
	return nil
}
