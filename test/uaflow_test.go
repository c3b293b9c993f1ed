package test

// Helpers for the call-flow, edge and lifecycle tests: a raw SIP user agent
// (caller and callee side) on top of sipConn, SDP bodies, call records with
// their ID, Prometheus metrics, and a server started with extra config or
// restarted on the same data dir.

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/testkit/sipua"
)

// ---------------------------------------------------------------- SDP

// sdesKey returns an inline key+salt of n random bytes.
func sdesKey(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// sdpBody renders an audio SDP. proto is RTP/SAVP or RTP/AVP, dir an
// a=sendrecv/sendonly/recvonly/inactive attribute ("" = none), cryptos the
// a=crypto values.
func sdpBody(ip string, port int, proto, dir string, cryptos ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=- %d 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n", time.Now().UnixNano()%1e9, ip, ip)
	fmt.Fprintf(&b, "m=audio %d %s 0\r\na=rtpmap:0 PCMU/8000\r\n", port, proto)
	if dir != "" {
		fmt.Fprintf(&b, "a=%s\r\n", dir)
	}
	for _, c := range cryptos {
		fmt.Fprintf(&b, "a=crypto:%s\r\n", c)
	}
	return b.String()
}

// srtpOffer offers two acceptable SDES suites.
func srtpOffer(ip, dir string) string {
	return sdpBody(ip, 40000, "RTP/SAVP", dir,
		"1 AES_CM_128_HMAC_SHA1_80 inline:"+sdesKey(30),
		"2 AES_CM_128_HMAC_SHA1_32 inline:"+sdesKey(30))
}

// sdesKeyLen is the inline key+salt length of each SDES suite.
var sdesKeyLen = map[string]int{
	"AES_CM_128_HMAC_SHA1_80": 30, "AES_CM_128_HMAC_SHA1_32": 30,
	"AES_256_CM_HMAC_SHA1_80": 46, "AES_256_CM_HMAC_SHA1_32": 46,
	"AEAD_AES_128_GCM": 28, "AEAD_AES_256_GCM": 44,
}

// answerTo builds an SRTP answer to the offer this device received: the
// offer's profile, its first codec, and its first a=crypto line's tag and
// suite with a fresh key (Veilig may rewrite offers, so a fixed answer
// would not match).
func answerTo(offer, ip, dir string) string {
	proto, pt, tag, suite, rtpmap := "RTP/SAVP", "0", "1", "AES_CM_128_HMAC_SHA1_80", ""
	gotCrypto := false
	lines := strings.Split(offer, "\n")
	for _, line := range lines {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "m=audio "):
			if f := strings.Fields(line); len(f) >= 4 {
				proto, pt = f[2], f[3]
			}
		case strings.HasPrefix(line, "a=crypto:") && !gotCrypto:
			if f := strings.Fields(strings.TrimPrefix(line, "a=crypto:")); len(f) >= 2 {
				tag, suite, gotCrypto = f[0], f[1], true
			}
		}
	}
	for _, line := range lines {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "a=rtpmap:"+pt+" ") {
			rtpmap = line
		}
	}
	if rtpmap == "" && pt == "0" {
		rtpmap = "a=rtpmap:0 PCMU/8000"
	}
	n := sdesKeyLen[suite]
	if n == 0 {
		n = 30
	}
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=- %d 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n", time.Now().UnixNano()%1e9, ip, ip)
	fmt.Fprintf(&b, "m=audio 40002 %s %s\r\n", proto, pt)
	if rtpmap != "" {
		b.WriteString(rtpmap + "\r\n")
	}
	if dir != "" {
		fmt.Fprintf(&b, "a=%s\r\n", dir)
	}
	fmt.Fprintf(&b, "a=crypto:%s %s inline:%s\r\n", tag, suite, sdesKey(n))
	return b.String()
}

// plainRTP is an RTP/AVP body without keys.
func plainRTP(ip string) string { return sdpBody(ip, 40004, "RTP/AVP", "sendrecv") }

// ---------------------------------------------------------------- user agent

// sipUA is one device on its own TLS connection: registered (a callee or
// caller) or not (an anonymous sender).
type sipUA struct {
	*sipConn
	t            *testing.T
	srv          *server
	ip           string
	user, secret string
	seen         []string // start lines of messages read, for failure output
	trace        []string // every message sent (>) and received (<), for failure output
}

