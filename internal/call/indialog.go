package call

import (
	"github.com/emiago/sipgo/sip"

	"github.com/veilig/veilig/internal/sipedge"
)

// inDialogAllow is the Allow header inside a dialog (and on the INVITEs
// that open one), where REGISTER has no place.
func inDialogAllow() sip.Header { return sipedge.Allow(sip.REGISTER) }

// inDialog handles a request a device sent inside its leg's dialog.
func (c *Call) inDialog(l *leg, r *request) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Only the device that holds the dialog may act in it: the request
	// must come from its address (a reconnect may change the port).
	if r.Peer().Addr() != l.conn.Peer().Addr() || r.Conn.Transport() != l.conn.Transport() {
		return r.Respond(481, "Call/Transaction Does Not Exist")
	}
	if c.state == stEnded {
		return r.Respond(481, "Call/Transaction Does Not Exist")
	}
	if n := r.CSeq().SeqNo; n <= l.remoteCSeq {
		return r.Respond(500, "CSeq Out of Order")
	} else {
		l.remoteCSeq = n
	}
	if r.Conn.ID() != l.conn.ID() {
		l.conn = r.Conn
	}
	other := c.other(l)
	switch r.Method {
	case sip.BYE:
		_ = r.Respond(200, "OK")
		who := "callee hung up"
		if l == c.a {
			who = "caller hung up"
		}
		if c.state == stRinging {
			// BYE on an early dialog: the caller gave up.
			c.cancelForks()
			c.relay(487, "Request Terminated", nil)
			c.endLocked("cancelled", who, false, false)
			return nil
		}
		c.endLocked("answered", who, l != c.a, l == c.a)
		return nil
	case sip.INVITE:
		return c.reinvite(l, other, r)
	case sip.OPTIONS:
		return r.Respond(200, "OK", inDialogAllow())
	case sip.INFO, sip.UPDATE, sip.MESSAGE:
		return c.relayRequest(l, other, r)
	}
	return r.Respond(405, "Method Not Allowed", inDialogAllow())
}

// checkBody applies the media rule to an in-dialog offer or answer.
func (c *Call) checkBody(l *leg, body []byte, answer bool) (Media, bool) {
	if len(body) == 0 {
		return Media{}, true
	}
	m, err := CheckSRTP(body, answer)
	if err != nil {
		c.mediaRefused(l, err.Error())
		return Media{}, false
	}
	return m, true
}

// reinvite relays a re-INVITE (hold, resume, codec change) to the other
// leg. The offer and the answer are both held to the media rule; a bad
// offer is refused and the old session stays, a bad answer ends the call.
func (c *Call) reinvite(l, other *leg, r *request) error {
	if other == nil || (c.state != stConfirmed && c.state != stAnswered) {
		return r.Respond(491, "Request Pending")
	}
	if l.serving != nil || other.pending != nil || l.pending != nil {
		return r.Respond(491, "Request Pending")
	}
	body := r.Body()
	hadOffer := len(body) > 0
	if _, ok := c.checkBody(l, body, false); !ok {
		return r.Respond(488, "Not Acceptable Here")
	}
	if hadOffer && !c.m.secureHop(other.conn) {
		return r.Respond(488, "Not Acceptable Here")
	}
	c.resetAnswer()
	fwd, err := c.offer(l, body)
	if err != nil {
		c.mediaRefused(l, err.Error())
		return r.Respond(488, "Not Acceptable Here")
	}
	req := other.newRequest(sip.INVITE, c.ua())
	if hadOffer {
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(fwd)
	}
	srv := r.Tx
	l.serving = srv
	tx, err := c.m.o.Edge.Send(other.conn, req, func(res *sip.Response) { c.onReinviteResponse(l, other, srv, res, hadOffer) })
	if err != nil {
		l.serving = nil
		return r.Respond(503, "Service Unavailable")
	}
	other.pending = tx
	return nil
}

