package sipedge

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAdmissionEvictsOldestStrangerFirst(t *testing.T) {
	a := &Admission{max: 3}
	now := time.Unix(1000, 0)
	peer := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 5061)
	}
	authed, _, _ := a.admit(nil, peer(1), true, now)
	a.authenticated(authed)
	known, _, _ := a.admit(nil, peer(2), true, now.Add(time.Second))
	stranger, _, _ := a.admit(nil, peer(3), false, now.Add(2*time.Second))

	// A stranger at the limit evicts a stranger, never a known source's
	// connection or an authenticated one.
	s4, v, ok := a.admit(nil, peer(4), false, now.Add(3*time.Second))
	if !ok || v != stranger {
		t.Fatalf("stranger newcomer: ok %v, evicted %v, want the oldest stranger", ok, v)
	}
	// A known source evicts strangers first, then known sources' idle ones.
	_, v, ok = a.admit(nil, peer(5), true, now.Add(4*time.Second))
	if !ok || v != s4 {
		t.Fatalf("known newcomer: evicted %v, want the stranger", v)
	}
	_, v, ok = a.admit(nil, peer(6), false, now.Add(5*time.Second))
	if ok || v != nil {
		t.Fatalf("stranger newcomer with only known and authenticated connections held: ok %v, evicted %v; want refused", ok, v)
	}
	_, v, ok = a.admit(nil, peer(7), true, now.Add(6*time.Second))
	if !ok || v != known {
		t.Fatalf("known newcomer: evicted %v, want the oldest known connection %v", v, known)
	}
	st := a.stats()
	if st.Open != 3 || st.Evicted != 3 || st.Refused != 1 || st.Authenticated != 1 {
		t.Fatalf("stats %+v, want 3 open, 3 evicted, 1 refused, 1 authenticated", st)
	}
	// Releasing an evicted slot frees nothing; releasing a held one does.
	a.release(stranger)
	a.release(authed)
	a.release(authed)
	if st := a.stats(); st.Open != 2 || st.Authenticated != 0 {
		t.Fatalf("after releases: %+v, want 2 open", st)
	}
}

// authByHeader marks requests carrying X-Auth as authenticated, as the
// digest stage would.
func authByHeader(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, r *Request) error {
		if r.GetHeader("X-Auth") != nil {
			r.Account = "1001"
		}
		return next.ServeSIP(ctx, r)
	})
}

func startTCPEdge(t *testing.T, o Options) *Edge {
	t.Helper()
	o.TCPListen = "127.0.0.1:0"
	o.Handler = HandlerFunc(func(ctx context.Context, r *Request) error { return r.Respond(200, "OK") })
	o.Auth = authByHeader
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

type testConn struct {
	net.Conn
	r *bufio.Reader
}

func dialEdge(t *testing.T, e *Edge, src string) *testConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", e.Listeners()[0].Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &testConn{Conn: c, r: bufio.NewReader(c)}
}

// ask sends an OPTIONS (authenticated with auth) and returns the status line.
func (c *testConn) ask(t *testing.T, auth bool) string {
	t.Helper()
	var extra []string
	if auth {
		extra = append(extra, "X-Auth: yes")
	}
	msg := strings.Replace(request("OPTIONS", "z9hG4bK-"+NewTag(), NewCallID(), extra...), "SIP/2.0/UDP", "SIP/2.0/TCP", 1)
	if _, err := io.WriteString(c, msg); err != nil {
		return "write: " + err.Error()
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "read: " + err.Error()
	}
	for { // skip the rest of the response
		l, err := c.r.ReadString('\n')
		if err != nil || l == "\r\n" {
			break
		}
	}
	return strings.TrimSpace(line)
}

