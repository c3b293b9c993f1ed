package registrar

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/sipedge"
	"github.com/veilig/veilig/internal/store"
	"github.com/veilig/veilig/internal/store/sqlite"
)

// gatedStore holds SaveBindings until the test opens the gate.
type gatedStore struct {
	store.Store
	mu    sync.Mutex
	gate  chan struct{}
	saved int
}

func (g *gatedStore) SaveBindings(ctx context.Context, bs []store.Binding) error {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		<-gate
	}
	err := g.Store.SaveBindings(ctx, bs)
	g.mu.Lock()
	g.saved += len(bs)
	g.mu.Unlock()
	return err
}

// asAccount stands in for the digest stage: the To user is authenticated.
func asAccount(next sipedge.Handler) sipedge.Handler {
	return sipedge.HandlerFunc(func(ctx context.Context, r *sipedge.Request) error {
		r.Account = r.To().Address.User
		return next.ServeSIP(ctx, r)
	})
}

func register(user, callID string, cseq int) string {
	return fmt.Sprintf("REGISTER sip:example.com SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-%s-%d\r\n"+
		"From: <sip:%s@example.com>;tag=t1\r\n"+
		"To: <sip:%s@example.com>\r\n"+
		"Call-ID: %s\r\n"+
		"CSeq: %d REGISTER\r\n"+
		"Contact: <sip:%s@127.0.0.1:5099>\r\n"+
		"Expires: 300\r\n"+
		"Max-Forwards: 70\r\n"+
		"Content-Length: 0\r\n\r\n", callID, cseq, user, user, callID, cseq, user)
}

// TestRegisterAnsweredAfterCommit: a REGISTER's 200 waits for the commit
// of its binding; once the store has it, the 200 goes out; the binding is
// then in the store.
func TestRegisterAnsweredAfterCommit(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.CreateExtension(ctx, store.Extension{Number: "1001", Realm: "example.com"}); err != nil {
		t.Fatal(err)
	}
	gs := &gatedStore{Store: db, gate: make(chan struct{})}
	reg := New(Options{MinExpires: time.Minute, MaxExpires: time.Hour, DefaultExpires: 10 * time.Minute,
		Store: gs, Events: events.Discard{}, Logger: slog.New(slog.DiscardHandler)})
	edge, err := sipedge.New(sipedge.Options{UDPListen: "127.0.0.1:0", Handler: reg, Auth: asAccount, UDPReadBuffer: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = edge.Serve(rctx) }()
	go func() { defer wg.Done(); _ = reg.Run(rctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })

	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(edge.Listeners()[0].Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(register("1001", "cid-commit", 1))); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("answered before the binding was committed:\n%s", buf[:n])
	}
	if bs, _ := db.LoadBindings(ctx, time.Now()); len(bs) != 0 {
		t.Fatalf("binding in the store before the commit: %+v", bs)
	}
	close(gs.gate)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no answer after the commit: %v", err)
	}
	if !strings.HasPrefix(string(buf[:n]), "SIP/2.0 200") {
		t.Fatalf("answer %q, want 200", buf[:n])
	}
	bs, err := db.LoadBindings(ctx, time.Now())
	if err != nil || len(bs) != 1 || bs[0].Number != "1001" {
		t.Fatalf("store after the 200: %+v, %v; want 1001's binding", bs, err)
	}
}