func (c *Call) onReinviteResponse(l, other *leg, srv ServerTx, res *sip.Response, hadOffer bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	code := res.StatusCode
	if code < 200 {
		return
	}
	if code >= 300 {
		other.pending, l.serving = nil, nil
		if c.state == stEnded {
			return
		}
		_ = srv.Respond(responseLike(srv.Request(), code, res.Reason, c.ua(), nil, nil))
		if code == 408 || code == 481 {
			c.endLocked("answered", "re-INVITE answered "+cseqString(uint32(code)), true, true)
		}
		return
	}
	seq := res.CSeq().SeqNo
	if other.pending == nil {
		// Retransmitted 2xx: resend our ACK.
		if other.ack != nil {
			_ = other.conn.Send(other.ack)
		}
		return
	}
	other.pending, l.serving = nil, nil
	if c.state == stEnded {
		c.ackAndBye(other, seq)
		return
	}
	if ct := res.Contact(); ct != nil {
		other.remoteTarget = *ct.Address.Clone()
	}
	body := res.Body()
	med, ok := c.checkBody(other, body, hadOffer)
	if ok && len(body) > 0 {
		var err error
		if hadOffer {
			body, err = c.answer(other, body)
		} else {
			body, err = c.offer(other, body)
		}
		if err != nil {
			c.mediaRefused(other, err.Error())
			ok = false
		}
	}
	if !ok || (hadOffer && len(body) == 0) {
		ack := other.ackFor2xx(seq, c.ua())
		if raw, err := c.m.o.Edge.SendACK(other.conn, ack); err == nil {
			other.ack = raw
		}
		_ = srv.Respond(responseLike(srv.Request(), 488, "Not Acceptable Here", c.ua(), nil, nil))
		c.endLocked("answered", "re-INVITE answer refused by media policy", true, true)
		return
	}
	if len(body) > 0 {
		other.media, l.media = med, med
	}
	if hadOffer {
		ack := other.ackFor2xx(seq, c.ua())
		if raw, err := c.m.o.Edge.SendACK(other.conn, ack); err == nil {
			other.ack = raw
		}
	} else {
		// Late offer: the answer arrives in the requester's ACK.
		srv.OnAck(func(a *sip.Request) {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.state == stEnded {
				return
			}
			m, ok := c.checkBody(l, a.Body(), true)
			ack := other.ackFor2xx(seq, c.ua())
			if ok && len(a.Body()) > 0 {
				ans, err := c.answer(l, a.Body())
				if err != nil {
					c.mediaRefused(l, err.Error())
					ok = false
				} else {
					ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
					ack.SetBody(ans)
					other.media, l.media = m, m
				}
			}
			if raw, err := c.m.o.Edge.SendACK(other.conn, ack); err == nil {
				other.ack = raw
			}
			if !ok || len(a.Body()) == 0 {
				c.endLocked("answered", "re-INVITE ACK answer refused by media policy", true, true)
			}
		})
	}
	srv.OnNoAck(func() { c.hangup("re-INVITE answer never acknowledged") })
	_ = srv.Respond(responseLike(srv.Request(), 200, "OK", c.ua(), &l.contact, body))
}

// relayRequest passes a non-INVITE in-dialog request (INFO, UPDATE,
// MESSAGE) to the other leg and its final answer back.
func (c *Call) relayRequest(l, other *leg, r *request) error {
	if other == nil || c.state == stRinging {
		return r.Respond(491, "Request Pending")
	}
	body := r.Body()
	isSDP := false
	if r.Method == sip.UPDATE && len(body) > 0 {
		if _, ok := c.checkBody(l, body, false); !ok {
			return r.Respond(488, "Not Acceptable Here")
		}
		c.resetAnswer()
		fwd, err := c.offer(l, body)
		if err != nil {
			c.mediaRefused(l, err.Error())
			return r.Respond(488, "Not Acceptable Here")
		}
		body, isSDP = fwd, true
	}
	req := other.newRequest(r.Method, c.ua())
	if len(body) > 0 {
		if ct := r.ContentType(); ct != nil {
			req.AppendHeader(sip.NewHeader("Content-Type", ct.Value()))
		}
		req.SetBody(body)
	}
	srv := r.Tx
	isUpdate := r.Method == sip.UPDATE
	_, err := c.m.o.Edge.Send(other.conn, req, func(res *sip.Response) {
		if res.StatusCode < 200 {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		rb := res.Body()
		if isUpdate && res.StatusCode < 300 && isSDP {
			_, ok := c.checkBody(other, rb, true)
			if ok {
				var err error
				if rb, err = c.answer(other, rb); err != nil {
					c.mediaRefused(other, err.Error())
					ok = false
				}
			}
			if !ok {
				_ = srv.Respond(responseLike(srv.Request(), 488, "Not Acceptable Here", c.ua(), nil, nil))
				c.endLocked("answered", "UPDATE answer refused by media policy", true, true)
				return
			}
		}
		var contact *sip.Uri
		if isUpdate {
			contact = &l.contact
		}
		_ = srv.Respond(responseLike(srv.Request(), res.StatusCode, res.Reason, c.ua(), contact, rb))
	})
	if err != nil {
		return r.Respond(503, "Service Unavailable")
	}
	return nil
}

// responseLike builds a response to req with Veilig's Server header, an
// optional Contact and an optional SDP body.
func responseLike(req *sip.Request, code int, reason, ua string, contact *sip.Uri, body []byte) *sip.Response {
	if req == nil {
		// The transaction was answered and acknowledged already: Respond
		// ignores whatever is sent now.
		return sip.NewResponse(code, reason)
	}
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	res.AppendHeader(sip.NewHeader("Server", ua))
	if contact != nil && code < 300 {
		res.AppendHeader(&sip.ContactHeader{Address: *contact.Clone(), Params: sip.NewParams()})
	}
	if len(body) > 0 {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res.SetBody(body)
	}
	return res
}
