package trunk

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/veilig/veilig/internal/datakey"
	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/sipedge"
	"github.com/veilig/veilig/internal/sipedge/sipedgetest"
	"github.com/veilig/veilig/internal/store"
)

type rows []store.Trunk

func (r rows) ListTrunks(context.Context) ([]store.Trunk, error) { return r, nil }

// fakeEdge dials without sockets and answers REGISTERs like a carrier that
// challenges once.
type fakeEdge struct {
	mu      sync.Mutex
	dials   int
	live    map[string]sipedge.Conn
	regs    []*sip.Request
	granted string
}

func (e *fakeEdge) Dial(_ context.Context, transport string, addr netip.AddrPort, _ *tls.Config) (sipedge.Conn, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dials++
	c := sipedgetest.NewConn(transport, addr.String())
	e.live[c.ID()] = c
	return c, nil
}

func (e *fakeEdge) ConnFor(id, _ string, _ netip.AddrPort) (sipedge.Conn, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.live[id]
	return c, ok
}

func (e *fakeEdge) Contact(_ sipedge.Conn, user string) sip.Uri {
	return sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: 5061}
}

func (e *fakeEdge) UserAgent() string { return "veilig-test" }

func (e *fakeEdge) Send(_ sipedge.Conn, req *sip.Request, onResp sipedge.ResponseFunc) (*sipedge.ClientTx, error) {
	e.mu.Lock()
	e.regs = append(e.regs, req)
	first := len(e.regs) == 1
	e.mu.Unlock()
	go func() {
		if first {
			res := sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
			res.AppendHeader(sip.NewHeader("WWW-Authenticate", `Digest realm="carrier", nonce="abc", algorithm=SHA-256, qop="auth"`))
			onResp(res)
			return
		}
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(sip.NewHeader("Expires", e.granted))
		onResp(res)
	}()
	return nil, nil
}

func (e *fakeEdge) registers() []*sip.Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*sip.Request(nil), e.regs...)
}

func testKey(t *testing.T) *datakey.Key {
	k, err := datakey.New(make([]byte, datakey.Size))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestTableLookups(t *testing.T) {
	tb, err := Load(t.Context(), rows{
		{Name: "b-in", Host: "127.0.0.50", Transport: "tls", Auth: "ip", Addresses: []string{"127.0.5.0/24"}, Media: "srtp", DIDs: map[string]string{"+31201234567": "1001"}},
		{Name: "a-out", Host: "127.0.0.60", Transport: "tls", Auth: "ip", Addresses: []string{"127.0.6.1"}, Media: "rtp", Outbound: true},
		{Name: "c-out", Host: "127.0.0.70", Transport: "tls", Auth: "ip", Addresses: []string{"127.0.7.1"}, Media: "srtp", Outbound: true},
	}, testKey(t), quiet)
	if err != nil {
		t.Fatal(err)
	}
	in := sipedgetest.NewConn("tls", "127.0.5.9:1000")
	tr, ok := tb.FromTrunk(in)
	if !ok || tr.Name() != "b-in" {
		t.Fatalf("FromTrunk = %v %v, want b-in", tr, ok)
	}
	if _, ok := tb.FromTrunk(sipedgetest.NewConn("udp", "127.0.5.9:1000")); ok {
		t.Fatal("a trunk's address on another transport is not the trunk")
	}
	for _, n := range []string{"+31201234567", "31201234567"} {
		if ext, ok := tb.DID(tr, n); !ok || ext != "1001" {
			t.Fatalf("DID(%s) = %q %v", n, ext, ok)
		}
	}
	if _, ok := tb.DID(tr, "+31209999999"); ok {
		t.Fatal("unrouted DID found")
	}
	if out, ok := tb.Outbound(); !ok || out.Name() != "a-out" || !out.PlainMedia() {
		t.Fatalf("Outbound = %v, want a-out (first by name)", out)
	}
	if !tb.IsCarrier(netip.MustParseAddr("127.0.0.60")) || !tb.IsCarrier(netip.MustParseAddr("127.0.5.200")) || tb.IsCarrier(netip.MustParseAddr("127.0.8.1")) {
		t.Fatal("IsCarrier wrong")
	}
	if got := len(tb.Carriers()); got != 6 {
		t.Fatalf("%d carrier prefixes, want 6 (one source and one host per trunk)", got)
	}
}

// TestManagerRegisters: a register trunk is dialled once, its challenge
// answered with the trunk's credentials, and the connection it opened is
// then known as the trunk's.
func TestManagerRegisters(t *testing.T) {
	key := testKey(t)
	tb, err := Load(t.Context(), rows{{
		Name: "carrier", Host: "127.0.0.80", Transport: "tls", Auth: "register", Username: "veilig",
		Secret: SealSecret(key, "carrier", "s3cret-Secret!"), Media: "srtp", Outbound: true,
	}}, key, quiet)
	if err != nil {
		t.Fatal(err)
	}
	e := &fakeEdge{live: map[string]sipedge.Conn{}, granted: "120"}
	m := NewManager(tb, e, events.Discard{}, quiet)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(e.registers()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d REGISTERs sent, want 2 (challenge, then credentials)", len(e.registers()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	regs := e.registers()
	if regs[0].GetHeader("Authorization") != nil {
		t.Fatal("first REGISTER carried credentials unasked")
	}
	authz := regs[1].GetHeader("Authorization")
	if authz == nil || !strings.Contains(authz.Value(), `username="veilig"`) || !strings.Contains(authz.Value(), "SHA-256") {
		t.Fatalf("second REGISTER Authorization = %v", authz)
	}
	if regs[0].CallID().Value() != regs[1].CallID().Value() || regs[1].CSeq().SeqNo != regs[0].CSeq().SeqNo+1 {
		t.Fatal("a registration keeps its Call-ID and counts CSeq up")
	}
	out, _ := m.Outbound()
	c, err := m.Conn(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if tr, ok := m.FromTrunk(c); !ok || tr.Name() != "carrier" {
		t.Fatal("the connection Veilig dialled is not known as the trunk's")
	}
	e.mu.Lock()
	dials := e.dials
	e.mu.Unlock()
	if dials != 1 {
		t.Fatalf("%d dials, want 1 (the connection is reused)", dials)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
