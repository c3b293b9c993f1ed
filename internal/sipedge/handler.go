package sipedge

import (
	"context"
	"net/netip"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Request is one inbound request as the chain sees it: the parsed message,
// the connection it came on (the only source of truth for who sent it:
// never Via or any header), its server transaction and what the chain has
// learned so far.
type Request struct {
	*sip.Request
	Conn     Conn
	Tx       *ServerTx
	Received time.Time
	// Account is the authenticated extension, set by the auth stage.
	Account string
	// Raw is the message as received; valid only while the chain runs
	// synchronously (the buffer is reused afterwards).
	Raw []byte

	edge *Edge
}

// Peer is the socket address the request came from.
func (r *Request) Peer() netip.AddrPort { return r.Conn.Peer() }

// Response builds a response to r with Veilig's Server header.
func (r *Request) Response(code int, reason string) *sip.Response {
	res := sip.NewResponseFromRequest(r.Request, code, reason, nil)
	res.AppendHeader(sip.NewHeader("Server", r.edge.opts.UserAgent))
	return res
}

// Respond sends a bodiless response with optional extra headers; before
// the transaction stage it answers statelessly.
func (r *Request) Respond(code int, reason string, hdrs ...sip.Header) error {
	res := r.Response(code, reason)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	return r.Send(res)
}

// Send sends a response: through the transaction once there is one, else
// statelessly to the request's own connection or socket source.
func (r *Request) Send(res *sip.Response) error {
	if r.Tx == nil {
		markReceived(res, r.Conn.Peer())
		return send(r.Conn, res)
	}
	return r.Tx.Respond(res)
}

// Handler serves one request. It answers through r.Tx (at once or later,
// from another goroutine) and returns an error only for failures to log;
// an unanswered request that returned an error gets a 500.
type Handler interface {
	ServeSIP(ctx context.Context, r *Request) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, r *Request) error

// ServeSIP calls f.
func (f HandlerFunc) ServeSIP(ctx context.Context, r *Request) error { return f(ctx, r) }

// Middleware is one stage of the chain: it does its check and either
// answers (or drops) or calls next.
type Middleware func(next Handler) Handler

// Chain wraps h so the first middleware is the outermost stage.
func Chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// Mux routes requests by method to the final handlers.
type Mux struct {
	routes   map[sip.RequestMethod]Handler
	fallback Handler
}

// NewMux returns a Mux whose unknown methods get 405 with an Allow header.
func NewMux() *Mux { return &Mux{routes: make(map[sip.RequestMethod]Handler)} }

// Handle routes method to h.
func (m *Mux) Handle(method sip.RequestMethod, h Handler) { m.routes[method] = h }

// Fallback handles every method without a route.
func (m *Mux) Fallback(h Handler) { m.fallback = h }

// ServeSIP dispatches by method.
func (m *Mux) ServeSIP(ctx context.Context, r *Request) error {
	if h, ok := m.routes[r.Method]; ok {
		return h.ServeSIP(ctx, r)
	}
	if m.fallback != nil {
		return m.fallback.ServeSIP(ctx, r)
	}
	return r.Respond(405, "Method Not Allowed", sip.NewHeader("Allow", m.allow()))
}

// allow lists the methods with a route (ACK and CANCEL belong to the
// transactions of the others).
func (m *Mux) allow() string {
	return allowList(func(meth sip.RequestMethod) bool {
		_, ok := m.routes[meth]
		return ok || meth == sip.ACK || meth == sip.CANCEL
	})
}
