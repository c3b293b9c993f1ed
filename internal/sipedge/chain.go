package sipedge

import (
	"context"
	"net/netip"
	"time"

	"github.com/emiago/sipgo/sip"
)

// stages is the guard chain, outermost first: the one place that says in
// which order every request is checked. Each stage either passes the
// request on, answers it, or drops it silently. Nothing before the
// transaction stage keeps state for a request: a banned, flooding or
// scanning source costs a lookup and nothing more, and an unauthenticated
// request is challenged statelessly, so a flood of them creates no
// transaction at all. Options.Auth (the lockout gate and digest auth, built
// by the app) runs between matching an existing transaction (so a
// retransmission is absorbed, not re-authenticated) and creating one; after
// the chain come the method routes (Options.Handler).
//
// Connections and datagrams meet the same policy earlier still: a banned
// or over-budget source is refused before a TLS handshake or before a
// datagram is parsed (Guard.Admit in listen.go).
func (e *Edge) stages() []Middleware {
	stages := []Middleware{
		e.recoverStage, // a panic in one request is counted, never fatal
		e.sanityStage,  // malformed: 400, or dropped when unanswerable
		e.guardStage,   // bans, allowlists, rate limits, scanners
		e.matchStage,   // retransmissions, ACK and CANCEL meet their transaction
	}
	if e.opts.Auth != nil {
		stages = append(stages, e.opts.Auth) // lockout gate, digest (stateless challenges)
	}
	return append(stages, e.transactionStage) // a transaction for what is left
}

// Verdict is what the guard decides about one request.
type Verdict struct {
	Drop   bool   // say nothing
	Code   int    // else, when non-zero, answer with this
	Reason string // reason phrase for Code
}

// Guard is the edge-defence policy as the edge sees it; the app adapts
// internal/policy to it. Every method must be cheap and never block.
type Guard interface {
	// Admit is asked before anything is read from a new connection
	// (newConn) or before each message is handled; false drops it.
	Admit(addr netip.Addr, transport string, newConn bool) bool
	// Release tells that a connection Admit accepted has closed.
	Release(addr netip.Addr)
	// Banned reports a source under a ban (its connections are closed).
	Banned(addr netip.Addr) bool
	// Request decides about a request before any transaction is made:
	// new-transaction budgets and scanner fingerprints.
	Request(r *Request, now time.Time) Verdict
	// Known reports a source that has authenticated recently: its new
	// connections are admitted before strangers' when the edge is full.
	Known(addr netip.Addr) bool
	// Connection hears what the admission and the deadlines did to a
	// stream connection (to count, report and detect a sustained flood).
	Connection(ev ConnEvent)
}

// ConnEventKind says what happened to a stream connection.
type ConnEventKind int

// What the admission and the deadlines do to connections.
const (
	// ConnEvicted: at the connection limit, a connection that never
	// authenticated was closed to admit a newcomer.
	ConnEvicted ConnEventKind = iota + 1
	// ConnRefused: at the limit, with nothing to evict, a newcomer was
	// closed before its handshake.
	ConnRefused
	// ConnMessageTimeout: a message was not complete within
	// sip.message_timeout of its first byte.
	ConnMessageTimeout
	// ConnAuthTimeout: no request authenticated within sip.auth_timeout
	// of the handshake.
	ConnAuthTimeout
)

func (k ConnEventKind) String() string {
	switch k {
	case ConnEvicted:
		return "evicted"
	case ConnRefused:
		return "refused"
	case ConnMessageTimeout:
		return "message_timeout"
	case ConnAuthTimeout:
		return "auth_timeout"
	}
	return "unknown"
}

// ConnEvent is one thing done to a stream connection.
type ConnEvent struct {
	Kind ConnEventKind
	// Peer is the connection it was done to (the evicted one, the
	// refused newcomer, the slow peer).
	Peer netip.AddrPort
	// Newcomer is who took an evicted connection's place.
	Newcomer netip.AddrPort
	// Age is how long the connection had been open.
	Age time.Duration
	// Open and Limit describe the admission at the time.
	Open, Limit int
	At          time.Time
}

func (e *Edge) recoverStage(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, r *Request) (err error) {
		defer func() {
			if p := recover(); p != nil {
				e.metrics.panics.Add(1)
				e.log.Error("panic while handling request", "method", string(r.Method), "peer", r.Peer().String(), "panic", p, "stack", stack())
				err = nil
			}
		}()
		return next.ServeSIP(ctx, r)
	})
}

