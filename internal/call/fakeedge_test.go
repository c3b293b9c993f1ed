package call

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/sipedge"
	"github.com/veilig/veilig/internal/sipedge/sipedgetest"
	"github.com/veilig/veilig/internal/store"
)

// The fakes below stand in for the SIP edge so the B2BUA's state machine
// runs without sockets: requests the call layer sends are recorded and the
// test answers them by calling their response handler, as the edge would.

type fakeConn = sipedgetest.Conn

func newConn(peer string) *fakeConn { return sipedgetest.NewConn("tls", peer) }

// sent is one request the call layer sent through the fake edge.
type sent struct {
	conn   sipedge.Conn
	req    *sip.Request
	onResp sipedge.ResponseFunc
	tx     *fakeClientTx
}

type fakeClientTx struct {
	mu                  sync.Mutex
	cancelled, detached bool
}

func (tx *fakeClientTx) Cancel() { tx.mu.Lock(); tx.cancelled = true; tx.mu.Unlock() }
func (tx *fakeClientTx) Detach() { tx.mu.Lock(); tx.detached = true; tx.mu.Unlock() }
func (tx *fakeClientTx) wasCancelled() bool {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return tx.cancelled
}

type fakeEdge struct {
	mu    sync.Mutex
	conns map[string]sipedge.Conn
	reqs  []*sent
	acks  []*sent
	// fail makes Send fail for requests to these connections.
	fail map[sipedge.Conn]bool
}

func newFakeEdge() *fakeEdge {
	return &fakeEdge{conns: map[string]sipedge.Conn{}, fail: map[sipedge.Conn]bool{}}
}

func (e *fakeEdge) Send(conn sipedge.Conn, req *sip.Request, onResp sipedge.ResponseFunc) (ClientTx, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail[conn] {
		return nil, sipedge.ErrConnClosed
	}
	s := &sent{conn: conn, req: req, onResp: onResp, tx: &fakeClientTx{}}
	e.reqs = append(e.reqs, s)
	return s.tx, nil
}

func (e *fakeEdge) SendACK(conn sipedge.Conn, ack *sip.Request) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.acks = append(e.acks, &sent{conn: conn, req: ack})
	return []byte(ack.String()), nil
}

func (e *fakeEdge) Contact(conn sipedge.Conn, user string) sip.Uri {
	l := conn.Local()
	return sip.Uri{Scheme: "sip", User: user, Host: l.Addr().String(), Port: int(l.Port()), UriParams: sip.NewParams(), Headers: sip.NewParams()}
}

func (e *fakeEdge) ConnFor(connID, _ string, _ netip.AddrPort) (sipedge.Conn, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.conns[connID]
	return c, ok
}

func (e *fakeEdge) UserAgent() string { return "veilig-test" }

// sentTo lists the requests of method sent on conn, oldest first.
func (e *fakeEdge) sentTo(conn sipedge.Conn, method sip.RequestMethod) []*sent {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*sent
	for _, s := range e.reqs {
		if s.conn == conn && s.req.Method == method {
			out = append(out, s)
		}
	}
	return out
}

func (e *fakeEdge) acksTo(conn sipedge.Conn) []*sip.Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*sip.Request
	for _, s := range e.acks {
		if s.conn == conn {
			out = append(out, s.req)
		}
	}
	return out
}

// fakeServerTx is the server transaction of a request a device sent.
type fakeServerTx struct {
	mu        sync.Mutex
	req       *sip.Request
	tag       string
	res       []*sip.Response
	cancelled bool
	onCancel  func()
	onAck     func(*sip.Request)
	onNoAck   func()
}

func (tx *fakeServerTx) Respond(res *sip.Response) error {
	tx.mu.Lock()
	tx.res = append(tx.res, res)
	tx.mu.Unlock()
	return nil
}

func (tx *fakeServerTx) Request() *sip.Request { return tx.req }
func (tx *fakeServerTx) ToTag() string         { return tx.tag }
func (tx *fakeServerTx) OnCancel(f func()) {
	tx.mu.Lock()
	if tx.cancelled {
		tx.mu.Unlock()
		f()
		return
	}
	tx.onCancel = f
	tx.mu.Unlock()
}
func (tx *fakeServerTx) OnAck(f func(*sip.Request)) { tx.mu.Lock(); tx.onAck = f; tx.mu.Unlock() }
func (tx *fakeServerTx) OnNoAck(f func())           { tx.mu.Lock(); tx.onNoAck = f; tx.mu.Unlock() }

// cancel delivers a CANCEL, as the edge does once it has answered it.
func (tx *fakeServerTx) cancel() {
	tx.mu.Lock()
	tx.cancelled = true
	f := tx.onCancel
	tx.mu.Unlock()
	if f != nil {
		f()
	}
}

