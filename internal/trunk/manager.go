package trunk

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/sipedge"
)

// Edge is what the trunks need from the SIP edge: dial a carrier (the
// connection is then read by the edge like any other), find that
// connection again, name Veilig in a Contact, and send a REGISTER.
type Edge interface {
	Dial(ctx context.Context, transport string, addr netip.AddrPort, tc *tls.Config) (sipedge.Conn, error)
	ConnFor(connID, transport string, peer netip.AddrPort) (sipedge.Conn, bool)
	Contact(conn sipedge.Conn, user string) sip.Uri
	UserAgent() string
	Send(conn sipedge.Conn, req *sip.Request, onResp sipedge.ResponseFunc) (*sipedge.ClientTx, error)
}

var _ Edge = (*sipedge.Edge)(nil)

// Manager reaches the carriers of a Table through the edge: it dials them
// when a call needs a connection and keeps register trunks registered.
// The Table's lookups are its own, so it is all the call layer needs.
type Manager struct {
	*Table
	edge Edge
	ev   events.Emitter
	log  *slog.Logger

	mu sync.Mutex
	// base outlives any one registration: connections to carriers are
	// dialled under it, so restarting a registration does not close the
	// connection calls use.
	base context.Context
	regs map[string]context.CancelFunc
	sig  map[string]string // name -> config signature, to restart registration on change
}

// NewManager makes the manager of the trunks in tb; Run keeps their
// registrations current.
func NewManager(tb *Table, edge Edge, ev events.Emitter, log *slog.Logger) *Manager {
	return &Manager{Table: tb, edge: edge, ev: ev, log: log, regs: map[string]context.CancelFunc{}, sig: map[string]string{}}
}

// Conn returns a live connection to the carrier, dialling when needed.
// Only the configured host is resolved or dialled.
func (m *Manager) Conn(ctx context.Context, t *Trunk) (sipedge.Conn, error) {
	if c, ok := m.conn(t.Trunk.Name); ok {
		if live, ok2 := m.edge.ConnFor(c.ID(), c.Transport(), c.Peer()); ok2 {
			return live, nil
		}
	}
	addr, err := m.resolve(ctx, t)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	base := m.base
	m.mu.Unlock()
	if base == nil {
		base = ctx
	}
	c, err := m.edge.Dial(base, t.Transport, addr, t.tls)
	if err != nil {
		m.ev.Emit(events.New(events.TrunkConnectFailed, addr, "", "cannot reach carrier: "+err.Error(), "trunk", t.Trunk.Name))
		return nil, err
	}
	m.setConn(t.Trunk.Name, c)
	return c, nil
}

func (m *Manager) resolve(ctx context.Context, t *Trunk) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(t.Host); err == nil {
		return netip.AddrPortFrom(a.Unmap(), uint16(t.port())), nil
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(rctx, "ip", t.Host)
	if err != nil || len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("trunk %s: resolve %s: %v", t.Trunk.Name, t.Host, err)
	}
	return netip.AddrPortFrom(ips[0].Unmap(), uint16(t.port())), nil
}

// Run keeps registrations up until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	m.base = ctx
	m.mu.Unlock()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		m.syncRegistrations(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-m.Table.changed:
		}
	}
}

func signature(t *Trunk) string {
	return fmt.Sprintf("%s|%s|%d|%s|%s|%s|%s", t.Host, t.Transport, t.Port, t.Auth, t.Username, t.secret, t.Pin)
}