// send writes msg and keeps it in the trace.
func (u *sipUA) send(t *testing.T, msg string) {
	t.Helper()
	u.trace = append(u.trace, time.Now().Format("15:04:05.000")+" > sent\n"+msg)
	u.sipConn.send(t, msg)
}

// traceText is the last n messages of this UA's trace.
func (u *sipUA) traceText(n int) string {
	tr := u.trace
	if len(tr) > n {
		tr = tr[len(tr)-n:]
	}
	return strings.Join(tr, "\n")
}

// newUA connects from ip; with a secret it registers user first.
func newUA(t *testing.T, srv *server, ip, user, secret string) *sipUA {
	t.Helper()
	var c *sipConn
	if secret != "" {
		c = mustRegisterRaw(t, srv, ip, user, secret)
	} else {
		c = dialSIPTLS(t, ip, srv.tlsAddr)
	}
	return &sipUA{sipConn: c, t: t, srv: srv, ip: ip, user: user, secret: secret}
}

func (u *sipUA) hostport() string { return u.localAddr().String() }

func (u *sipUA) contactHdr() string {
	return fmt.Sprintf("<sip:%s@%s;transport=tls>", u.user, u.hostport())
}

func (u *sipUA) via(branch string) string {
	return fmt.Sprintf("SIP/2.0/TLS %s;branch=%s;rport", u.hostport(), branch)
}

// next reads one message and remembers its first line.
func (u *sipUA) next(d time.Duration) (*sipMessage, error) {
	m, err := u.read(d)
	if err == nil {
		u.seen = append(u.seen, m.start+" (CSeq "+m.header("CSeq")+")")
		u.trace = append(u.trace, time.Now().Format("15:04:05.000")+" < received\n"+m.raw)
	}
	return m, err
}

// waitFor reads messages for up to d until one matches; others are
// skipped (and listed if none matches).
func (u *sipUA) waitFor(d time.Duration, what string, match func(*sipMessage) bool) *sipMessage {
	u.t.Helper()
	deadline := time.Now().Add(d)
	var skipped []string
	for {
		m, err := u.next(time.Until(deadline))
		if err != nil {
			u.t.Fatalf("%s (%s): waiting for %s: %v; skipped meanwhile: %q\nlast messages of %s:\n%s",
				u.user, u.ip, what, err, skipped, u.user, u.traceText(8))
		}
		if match(m) {
			return m
		}
		skipped = append(skipped, m.start+" (CSeq "+m.header("CSeq")+")")
	}
}

// waitRequest waits for a request of method.
func (u *sipUA) waitRequest(d time.Duration, method string) *sipMessage {
	u.t.Helper()
	return u.waitFor(d, method+" request", func(m *sipMessage) bool {
		return m.status() == 0 && strings.HasPrefix(m.start, method+" ")
	})
}

// waitFinal waits for a final response whose CSeq names method.
func (u *sipUA) waitFinal(d time.Duration, method string) *sipMessage {
	u.t.Helper()
	return u.waitFor(d, "final response to "+method, func(m *sipMessage) bool {
		return m.status() >= 200 && cseqMethod(m) == method
	})
}

// expectSilence fails the test if any SIP message arrives within d.
func (u *sipUA) expectSilence(d time.Duration, why string) {
	u.t.Helper()
	m, err := u.next(d)
	if err == nil {
		u.t.Errorf("%s (%s) received a message although %s:\n%s", u.user, u.ip, why, m.raw)
		return
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		u.t.Errorf("%s (%s): connection failed while expecting silence: %v", u.user, u.ip, err)
	}
}

