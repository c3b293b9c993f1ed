package registrar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/sipedge/sipedgetest"
	"github.com/veilig/veilig/internal/store"
)

// These tests drive the registrar without sockets: a REGISTER is handed to
// Register with a fake connection and transaction, and the store is a fake
// that records what was committed.

type fakeTx struct{ res chan *sip.Response }

func (tx fakeTx) Respond(res *sip.Response) error { tx.res <- res; return nil }

type fakeStore struct {
	mu    sync.Mutex
	saved []store.Binding
	fail  error
}

func (s *fakeStore) SaveBindings(_ context.Context, bs []store.Binding) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.saved = append(s.saved, bs...)
	return nil
}
func (s *fakeStore) DeleteBinding(context.Context, string, string) error { return nil }
func (s *fakeStore) LoadBindings(context.Context, time.Time) ([]store.Binding, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]store.Binding(nil), s.saved...), nil
}

type recorder struct {
	mu  sync.Mutex
	evs []events.Event
}

func (r *recorder) Emit(e events.Event)      { r.mu.Lock(); r.evs = append(r.evs, e); r.mu.Unlock() }
func (r *recorder) Record(events.CallRecord) {}
func (r *recorder) count(k *events.Kind) (n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.evs {
		if e.Type == k.Name {
			n++
		}
	}
	return n
}

type rig struct {
	t   *testing.T
	r   *Registrar
	st  *fakeStore
	ev  *recorder
	dev *sipedgetest.Conn
}

