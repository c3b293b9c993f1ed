package call

import (
	"net/netip"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/media"
	"github.com/veilig/veilig/internal/sipedge"
	"github.com/veilig/veilig/internal/trunk"
)

type callState int

const (
	stRinging   callState = iota
	stAnswered            // 2xx sent to the caller, its ACK not yet seen
	stConfirmed           // both legs established
	stEnded
)

// fork is one INVITE to one of the callee's devices.
type fork struct {
	tx   ClientTx
	leg  *leg
	done bool
	code int
	won  bool
	// trunk is set for a fork to a carrier: its challenge is answered
	// once (authed) with the trunk's credentials, re-sending body.
	trunk  *trunk.Trunk
	body   []byte
	authed bool
}

// Call is one B2BUA call. Its mutex guards the call, its legs and forks;
// every event (responses, CANCEL, ACK, timers, in-dialog requests) takes
// it, so each call is one state machine driven by one event at a time.
type Call struct {
	m  *Manager
	id string

	mu        sync.Mutex
	state     callState
	a, b      *leg
	forks     []*fork
	inviteTx  ServerTx
	invite    *sip.Request
	lateOffer bool
	bInvCSeq  uint32 // CSeq of the winning INVITE on the B leg

	// sess is the call's media relay session (nil without a relay);
	// lastAnswerIn/Out remember the answer applied in this offer/answer
	// round, answeredMedia that the 2xx answer is in.
	sess                        *media.Session
	lastAnswerIn, lastAnswerOut []byte
	answeredMedia               bool

	// fraud is an outbound call's admission; fromTrunk names the trunk
	// an inbound call came on.
	fraud     *fraudCall
	fromTrunk string
	presented string // the caller-ID shown to the carrier

	caller, callee string
	source         netip.AddrPort
	started        time.Time
	answered       time.Time
	ring, maxLife  *time.Timer
}

func (m *Manager) newCall(r *request, offer Media, sess *media.Session) *Call {
	req := r.Request
	c := &Call{
		m: m, id: string(*req.CallID()), inviteTx: r.Tx, invite: req, sess: sess,
		lateOffer: len(req.Body()) == 0,
		caller:    r.Account, callee: req.Recipient.User,
		source: r.Peer(), started: r.Received,
	}
	ftag, _ := req.From().Params.Get("tag")
	a := &leg{
		call: c, caller: true, conn: r.Conn,
		callID: c.id, localTag: r.Tx.ToTag(), remoteTag: ftag,
		localURI: *req.To().Address.Clone(), remoteURI: *req.From().Address.Clone(),
		remoteCSeq: req.CSeq().SeqNo, localCSeq: 1,
		contact: m.o.Edge.Contact(r.Conn, ""),
		media:   offer,
	}
	if ct := req.Contact(); ct != nil {
		a.remoteTarget = *ct.Address.Clone()
	} else {
		a.remoteTarget = *req.From().Address.Clone()
	}
	for _, h := range req.GetHeaders("Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			a.routeSet = append(a.routeSet, rr.Address)
		}
	}
	c.a = a
	m.mu.Lock()
	m.calls[c] = struct{}{}
	m.byID[c.id] = c
	m.mu.Unlock()
	m.addDialog(a)
	return c
}

func (c *Call) legs() []*leg {
	out := []*leg{c.a}
	if c.b != nil {
		out = append(out, c.b)
	}
	return out
}

func (c *Call) other(l *leg) *leg {
	if l == c.a {
		return c.b
	}
	return c.a
}

func (c *Call) ua() string { return c.m.o.Edge.UserAgent() }

// start sends the INVITE to every reachable device of the callee.
func (c *Call) start(targets []target2, body []byte) {
	c.mu.Lock()
	domain := c.m.o.Domain
	name := c.m.o.Directory.Name(c.caller)
	for _, t := range targets {
		var ruri sip.Uri
		if err := sip.ParseUri(t.binding.Contact, &ruri); err != nil {
			continue
		}
		l := &leg{
			call: c, conn: t.conn,
			callID: sipedge.NewCallID(), localTag: sipedge.NewTag(),
			localURI:     sip.Uri{Scheme: "sip", User: c.caller, Host: domain},
			localName:    name,
			remoteURI:    sip.Uri{Scheme: "sip", User: c.callee, Host: domain},
			remoteTarget: ruri,
			contact:      c.m.o.Edge.Contact(t.conn, c.caller),
		}
		req := l.newRequest(sip.INVITE, c.ua())
		req.AppendHeader(inDialogAllow())
		if len(body) > 0 {
			req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
			req.SetBody(body)
		}
		f := &fork{leg: l}
		c.forks = append(c.forks, f)
		tx, err := c.m.o.Edge.Send(t.conn, req, func(res *sip.Response) { c.onForkResponse(f, res) })
		if err != nil {
			f.done, f.code = true, 503
			continue
		}
		f.tx = tx
	}
	c.ring = time.AfterFunc(c.m.o.RingTimeout, c.ringTimeout)
	allFailed := c.allDone()
	c.mu.Unlock()
	if allFailed {
		c.mu.Lock()
		c.failLocked(480, "Temporarily Unavailable", "no device could be reached")
		c.mu.Unlock()
		return
	}
	// Outside the lock: OnCancel runs f at once if the CANCEL is already in.
	c.inviteTx.OnCancel(c.callerCancelled)
}

