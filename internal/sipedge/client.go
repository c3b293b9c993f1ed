package sipedge

import (
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Client transaction states (RFC 3261 17.1, with RFC 6026's Accepted).
const (
	ctCalling = iota
	ctProceeding
	ctCompleted
	ctAccepted
	ctTerminated
)

// ResponseFunc receives the responses of a client transaction. A 2xx to an
// INVITE may arrive more than once (retransmissions); everything else once.
type ResponseFunc func(res *sip.Response)

// ClientTx is one request Veilig sent, with its retransmissions, timeout
// and (for INVITE) the ACK of non-2xx answers.
type ClientTx struct {
	key    string
	edge   *Edge
	conn   Conn
	req    *sip.Request
	raw    []byte
	invite bool
	onResp ResponseFunc

	mu            sync.Mutex
	state         int
	interval      time.Duration
	retrans       *time.Timer
	timeout       *time.Timer
	ack           []byte
	cancelPending bool
	cancelled     bool
}

// Request is the request as sent (with Veilig's Via on top), until a final
// response arrives; nil after that.
func (tx *ClientTx) Request() *sip.Request {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return tx.req
}

// Conn is the connection the request went out on.
func (tx *ClientTx) Conn() Conn { return tx.conn }

// Send starts a client transaction for req on conn. It puts Veilig's Via on
// top (a fresh branch) and never dials: conn must be a live connection or
// the UDP socket of a known source. onResp is called for every response,
// and with a locally made 408 or 503 when the peer does not answer or the
// connection fails.
func (e *Edge) Send(conn Conn, req *sip.Request, onResp ResponseFunc) (*ClientTx, error) {
	branch := sip.GenerateBranchN(16)
	via := e.via(conn, branch)
	req.PrependHeader(via)
	if req.MaxForwards() == nil {
		mf := sip.MaxForwardsHeader(70)
		req.AppendHeader(&mf)
	}
	if req.ContentLength() == nil {
		req.SetBody(req.Body()) // adds the one Content-Length
	}
	tx := &ClientTx{
		key:    branch + "|" + string(req.Method),
		edge:   e,
		conn:   conn,
		req:    req,
		invite: req.Method == sip.INVITE,
		onResp: onResp,
	}
	tx.raw = encode(req)
	e.txs.addClient(tx.key, tx)
	if err := conn.Send(tx.raw); err != nil {
		e.txs.removeClient(tx.key, tx)
		return nil, err
	}
	tx.mu.Lock()
	if !conn.Reliable() {
		tx.interval = T1
		tx.retrans = time.AfterFunc(T1, tx.retransmit)
	}
	tx.timeout = time.AfterFunc(TimerB, tx.timedOut)
	tx.mu.Unlock()
	return tx, nil
}

// via builds Veilig's Via for a request sent on conn.
func (e *Edge) via(conn Conn, branch string) *sip.ViaHeader {
	host, port := e.sentBy(conn)
	v := &sip.ViaHeader{
		ProtocolName:    "SIP",
		ProtocolVersion: "2.0",
		Transport:       transportToken(conn.Transport()),
		Host:            host,
		Port:            port,
		Params:          sip.NewParams(),
	}
	v.Params.Add("branch", branch)
	return v
}

func transportToken(t string) string {
	switch t {
	case "tls":
		return "TLS"
	case "tcp":
		return "TCP"
	default:
		return "UDP"
	}
}

func (tx *ClientTx) retransmit() {
	tx.mu.Lock()
	if tx.state != ctCalling && !(tx.state == ctProceeding && !tx.invite) {
		tx.mu.Unlock()
		return
	}
	tx.interval *= 2
	if tx.interval > T2 || (tx.state == ctProceeding && !tx.invite) {
		tx.interval = T2
	}
	if tx.invite && tx.interval > T2 {
		tx.interval = T2
	}
	tx.retrans = time.AfterFunc(tx.interval, tx.retransmit)
	raw := tx.raw
	tx.mu.Unlock()
	_ = tx.conn.Send(raw)
}

func (tx *ClientTx) timedOut() {
	tx.mu.Lock()
	if tx.state != ctCalling && !(tx.state == ctProceeding && (!tx.invite || tx.cancelled)) {
		tx.mu.Unlock()
		return
	}
	tx.state = ctTerminated
	tx.stopTimersLocked()
	res, f := tx.local(408, "Request Timeout"), tx.onResp
	tx.finalLocked()
	tx.mu.Unlock()
	tx.edge.txs.removeClient(tx.key, tx)
	f(res)
}

// finalLocked lets go of what only an unanswered request needs. An accepted
// INVITE lingers 32 s (RFC 6026 Timer M) and a failed one until its ACK
// retransmissions are absorbed; the encoded and parsed request are dead
// weight by then, multiplied by every call in that window.
func (tx *ClientTx) finalLocked() {
	tx.raw, tx.req = nil, nil
}

// Detach drops the response handler once the dialog it served has ended:
// a 2xx retransmitted after that has nothing left to reach, and the
// handler would otherwise keep the whole call alive for Timer M.
func (tx *ClientTx) Detach() {
	tx.mu.Lock()
	tx.onResp = func(*sip.Response) {}
	tx.mu.Unlock()
}

func (tx *ClientTx) stopTimersLocked() {
	if tx.retrans != nil {
		tx.retrans.Stop()
	}
	if tx.timeout != nil {
		tx.timeout.Stop()
	}
}

// local makes a response Veilig pretends to have received.
func (tx *ClientTx) local(code int, reason string) *sip.Response {
	res := sip.NewResponseFromRequest(tx.req, code, reason, nil)
	return res
}

func (tx *ClientTx) receive(res *sip.Response) {
	tx.mu.Lock()
	f := tx.onResp
	switch {
	case res.StatusCode < 200:
		if tx.state != ctCalling && tx.state != ctProceeding {
			tx.mu.Unlock()
			return
		}
		tx.state = ctProceeding
		if tx.invite {
			// Ringing may last longer than Timer B: from here the call
			// layer's ring timeout decides (RFC 3261 17.1.1.2).
			if tx.retrans != nil {
				tx.retrans.Stop()
			}
			if tx.timeout != nil {
				tx.timeout.Stop()
			}
		}
		sendCancel, req := tx.cancelPending, tx.req
		tx.cancelPending = false
		if sendCancel {
			tx.timeout = time.AfterFunc(TimerB, tx.timedOut)
		}
		tx.mu.Unlock()
		if sendCancel {
			tx.sendCancel(req)
		}
		f(res)
		return
	case tx.invite && res.StatusCode < 300:
		first := tx.state == ctCalling || tx.state == ctProceeding
		if !first && tx.state != ctAccepted {
			tx.mu.Unlock()
			return
		}
		if first {
			tx.state = ctAccepted
			tx.stopTimersLocked()
			tx.finalLocked()
			time.AfterFunc(TimerB, func() { tx.terminate() })
		}
		tx.mu.Unlock()
		f(res)
		return
	case tx.invite:
		if tx.state == ctCompleted {
			ack := tx.ack
			tx.mu.Unlock()
			_ = tx.conn.Send(ack)
			return
		}
		if tx.state != ctCalling && tx.state != ctProceeding {
			tx.mu.Unlock()
			return
		}
		tx.state = ctCompleted
		tx.stopTimersLocked()
		tx.ack = encode(tx.ackFor(res))
		tx.finalLocked()
		ack := tx.ack
		if tx.conn.Reliable() {
			tx.state = ctTerminated
		} else {
			time.AfterFunc(TimerB, func() { tx.terminate() })
		}
		tx.mu.Unlock()
		_ = tx.conn.Send(ack)
		if tx.conn.Reliable() {
			tx.edge.txs.removeClient(tx.key, tx)
		}
		f(res)
		return
	default:
		if tx.state != ctCalling && tx.state != ctProceeding {
			tx.mu.Unlock()
			return
		}
		tx.state = ctTerminated
		tx.stopTimersLocked()
		tx.finalLocked()
		tx.mu.Unlock()
		tx.edge.txs.removeClient(tx.key, tx)
		f(res)
	}
}

func (tx *ClientTx) terminate() {
	tx.mu.Lock()
	tx.state = ctTerminated
	tx.mu.Unlock()
	tx.edge.txs.removeClient(tx.key, tx)
}

// ackFor builds the ACK of a non-2xx final answer (RFC 3261 17.1.1.3):
// same branch and Request-URI, To from the response.
func (tx *ClientTx) ackFor(res *sip.Response) *sip.Request {
	ack := sip.NewRequest(sip.ACK, *tx.req.Recipient.Clone())
	ack.SipVersion = tx.req.SipVersion
	ack.AppendHeader(sip.HeaderClone(tx.req.Via()))
	for _, h := range tx.req.GetHeaders("Route") {
		ack.AppendHeader(sip.HeaderClone(h))
	}
	mf := sip.MaxForwardsHeader(70)
	ack.AppendHeader(&mf)
	ack.AppendHeader(sip.HeaderClone(tx.req.From()))
	if to := res.To(); to != nil {
		ack.AppendHeader(sip.HeaderClone(to))
	}
	ack.AppendHeader(sip.HeaderClone(tx.req.CallID()))
	ack.AppendHeader(&sip.CSeqHeader{SeqNo: tx.req.CSeq().SeqNo, MethodName: sip.ACK})
	ack.SetBody(nil)
	return ack
}

// Cancel asks the callee to stop ringing (RFC 3261 9.1): the CANCEL goes
// only after a provisional response has arrived.
func (tx *ClientTx) Cancel() {
	if !tx.invite {
		return
	}
	tx.mu.Lock()
	if tx.cancelled {
		tx.mu.Unlock()
		return
	}
	switch tx.state {
	case ctCalling:
		tx.cancelled = true
		tx.cancelPending = true
		tx.mu.Unlock()
		return
	case ctProceeding:
		tx.cancelled = true
		// A callee that never answers the CANCEL must not pin the
		// transaction (RFC 3261 9.1: give up after 64*T1).
		tx.timeout = time.AfterFunc(TimerB, tx.timedOut)
		req := tx.req
		tx.mu.Unlock()
		tx.sendCancel(req)
		return
	}
	tx.mu.Unlock()
}

// sendCancel cancels req, the INVITE as sent (read under mu by the caller:
// a final response may release it at any moment).
func (tx *ClientTx) sendCancel(req *sip.Request) {
	if req == nil {
		return
	}
	c := sip.NewRequest(sip.CANCEL, *req.Recipient.Clone())
	c.SipVersion = req.SipVersion
	c.AppendHeader(sip.HeaderClone(req.Via()))
	for _, h := range req.GetHeaders("Route") {
		c.AppendHeader(sip.HeaderClone(h))
	}
	mf := sip.MaxForwardsHeader(70)
	c.AppendHeader(&mf)
	c.AppendHeader(sip.HeaderClone(req.From()))
	c.AppendHeader(sip.HeaderClone(req.To()))
	c.AppendHeader(sip.HeaderClone(req.CallID()))
	c.AppendHeader(&sip.CSeqHeader{SeqNo: req.CSeq().SeqNo, MethodName: sip.CANCEL})
	c.SetBody(nil)
	// The CANCEL is its own transaction on the same branch.
	ct := &ClientTx{
		key:    req.Via().Params.GetOr("branch", "") + "|CANCEL",
		edge:   tx.edge,
		conn:   tx.conn,
		req:    c,
		onResp: func(*sip.Response) {},
	}
	ct.raw = encode(c)
	tx.edge.txs.addClient(ct.key, ct)
	if err := tx.conn.Send(ct.raw); err != nil {
		tx.edge.txs.removeClient(ct.key, ct)
		return
	}
	ct.mu.Lock()
	if !tx.conn.Reliable() {
		ct.interval = T1
		ct.retrans = time.AfterFunc(T1, ct.retransmit)
	}
	ct.timeout = time.AfterFunc(TimerB, ct.timedOut)
	ct.mu.Unlock()
}

// SendACK sends the ACK of a 2xx, which is not part of any transaction
// (RFC 3261 13.2.2.4); the caller keeps it to answer 2xx retransmissions.
func (e *Edge) SendACK(conn Conn, ack *sip.Request) ([]byte, error) {
	ack.PrependHeader(e.via(conn, sip.GenerateBranchN(16)))
	if ack.MaxForwards() == nil {
		mf := sip.MaxForwardsHeader(70)
		ack.AppendHeader(&mf)
	}
	if ack.ContentLength() == nil {
		ack.SetBody(ack.Body())
	}
	raw := encode(ack)
	return raw, conn.Send(raw)
}

func clientKey(res *sip.Response) string {
	v := res.Via()
	cs := res.CSeq()
	if v == nil || cs == nil {
		return ""
	}
	return v.Params.GetOr("branch", "") + "|" + string(cs.MethodName)
}