// closedWithin reports whether the peer closes c within d (reading and
// discarding anything else it sends).
func (c *testConn) closedWithin(d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	for {
		if _, err := c.r.ReadByte(); err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}

// TestEdgeConnectionLimit: at the limit, newcomers push out the oldest
// connections that never authenticated; the authenticated connection
// keeps working; with every held connection authenticated, a newcomer is
// refused.
func TestEdgeConnectionLimit(t *testing.T) {
	e := startTCPEdge(t, Options{MaxConnections: 3})
	agent := dialEdge(t, e, "127.0.0.2")
	if got := agent.ask(t, true); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("agent: %q", got)
	}
	idle1 := dialEdge(t, e, "127.0.0.3")
	idle2 := dialEdge(t, e, "127.0.0.4")
	waitOpen(t, e, 3)
	var fresh []*testConn
	for i := 0; i < 5; i++ {
		fresh = append(fresh, dialEdge(t, e, "127.0.0.5"))
	}
	if !idle1.closedWithin(2*time.Second) || !idle2.closedWithin(2*time.Second) {
		t.Fatal("the idle strangers were not evicted")
	}
	for i, c := range fresh[:3] {
		if !c.closedWithin(2 * time.Second) {
			t.Fatalf("newcomer %d not evicted by later ones", i)
		}
	}
	if got := agent.ask(t, true); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("agent during the flood: %q", got)
	}
	// The survivors authenticate; now nothing can be evicted.
	for _, c := range fresh[3:] {
		if got := c.ask(t, true); !strings.HasPrefix(got, "SIP/2.0 200") {
			t.Fatalf("newcomer: %q", got)
		}
	}
	late := dialEdge(t, e, "127.0.0.6")
	if !late.closedWithin(2 * time.Second) {
		t.Fatal("a newcomer was admitted although every held connection has authenticated")
	}
	st := e.Admission()
	if st.Open != 3 || st.Authenticated != 3 || st.Evicted != 5 || st.Refused != 1 {
		t.Fatalf("admission %+v, want 3 open and authenticated, 5 evicted, 1 refused", st)
	}
}

func waitOpen(t *testing.T, e *Edge, n int) {
	t.Helper()
	for i := 0; i < 200 && e.Admission().Open != n; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if got := e.Admission().Open; got != n {
		t.Fatalf("%d connections open, want %d", got, n)
	}
}

// TestEdgeSlowPeerDeadlines: a peer dripping an unfinished message is
// closed at the message deadline, one sending only keep-alives at the
// authentication deadline (both despite the traffic); an authenticated
// connection outlives both.
func TestEdgeSlowPeerDeadlines(t *testing.T) {
	e := startTCPEdge(t, Options{MessageTimeout: 600 * time.Millisecond, AuthTimeout: 1500 * time.Millisecond})
	agent := dialEdge(t, e, "127.0.0.2")
	if got := agent.ask(t, true); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("agent: %q", got)
	}
	drip := dialEdge(t, e, "127.0.0.3")
	ping := dialEdge(t, e, "127.0.0.4")
	start := time.Now()
	var wg sync.WaitGroup
	feed := func(c *testConn, b string) {
		defer wg.Done()
		for i := 0; i < 40; i++ {
			if _, err := io.WriteString(c, b); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	wg.Add(2)
	go feed(drip, "O")
	go feed(ping, "\r\n\r\n")
	if !drip.closedWithin(2 * time.Second) {
		t.Fatal("dripping peer not closed")
	}
	if d := time.Since(start); d < 500*time.Millisecond || d > 1500*time.Millisecond {
		t.Errorf("dripping peer closed after %v, want about 600ms", d)
	}
	if !ping.closedWithin(3 * time.Second) {
		t.Fatal("keep-alive-only peer not closed")
	}
	if d := time.Since(start); d < 1400*time.Millisecond || d > 2500*time.Millisecond {
		t.Errorf("keep-alive-only peer closed after %v, want about 1.5s", d)
	}
	wg.Wait()
	if got := agent.ask(t, false); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("authenticated connection after the deadlines: %q", got)
	}
	m := e.MetricsSnapshot()
	if m["message_timeouts"] != 1 || m["auth_timeouts"] != 1 {
		t.Fatalf("timeouts counted: message %d, auth %d; want 1 each", m["message_timeouts"], m["auth_timeouts"])
	}
}
