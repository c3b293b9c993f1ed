package sipua

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/veilig/veilig/internal/auth"
)

// Dialog is our side of a dialog, as far as answering the server needs.
type Dialog struct {
	CallID   string
	LocalTag string
	SDP      string // our current session description
	Res200   []byte // our 2xx to the INVITE, resent if the INVITE is
	Acked    chan struct{}
	Ended    chan struct{}
	ackOnce  sync.Once
	endOnce  sync.Once
}

// NewDialog returns a dialog that is neither acknowledged nor ended.
func NewDialog(callID, tag, sdp string) *Dialog {
	return &Dialog{CallID: callID, LocalTag: tag, SDP: sdp, Acked: make(chan struct{}), Ended: make(chan struct{})}
}

// Config says who a user agent is and where it connects.
type Config struct {
	Addr                 string // the server's TLS host:port
	TLS                  *tls.Config
	User, Secret, Domain string
	Agent                string // User-Agent and Server header value
	Stats                *Stats // where its signalling is counted
}

// UA is one device: one extension on one TLS connection. The Contact it
// registers is the connection's own local address, so a server that keeps
// the connection (as devices behind NAT need) reaches it there, and one
// that dials Contacts reaches nothing.
type UA struct {
	User, Secret, Domain string
	Local                string // our host:port, for Via and Contact
	agent                string
	conn                 net.Conn
	rd                   *bufio.Reader
	stats                *Stats
	// OnInvite answers a new INVITE from the server (the callee). Set it
	// before the UA registers.
	OnInvite func(u *UA, m *Msg)
	// OnEnd, if set, runs after a BYE from the server was answered.
	OnEnd func(u *UA, d *Dialog)

	wmu     sync.Mutex
	mu      sync.Mutex
	txs     map[string]chan *Msg // by Via branch
	dialogs map[string]*Dialog   // by Call-ID
	closed  chan struct{}
	rdErr   error
}

// Dial opens the UA's TLS connection and starts reading from it.
func Dial(c Config) (*UA, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(&d, "tcp", c.Addr, c.TLS)
	if err != nil {
		return nil, fmt.Errorf("dial %s for %s: %w", c.Addr, c.User, err)
	}
	st := c.Stats
	if st == nil {
		st = &Stats{}
	}
	agent := c.Agent
	if agent == "" {
		agent = "veilig-bench"
	}
	u := &UA{User: c.User, Secret: c.Secret, Domain: c.Domain, agent: agent, conn: conn,
		rd: bufio.NewReaderSize(conn, 64<<10), Local: conn.LocalAddr().String(), stats: st,
		txs: map[string]chan *Msg{}, dialogs: map[string]*Dialog{}, closed: make(chan struct{})}
	return u, nil
}

// Start begins reading from the connection; call it once, after setting
// OnInvite and OnEnd.
func (u *UA) Start() { go u.readLoop() }

// Close closes the connection.
func (u *UA) Close() { u.conn.Close() }

// Closed is closed when the connection's reader has stopped.
func (u *UA) Closed() <-chan struct{} { return u.closed }

// Contact is the UA's Contact header value.
func (u *UA) Contact() string {
	return "<sip:" + u.User + "@" + u.Local + ";transport=tls>"
}

// Send writes one message on the connection.
func (u *UA) Send(b []byte) error {
	u.wmu.Lock()
	defer u.wmu.Unlock()
	_ = u.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := u.conn.Write(b)
	if traceW != nil {
		trace("send", u.Local, b)
	}
	return err
}