// ack delivers the ACK of the 2xx.
func (tx *fakeServerTx) ack(t *testing.T, body []byte) {
	t.Helper()
	tx.mu.Lock()
	f := tx.onAck
	tx.mu.Unlock()
	if f == nil {
		t.Fatal("ACK delivered but nobody waits for it")
	}
	ack := sip.NewRequest(sip.ACK, tx.req.Recipient)
	ack.SetBody(body)
	f(ack)
}

// noAck reports that the 2xx was never acknowledged.
func (tx *fakeServerTx) noAck(t *testing.T) {
	t.Helper()
	tx.mu.Lock()
	f := tx.onNoAck
	tx.mu.Unlock()
	if f == nil {
		t.Fatal("no-ACK timer fired but nobody set it")
	}
	f()
}

func (tx *fakeServerTx) codes() []int {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	var out []int
	for _, r := range tx.res {
		out = append(out, r.StatusCode)
	}
	return out
}

// final is the final response sent, nil if none.
func (tx *fakeServerTx) final() *sip.Response {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	for _, r := range tx.res {
		if r.StatusCode >= 200 {
			return r
		}
	}
	return nil
}

type fakeDirectory map[string]string

func (d fakeDirectory) Exists(n string) bool { _, ok := d[n]; return ok }
func (d fakeDirectory) Name(n string) string { return d[n] }

type fakeLocator map[string][]store.Binding

func (l fakeLocator) Lookup(n string, _ time.Time) []store.Binding { return l[n] }

// recorder keeps the events and call records the call layer produced.
type recorder struct {
	mu      sync.Mutex
	evs     []events.Event
	records []events.CallRecord
}

func (r *recorder) Emit(e events.Event) { r.mu.Lock(); r.evs = append(r.evs, e); r.mu.Unlock() }
func (r *recorder) Record(c events.CallRecord) {
	r.mu.Lock()
	r.records = append(r.records, c)
	r.mu.Unlock()
}

func (r *recorder) recordsOf() []events.CallRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.CallRecord(nil), r.records...)
}

func (r *recorder) has(k *events.Kind) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.evs {
		if e.Type == k.Name {
			return true
		}
	}
	return false
}

// bench is one B2BUA with a caller (1001) and the callee 1002's devices.
type bench struct {
	t       *testing.T
	m       *Manager
	e       *fakeEdge
	ev      *recorder
	caller  *fakeConn
	devices []*fakeConn
}

func newBench(t *testing.T, devices int, tune func(*Options)) *bench {
	t.Helper()
	b := &bench{t: t, e: newFakeEdge(), ev: &recorder{}, caller: newConn("127.0.0.10:40000")}
	loc := fakeLocator{}
	for i := range devices {
		c := newConn(fmt.Sprintf("127.0.0.%d:41000", 20+i))
		b.devices = append(b.devices, c)
		b.e.conns[c.ID()] = c
		loc["1002"] = append(loc["1002"], store.Binding{
			Number: "1002", Contact: fmt.Sprintf("sip:1002@%s;transport=tls", c.Peer()), Source: c.Peer(), Transport: "tls", ConnID: c.ID(),
		})
	}
	o := Options{
		Edge: b.e, Directory: fakeDirectory{"1001": "Anna", "1002": "Bert"}, Locator: loc, Events: b.ev,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Domain: "veilig.test",
	}
	if tune != nil {
		tune(&o)
	}
	b.m = New(o)
	return b
}

// parse reads a SIP request written as lines.
func parse(t *testing.T, lines []string, body []byte) *sip.Request {
	t.Helper()
	if len(body) > 0 {
		lines = append(lines, "Content-Type: application/sdp")
	}
	lines = append(lines, fmt.Sprintf("Content-Length: %d", len(body)))
	msg, err := sip.ParseMessage([]byte(strings.Join(lines, "\r\n") + "\r\n\r\n" + string(body)))
	if err != nil {
		t.Fatalf("parse request: %v", err)
	}
	return msg.(*sip.Request)
}

// invite sends 1001's INVITE to 1002 (body nil: a late offer) and returns
// its server transaction.
func (b *bench) invite(body []byte) *fakeServerTx {
	b.t.Helper()
	req := parse(b.t, []string{
		"INVITE sip:1002@veilig.test SIP/2.0",
		"Via: SIP/2.0/TLS 127.0.0.10:40000;branch=z9hG4bKcaller1",
		"Max-Forwards: 70",
		"From: <sip:1001@veilig.test>;tag=callertag",
		"To: <sip:1002@veilig.test>",
		"Call-ID: call-a@test",
		"CSeq: 1 INVITE",
		"Contact: <sip:1001@127.0.0.10:40000;transport=tls>",
	}, body)
	tx := &fakeServerTx{req: req, tag: "veiligA"}
	if err := b.m.serve(context.Background(), &request{Request: req, Conn: b.caller, Tx: tx, Account: "1001", Received: time.Now(), ua: "veilig-test"}); err != nil {
		b.t.Fatalf("serve INVITE: %v", err)
	}
	return tx
}

