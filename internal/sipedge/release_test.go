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

// TestServerTxReleasesAcknowledgedInvite: until the ACK a retransmitted
// INVITE gets the stored 2xx again; once acknowledged the transaction keeps
// neither request nor answer (it lingers 32 s on UDP) and absorbs a
// retransmitted INVITE silently (RFC 6026), without running the handler.
func TestServerTxReleasesAcknowledgedInvite(t *testing.T) {
	txc := make(chan *ServerTx, 1)
	acked := make(chan struct{})
	_, c := startUDP(t, HandlerFunc(func(ctx context.Context, r *Request) error {
		if r.Method == sip.ACK {
			return nil
		}
		r.Tx.OnAck(func(*sip.Request) { close(acked) })
		txc <- r.Tx
		return r.Respond(200, "OK")
	}))
	inv := request("INVITE", "z9hG4bK-rel", "cid-rel", "Contact: <sip:1001@127.0.0.1:5099>")
	if _, err := c.Write([]byte(inv)); err != nil {
		t.Fatal(err)
	}
	res := readResponse(t, c, 2*time.Second)
	if !strings.HasPrefix(res, "SIP/2.0 200") {
		t.Fatalf("got %q", res)
	}
	tx := <-txc
	if tx.Request() == nil {
		t.Fatal("request released before the ACK")
	}
	if _, err := c.Write([]byte(inv)); err != nil {
		t.Fatal(err)
	}
	if res2 := readResponse(t, c, 2*time.Second); res2 != res {
		t.Fatalf("retransmitted INVITE answered with\n%q\nwant the stored\n%q", res2, res)
	}
	ack := request("ACK", "z9hG4bK-ack", "cid-rel")
	if _, err := c.Write([]byte(ack)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-acked:
	case <-time.After(2 * time.Second):
		t.Fatal("ACK not delivered")
	}
	if tx.Request() != nil {
		t.Fatal("acknowledged INVITE still holds its request")
	}
	// Responding again is ignored, not a panic.
	if err := tx.Respond(sip.NewResponse(500, "Late")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte(inv)); err != nil {
		t.Fatal(err)
	}
	if res2 := readResponse(t, c, 300*time.Millisecond); res2 != "" {
		t.Fatalf("retransmitted INVITE after the ACK answered with %q, want silence", res2)
	}
	if len(txc) != 0 {
		t.Fatal("retransmitted INVITE reached the handler")
	}
}

// TestClientTxReleasesAnsweredInvite: an accepted INVITE client transaction
// lingers for 2xx retransmissions without the request, and after Detach a
// retransmitted 2xx reaches nobody.
func TestClientTxReleasesAnsweredInvite(t *testing.T) {
	e, _ := startUDP(t, HandlerFunc(func(ctx context.Context, r *Request) error { return nil }))
	peer := listenUDP(t, "udp4", "127.0.0.1:0")
	conn, ok := e.ConnFor("", "udp", peer.LocalAddr().(*net.UDPAddr).AddrPort())
	if !ok {
		t.Fatal("no UDP conn")
	}
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "1002", Host: "127.0.0.1"})
	from := sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "1001", Host: "example.com"}, Params: sip.NewParams()}
	from.Params.Add("tag", "t1")
	req.AppendHeader(&from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "1002", Host: "example.com"}, Params: sip.NewParams()})
	cid := sip.CallIDHeader("cid-client-rel")
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	var got atomic.Int32
	tx, err := e.Send(conn, req, func(*sip.Response) { got.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	_ = peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from2, err := peer.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	in, err := sip.ParseMessage(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	ok200 := sip.NewResponseFromRequest(in.(*sip.Request), 200, "OK", nil)
	raw := []byte(ok200.String())
	wait := func(want int32) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for got.Load() != want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
		if g := got.Load(); g != want {
			t.Fatalf("responses delivered %d, want %d", g, want)
		}
	}
	if _, err := peer.WriteToUDP(raw, from2); err != nil {
		t.Fatal(err)
	}
	wait(1)
	if tx.Request() != nil {
		t.Fatal("accepted INVITE still holds its request")
	}
	if _, err := peer.WriteToUDP(raw, from2); err != nil {
		t.Fatal(err)
	}
	wait(2) // a 2xx retransmission still reaches the call
	tx.Detach()
	if _, err := peer.WriteToUDP(raw, from2); err != nil {
		t.Fatal(err)
	}
	wait(2)
}