func newRig(t *testing.T, tune func(*Options)) *rig {
	g := &rig{t: t, st: &fakeStore{}, ev: &recorder{}, dev: sipedgetest.NewConn("tls", "127.0.0.30:45000")}
	o := Options{MinExpires: 60 * time.Second, MaxExpires: time.Hour, DefaultExpires: 10 * time.Minute,
		UserAgent: "veilig-test", Store: g.st, Events: g.ev, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if tune != nil {
		tune(&o)
	}
	g.r = New(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return g
}

// register sends 1001's REGISTER with the given header lines and returns
// the answer.
func (g *rig) register(cseq int, hdrs ...string) *sip.Response {
	g.t.Helper()
	lines := append([]string{
		"REGISTER sip:veilig.test SIP/2.0",
		"Via: SIP/2.0/TLS 127.0.0.30:45000;branch=z9hG4bKreg" + fmt.Sprint(cseq),
		"From: <sip:1001@veilig.test>;tag=f1", "To: <sip:1001@veilig.test>",
		"Call-ID: reg-1@test", fmt.Sprintf("CSeq: %d REGISTER", cseq),
	}, hdrs...)
	msg, err := sip.ParseMessage([]byte(strings.Join(lines, "\r\n") + "\r\nContent-Length: 0\r\n\r\n"))
	if err != nil {
		g.t.Fatal(err)
	}
	tx := fakeTx{res: make(chan *sip.Response, 1)}
	if err := g.r.Register(context.Background(), &Request{Request: msg.(*sip.Request), Conn: g.dev, Account: "1001", Tx: tx}); err != nil {
		g.t.Fatal(err)
	}
	select {
	case res := <-tx.res:
		if s := res.GetHeader("Server"); s == nil || s.Value() != "veilig-test" {
			g.t.Fatalf("answer without Veilig's Server header: %v", res)
		}
		return res
	case <-time.After(2 * time.Second):
		g.t.Fatal("REGISTER not answered")
		return nil
	}
}

func (g *rig) saved() []store.Binding {
	g.st.mu.Lock()
	defer g.st.mu.Unlock()
	return append([]store.Binding(nil), g.st.saved...)
}

func TestRegisterBindsToTheConnection(t *testing.T) {
	g := newRig(t, nil)
	res := g.register(1, "Contact: <sip:1001@192.0.2.7:5061;transport=tls>;expires=7200")
	if res.StatusCode != 200 {
		t.Fatalf("REGISTER answered %d", res.StatusCode)
	}
	// The stored binding was committed before the 200 went out, keyed on
	// the socket, with the expiry held to MaxExpires.
	saved := g.saved()
	if len(saved) != 1 || saved[0].Source != g.dev.Peer() || saved[0].ConnID != g.dev.ID() || saved[0].Transport != "tls" {
		t.Fatalf("stored %+v", saved)
	}
	if ct := res.GetHeader("Contact"); ct == nil || !strings.Contains(ct.Value(), "expires=3600") {
		t.Fatalf("200 Contact = %v, want expires=3600 (max_expires)", ct)
	}
	bs := g.r.Lookup("1001", time.Now())
	if len(bs) != 1 || bs[0].Contact != "sip:1001@192.0.2.7:5061;transport=tls" {
		t.Fatalf("Lookup = %+v", bs)
	}
	if !g.r.HasSource(g.dev.Peer().Addr()) || g.ev.count(events.Register) != 1 {
		t.Fatal("registration not tracked by source or not reported")
	}
	// Same Call-ID, CSeq not higher: refused, nothing changes.
	if res := g.register(1, "Contact: <sip:1001@192.0.2.7:5061;transport=tls>"); res.StatusCode != 500 {
		t.Fatalf("replayed CSeq answered %d, want 500", res.StatusCode)
	}
	// Expires: 0 removes the binding; the store hears of it too.
	if res := g.register(2, "Contact: <sip:1001@192.0.2.7:5061;transport=tls>", "Expires: 0"); res.StatusCode != 200 || res.GetHeader("Contact") != nil {
		t.Fatalf("unregister answered %v", res)
	}
	if len(g.r.Lookup("1001", time.Now())) != 0 || g.ev.count(events.Unregister) != 1 {
		t.Fatal("binding not removed")
	}
	if saved := g.saved(); len(saved) != 2 || !saved[1].Expires.IsZero() {
		t.Fatalf("removal not persisted: %+v", saved)
	}
}

func TestRegisterRefusals(t *testing.T) {
	g := newRig(t, func(o *Options) { o.MaxContacts = 1 })
	for _, tc := range []struct {
		name string
		hdrs []string
		code int
	}{
		{"bad expires", []string{"Contact: <sip:1001@192.0.2.7>", "Expires: soon"}, 400},
		{"bad contact expires", []string{"Contact: <sip:1001@192.0.2.7>;expires=x"}, 400},
		{"wildcard with expiry", []string{"Contact: *", "Expires: 60"}, 400},
	} {
		if res := g.register(1, tc.hdrs...); res.StatusCode != tc.code {
			t.Errorf("%s: answered %d, want %d", tc.name, res.StatusCode, tc.code)
		}
	}
	if res := g.register(1, "Contact: <sip:1001@192.0.2.7>"); res.StatusCode != 200 {
		t.Fatalf("first device answered %d", res.StatusCode)
	}
	if res := g.register(2, "Contact: <sip:1001@192.0.2.8>"); res.StatusCode != 403 {
		t.Fatalf("device over max_contacts answered %d, want 403", res.StatusCode)
	}
	if res := g.register(3, "Contact: *", "Expires: 0"); res.StatusCode != 200 || len(g.r.Lookup("1001", time.Now())) != 0 {
		t.Fatal("wildcard unregister did not remove every binding")
	}
}

func TestRegisterStoreFailure(t *testing.T) {
	g := newRig(t, nil)
	g.st.fail = errors.New("disk full")
	if res := g.register(1, "Contact: <sip:1001@192.0.2.7>"); res.StatusCode != 500 {
		t.Fatalf("REGISTER answered %d when the store failed, want 500", res.StatusCode)
	}
	if g.ev.count(events.Register) != 0 {
		t.Fatal("a registration the store refused was announced")
	}
}

func TestConnectionMaxExpires(t *testing.T) {
	g := newRig(t, func(o *Options) { o.ConnectionMaxExpires = 5 * time.Minute })
	res := g.register(1, "Contact: <sip:1001@192.0.2.7;transport=tls>;expires=3600")
	if ct := res.GetHeader("Contact"); ct == nil || !strings.Contains(ct.Value(), "expires=300") {
		t.Fatalf("device on a connection without outbound got %v, want expires=300", ct)
	}
	// An RFC 5626 flow keeps its expiry and learns the keep-alive interval.
	res = g.register(2, "Contact: <sip:1001@192.0.2.7;transport=tls>;reg-id=1;+sip.instance=\"<urn:uuid:1>\";expires=3600", "Supported: outbound")
	if ct := res.GetHeader("Contact"); ct == nil || !strings.Contains(ct.Value(), "expires=3600") || res.GetHeader("Flow-Timer") == nil {
		t.Fatalf("outbound device got %v", res)
	}
}
