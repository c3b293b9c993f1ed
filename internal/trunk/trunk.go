// Package trunk connects Veilig to carriers: the trunks an operator
// configured (store rows managed by `veilig trunk`), their TLS settings and
// certificate checks, registration with digest credentials, and the lookups
// the call layer needs (is this request from a trunk, which extension a DID
// reaches, which trunk carries outbound calls).
package trunk

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/veilig/veilig/internal/auth"
	"github.com/veilig/veilig/internal/datakey"
	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/sipedge"
	"github.com/veilig/veilig/internal/store"
)

// SealSecret seals a trunk's digest secret with the data key.
func SealSecret(key *datakey.Key, name, secret string) []byte {
	return key.Seal([]byte(secret), []byte("veilig/trunk/"+name))
}

// Validate checks a trunk row as the CLI is about to save it, with errors
// that say what to fix.
func Validate(t store.Trunk) error {
	var errs []error
	if t.Name == "" || strings.ContainsAny(t.Name, " :/") {
		errs = append(errs, fmt.Errorf("name %q: use letters, digits, '-' or '_'", t.Name))
	}
	if t.Host == "" {
		errs = append(errs, errors.New("--host is required"))
	}
	if t.Port < 0 || t.Port > 65535 {
		errs = append(errs, fmt.Errorf("--port %d out of range", t.Port))
	}
	switch t.Transport {
	case "tls":
	case "tcp", "udp":
		if !t.InsecureTransport {
			errs = append(errs, fmt.Errorf("--transport %s is unencrypted signalling: add --insecure-transport to accept that (every audit reports it)", t.Transport))
		}
	default:
		errs = append(errs, fmt.Errorf("--transport %q: use tls, tcp or udp", t.Transport))
	}
	switch t.Auth {
	case "register":
		if t.Username == "" || len(t.Secret) == 0 {
			errs = append(errs, errors.New("--auth register needs --username and a secret (--secret-stdin)"))
		}
	case "ip":
		if len(t.Addresses) == 0 {
			errs = append(errs, errors.New("--auth ip needs --from CIDR[,CIDR] (the carrier's source addresses)"))
		}
	default:
		errs = append(errs, fmt.Errorf("--auth %q: use register or ip", t.Auth))
	}
	for _, a := range t.Addresses {
		if _, err := parsePrefix(a); err != nil {
			errs = append(errs, fmt.Errorf("--from %q: %v", a, err))
		}
	}
	switch t.Media {
	case "srtp", "rtp":
	default:
		errs = append(errs, fmt.Errorf("--media %q: use srtp or rtp", t.Media))
	}
	if t.Pin != "" {
		if b, err := hex.DecodeString(strings.ReplaceAll(t.Pin, ":", "")); err != nil || len(b) != 32 {
			errs = append(errs, fmt.Errorf("--pin must be a SHA-256 fingerprint (64 hex digits, colons allowed)"))
		}
	}
	if (t.ClientCert == "") != (t.ClientKey == "") {
		errs = append(errs, errors.New("--client-cert and --client-key go together"))
	}
	return errors.Join(errs...)
}

func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, errors.New("neither a CIDR nor an address")
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// Trunk is a trunk as the running server uses it.
type Trunk struct {
	store.Trunk
	secret string
	from   []netip.Prefix
	tls    *tls.Config
}

// Name is the trunk's name.
func (t *Trunk) Name() string { return t.Trunk.Name }

// PlainMedia reports a trunk whose media leg may be plain RTP.
func (t *Trunk) PlainMedia() bool { return t.Media == "rtp" }

// Insecure reports unencrypted signalling.
func (t *Trunk) Insecure() bool { return t.Transport != "tls" }

func (t *Trunk) port() int {
	if t.Port != 0 {
		return t.Port
	}
	if t.Transport == "tls" {
		return 5061
	}
	return 5060
}

// URI is a SIP URI at the carrier for user.
func (t *Trunk) URI(user string) sip.Uri {
	u := sip.Uri{Scheme: "sip", User: user, Host: t.Host, Port: t.port(), UriParams: sip.NewParams(), Headers: sip.NewParams()}
	if t.Transport != "udp" {
		u.UriParams.Add("transport", t.Transport)
	}
	return u
}

// Credentials are the trunk's digest credentials ("" when it authenticates
// by source address).
func (t *Trunk) Credentials() (user, secret string) { return t.Username, t.secret }