func (m *Manager) syncRegistrations(ctx context.Context) {
	trunks := m.snapshot()
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, cancel := range m.regs {
		t, ok := trunks[name]
		if !ok || t.Auth != "register" || m.sig[name] != signature(t) {
			cancel()
			delete(m.regs, name)
			delete(m.sig, name)
			// New settings (address, pin, credentials) get a new
			// connection; calls on the old one keep it until they end.
			m.setConn(name, nil)
		}
	}
	for name, t := range trunks {
		if t.Auth != "register" {
			continue
		}
		if _, ok := m.regs[name]; ok {
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		m.regs[name], m.sig[name] = cancel, signature(t)
		go m.register(rctx, t)
	}
}

// register keeps the trunk registered: REGISTER with digest, refreshed at
// half the granted expiry, retried after failures with an event.
func (m *Manager) register(ctx context.Context, t *Trunk) {
	const expires = 300
	failures := 0
	callID := sipedge.NewCallID() // one Call-ID for all refreshes (RFC 3261 10.2.4)
	var cseq uint32
	for {
		wait := 30 * time.Second
		granted, err := m.registerOnce(ctx, t, expires, callID, &cseq)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			if failures == 1 || failures%10 == 0 {
				m.ev.Emit(events.New(events.TrunkRegistrationFailed, netip.AddrPort{}, "",
					"registration with the carrier failed: "+err.Error(), "trunk", t.Trunk.Name, "attempts", strconv.Itoa(failures)))
			}
			m.log.Warn("trunk registration failed", "trunk", t.Trunk.Name, "err", err)
		} else {
			if failures > 0 {
				m.ev.Emit(events.New(events.TrunkRegistered, netip.AddrPort{}, "", "registered with the carrier again", "trunk", t.Trunk.Name))
			}
			failures = 0
			wait = granted / 2
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (m *Manager) registerOnce(ctx context.Context, t *Trunk, expires int, callID string, cseq *uint32) (time.Duration, error) {
	conn, err := m.Conn(ctx, t)
	if err != nil {
		return 0, err
	}
	tag := sipedge.NewTag()
	var authz string
	for attempt := 0; attempt < 2; attempt++ {
		req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: t.Host, Port: t.port(), UriParams: sip.NewParams(), Headers: sip.NewParams()})
		aor := sip.Uri{Scheme: "sip", User: t.Username, Host: t.Host, UriParams: sip.NewParams(), Headers: sip.NewParams()}
		from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
		from.Params.Add("tag", tag)
		req.AppendHeader(from)
		req.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
		cid := sip.CallIDHeader(callID)
		req.AppendHeader(&cid)
		*cseq++
		req.AppendHeader(&sip.CSeqHeader{SeqNo: *cseq, MethodName: sip.REGISTER})
		req.AppendHeader(&sip.ContactHeader{Address: m.edge.Contact(conn, t.Username), Params: sip.NewParams()})
		req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
		req.AppendHeader(sip.NewHeader("User-Agent", m.edge.UserAgent()))
		if authz != "" {
			req.AppendHeader(sip.NewHeader("Authorization", authz))
		}
		done := make(chan *sip.Response, 1)
		if _, err := m.edge.Send(conn, req, func(res *sip.Response) {
			if res.StatusCode >= 200 {
				select {
				case done <- res:
				default:
				}
			}
		}); err != nil {
			return 0, err
		}
		var res *sip.Response
		select {
		case res = <-done:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		switch {
		case res.StatusCode == 200:
			granted := time.Duration(expires) * time.Second
			if h := res.GetHeader("Expires"); h != nil {
				if n, err := strconv.Atoi(h.Value()); err == nil && n > 0 {
					granted = time.Duration(n) * time.Second
				}
			}
			return granted, nil
		case (res.StatusCode == 401 || res.StatusCode == 407) && attempt == 0:
			hdr := "WWW-Authenticate"
			if res.StatusCode == 407 {
				hdr = "Proxy-Authenticate"
			}
			ch, err := pickChallenge(res, hdr)
			if err != nil {
				return 0, err
			}
			user, secret := t.Credentials()
			authz = ch.Authorization(user, secret, "REGISTER", req.Recipient.String())
		default:
			return 0, fmt.Errorf("carrier answered %d %s", res.StatusCode, res.Reason)
		}
	}
	return 0, errors.New("carrier refused the credentials")
}