// forkTo is the INVITE Veilig sent to device i.
func (b *bench) forkTo(i int) *sent {
	b.t.Helper()
	invs := b.e.sentTo(b.devices[i], sip.INVITE)
	if len(invs) == 0 {
		b.t.Fatalf("no INVITE sent to device %d", i)
	}
	return invs[0]
}

// answer has the device answer s with code (a To tag naming the device).
func (b *bench) answer(s *sent, code int, body []byte) {
	b.t.Helper()
	res := sip.NewResponseFromRequest(s.req, code, "", body)
	if code > 100 {
		if to := res.To(); to != nil && !to.Params.Has("tag") {
			to.Params.Add("tag", "dev-"+strings.ReplaceAll(s.conn.Peer().Addr().String(), ".", ""))
		}
	}
	if code >= 200 && code < 300 {
		res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "1002", Host: s.conn.Peer().Addr().String(), Port: int(s.conn.Peer().Port())}})
	}
	if len(body) > 0 {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	s.onResp(res)
}

// inDialog sends a request from conn inside the dialog that req (a request
// Veilig sent to that device, or the caller's INVITE) belongs to.
func (b *bench) inDialog(conn *fakeConn, method sip.RequestMethod, callID, fromTag, toTag string, cseq int, body []byte) *fakeServerTx {
	b.t.Helper()
	req := parse(b.t, []string{
		fmt.Sprintf("%s sip:veilig@127.0.0.1:5061;transport=tls SIP/2.0", method),
		fmt.Sprintf("Via: SIP/2.0/TLS %s;branch=z9hG4bK%s%d", conn.Peer(), method, cseq),
		"Max-Forwards: 70",
		"From: <sip:x@veilig.test>;tag=" + fromTag,
		"To: <sip:y@veilig.test>;tag=" + toTag,
		"Call-ID: " + callID,
		fmt.Sprintf("CSeq: %d %s", cseq, method),
		fmt.Sprintf("Contact: <sip:x@%s;transport=tls>", conn.Peer()),
	}, body)
	tx := &fakeServerTx{req: req, tag: toTag}
	if err := b.m.serve(context.Background(), &request{Request: req, Conn: conn, Tx: tx, Account: "", Received: time.Now(), ua: "veilig-test"}); err != nil {
		b.t.Fatalf("serve %s: %v", method, err)
	}
	return tx
}

// fromCaller sends a request in the caller's dialog.
func (b *bench) fromCaller(method sip.RequestMethod, cseq int, body []byte) *fakeServerTx {
	return b.inDialog(b.caller, method, "call-a@test", "callertag", "veiligA", cseq, body)
}

// fromCallee sends a request from device i in the dialog of its INVITE.
func (b *bench) fromCallee(i int, method sip.RequestMethod, cseq int, body []byte) *fakeServerTx {
	inv := b.forkTo(i)
	ftag, _ := inv.req.From().Params.Get("tag")
	devTag := "dev-" + strings.ReplaceAll(b.devices[i].Peer().Addr().String(), ".", "")
	return b.inDialog(b.devices[i], method, string(*inv.req.CallID()), devTag, ftag, cseq, body)
}

// ended waits for the call record and returns it.
func (b *bench) ended() events.CallRecord {
	b.t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		if rs := b.ev.recordsOf(); len(rs) > 0 {
			if len(rs) > 1 {
				b.t.Fatalf("%d call records, want 1: %+v", len(rs), rs)
			}
			return rs[0]
		}
		if time.Now().After(deadline) {
			b.t.Fatal("no call record")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// idle checks that the manager holds no call and no dialog.
func (b *bench) idle() {
	b.t.Helper()
	if calls, dialogs := b.m.Active(); calls != 0 || dialogs != 0 {
		b.t.Fatalf("manager still holds %d calls and %d dialogs", calls, dialogs)
	}
}

// offerSDP is an SRTP offer or answer from the device at host.
func offerSDP(host string, key string) []byte {
	return []byte("v=0\r\no=- 1 1 IN IP4 " + host + "\r\ns=-\r\nc=IN IP4 " + host + "\r\nt=0 0\r\n" +
		"m=audio 4000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "\r\n")
}

var netipLoopback = netip.MustParseAddr("127.0.0.1")