func cseqMethod(m *sipMessage) string {
	f := strings.Fields(m.header("CSeq"))
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

func cseqNum(m *sipMessage) int {
	n, _ := strconv.Atoi(strings.Fields(m.header("CSeq") + " 0")[0])
	return n
}

func tagOf(h string) string { return sipua.HeaderParam(h, "tag") }

// uriOf extracts the URI of a name-addr (Contact, From, To).
func uriOf(h string) string { return sipua.URIOf(h) }

// buildRequest renders a request; hdrs are further "Name: value" lines.
func buildRequest(method, ruri string, hdrs []string, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", method, ruri)
	for _, h := range hdrs {
		b.WriteString(h + "\r\n")
	}
	if body != "" {
		b.WriteString("Content-Type: " + contentType(body) + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.String()
}

// contentType is application/sdp for SDP bodies, text/plain otherwise.
func contentType(body string) string {
	if strings.HasPrefix(body, "v=0") {
		return "application/sdp"
	}
	return "text/plain"
}

// respond answers req on this connection. A To tag is added when the
// request's To has none and toTag is set; 1xx/2xx carry a Contact.
func (u *sipUA) respond(req *sipMessage, code int, reason, toTag, body string) {
	u.t.Helper()
	var extra []string
	if code < 300 && code > 100 && cseqMethod(req) == "INVITE" {
		extra = append(extra, "Contact: "+u.contactHdr())
	}
	if code <= 100 {
		toTag = ""
	}
	u.send(u.t, string(sipua.ResponseTo(req.msg, code, reason, toTag, extra, body)))
}

// ---------------------------------------------------------------- caller side

// uacCall is the caller's dialog with Veilig.
type uacCall struct {
	u               *sipUA
	callee          string
	callID, fromTag string
	extra           []string // more headers on the INVITEs
	toTag           string   // Veilig's tag, from its answer
	target          string   // Veilig's Contact: where in-dialog requests go
	cseq            int      // last CSeq used
	inviteBranch    string
	inviteCSeq      int
	inviteBody      string
	inviteRURI      string // Request-URI of the current INVITE
	ruri            string
	final           *sipMessage // final response to the INVITE
	finalAcked      bool
}

// outOfDialog sends one out-of-dialog request (no credentials) and returns
// the raw text it sent.
func (u *sipUA) outOfDialog(method, to string, extra []string, body string) string {
	u.t.Helper()
	ruri := fmt.Sprintf("sip:%s@%s", to, u.srv.domain)
	hdrs := []string{
		"Via: " + u.via("z9hG4bK"+randHex(8)),
		"Max-Forwards: 70",
		fmt.Sprintf("From: <sip:%s@%s>;tag=%s", u.user, u.srv.domain, randHex(6)),
		fmt.Sprintf("To: <%s>", ruri),
		"Call-ID: " + randHex(12) + "@veilig-e2e",
		"CSeq: 1 " + method,
		"Contact: " + u.contactHdr(),
		"User-Agent: veilig-e2e",
	}
	msg := buildRequest(method, ruri, append(hdrs, extra...), body)
	u.send(u.t, msg)
	return msg
}

// invite starts a call to callee: INVITE, 407, ACK, INVITE with
// Proxy-Authorization. It returns once the authenticated INVITE is sent;
// body "" is a late offer.
func (u *sipUA) invite(callee, body string) *uacCall {
	u.t.Helper()
	return u.inviteWith(callee, body)
}

// inviteWith is invite with extra headers on both INVITEs.
func (u *sipUA) inviteWith(callee, body string, extra ...string) *uacCall {
	u.t.Helper()
	c := &uacCall{u: u, callee: callee, callID: randHex(12) + "@veilig-e2e", fromTag: randHex(6),
		inviteBody: body, ruri: fmt.Sprintf("sip:%s@%s", callee, u.srv.domain), extra: extra}
	c.sendInvite("")
	chal := u.waitFinal(5*time.Second, "INVITE")
	if chal.status() != 407 {
		u.t.Fatalf("INVITE %s without credentials: got %q, want 407\n%s", callee, chal.start, chal.raw)
	}
	c.ackNon2xx(chal)
	ch := pickChallenge(u.t, chal.all("Proxy-Authenticate"), "SHA-256")
	c.sendInvite(ch.Authorization(u.user, u.secret, "INVITE", c.ruri))
	return c
}

func (c *uacCall) sendInvite(auth string) {
	c.cseq++
	c.inviteCSeq = c.cseq
	c.inviteBranch = "z9hG4bK" + randHex(8)
	c.inviteRURI = c.ruri
	hdrs := []string{
		"Via: " + c.u.via(c.inviteBranch),
		"Max-Forwards: 70",
		fmt.Sprintf("From: <sip:%s@%s>;tag=%s", c.u.user, c.u.srv.domain, c.fromTag),
		fmt.Sprintf("To: <%s>", c.ruri),
		"Call-ID: " + c.callID,
		fmt.Sprintf("CSeq: %d INVITE", c.cseq),
		"Contact: " + c.u.contactHdr(),
		"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE",
		"User-Agent: veilig-e2e",
	}
	if auth != "" {
		hdrs = append(hdrs, "Proxy-Authorization: "+auth)
	}
	hdrs = append(hdrs, c.extra...)
	c.u.send(c.u.t, buildRequest("INVITE", c.ruri, hdrs, c.inviteBody))
}

// ackNon2xx acknowledges a non-2xx final answer to the current INVITE
// (same branch, RFC 3261 17.1.1.3).
func (c *uacCall) ackNon2xx(res *sipMessage) {
	hdrs := []string{
		"Via: " + c.u.via(c.inviteBranch),
		"Max-Forwards: 70",
		fmt.Sprintf("From: <sip:%s@%s>;tag=%s", c.u.user, c.u.srv.domain, c.fromTag),
		"To: " + res.header("To"),
		"Call-ID: " + c.callID,
		fmt.Sprintf("CSeq: %d ACK", c.inviteCSeq),
	}
	c.u.send(c.u.t, buildRequest("ACK", c.inviteRURI, hdrs, ""))
}

// waitAnswer waits for the INVITE's final response; a non-2xx is ACKed at
// once; a 2xx sets the dialog (To tag, target) but is not ACKed.
func (c *uacCall) waitAnswer(d time.Duration) *sipMessage {
	c.u.t.Helper()
	res := c.u.waitFor(d, "final response to INVITE", func(m *sipMessage) bool {
		return m.status() >= 200 && cseqMethod(m) == "INVITE" && cseqNum(m) == c.inviteCSeq
	})
	c.final = res
	if res.status() >= 300 {
		c.ackNon2xx(res)
		return res
	}
	c.toTag = tagOf(res.header("To"))
	if ct := res.header("Contact"); ct != "" {
		c.target = uriOf(ct)
	}
	return res
}

// waitProvisional waits for a provisional response (> 100) to the INVITE.
func (c *uacCall) waitProvisional(d time.Duration) *sipMessage {
	c.u.t.Helper()
	return c.u.waitFor(d, "1xx (>100) to INVITE", func(m *sipMessage) bool {
		return m.status() > 100 && m.status() < 200 && cseqMethod(m) == "INVITE"
	})
}

// inDialogHeaders are the headers of a request in the caller's dialog.
func (c *uacCall) inDialogHeaders(method string, cseq int, branch string) []string {
	return []string{
		"Via: " + c.u.via(branch),
		"Max-Forwards: 70",
		fmt.Sprintf("From: <sip:%s@%s>;tag=%s", c.u.user, c.u.srv.domain, c.fromTag),
		fmt.Sprintf("To: <%s>;tag=%s", c.ruri, c.toTag),
		"Call-ID: " + c.callID,
		fmt.Sprintf("CSeq: %d %s", cseq, method),
	}
}

// ack acknowledges the last 2xx (new branch), with an optional SDP answer.
func (c *uacCall) ack(body string) {
	c.u.t.Helper()
	if c.target == "" {
		c.u.t.Fatalf("ACK: no Contact in the 2xx:\n%s", c.final.raw)
	}
	c.u.send(c.u.t, buildRequest("ACK", c.target, c.inDialogHeaders("ACK", c.inviteCSeq, "z9hG4bK"+randHex(8)), body))
}

// request sends an in-dialog request and returns its CSeq.
func (c *uacCall) request(method, body string) int {
	c.u.t.Helper()
	c.cseq++
	branch := "z9hG4bK" + randHex(8)
	hdrs := c.inDialogHeaders(method, c.cseq, branch)
	if method == "INVITE" {
		c.inviteCSeq, c.inviteBranch, c.inviteRURI = c.cseq, branch, c.target
		hdrs = append(hdrs, "Contact: "+c.u.contactHdr())
	}
	c.u.send(c.u.t, buildRequest(method, c.target, hdrs, body))
	return c.cseq
}

// cancel cancels the pending INVITE (same branch and CSeq number).
func (c *uacCall) cancel() {
	hdrs := []string{
		"Via: " + c.u.via(c.inviteBranch),
		"Max-Forwards: 70",
		fmt.Sprintf("From: <sip:%s@%s>;tag=%s", c.u.user, c.u.srv.domain, c.fromTag),
		fmt.Sprintf("To: <%s>", c.ruri),
		"Call-ID: " + c.callID,
		fmt.Sprintf("CSeq: %d CANCEL", c.inviteCSeq),
	}
	c.u.send(c.u.t, buildRequest("CANCEL", c.ruri, hdrs, ""))
}

// bye hangs up and expects 200.
func (c *uacCall) bye() {
	c.u.t.Helper()
	c.request("BYE", "")
	if res := c.u.waitFinal(5*time.Second, "BYE"); res.status() != 200 {
		c.u.t.Fatalf("BYE: got %q, want 200\n%s", res.start, res.raw)
	}
}

// ---------------------------------------------------------------- callee side

// uasCall is the callee device's dialog with Veilig.
type uasCall struct {
	u      *sipUA
	invite *sipMessage
	toTag  string
	cseq   int
}

// acceptInvite waits for Veilig's INVITE on the callee's connection.
func (u *sipUA) acceptInvite(d time.Duration) *uasCall {
	u.t.Helper()
	inv := u.waitRequest(d, "INVITE")
	return &uasCall{u: u, invite: inv, toTag: randHex(6)}
}

// reply answers the INVITE.
func (c *uasCall) reply(code int, reason, body string) {
	c.u.respond(c.invite, code, reason, c.toTag, body)
}

// bye hangs up from the callee side (towards Veilig's Contact).
func (c *uasCall) bye() {
	c.u.t.Helper()
	c.cseq++
	target := uriOf(c.invite.header("Contact"))
	hdrs := []string{
		"Via: " + c.u.via("z9hG4bK"+randHex(8)),
		"Max-Forwards: 70",
		"From: " + c.invite.header("To") + ";tag=" + c.toTag,
		"To: " + c.invite.header("From"),
		"Call-ID: " + c.invite.header("Call-ID"),
		fmt.Sprintf("CSeq: %d BYE", c.cseq),
	}
	c.u.send(c.u.t, buildRequest("BYE", target, hdrs, ""))
	if res := c.u.waitFinal(5*time.Second, "BYE"); res.status() != 200 {
		c.u.t.Fatalf("callee BYE: got %q, want 200\n%s", res.start, res.raw)
	}
}

// expectAckAndBye waits for Veilig's ACK of the callee's 2xx and then its
// BYE, which it answers 200.
func (c *uasCall) expectAckAndBye(d time.Duration) (ack, bye *sipMessage) {
	c.u.t.Helper()
	ack = c.u.waitRequest(d, "ACK")
	bye = c.u.waitRequest(d, "BYE")
	c.u.respond(bye, 200, "OK", "", "")
	return ack, bye
}

// ---------------------------------------------------------------- records and events

// idCallRecord is a call record with its ID (the caller leg's Call-ID).
type idCallRecord struct {
	ID string `json:"id"`
	callRecord
}

// waitRecordFor polls `veilig calls --json` up to d for the ended record of
// the call whose caller-leg Call-ID is callID.
func (s *server) waitRecordFor(t *testing.T, d time.Duration, callID string) idCallRecord {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for {
		out, code := s.cli(t, "", "calls", "--json", "--limit", "500")
		if code != 0 {
			t.Fatalf("veilig calls --json exited %d:\n%s", code, out)
		}
		var recs []idCallRecord
		if i := strings.Index(out, "["); i >= 0 {
			_ = json.NewDecoder(strings.NewReader(out[i:])).Decode(&recs)
		}
		for _, r := range recs {
			if r.ID == callID && !isEmpty(r.EndedAt) {
				return r
			}
		}
		last = out
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("no ended call record with id %s within %v; records:\n%s", callID, d, tail(last, 40))
	return idCallRecord{}
}

// forCall matches events about the call with caller-leg Call-ID id.
func forCall(id string) func(event) bool {
	return func(e event) bool { return fmt.Sprint(e.Fields["call_id"]) == id }
}

// requireRefusedEvent waits for a call.refused event of callID and checks
// its rule and code.
func requireRefusedEvent(t *testing.T, srv *server, callID, rule, code string) event {
	t.Helper()
	ev := srv.waitEvent(t, 5*time.Second, "call.refused", forCall(callID))
	if fmt.Sprint(ev.Fields["rule"]) != rule || fmt.Sprint(ev.Fields["code"]) != code {
		t.Errorf("call.refused event: want rule=%s code=%s, got %s", rule, code, ev)
	}
	return ev
}

// ---------------------------------------------------------------- metrics

// scrapeMetrics reads GET http://addr/metrics into name -> value
// (unlabelled series only, which is all the gauges checked here).
func scrapeMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	m, err := tryScrapeMetrics(addr)
	if err != nil {
		t.Fatalf("GET metrics: %v", err)
	}
	return m
}

// tryScrapeMetrics is scrapeMetrics returning the error (the endpoint
// starts listening just after "Veilig is ready").
func tryScrapeMetrics(addr string) (map[string]float64, error) {
	cl := &http.Client{Timeout: 5 * time.Second}
	res, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("GET metrics: %s", res.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			out[f[0]] = v
		}
	}
	return out, sc.Err()
}

// ---------------------------------------------------------------- server variants

// startServerExtra is startServer with more config: sipExtra lines
// ("  key: value") go into the sip section, extra YAML (top-level sections
// the harness does not write: metrics, tls) is appended. With certFiles
// the server uses configured certificate files and prints no CA line.
func startServerExtra(t *testing.T, opts serverOptions, sipExtra, extra string, certFiles bool) *server {
	t.Helper()
	bin := requireVeilig(t)
	if opts.IP == "" {
		opts.IP = "127.0.0.1"
	}
	if opts.Domain == "" {
		opts.Domain = opts.IP
	}
	dir := artifactDir(t) + "/veilig"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, bin: bin, dir: dir, domain: opts.Domain, fileLimit: opts.FileLimit}
	s.dataDir = dir + "/data"
	s.eventsPath = s.dataDir + "/events.jsonl"
	s.configPath = dir + "/veilig.yaml"
	s.tlsAddr = hostPort(opts.IP, freePort(t, "tcp", opts.IP))
	if opts.UDP {
		s.udpAddr = hostPort(opts.IP, freePort(t, "udp", opts.IP))
	}
	if opts.TCP {
		s.tcpAddr = hostPort(opts.IP, freePort(t, "tcp", opts.IP))
	}
	s.writeConfig(t, opts)
	cfg, err := os.ReadFile(s.configPath)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(cfg), "\nsip:\n", "\nsip:\n"+sipExtra, 1) + extra
	if err := os.WriteFile(s.configPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s.launch(t, "veilig", certFiles)
	return s
}

// launch starts `veilig serve` on the server's config and waits for it.
func (s *server) launch(t *testing.T, name string, certFiles bool) {
	t.Helper()
	s.proc = startProc(t, procSpec{
		name:    name,
		args:    s.serveArgs(),
		timeout: 15 * time.Minute,
		stop:    syscall.SIGTERM,
		dropEnv: "VEILIG_",
	})
	if !certFiles {
		s.waitReady(t, 30*time.Second)
		return
	}
	if !s.proc.waitOutput(serverReadyLine, 30*time.Second) {
		t.Fatalf("veilig did not get ready; output:\n%s", tail(s.proc.Output(), 60))
	}
	if !hasListener(reListenLine.FindAllStringSubmatch(s.proc.stdout.String(), -1), "sip+tls", s.tlsAddr) {
		t.Fatalf("veilig stdout has no 'listening: sip+tls %s'", s.tlsAddr)
	}
}

// restart stops the server with SIGTERM (it must exit 0 within 10 s) and
// starts it again on the same config and data dir.
func (s *server) restart(t *testing.T, name string) {
	t.Helper()
	_ = s.proc.cmd.Process.Signal(syscall.SIGTERM)
	exited, code := s.proc.Wait(10 * time.Second)
	if !exited {
		t.Fatalf("veilig did not exit within 10 s of SIGTERM")
	}
	if code != 0 {
		t.Errorf("veilig exited %d after SIGTERM; output:\n%s", code, tail(s.proc.Output(), 30))
	}
	s.launch(t, name, false)
}
