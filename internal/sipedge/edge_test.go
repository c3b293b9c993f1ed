package sipedge

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// startUDP runs an edge on a loopback UDP port with handler h.
func startUDP(t *testing.T, h Handler) (*Edge, *net.UDPConn) {
	t.Helper()
	e, err := New(Options{UDPListen: "127.0.0.1:0", Handler: h, UDPWorkers: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(e.Listeners()[0].Addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return e, c
}

func request(method, branch, callID string, extra ...string) string {
	s := method + " sip:1002@example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP evil.example.com:5099;branch=" + branch + "\r\n" +
		"From: <sip:1001@example.com>;tag=abc\r\n" +
		"To: <sip:1002@example.com>\r\n" +
		"Call-ID: " + callID + "\r\n" +
		"CSeq: 1 " + method + "\r\n" +
		"Max-Forwards: 70\r\n"
	for _, h := range extra {
		s += h + "\r\n"
	}
	return s + "Content-Length: 0\r\n\r\n"
}

func readResponse(t *testing.T, c *net.UDPConn, wait time.Duration) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

func TestRetransmissionAbsorbed(t *testing.T) {
	var calls atomic.Int32
	_, c := startUDP(t, HandlerFunc(func(ctx context.Context, r *Request) error {
		calls.Add(1)
		return r.Respond(486, "Busy Here")
	}))
	msg := request("OPTIONS", "z9hG4bK-retrans", "cid-1")
	for i := 0; i < 3; i++ {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		res := readResponse(t, c, 2*time.Second)
		if !strings.HasPrefix(res, "SIP/2.0 486") {
			t.Fatalf("attempt %d: got %q", i, res)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times for one transaction, want 1", n)
	}
}

func TestMalformedGets400(t *testing.T) {
	_, c := startUDP(t, HandlerFunc(func(ctx context.Context, r *Request) error {
		t.Error("handler must not see a malformed request")
		return nil
	}))
	cases := map[string]string{
		"no branch":      request("OPTIONS", "1234", "cid-2"),
		"cseq mismatch":  strings.Replace(request("OPTIONS", "z9hG4bK-a", "cid-3"), "CSeq: 1 OPTIONS", "CSeq: 1 INVITE", 1),
		"two call-ids":   strings.Replace(request("OPTIONS", "z9hG4bK-b", "cid-4"), "Max-Forwards: 70", "Max-Forwards: 70\r\nCall-ID: other", 1),
		"length too big": strings.Replace(request("OPTIONS", "z9hG4bK-c", "cid-5"), "Content-Length: 0", "Content-Length: 10", 1),
	}
	for name, msg := range cases {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		if res := readResponse(t, c, 2*time.Second); !strings.HasPrefix(res, "SIP/2.0 400") {
			t.Errorf("%s: got %q, want 400", name, res)
		}
	}
}

func TestResponseGoesToSocketSourceNotVia(t *testing.T) {
	_, c := startUDP(t, HandlerFunc(func(ctx context.Context, r *Request) error {
		if r.Peer().Addr().String() != "127.0.0.1" {
			t.Errorf("peer = %v, want the socket source", r.Peer())
		}
		return r.Respond(200, "OK")
	}))
	if _, err := c.Write([]byte(request("OPTIONS", "z9hG4bK-via", "cid-6"))); err != nil {
		t.Fatal(err)
	}
	// The Via names evil.example.com; the answer still arrives here.
	res := readResponse(t, c, 2*time.Second)
	if !strings.HasPrefix(res, "SIP/2.0 200") || !strings.Contains(res, "received=127.0.0.1") {
		t.Fatalf("got %q", res)
	}
}

func TestCancelWithoutTransaction481(t *testing.T) {
	_, c := startUDP(t, HandlerFunc(func(ctx context.Context, r *Request) error { return nil }))
	if _, err := c.Write([]byte(request("CANCEL", "z9hG4bK-nothing", "cid-7"))); err != nil {
		t.Fatal(err)
	}
	if res := readResponse(t, c, 2*time.Second); !strings.HasPrefix(res, "SIP/2.0 481") {
		t.Fatalf("got %q", res)
	}
}

func TestCancelStopsInvite(t *testing.T) {
	cancelled := make(chan struct{})
	_, c := startUDP(t, HandlerFunc(func(ctx context.Context, r *Request) error {
		_ = r.Respond(180, "Ringing")
		r.Tx.OnCancel(func() {
			_ = r.Respond(487, "Request Terminated")
			close(cancelled)
		})
		return nil
	}))
	inv := request("INVITE", "z9hG4bK-inv", "cid-8", "Contact: <sip:1001@127.0.0.1:5099>")
	if _, err := c.Write([]byte(inv)); err != nil {
		t.Fatal(err)
	}
	if res := readResponse(t, c, 2*time.Second); !strings.HasPrefix(res, "SIP/2.0 180") {
		t.Fatalf("got %q", res)
	}
	if _, err := c.Write([]byte(request("CANCEL", "z9hG4bK-inv", "cid-8"))); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for i := 0; i < 2; i++ {
		res := readResponse(t, c, 2*time.Second)
		if len(res) > 11 {
			got[res[:11]] = true
		}
	}
	if !got["SIP/2.0 200"] || !got["SIP/2.0 487"] {
		t.Fatalf("want 200 to CANCEL and 487 to INVITE, got %v", got)
	}
	<-cancelled
}

func TestHandlerPanicRecovered(t *testing.T) {
	e, c := startUDP(t, HandlerFunc(func(ctx context.Context, r *Request) error { panic("boom") }))
	if _, err := c.Write([]byte(request("OPTIONS", "z9hG4bK-panic", "cid-9"))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for e.metrics.panics.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if e.metrics.panics.Load() != 1 {
		t.Fatal("panic not counted")
	}
	// Still serving.
	if _, err := c.Write([]byte(request("CANCEL", "z9hG4bK-after", "cid-10"))); err != nil {
		t.Fatal(err)
	}
	if res := readResponse(t, c, 2*time.Second); !strings.HasPrefix(res, "SIP/2.0 481") {
		t.Fatalf("server not serving after panic: %q", res)
	}
}

func TestChainOrder(t *testing.T) {
	var order []string
	mw := func(name string) Middleware {
		return func(next Handler) Handler {
			return HandlerFunc(func(ctx context.Context, r *Request) error {
				order = append(order, name)
				return next.ServeSIP(ctx, r)
			})
		}
	}
	h := Chain(HandlerFunc(func(ctx context.Context, r *Request) error { order = append(order, "final"); return nil }), mw("a"), mw("b"))
	_ = h.ServeSIP(context.Background(), &Request{Request: sip.NewRequest(sip.OPTIONS, sip.Uri{Host: "x"})})
	if strings.Join(order, ",") != "a,b,final" {
		t.Fatalf("order = %v", order)
	}
}