func (e *Edge) sanityStage(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, r *Request) error {
		if r.SipVersion != "SIP/2.0" {
			// A response would have to speak a version we do not:
			// say nothing (RFC 3261 7.2 leaves only 505 or silence).
			e.metrics.malformed.Add(1)
			return nil
		}
		// The basic check first: what it refuses can be answered with a
		// 400 on any transport; the strict one may only say to drop.
		reason := basicSanity(r.Request)
		code, drop := 400, false
		if reason == "" && e.opts.Sanity != nil {
			code, reason, drop = e.opts.Sanity(r.Raw, r.Request)
		}
		if reason == "" {
			return next.ServeSIP(ctx, r)
		}
		e.metrics.malformed.Add(1)
		if drop || r.Method == sip.ACK {
			return nil
		}
		e.answerBad(r, code, reason)
		return nil
	})
}

// answerBad answers a refused request statelessly when it carries enough
// to route a response (the Via is only echoed, never used to send).
func (e *Edge) answerBad(r *Request, code int, reason string) {
	req := r.Request
	if req.Via() == nil || req.CallID() == nil || req.CSeq() == nil || req.From() == nil || req.To() == nil {
		return
	}
	e.stateless(r.Conn, req, code, reason)
}

func (e *Edge) guardStage(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, r *Request) error {
		if e.opts.Guard == nil || r.Method == sip.ACK {
			return next.ServeSIP(ctx, r)
		}
		v := e.opts.Guard.Request(r, r.Received)
		switch {
		case v.Drop:
			e.metrics.dropped.Add(1)
			return nil
		case v.Code != 0:
			e.metrics.rejected.Add(1)
			e.answerBad(r, v.Code, v.Reason)
			return nil
		}
		return next.ServeSIP(ctx, r)
	})
}

// matchStage matches a request to its transaction (RFC 3261 17.2.3): a
// retransmission is answered with the last response, an ACK or CANCEL
// reaches its INVITE. It creates nothing.
func (e *Edge) matchStage(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, r *Request) error {
		req, c := r.Request, r.Conn
		switch req.Method {
		case sip.ACK:
			e.ack(req, c)
			return nil
		case sip.CANCEL:
			tx, _ := e.txs.serverTx(serverKey(req, "INVITE"), nil)
			if tx == nil || tx.conn.Peer().Addr() != c.Peer().Addr() {
				e.stateless(c, req, 481, "Call/Transaction Does Not Exist")
				return nil
			}
			e.stateless(c, req, 200, "OK")
			tx.cancel()
			return nil
		}
		if tx, _ := e.txs.serverTx(serverKey(req, string(req.Method)), nil); tx != nil {
			if tx.conn.Peer().Addr() == c.Peer().Addr() {
				tx.retransmitted()
			}
			return nil
		}
		return next.ServeSIP(ctx, r)
	})
}

// transactionStage gives an authenticated (or in-dialog) request its
// server transaction. Two copies of one request racing through the auth
// stage meet here: the second is treated as a retransmission.
func (e *Edge) transactionStage(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, r *Request) error {
		req, c := r.Request, r.Conn
		key := serverKey(req, string(req.Method))
		if r.Account != "" {
			// The auth stage vouched for the request: its connection
			// has authenticated (deadline off, never evicted).
			if sc, ok := r.Conn.(*streamConn); ok {
				sc.authenticated()
			}
		}
		tx, created := e.txs.serverTx(key, func() *ServerTx {
			tx := &ServerTx{key: key, edge: e, conn: c, req: req, invite: req.Method == sip.INVITE}
			tx.expires = r.Received.Add(5 * time.Minute)
			if tx.invite {
				tx.ackKey = ackKey(req)
			}
			return tx
		})
		if !created {
			if tx.conn.Peer().Addr() == c.Peer().Addr() {
				tx.retransmitted()
			}
			return nil
		}
		r.Tx = tx
		return next.ServeSIP(ctx, r)
	})
}

// ack delivers an ACK: it ends a failed INVITE's transaction, or confirms
// a 2xx (which the call layer hears through OnAck).
func (e *Edge) ack(req *sip.Request, c Conn) {
	if tx, _ := e.txs.serverTx(serverKey(req, "INVITE"), nil); tx != nil && tx.conn.Peer().Addr() == c.Peer().Addr() {
		tx.mu.Lock()
		st := tx.state
		tx.mu.Unlock()
		if st == stCompleted || st == stConfirmed {
			tx.ackNon2xx()
			return
		}
	}
	if tx := e.txs.takeAck(ackKey(req)); tx != nil {
		if tx.conn.Peer().Addr() != c.Peer().Addr() {
			e.txs.awaitAck(tx.ackKey, tx)
			return
		}
		tx.ack2xx(req)
	}
}