// TestRegisterBatchesCommits: REGISTERs arriving together are committed
// in few batches, and every one is answered 200 after its commit.
func TestRegisterBatchesCommits(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	const n = 200
	for i := 0; i < n; i++ {
		if err := db.CreateExtension(ctx, store.Extension{Number: fmt.Sprint(2000 + i), Realm: "example.com"}); err != nil {
			t.Fatal(err)
		}
	}
	cs := &countingStore{Store: db}
	reg := New(Options{MinExpires: time.Minute, MaxExpires: time.Hour, DefaultExpires: 10 * time.Minute,
		Store: cs, Events: events.Discard{}, Logger: slog.New(slog.DiscardHandler)})
	edge, err := sipedge.New(sipedge.Options{UDPListen: "127.0.0.1:0", Handler: reg, Auth: asAccount, UDPReadBuffer: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = edge.Serve(rctx) }()
	go func() { defer wg.Done(); _ = reg.Run(rctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(edge.Listeners()[0].Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadBuffer(4 << 20)
	for i := 0; i < n; i++ {
		if _, err := c.Write([]byte(register(fmt.Sprint(2000+i), fmt.Sprintf("cid-%d", i), 1))); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 65536)
	ok := 0
	for ok < n {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := c.Read(buf)
		if err != nil {
			t.Fatalf("%d of %d answered: %v", ok, n, err)
		}
		if !strings.HasPrefix(string(buf[:k]), "SIP/2.0 200") {
			t.Fatalf("answer %q", buf[:k])
		}
		ok++
	}
	bs, _ := db.LoadBindings(ctx, time.Now())
	calls := cs.calls()
	t.Logf("%d REGISTERs committed in %d batches", n, calls)
	if len(bs) != n {
		t.Fatalf("%d bindings stored, want %d", len(bs), n)
	}
	if calls >= n/2 {
		t.Errorf("%d commits for %d REGISTERs sent at once: not batched", calls, n)
	}
}

type countingStore struct {
	store.Store
	mu sync.Mutex
	n  int
}

func (c *countingStore) SaveBindings(ctx context.Context, bs []store.Binding) error {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.Store.SaveBindings(ctx, bs)
}

func (c *countingStore) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestConnectionRegistrationExpiry: over TCP, a device without RFC 5626
// outbound is granted at most ConnectionMaxExpires; one that registers a
// flow (Supported: outbound, reg-id) keeps its interval and is told
// Require: outbound and the Flow-Timer.
func TestConnectionRegistrationExpiry(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, n := range []string{"1001", "1002"} {
		if err := db.CreateExtension(ctx, store.Extension{Number: n, Realm: "example.com"}); err != nil {
			t.Fatal(err)
		}
	}
	reg := New(Options{MinExpires: time.Minute, MaxExpires: 2 * time.Hour, DefaultExpires: 10 * time.Minute,
		ConnectionMaxExpires: time.Minute, FlowTimer: 25 * time.Second,
		Store: db, Events: events.Discard{}, Logger: slog.New(slog.DiscardHandler)})
	edge, err := sipedge.New(sipedge.Options{TCPListen: "127.0.0.1:0", Handler: reg, Auth: asAccount})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = edge.Serve(rctx) }()
	go func() { defer wg.Done(); _ = reg.Run(rctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })

	ask := func(user string, outbound bool) string {
		c, err := net.Dial("tcp", edge.Listeners()[0].Addr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := strings.Replace(register(user, "cid-"+user, 1), "SIP/2.0/UDP", "SIP/2.0/TCP", 1)
		msg = strings.Replace(msg, "Expires: 300", "Expires: 3600", 1)
		if outbound {
			msg = strings.Replace(msg, ":5099>\r\n", `:5099;transport=tcp>;reg-id=1;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000000000001>"`+"\r\nSupported: outbound, path\r\n", 1)
		}
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("%s: no answer: %v", user, err)
		}
		return string(buf[:n])
	}
	plain := ask("1001", false)
	if !strings.HasPrefix(plain, "SIP/2.0 200") || !strings.Contains(plain, "expires=60") || strings.Contains(plain, "Flow-Timer") {
		t.Errorf("plain TCP registration, 3600 s asked: want 200 with expires=60 and no Flow-Timer:\n%s", plain)
	}
	ob := ask("1002", true)
	if !strings.HasPrefix(ob, "SIP/2.0 200") || !strings.Contains(ob, "expires=3600") ||
		!strings.Contains(ob, "Require: outbound") || !strings.Contains(ob, "Flow-Timer: 25") {
		t.Errorf("outbound TCP registration: want 200 with expires=3600, Require: outbound, Flow-Timer: 25:\n%s", ob)
	}
}