func (c *Call) allDone() bool {
	for _, f := range c.forks {
		if !f.done {
			return false
		}
	}
	return true
}

// relay answers the caller's INVITE, copying code, reason and SDP.
func (c *Call) relay(code int, reason string, body []byte) {
	res := sip.NewResponseFromRequest(c.invite, code, reason, nil)
	res.AppendHeader(sip.NewHeader("Server", c.ua()))
	if code > 100 && code < 300 {
		res.AppendHeader(&sip.ContactHeader{Address: *c.a.contact.Clone(), Params: sip.NewParams()})
	}
	if len(body) > 0 {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res.SetBody(body)
	}
	_ = c.inviteTx.Respond(res)
}

func (c *Call) onForkResponse(f *fork, res *sip.Response) {
	c.mu.Lock()
	defer c.mu.Unlock()
	code := res.StatusCode
	switch {
	case code == 100:
		return
	case code < 200:
		if c.state != stRinging || f.done {
			return
		}
		c.learnRemote(f.leg, res)
		body := res.Body()
		if len(body) > 0 && c.lateOffer {
			// Early SDP to a late offer needs reliable provisionals,
			// which Veilig does not offer: ring without early media.
			body = nil
		}
		if len(body) > 0 {
			_, err := CheckSRTP(body, true)
			if err != nil && f.trunk != nil && f.trunk.PlainMedia() && isPlainRTP(body) {
				err = nil
			}
			if err == nil {
				body, err = c.answer(f.leg, body)
			}
			if err != nil {
				c.mediaRefused(f.leg, err.Error())
				f.tx.Cancel()
				return
			}
		}
		c.relay(code, res.Reason, body)
	case code < 300:
		c.onFork2xx(f, res)
	default:
		if f.done {
			return
		}
		if (code == 401 || code == 407) && f.trunk != nil && !f.authed && c.state == stRinging {
			hdr, val, err := f.trunk.Authorize(res, "INVITE", f.leg.remoteTarget.String())
			if err == nil {
				f.authed = true
				c.sendFork(f, hdr, val)
				if !f.done {
					return
				}
			}
		}
		f.done, f.code = true, code
		if c.state == stRinging && c.allDone() {
			code, reason := c.bestFailure()
			c.failLocked(code, reason, "callee answered "+cseqString(uint32(f.code)))
		}
	}
}

// learnRemote records the callee device's tag, target and route set.
func (c *Call) learnRemote(l *leg, res *sip.Response) {
	if tag, ok := res.To().Params.Get("tag"); ok && tag != "" {
		l.remoteTag = tag
	}
	if ct := res.Contact(); ct != nil {
		l.remoteTarget = *ct.Address.Clone()
	}
	rrs := res.GetHeaders("Record-Route")
	if len(rrs) > 0 {
		l.routeSet = l.routeSet[:0]
		for i := len(rrs) - 1; i >= 0; i-- {
			if rr, ok := rrs[i].(*sip.RecordRouteHeader); ok {
				l.routeSet = append(l.routeSet, rr.Address)
			}
		}
	}
}