func (u *UA) readLoop() {
	defer close(u.closed)
	for {
		m, err := ReadMsg(u.rd)
		if err != nil {
			u.mu.Lock()
			u.rdErr = err
			u.mu.Unlock()
			return
		}
		if traceW != nil {
			trace("recv", u.Local, []byte(m.String()))
		}
		if m.Code != 0 {
			br := HeaderParam(m.Get("via"), "branch")
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

// Dialog returns the dialog with this Call-ID, or nil.
func (u *UA) Dialog(callID string) *Dialog {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.dialogs[callID]
}

// AddDialog makes the UA answer in-dialog requests of d.
func (u *UA) AddDialog(d *Dialog) {
	u.mu.Lock()
	u.dialogs[d.CallID] = d
	u.mu.Unlock()
}

// DropDialog forgets a dialog.
func (u *UA) DropDialog(callID string) {
	u.mu.Lock()
	delete(u.dialogs, callID)
	u.mu.Unlock()
}

var allow = []string{"Allow: INVITE, ACK, BYE, CANCEL, OPTIONS"}

// serve answers a request from the server.
func (u *UA) serve(m *Msg) {
	u.stats.Add("rx " + m.Method)
	cid := m.Get("call-id")
	d := u.Dialog(cid)
	inDialog := HeaderParam(m.Get("to"), "tag") != ""
	switch m.Method {
	case "ACK":
		if d != nil {
			d.ackOnce.Do(func() { close(d.Acked) })
		}
	case "BYE":
		if d == nil {
			_ = u.Send(u.Response(m, 481, "Call/Transaction Does Not Exist", "", nil, ""))
			return
		}
		_ = u.Send(u.Response(m, 200, "OK", "", nil, ""))
		d.endOnce.Do(func() { close(d.Ended) })
		if u.OnEnd != nil {
			u.OnEnd(u, d)
		}
	case "OPTIONS":
		_ = u.Send(u.Response(m, 200, "OK", "", allow, ""))
	case "CANCEL":
		// Every INVITE is answered at once, so there is nothing to cancel.
		_ = u.Send(u.Response(m, 481, "Call/Transaction Does Not Exist", "", nil, ""))
	case "INVITE":
		switch {
		case inDialog && d == nil:
			_ = u.Send(u.Response(m, 481, "Call/Transaction Does Not Exist", "", nil, ""))
		case inDialog:
			// A re-INVITE (session refresh, hold...): answer with our
			// current description.
			_ = u.Send(u.Response(m, 200, "OK", "", []string{"Contact: " + u.Contact()}, d.SDP))
		case d != nil && d.Res200 != nil:
			_ = u.Send(d.Res200) // a retransmitted INVITE
		case u.OnInvite != nil:
			u.OnInvite(u, m)
		default:
			_ = u.Send(u.Response(m, 480, "Temporarily Unavailable", "", nil, ""))
		}
	default:
		_ = u.Send(u.Response(m, 405, "Method Not Allowed", "", allow, ""))
	}
}

// Response builds a response to m (RFC 3261 8.2.6) with this UA's Server
// header. toTag is added to To when it has none.
func (u *UA) Response(m *Msg, code int, reason, toTag string, extra []string, body string) []byte {
	hdrs := append(append(make([]string, 0, len(extra)+1), extra...), "Server: "+u.agent)
	return ResponseTo(m, code, reason, toTag, hdrs, body)
}

// ResponseTo builds a response to m (RFC 3261 8.2.6): its Vias, From, To
// (with toTag added when it has none), Call-ID and CSeq, the Record-Route
// of an INVITE's 1xx/2xx, then the extra header lines and an SDP body.
func ResponseTo(m *Msg, code int, reason, toTag string, extra []string, body string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, reason)
	for _, v := range m.All("via") {
		b.WriteString("Via: " + v + "\r\n")
	}
	if m.Method == "INVITE" && code > 100 && code < 300 {
		for _, v := range m.All("record-route") {
			b.WriteString("Record-Route: " + v + "\r\n")
		}
	}
	to := m.Get("to")
	if toTag != "" && HeaderParam(to, "tag") == "" {
		to += ";tag=" + toTag
	}
	b.WriteString("From: " + m.Get("from") + "\r\n")
	b.WriteString("To: " + to + "\r\n")
	b.WriteString("Call-ID: " + m.Get("call-id") + "\r\n")
	b.WriteString("CSeq: " + m.Get("cseq") + "\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	if body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return []byte(b.String())
}

// Req describes a request to send.
type Req struct {
	Method, RURI, From, To, CallID string
	CSeq                           uint32
	Route                          []string
	Contact                        bool
	Extra                          []string // whole header lines
	Body                           string
}

// Build renders q with a Via of this UA and the given branch.
func (u *UA) Build(q *Req, branch string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", q.Method, q.RURI)
	fmt.Fprintf(&b, "Via: SIP/2.0/TLS %s;branch=%s\r\n", u.Local, branch)
	b.WriteString("Max-Forwards: 70\r\n")
	for _, r := range q.Route {
		b.WriteString("Route: " + r + "\r\n")
	}
	b.WriteString("From: " + q.From + "\r\n")
	b.WriteString("To: " + q.To + "\r\n")
	b.WriteString("Call-ID: " + q.CallID + "\r\n")
	fmt.Fprintf(&b, "CSeq: %d %s\r\n", q.CSeq, q.Method)
	if q.Contact {
		b.WriteString("Contact: " + u.Contact() + "\r\n")
	}
	for _, h := range q.Extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("User-Agent: " + u.agent + "\r\n")
	if q.Body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(q.Body), q.Body)
	return []byte(b.String())
}

// NewBranch returns an RFC 3261 Via branch.
func NewBranch() string { return "z9hG4bK" + RandHex(10) }

// ErrConnClosed is wrapped by a transaction whose connection closed.
var ErrConnClosed = errors.New("SIP connection closed")

// Transact sends q as a client transaction and returns its final response.
// A non-2xx final response to an INVITE is acknowledged in the transaction.
func (u *UA) Transact(q *Req, timeout time.Duration) (*Msg, error) {
	br := NewBranch()
	ch := make(chan *Msg, 8)
	u.mu.Lock()
	u.txs[br] = ch
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		delete(u.txs, br)
		u.mu.Unlock()
	}()
	if err := u.Send(u.Build(q, br)); err != nil {
		return nil, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case m := <-ch:
			if m.Code < 200 {
				continue
			}
			u.stats.Add(q.Method + " " + strconv.Itoa(m.Code))
			if q.Method == "INVITE" && m.Code >= 300 {
				ack := *q
				ack.Method, ack.To, ack.Body, ack.Contact, ack.Extra = "ACK", m.Get("to"), "", false, nil
				_ = u.Send(u.Build(&ack, br))
			}
			return m, nil
		case <-t.C:
			u.stats.Add(q.Method + " timeout")
			return nil, fmt.Errorf("%s %s: no final response within %s", q.Method, q.RURI, timeout)
		case <-u.closed:
			u.mu.Lock()
			why := u.rdErr
			u.mu.Unlock()
			return nil, fmt.Errorf("%s %s: %w (%v)", q.Method, q.RURI, ErrConnClosed, why)
		}
	}
}