// tlsConfig verifies the carrier: its chain and name (the configured server
// name, else the host, an IP address included), or exactly the pinned
// certificate. Verification is never skipped silently: a pin replaces the
// chain check with a stricter one.
func tlsConfig(t store.Trunk) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if tc.ServerName == "" {
		tc.ServerName = t.Host
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("trunk %s: ca file: %w", t.Name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("trunk %s: ca file %s holds no PEM certificate", t.Name, t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.ClientCert != "" {
		c, err := tls.LoadX509KeyPair(t.ClientCert, t.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("trunk %s: client certificate: %w", t.Name, err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	if t.Pin != "" {
		want := strings.ToLower(strings.ReplaceAll(t.Pin, ":", ""))
		// The pin is the whole check: the chain need not lead to a CA.
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("carrier sent no certificate")
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if hex.EncodeToString(sum[:]) != want {
				return fmt.Errorf("carrier certificate %s does not match the pinned fingerprint", hex.EncodeToString(sum[:]))
			}
			return nil
		}
	}
	return tc, nil
}

// Manager holds the trunks and their connections.
type Manager struct {
	edge *sipedge.Edge
	st   store.Store
	key  *datakey.Key
	ev   events.Emitter
	log  *slog.Logger

	// base outlives any one registration: connections to carriers are
	// dialled under it, so restarting a registration does not close the
	// connection calls use.
	base context.Context

	mu     sync.Mutex
	trunks map[string]*Trunk
	conns  map[string]sipedge.Conn
	regs   map[string]context.CancelFunc
	sig    map[string]string // name -> config signature, to restart registration on change

	changed chan struct{}
}

// NewManager makes a manager; Run loads the trunks and keeps them current.
func NewManager(edge *sipedge.Edge, st store.Store, key *datakey.Key, ev events.Emitter, log *slog.Logger) *Manager {
	return &Manager{edge: edge, st: st, key: key, ev: ev, log: log,
		trunks: map[string]*Trunk{}, conns: map[string]sipedge.Conn{}, regs: map[string]context.CancelFunc{}, sig: map[string]string{},
		changed: make(chan struct{}, 1)}
}

// SetEdge gives the manager the edge it dials through (the edge is built
// after the trunks are loaded, since the guard needs the carriers first).
func (m *Manager) SetEdge(e *sipedge.Edge) {
	m.mu.Lock()
	m.edge = e
	m.mu.Unlock()
}

// Load reads the trunks now (before the edge serves, so carrier addresses
// are known to the guard from the first packet).
func (m *Manager) Load(ctx context.Context) error {
	rows, err := m.st.ListTrunks(ctx)
	if err != nil {
		return err
	}
	next := make(map[string]*Trunk, len(rows))
	for _, r := range rows {
		t := &Trunk{Trunk: r}
		if len(r.Secret) > 0 {
			b, err := m.key.Open(r.Secret, []byte("veilig/trunk/"+r.Name))
			if err != nil {
				m.log.Error("trunk secret cannot be opened with this data key", "trunk", r.Name, "err", err)
				continue
			}
			t.secret = string(b)
		}
		for _, a := range r.Addresses {
			if p, err := parsePrefix(a); err == nil {
				t.from = append(t.from, p)
			}
		}
		if t.tls, err = tlsConfig(r); err != nil {
			m.log.Error("trunk disabled", "trunk", r.Name, "err", err)
			continue
		}
		next[r.Name] = t
	}
	m.mu.Lock()
	m.trunks = next
	m.mu.Unlock()
	return nil
}

// Carriers lists the trunks' source networks (never banned or flood-limited).
func (m *Manager) Carriers() []netip.Prefix {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []netip.Prefix
	for _, t := range m.trunks {
		out = append(out, t.from...)
		if a, err := netip.ParseAddr(t.Host); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		}
	}
	return out
}

// IsCarrier reports an address of a configured trunk (its source
// networks or its literal host address).
func (m *Manager) IsCarrier(a netip.Addr) bool {
	a = a.Unmap()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.trunks {
		for _, p := range t.from {
			if p.Contains(a) {
				return true
			}
		}
		if h, err := netip.ParseAddr(t.Host); err == nil && h.Unmap() == a {
			return true
		}
	}
	return false
}

// FromTrunk says which trunk a request came from: a source in an
// ip-authenticated trunk's addresses (on the trunk's transport), or the
// connection Veilig itself opened to a carrier. Keyed on the socket only.
func (m *Manager) FromTrunk(c sipedge.Conn) (*Trunk, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, conn := range m.conns {
		if conn.ID() == c.ID() && c.Transport() != "udp" {
			return m.trunks[name], m.trunks[name] != nil
		}
	}
	addr := c.Peer().Addr()
	for _, t := range m.trunks {
		if c.Transport() != t.Transport {
			continue
		}
		for _, p := range t.from {
			if p.Contains(addr) {
				return t, true
			}
		}
		if t.Auth == "register" && t.Transport == "udp" {
			if a, err := netip.ParseAddr(t.Host); err == nil && a.Unmap() == addr && int(c.Peer().Port()) == t.port() {
				return t, true
			}
		}
	}
	return nil, false
}

// DID finds the extension a dialled number on a trunk reaches.
func (m *Manager) DID(t *Trunk, number string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ext, ok := t.DIDs[number]; ok {
		return ext, true
	}
	n := strings.TrimPrefix(number, "+")
	for did, ext := range t.DIDs {
		if strings.TrimPrefix(did, "+") == n {
			return ext, true
		}
	}
	return "", false
}

// Outbound is the trunk that carries calls to the outside.
func (m *Manager) Outbound() (*Trunk, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var pick *Trunk
	for _, t := range m.trunks {
		if t.Outbound && (pick == nil || t.Trunk.Name < pick.Trunk.Name) {
			pick = t
		}
	}
	return pick, pick != nil
}

// Conn returns a live connection to the carrier, dialling when needed.
// Only the configured host is resolved or dialled.
func (m *Manager) Conn(ctx context.Context, t *Trunk) (sipedge.Conn, error) {
	m.mu.Lock()
	c, ok := m.conns[t.Trunk.Name]
	m.mu.Unlock()
	if ok {
		if live, ok2 := m.edge.ConnFor(c.ID(), c.Transport(), c.Peer()); ok2 {
			return live, nil
		}
	}
	addr, err := m.resolve(ctx, t)
	if err != nil {
		return nil, err
	}
	base := m.base
	if base == nil {
		base = ctx
	}
	c, err = m.edge.Dial(base, t.Transport, addr, t.tls)
	if err != nil {
		m.ev.Emit(events.New(events.TrunkConnectFailed, addr, "", "cannot reach carrier: "+err.Error(), "trunk", t.Trunk.Name))
		return nil, err
	}
	m.mu.Lock()
	m.conns[t.Trunk.Name] = c
	m.mu.Unlock()
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
		case <-m.changed:
		}
	}
}

// Apply reloads the trunks after a change (a feed handler); registrations
// of changed trunks restart at once.
func (m *Manager) Apply(ctx context.Context, _ []string) {
	if err := m.Load(ctx); err != nil {
		m.log.Error("reload trunks", "err", err)
		return
	}
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

func signature(t *Trunk) string {
	return fmt.Sprintf("%s|%s|%d|%s|%s|%s|%s", t.Host, t.Transport, t.Port, t.Auth, t.Username, t.secret, t.Pin)
}

func (m *Manager) syncRegistrations(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, cancel := range m.regs {
		t, ok := m.trunks[name]
		if !ok || t.Auth != "register" || m.sig[name] != signature(t) {
			cancel()
			delete(m.regs, name)
			delete(m.sig, name)
			// New settings (address, pin, credentials) get a new
			// connection; calls on the old one keep it until they end.
			delete(m.conns, name)
		}
	}
	for name, t := range m.trunks {
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

// Authorize answers a carrier's challenge to a request Veilig sent on t.
func (t *Trunk) Authorize(res *sip.Response, method, uri string) (hdr, value string, err error) {
	name, resp := "WWW-Authenticate", "Authorization"
	if res.StatusCode == 407 {
		name, resp = "Proxy-Authenticate", "Proxy-Authorization"
	}
	ch, err := pickChallenge(res, name)
	if err != nil {
		return "", "", err
	}
	if t.secret == "" {
		return "", "", errors.New("trunk has no credentials")
	}
	return resp, ch.Authorization(t.Username, t.secret, method, uri), nil
}

// pickChallenge reads the strongest challenge of a carrier's 401 or 407.
func pickChallenge(res *sip.Response, hdr string) (auth.Offer, error) {
	hs := res.GetHeaders(hdr)
	if len(hs) == 0 {
		return auth.Offer{}, fmt.Errorf("%d without %s", res.StatusCode, hdr)
	}
	vals := make([]string, len(hs))
	for i, h := range hs {
		vals[i] = h.Value()
	}
	o, err := auth.PickChallenge(vals)
	if err != nil {
		return auth.Offer{}, fmt.Errorf("carrier challenge: %w", err)
	}
	return o, nil
}