func (c *Call) onFork2xx(f *fork, res *sip.Response) {
	l := f.leg
	if f.won {
		// A retransmitted 2xx: our ACK was lost.
		if l.ack != nil {
			_ = l.conn.Send(l.ack)
		}
		return
	}
	if c.state != stRinging || f.done {
		// Another device answered first, or the call is over: take this
		// one down.
		f.done = true
		c.learnRemote(l, res)
		c.ackAndBye(l, res.CSeq().SeqNo)
		return
	}
	c.learnRemote(l, res)
	f.done, f.won = true, true
	body := res.Body()
	med, err := CheckSRTP(body, !c.lateOffer)
	if err != nil && f.trunk != nil && f.trunk.PlainMedia() && isPlainRTP(body) {
		// A carrier marked media: rtp answers in the clear on its own
		// leg; the relay keeps SRTP towards the agent.
		err = nil
	}
	if err == nil && len(body) > 0 {
		if c.lateOffer {
			body, err = c.offer(l, body)
		} else {
			body, err = c.answer(l, body)
		}
	}
	if err != nil || len(body) == 0 {
		why := "answer without SDP"
		if err != nil {
			why = err.Error()
		}
		c.mediaRefused(l, why)
		c.ackAndBye(l, res.CSeq().SeqNo)
		c.failLocked(488, "Not Acceptable Here", why)
		return
	}
	c.b = l
	c.bInvCSeq = res.CSeq().SeqNo
	c.answeredMedia = true
	l.media = med
	if !c.lateOffer {
		c.a.media = med
	}
	c.m.addDialog(l)
	c.state = stAnswered
	c.answered = time.Now()
	if c.ring != nil {
		c.ring.Stop()
	}
	life := c.m.o.MaxDuration
	if c.fraud != nil {
		c.m.o.Fraud.CallAnswered(c.fraud.d.Call, c.answered)
		if md := c.fraud.d.MaxDuration; md > 0 && md < life {
			life = md
		}
	}
	c.maxLife = time.AfterFunc(life, func() { c.hangup("maximum call duration reached") })
	for _, o := range c.forks {
		if o != f && !o.done && o.tx != nil {
			o.tx.Cancel()
		}
	}
	if !c.lateOffer {
		c.ackB(nil)
	}
	c.inviteTx.OnAck(c.callerAck)
	c.inviteTx.OnNoAck(func() { c.hangup("caller never acknowledged the answer") })
	c.relay(200, "OK", body)
}

// ackB sends the ACK of the winning 2xx on the B leg, with body for a late
// offer.
func (c *Call) ackB(body []byte) {
	ack := c.b.ackFor2xx(c.bInvCSeq, c.ua())
	if len(body) > 0 {
		ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		ack.SetBody(body)
	}
	raw, err := c.m.o.Edge.SendACK(c.b.conn, ack)
	if err == nil {
		c.b.ack = raw
	}
}

func (c *Call) ackAndBye(l *leg, cseq uint32) {
	ack := l.ackFor2xx(cseq, c.ua())
	if raw, err := c.m.o.Edge.SendACK(l.conn, ack); err == nil {
		l.ack = raw
	}
	if l.localCSeq < cseq {
		l.localCSeq = cseq
	}
	c.bye(l)
}

func (c *Call) bye(l *leg) {
	req := l.newRequest(sip.BYE, c.ua())
	if _, err := c.m.o.Edge.Send(l.conn, req, func(*sip.Response) {}); err != nil {
		c.m.log.Debug("bye not sent", "call", c.id, "err", err)
	}
}

// callerAck completes the call when the caller acknowledges our 2xx; with
// a late offer its ACK carries the answer, held to the same rule.
func (c *Call) callerAck(ack *sip.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stAnswered {
		return
	}
	c.state = stConfirmed
	if !c.lateOffer {
		return
	}
	med, err := CheckSRTP(ack.Body(), true)
	var ans []byte
	if err == nil && len(ack.Body()) > 0 {
		ans, err = c.answer(c.a, ack.Body())
	}
	if err != nil || len(ack.Body()) == 0 {
		why := "late-offer ACK without SDP answer"
		if err != nil {
			why = err.Error()
		}
		c.mediaRefused(c.a, why)
		c.ackB(nil)
		c.endLocked("failed", "488 Not Acceptable Here: "+why, true, true)
		return
	}
	c.a.media = med
	c.b.media = med
	c.ackB(ans)
}

func (c *Call) callerCancelled() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stRinging {
		return
	}
	c.cancelForks()
	c.relay(487, "Request Terminated", nil)
	c.endLocked("cancelled", "caller cancelled", false, false)
}

func (c *Call) ringTimeout() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stRinging {
		return
	}
	c.cancelForks()
	c.relay(480, "Temporarily Unavailable", nil)
	c.endLocked("no-answer", "no answer within ring timeout", false, false)
}

func (c *Call) cancelForks() {
	for _, f := range c.forks {
		if !f.done && f.tx != nil {
			f.tx.Cancel()
		}
	}
}