// TransactAuth is Transact, answering one 401/407 digest challenge.
func (u *UA) TransactAuth(q *Req, timeout time.Duration) (*Msg, error) {
	res, err := u.Transact(q, timeout)
	if err != nil || (res.Code != 401 && res.Code != 407) {
		return res, err
	}
	chHdr, authHdr := "www-authenticate", "Authorization"
	if res.Code == 407 {
		chHdr, authHdr = "proxy-authenticate", "Proxy-Authorization"
	}
	ch, err := auth.PickChallenge(res.All(chHdr))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q.Method, err)
	}
	q2 := *q
	q2.CSeq++
	q2.Extra = append(append([]string(nil), q.Extra...), authHdr+": "+ch.Authorization(u.User, u.Secret, q.Method, q.RURI))
	res, err = u.Transact(&q2, timeout)
	q.CSeq = q2.CSeq
	if err == nil && (res.Code == 401 || res.Code == 407) {
		return res, fmt.Errorf("%s: credentials of %s refused (%d again)", q.Method, u.User, res.Code)
	}
	return res, err
}

// SendReq sends a request outside any transaction (the ACK of a 2xx).
func (u *UA) SendReq(q *Req) error { return u.Send(u.Build(q, NewBranch())) }

// Register binds this device's Contact to its extension for expires
// seconds.
func (u *UA) Register(expires int, timeout time.Duration) error {
	aor := "<sip:" + u.User + "@" + u.Domain + ">"
	q := &Req{Method: "REGISTER", RURI: "sip:" + u.Domain, From: aor + ";tag=" + RandHex(6), To: aor,
		CallID: RandHex(12) + "@" + u.agent, CSeq: 1, Contact: true, Extra: []string{"Expires: " + strconv.Itoa(expires)}}
	res, err := u.TransactAuth(q, timeout)
	if err != nil {
		return fmt.Errorf("REGISTER %s: %w", u.User, err)
	}
	if res.Code != 200 {
		return fmt.Errorf("REGISTER %s: %s", u.User, res.First)
	}
	return nil
}
