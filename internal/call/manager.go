// Package call is Veilig's B2BUA: an authenticated INVITE becomes a call of
// two legs, each its own dialog, with provisional and final answers,
// CANCEL, BYE and re-INVITE passed across and Veilig's media rule applied
// to every offer and answer on every path.
package call

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/media"
	"github.com/veilig/veilig/internal/sipedge"
	"github.com/veilig/veilig/internal/store"
	"github.com/veilig/veilig/internal/tollfraud"
	"github.com/veilig/veilig/internal/trunk"
)

// Directory is what the call layer needs to know about extensions.
type Directory interface {
	Exists(number string) bool
	Name(number string) string
}

// Locator finds where an extension's devices are registered.
type Locator interface {
	Lookup(number string, now time.Time) []store.Binding
}

// Options configure the Manager.
type Options struct {
	Edge      Edge
	Directory Directory
	Locator   Locator
	Events    events.Emitter
	Logger    *slog.Logger
	Domain    string
	// RingTimeout ends an unanswered call.
	RingTimeout time.Duration
	// MaxDuration is a safety ceiling: no dialog state outlives it even if
	// every BYE is lost.
	MaxDuration time.Duration
	// InsecureSDESOverPlain lets SDP with SRTP keys cross UDP or TCP legs
	// (sip.insecure_sdes_over_plain_transport). Off: keys travel only
	// over TLS.
	InsecureSDESOverPlain bool
	// Relay anchors media; nil passes SDP between the devices unchanged
	// (signalling tests only).
	Relay *media.Relay
	// Fraud guards calls to numbers outside; Class gives an extension's
	// class of service.
	Fraud *tollfraud.Guard
	// FraudEffects carries out what the fraud guard decided beyond the
	// call (persisting a suspension); nil: nothing outlives the process.
	FraudEffects interface{ Apply([]tollfraud.Effect) }
	Class        func(extension string) string
	// Trunks are the carrier trunks (nil: none).
	Trunks Trunks
	// CallerIDs lists the numbers an extension may present outside.
	CallerIDs func(extension string) []string
}

type dialogKey struct{ callID, tag string }

// Manager owns every call and dialog.
type Manager struct {
	o   Options
	log *slog.Logger

	mu      sync.Mutex
	dialogs map[dialogKey]*leg
	calls   map[*Call]struct{}
	byID    map[string]*Call // by the caller's Call-ID, for relay events
	byFraud map[tollfraud.CallID]*Call
}

// New makes a Manager.
func New(o Options) *Manager {
	if o.RingTimeout <= 0 {
		o.RingTimeout = 120 * time.Second
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = 24 * time.Hour
	}
	return &Manager{o: o, log: o.Logger, dialogs: make(map[dialogKey]*leg), calls: make(map[*Call]struct{}), byID: make(map[string]*Call), byFraud: make(map[tollfraud.CallID]*Call)}
}

// OnMediaEvent is the relay's event callback (media timeout, injection).
func (m *Manager) OnMediaEvent(ev media.Event) { go m.mediaEvent(ev) }

func (m *Manager) callByID(id string) *Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byID[id]
}

// Active reports the calls and dialogs held (for leak checks and metrics).
func (m *Manager) Active() (calls, dialogs int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.calls), len(m.dialogs)
}

func (m *Manager) addDialog(l *leg) {
	m.mu.Lock()
	m.dialogs[l.key()] = l
	m.mu.Unlock()
}

func (m *Manager) dialog(callID, tag string) *leg {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dialogs[dialogKey{callID, tag}]
}

func (m *Manager) forget(c *Call) {
	m.mu.Lock()
	delete(m.calls, c)
	if m.byID[c.id] == c {
		delete(m.byID, c.id)
	}
	if c.fraud != nil && m.byFraud[c.fraud.d.Call] == c {
		delete(m.byFraud, c.fraud.d.Call)
	}
	for _, l := range c.legs() {
		if m.dialogs[l.key()] == l {
			delete(m.dialogs, l.key())
		}
	}
	m.mu.Unlock()
}

// ServeSIP handles requests that reach the call layer: new INVITEs from
// authenticated callers, and every request inside a dialog. The edge's
// transaction stage has given each one its server transaction.
func (m *Manager) ServeSIP(ctx context.Context, r *sipedge.Request) error {
	if r.Tx == nil {
		return errors.New("call: request without a server transaction")
	}
	return m.serve(ctx, m.fromEdge(r))
}

func (m *Manager) serve(ctx context.Context, r *request) error {
	if to := r.To(); to != nil && to.Params.Has("tag") {
		return m.inDialog(ctx, r)
	}
	if r.Method == sip.OPTIONS {
		return r.Respond(200, "OK", sipedge.Allow())
	}
	if r.Method != sip.INVITE {
		// Out-of-dialog MESSAGE, SUBSCRIBE, REFER, INFO... are not relayed.
		return r.Respond(405, "Method Not Allowed", sipedge.Allow())
	}
	return m.invite(ctx, r)
}

// ruleSRTP names the media rule in call.refused events.
const ruleSRTP = "srtp_required"

// refuse answers a new INVITE with a final error, a call.refused event
// (when rule is set) and a record.
func (m *Manager) refuse(r *request, code int, reason, why string, evType string) error {
	target := r.Recipient.User
	if evType != "" {
		m.o.Events.Emit(events.New(events.CallRefused, r.Peer(), r.Account, "call refused: "+why,
			"to", target, "code", cseqString(uint32(code)), "rule", evType))
	}
	now := time.Now().UTC()
	m.o.Events.Record(events.CallRecord{
		ID: string(*r.CallID()), From: r.Account, To: target, Source: r.Peer().String(),
		StartedAt: r.Received.UTC(), EndedAt: now, Disposition: "refused",
		Cause: cseqString(uint32(code)) + " " + reason + ": " + why,
	})
	return r.Respond(code, reason)
}