// bestFailure picks the answer for the caller when every device refused
// (RFC 3261 16.7: 6xx first, then busy, then the lowest class).
func (c *Call) bestFailure() (int, string) {
	best := 0
	for _, f := range c.forks {
		switch {
		case f.code >= 600:
			return f.code, reasonFor(f.code)
		case f.code == 486:
			best = 486
		case best == 0 || (best != 486 && f.code < best):
			best = f.code
		}
	}
	switch best {
	case 486, 488, 480, 603:
		return best, reasonFor(best)
	}
	return 480, reasonFor(480)
}

func reasonFor(code int) string {
	switch code {
	case 480:
		return "Temporarily Unavailable"
	case 486:
		return "Busy Here"
	case 488:
		return "Not Acceptable Here"
	case 600:
		return "Busy Everywhere"
	case 603:
		return "Decline"
	case 604:
		return "Does Not Exist Anywhere"
	case 606:
		return "Not Acceptable"
	}
	return "Failed"
}

// failLocked ends a ringing call with an error answer to the caller.
func (c *Call) failLocked(code int, reason, why string) {
	if c.state != stRinging {
		return
	}
	c.cancelForks()
	c.relay(code, reason, nil)
	disp := "failed"
	switch code {
	case 486, 600:
		disp = "busy"
	case 480:
		disp = "unavailable"
	case 603:
		disp = "declined"
	}
	c.endLocked(disp, cseqString(uint32(code))+" "+reason+": "+why, false, false)
}

func (c *Call) mediaRefused(l *leg, why string) {
	acct := c.callee
	src := netip.AddrPort{}
	if l != nil && l.conn != nil {
		src = l.conn.Peer()
	}
	if l == c.a {
		acct, src = c.caller, c.source
	}
	c.m.o.Events.Emit(events.New(events.CallRefused, src, acct,
		"call refused: media would not be encrypted: "+why, "call_id", c.id, "from", c.caller, "to", c.callee,
		"rule", ruleSRTP, "code", "488"))
}

// hangup ends an established call from Veilig's side.
func (c *Call) hangup(why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stEnded {
		return
	}
	if c.state == stRinging {
		c.failLocked(480, "Temporarily Unavailable", why)
		return
	}
	c.endLocked("answered", why, true, true)
}

// endLocked finishes the call: BYE on the legs that need it, timers off,
// dialogs forgotten, the record written.
func (c *Call) endLocked(disposition, cause string, byeA, byeB bool) {
	if c.state == stEnded {
		return
	}
	c.state = stEnded
	if c.ring != nil {
		c.ring.Stop()
	}
	if c.maxLife != nil {
		c.maxLife.Stop()
	}
	if byeA {
		c.bye(c.a)
	}
	if byeB && c.b != nil {
		c.bye(c.b)
	}
	c.m.forget(c)
	for _, f := range c.forks {
		// A fork with its final answer has nothing more to tell the call.
		// One still ringing keeps its handler: a 2xx racing the end must
		// still be acknowledged and taken down (onFork2xx).
		if f.tx != nil && f.done {
			f.tx.Detach()
		}
	}
	var ms media.SessionStats
	if c.sess != nil {
		ms = c.sess.Stats()
		_ = c.sess.Close()
	}
	rec := events.CallRecord{
		ID: c.id, From: c.caller, To: c.callee, Source: c.source.String(),
		StartedAt: c.started.UTC(), EndedAt: time.Now().UTC(),
		Disposition: disposition, Cause: cause,
	}
	if !c.answered.IsZero() {
		rec.AnsweredAt = c.answered.UTC()
		rec.CallerMedia = c.a.media.Protection()
		if c.b != nil {
			rec.CalleeMedia = c.b.media.Protection()
		}
		if c.sess != nil {
			rec.CallerMedia = protection(ms.A, c.a.media)
			if c.b != nil {
				rec.CalleeMedia = protection(ms.B, c.b.media)
			}
			rec.MediaInClear = ms.ClearOnNetwork
		}
	}
	if c.fromTrunk != "" {
		rec.Trunk = c.fromTrunk
	}
	if c.fraud != nil {
		var talk time.Duration
		if !c.answered.IsZero() {
			talk = time.Since(c.answered)
		}
		fr, _ := c.m.o.Fraud.CallEnded(c.fraud.d.Call, time.Now(), talk)
		c.fraud.fill(&rec, fr.EstimatedCost)
		if fr.EndedBy != "" {
			rec.Fraud += ", ended: " + string(fr.EndedBy)
		}
	}
	c.m.o.Events.Record(rec)
}
