package call

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/media"
	"github.com/veilig/veilig/internal/sipedge"
	"github.com/veilig/veilig/internal/tollfraud"
	"github.com/veilig/veilig/internal/trunk"
)

// Trunks is what the call layer needs from the carrier trunks.
type Trunks interface {
	FromTrunk(c sipedge.Conn) (*trunk.Trunk, bool)
	DID(t *trunk.Trunk, number string) (string, bool)
	Outbound() (*trunk.Trunk, bool)
	Conn(ctx context.Context, t *trunk.Trunk) (sipedge.Conn, error)
}

// fraudCall is an outbound call's admission by the toll-fraud guard.
type fraudCall struct {
	d     tollfraud.Decision
	trunk *trunk.Trunk
}

// isPhoneNumber reports a dialled string that is meant for the outside
// world rather than an extension: digits, optionally with a leading +.
func isPhoneNumber(s string) bool {
	if s == "" {
		return false
	}
	for i, ch := range s {
		if ch == '+' && i == 0 {
			continue
		}
		if ch < '0' || ch > '9' {
			return false
		}
	}
	return true
}

// outbound handles a call to a number that is not an extension: it passes
// the toll-fraud guard first, then goes out through the outbound trunk.
func (m *Manager) outbound(ctx context.Context, r *request, dialled string, offer Media) error {
	now := time.Now()
	// The caller-ID an extension presents must be its own number or one
	// it was given: no spoofing a bank's number to customers.
	// The auth stage already holds From to the account, so another number
	// is asked for with P-Preferred-Identity (RFC 3325).
	presented := r.Account
	if h := r.GetHeader("P-Preferred-Identity"); h != nil {
		presented = preferredUser(h.Value())
	}
	if presented != r.Account && (m.o.CallerIDs == nil || !slices.Contains(m.o.CallerIDs(r.Account), presented)) {
		return m.refuse(r, 403, "Forbidden", "caller-ID "+presented+" is not a number extension "+r.Account+" may present", "caller_id")
	}
	class := ""
	if m.o.Class != nil {
		class = m.o.Class(r.Account)
	}
	var t *trunk.Trunk
	if m.o.Trunks != nil {
		t, _ = m.o.Trunks.Outbound()
	}
	trunkName := ""
	if t != nil {
		trunkName = t.Name()
	}
	d := m.o.Fraud.Decide(tollfraud.Request{Extension: r.Account, Class: tollfraud.Class(class), Dialled: dialled, Trunk: trunkName}, now)
	for _, e := range d.Events {
		m.o.Events.Emit(e)
	}
	if m.o.FraudEffects != nil {
		m.o.FraudEffects.Apply(d.Effects)
	}
	if !d.Allow {
		code := d.Code
		if code == 0 {
			code = 403
		}
		m.o.Events.Emit(events.New(events.CallRefused, r.Peer(), r.Account, "call refused: "+d.Reason,
			"call_id", string(*r.CallID()), "to", dialled, "code", cseqString(uint32(code)), "rule", string(d.Rule), "e164", d.Destination.E164,
			"country", d.Destination.Country, "class", string(d.Class)))
		return m.refuseRecord(r, code, http.StatusText(code), d.Reason, "", &fraudCall{d: d})
	}
	if t == nil {
		m.o.Fraud.CallEnded(d.Call, now, 0)
		return m.refuseRecord(r, 480, "Temporarily Unavailable", "no carrier trunk is configured for "+d.Destination.E164, "no_trunk", &fraudCall{d: d})
	}
	conn, err := m.o.Trunks.Conn(ctx, t)
	if err != nil {
		m.o.Fraud.CallEnded(d.Call, now, 0)
		return m.refuseRecord(r, 503, "Service Unavailable", "carrier unreachable: "+err.Error(), "trunk_unreachable", &fraudCall{d: d, trunk: t})
	}
	if !t.PlainMedia() && offer.HasKeys && t.Insecure() && !t.InsecureTransport {
		m.o.Fraud.CallEnded(d.Call, now, 0)
		return m.refuseRecord(r, 488, "Not Acceptable Here", "SRTP keys would cross unencrypted trunk signalling", "sdes_over_plain_transport", &fraudCall{d: d, trunk: t})
	}
	var sess *media.Session
	fwd := r.Body()
	if m.o.Relay != nil {
		if sess, err = m.o.Relay.NewSession(string(*r.CallID())); err != nil {
			m.o.Fraud.CallEnded(d.Call, now, 0)
			return m.refuse(r, 503, "Service Unavailable", "no media ports available", "media_capacity")
		}
		sess.B().SetAllowPlain(t.PlainMedia())
		if len(fwd) > 0 {
			if fwd, err = sess.RewriteOffer(media.LegA, fwd); err != nil {
				_ = sess.Close()
				m.o.Fraud.CallEnded(d.Call, now, 0)
				return m.refuse(r, 488, "Not Acceptable Here", err.Error(), ruleSRTP)
			}
		}
	}
	_ = r.Respond(100, "Trying")
	c := m.newCall(r, offer, sess)
	c.callee = d.Destination.E164
	c.presented = presented
	c.fraud = &fraudCall{d: d, trunk: t}
	m.mu.Lock()
	m.byFraud[d.Call] = c
	m.mu.Unlock()
	c.startTrunk(t, conn, d.Destination.E164, fwd)
	return nil
}