func (m *Manager) invite(ctx context.Context, r *request) error {
	target := r.Recipient.User
	body := r.Body()
	var from *trunk.Trunk
	if m.o.Trunks != nil {
		from, _ = m.o.Trunks.FromTrunk(r.Conn)
	}
	plainOK := from != nil && from.PlainMedia()
	var offer Media
	if len(body) > 0 {
		if ct := r.ContentType(); ct == nil || !isSDP(ct.Value()) {
			return m.refuse(r, 415, "Unsupported Media Type", "INVITE body is not application/sdp", "unsupported_body")
		}
		var err error
		if offer, err = CheckSRTP(body, false); err != nil && !(plainOK && isPlainRTP(body)) {
			return m.refuse(r, 488, "Not Acceptable Here", err.Error(), ruleSRTP)
		}
		if offer.HasKeys && !m.secureHop(r.Conn) && !(from != nil && from.InsecureTransport) {
			return m.refuse(r, 488, "Not Acceptable Here", "SRTP keys offered over unencrypted "+r.Conn.Transport()+" signalling", "sdes_over_plain_transport")
		}
	}
	if from != nil {
		ext, ok := m.o.Trunks.DID(from, target)
		if !ok {
			return m.refuse(r, 404, "Not Found", "number "+target+" is not routed on trunk "+from.Name(), "unknown_did")
		}
		target = ext
	} else if m.o.Fraud != nil && !m.o.Directory.Exists(target) && isPhoneNumber(target) {
		return m.outbound(ctx, r, target, offer)
	}
	if target == "" || !m.o.Directory.Exists(target) {
		return m.refuse(r, 404, "Not Found", "no such extension", "unknown_callee")
	}
	now := time.Now()
	var targets []target2
	insecureOnly := false
	for _, b := range m.o.Locator.Lookup(target, now) {
		conn, ok := m.o.Edge.ConnFor(b.ConnID, b.Transport, udpTarget(b))
		if !ok {
			continue
		}
		if !m.secureHop(conn) {
			insecureOnly = true
			continue
		}
		targets = append(targets, target2{binding: b, conn: conn})
	}
	if len(targets) == 0 {
		if insecureOnly {
			return m.refuse(r, 480, "Temporarily Unavailable", "callee is registered only over unencrypted signalling", "callee_insecure_transport")
		}
		return m.refuse(r, 480, "Temporarily Unavailable", "callee has no reachable device", "")
	}
	var sess *media.Session
	fwd := body
	if m.o.Relay != nil {
		var err error
		if sess, err = m.o.Relay.NewSession(string(*r.CallID())); err != nil {
			m.log.Error("no media session for call", "err", err)
			return m.refuse(r, 503, "Service Unavailable", "no media ports available", "media_capacity")
		}
		sess.A().SetAllowPlain(plainOK)
		if len(body) > 0 {
			if fwd, err = sess.RewriteOffer(media.LegA, body); err != nil {
				_ = sess.Close()
				return m.refuse(r, 488, "Not Acceptable Here", err.Error(), ruleSRTP)
			}
		}
	}
	_ = r.Respond(100, "Trying")
	c := m.newCall(r, offer, sess)
	c.callee = target
	if from != nil {
		// The carrier's caller-ID is passed on to the agent.
		c.caller = r.From().Address.User
		c.fromTrunk = from.Name()
	}
	c.start(targets, fwd)
	return nil
}

// udpTarget is where a UDP device is reached: its Contact when that names
// the very host the authenticated REGISTER came from (a phone or test tool
// that registers from one port and listens on another), else the
// REGISTER's source (NAT). Never a host the request merely names: that
// would let a registration aim Veilig's traffic at a third party.
func udpTarget(b store.Binding) netip.AddrPort {
	var u sip.Uri
	if err := sip.ParseUri(b.Contact, &u); err != nil {
		return b.Source
	}
	ip, err := netip.ParseAddr(u.Host)
	if err != nil || ip.Unmap() != b.Source.Addr() {
		return b.Source
	}
	port := u.Port
	if port <= 0 || port > 65535 {
		port = 5060
	}
	return netip.AddrPortFrom(b.Source.Addr(), uint16(port))
}

type target2 struct {
	binding store.Binding
	conn    sipedge.Conn
}

// secureHop reports whether SDES keys may cross conn.
func (m *Manager) secureHop(c sipedge.Conn) bool {
	return c.Transport() == "tls" || m.o.InsecureSDESOverPlain
}

// isPlainRTP reports an SDP whose audio is plain RTP/AVP (allowed only on
// trunks marked media: rtp).
func isPlainRTP(body []byte) bool {
	return strings.Contains(string(body), " RTP/AVP ")
}

func isSDP(ct string) bool {
	mt, _, _ := cutSemicolon(ct)
	return equalFold(mt, "application/sdp")
}

// inDialog handles a request inside an existing dialog.
func (m *Manager) inDialog(ctx context.Context, r *request) error {
	tag, _ := r.To().Params.Get("tag")
	l := m.dialog(string(*r.CallID()), tag)
	if l == nil {
		return r.Respond(481, "Call/Transaction Does Not Exist")
	}
	return l.call.inDialog(l, r)
}
