package trunk

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"

	"github.com/veilig/veilig/internal/datakey"
	"github.com/veilig/veilig/internal/sipedge"
	"github.com/veilig/veilig/internal/store"
)

// Rows is where the trunks are kept.
type Rows interface {
	ListTrunks(ctx context.Context) ([]store.Trunk, error)
}

// Table is the trunks the operator configured and the connections Veilig
// opened to their carriers: what the guard, the auth stage and the call
// layer ask about a request before any SIP socket is served. It is built
// before the edge (the edge's auth stage trusts trunk connections); the
// Manager that dials and registers through the edge is built after it.
type Table struct {
	rows Rows
	key  *datakey.Key
	log  *slog.Logger

	mu     sync.Mutex
	trunks map[string]*Trunk
	conns  map[string]sipedge.Conn // trunk name -> the connection Veilig dialled

	changed chan struct{}
}

// Load reads the trunks (before the edge serves, so carrier addresses are
// known to the guard from the first packet).
func Load(ctx context.Context, rows Rows, key *datakey.Key, log *slog.Logger) (*Table, error) {
	t := &Table{rows: rows, key: key, log: log, trunks: map[string]*Trunk{}, conns: map[string]sipedge.Conn{}, changed: make(chan struct{}, 1)}
	if err := t.load(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

func (tb *Table) load(ctx context.Context) error {
	rows, err := tb.rows.ListTrunks(ctx)
	if err != nil {
		return err
	}
	next := make(map[string]*Trunk, len(rows))
	for _, r := range rows {
		t := &Trunk{Trunk: r}
		if len(r.Secret) > 0 {
			b, err := tb.key.Open(r.Secret, []byte("veilig/trunk/"+r.Name))
			if err != nil {
				tb.log.Error("trunk secret cannot be opened with this data key", "trunk", r.Name, "err", err)
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
			tb.log.Error("trunk disabled", "trunk", r.Name, "err", err)
			continue
		}
		next[r.Name] = t
	}
	tb.mu.Lock()
	tb.trunks = next
	tb.mu.Unlock()
	return nil
}

// Apply reloads the trunks after a change (a feed handler); the Manager
// hears of it and restarts the registrations of changed trunks at once.
func (tb *Table) Apply(ctx context.Context, _ []string) {
	if err := tb.load(ctx); err != nil {
		tb.log.Error("reload trunks", "err", err)
		return
	}
	select {
	case tb.changed <- struct{}{}:
	default:
	}
}

// snapshot copies the trunks by name.
func (tb *Table) snapshot() map[string]*Trunk {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	out := make(map[string]*Trunk, len(tb.trunks))
	for n, t := range tb.trunks {
		out[n] = t
	}
	return out
}

func (tb *Table) conn(name string) (sipedge.Conn, bool) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	c, ok := tb.conns[name]
	return c, ok
}

func (tb *Table) setConn(name string, c sipedge.Conn) {
	tb.mu.Lock()
	if c == nil {
		delete(tb.conns, name)
	} else {
		tb.conns[name] = c
	}
	tb.mu.Unlock()
}

// Carriers lists the trunks' source networks (never banned or flood-limited).
func (tb *Table) Carriers() []netip.Prefix {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var out []netip.Prefix
	for _, t := range tb.trunks {
		out = append(out, t.from...)
		if a, err := netip.ParseAddr(t.Host); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		}
	}
	return out
}

// IsCarrier reports an address of a configured trunk (its source
// networks or its literal host address).
func (tb *Table) IsCarrier(a netip.Addr) bool {
	a = a.Unmap()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, t := range tb.trunks {
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
func (tb *Table) FromTrunk(c sipedge.Conn) (*Trunk, bool) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for name, conn := range tb.conns {
		if conn.ID() == c.ID() && c.Transport() != "udp" {
			return tb.trunks[name], tb.trunks[name] != nil
		}
	}
	addr := c.Peer().Addr()
	for _, t := range tb.trunks {
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
func (tb *Table) DID(t *Trunk, number string) (string, bool) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
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
func (tb *Table) Outbound() (*Trunk, bool) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var pick *Trunk
	for _, t := range tb.trunks {
		if t.Outbound && (pick == nil || t.Trunk.Name < pick.Trunk.Name) {
			pick = t
		}
	}
	return pick, pick != nil
}