// startTrunk sends the call to the carrier; its digest challenge is
// answered once with the trunk's credentials.
func (c *Call) startTrunk(t *trunk.Trunk, conn sipedge.Conn, number string, body []byte) {
	c.mu.Lock()
	target := t.URI(number)
	to := target
	to.UriParams = sip.NewParams()
	l := &leg{
		call: c, conn: conn,
		callID: sipedge.NewCallID(), localTag: sipedge.NewTag(),
		localURI:     sip.Uri{Scheme: "sip", User: c.presented, Host: c.m.o.Domain},
		localName:    c.m.o.Directory.Name(c.caller),
		remoteURI:    to,
		remoteTarget: target,
		contact:      c.m.o.Edge.Contact(conn, c.caller),
	}
	f := &fork{leg: l, trunk: t, body: body}
	c.forks = append(c.forks, f)
	c.sendFork(f, "", "")
	c.ring = time.AfterFunc(c.m.o.RingTimeout, c.ringTimeout)
	failed := f.done
	c.mu.Unlock()
	if failed {
		c.mu.Lock()
		c.failLocked(503, "Service Unavailable", "carrier connection failed")
		c.mu.Unlock()
		return
	}
	c.inviteTx.OnCancel(c.callerCancelled)
}

// sendFork sends (or re-sends, with credentials) a fork's INVITE. Called
// with c.mu held.
func (c *Call) sendFork(f *fork, authHdr, authVal string) {
	req := f.leg.newRequest(sip.INVITE, c.ua())
	req.AppendHeader(inDialogAllow())
	if authHdr != "" {
		req.AppendHeader(sip.NewHeader(authHdr, authVal))
	}
	if len(f.body) > 0 {
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(f.body)
	}
	tx, err := c.m.o.Edge.Send(f.leg.conn, req, func(res *sip.Response) { c.onForkResponse(f, res) })
	if err != nil {
		f.done, f.code = true, 503
		return
	}
	f.tx = tx
}

// EndFraudCall ends a running call the toll-fraud guard asked to end
// (budget crossed, maximum duration).
func (m *Manager) EndFraudCall(id tollfraud.CallID, rule string) {
	m.mu.Lock()
	c := m.byFraud[id]
	m.mu.Unlock()
	if c != nil {
		c.hangup("ended by the toll-fraud guard: " + rule)
	}
}

// refuseRecord refuses like refuse, with the outbound fields on the record.
func (m *Manager) refuseRecord(r *request, code int, reason, why, rule string, fc *fraudCall) error {
	if rule != "" {
		m.o.Events.Emit(events.New(events.CallRefused, r.Peer(), r.Account, "call refused: "+why,
			"call_id", string(*r.CallID()), "to", r.Recipient.User, "code", cseqString(uint32(code)), "rule", rule))
	}
	now := time.Now().UTC()
	rec := events.CallRecord{
		ID: string(*r.CallID()), From: r.Account, To: r.Recipient.User, Source: r.Peer().String(),
		StartedAt: r.Received.UTC(), EndedAt: now, Disposition: "refused",
		Cause: cseqString(uint32(code)) + " " + reason + ": " + why,
	}
	fc.fill(&rec, 0)
	m.o.Events.Record(rec)
	return r.Respond(code, reason)
}

// fill writes the outbound fields of a call record.
func (fc *fraudCall) fill(rec *events.CallRecord, cost float64) {
	if fc == nil {
		return
	}
	rec.E164, rec.Country, rec.Class = fc.d.Destination.E164, fc.d.Destination.Country, string(fc.d.Class)
	rec.EstimatedCost = cost
	if fc.trunk != nil {
		rec.Trunk = fc.trunk.Name()
	}
	rec.Fraud = string(fc.d.Rule)
	if !fc.d.Allow {
		rec.Fraud = "refused: " + string(fc.d.Rule)
	}
}

// preferredUser is the user part of a P-Preferred-Identity value
// ("<sip:+31201234567@host>" or "<tel:+31201234567>").
func preferredUser(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		v = v[i+1:]
		if j := strings.IndexByte(v, '>'); j >= 0 {
			v = v[:j]
		}
	}
	v = strings.TrimPrefix(strings.TrimPrefix(v, "sip:"), "tel:")
	if i := strings.IndexAny(v, "@;"); i >= 0 {
		v = v[:i]
	}
	return v
}
