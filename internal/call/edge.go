package call

import (
	"net/netip"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/veilig/veilig/internal/sipedge"
)

// Edge is what the B2BUA needs from the SIP edge: send a request on a
// device's connection (and later cancel it), send the ACK of a 2xx, name
// itself in a Contact, find a device's connection again, and the Server /
// User-Agent value. Declared here, narrow, so that the call state machine
// runs against a fake edge in tests; EdgeOf adapts the real one.
type Edge interface {
	Send(conn sipedge.Conn, req *sip.Request, onResp sipedge.ResponseFunc) (ClientTx, error)
	SendACK(conn sipedge.Conn, ack *sip.Request) ([]byte, error)
	Contact(conn sipedge.Conn, user string) sip.Uri
	ConnFor(connID, transport string, peer netip.AddrPort) (sipedge.Conn, bool)
	UserAgent() string
}

// ClientTx is a request the call layer sent: an INVITE to cancel while it
// rings, or whose handler to drop once the dialog it served has ended.
type ClientTx interface {
	Cancel()
	Detach()
}

// ServerTx is a request the call layer answers: the caller's INVITE, a
// re-INVITE or another in-dialog request.
type ServerTx interface {
	Respond(res *sip.Response) error
	// Request is the request that created the transaction; nil once it
	// was answered and acknowledged.
	Request() *sip.Request
	ToTag() string
	OnCancel(f func())
	OnAck(f func(*sip.Request))
	OnNoAck(f func())
}

// EdgeOf adapts the SIP edge to what the call layer needs of it.
func EdgeOf(e *sipedge.Edge) Edge { return sipEdge{e} }

type sipEdge struct{ *sipedge.Edge }

func (e sipEdge) Send(conn sipedge.Conn, req *sip.Request, onResp sipedge.ResponseFunc) (ClientTx, error) {
	tx, err := e.Edge.Send(conn, req, onResp)
	if err != nil {
		return nil, err // never a typed nil in the interface
	}
	return tx, nil
}

// request is an inbound request as the call layer sees it: the message,
// the connection it came on (the only source of truth for who sent it),
// its server transaction, and the account the auth stage authenticated.
type request struct {
	*sip.Request
	Conn     sipedge.Conn
	Tx       ServerTx
	Account  string
	Received time.Time
	ua       string // the Server header value
}

// fromEdge is the call layer's view of a request the edge passed on.
func (m *Manager) fromEdge(r *sipedge.Request) *request {
	return &request{Request: r.Request, Conn: r.Conn, Tx: r.Tx, Account: r.Account, Received: r.Received, ua: m.o.Edge.UserAgent()}
}

// Peer is the socket address the request came from.
func (r *request) Peer() netip.AddrPort { return r.Conn.Peer() }

// Respond answers through the transaction with a bodiless response
// carrying Veilig's Server header and optional extra headers.
func (r *request) Respond(code int, reason string, hdrs ...sip.Header) error {
	res := sip.NewResponseFromRequest(r.Request, code, reason, nil)
	res.AppendHeader(sip.NewHeader("Server", r.ua))
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	return r.Tx.Respond(res)
}

var (
	_ Edge     = sipEdge{}
	_ ClientTx = (*sipedge.ClientTx)(nil)
	_ ServerTx = (*sipedge.ServerTx)(nil)
)
