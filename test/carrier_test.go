package test

// A carrier played in Go on 127.0.0.50 for the trunk tests: a TLS listener
// (certificate from a test CA, with the IP in its SAN) or a UDP socket,
// whose connections queue every SIP message they receive so a test can
// wait for the one it wants (by method, Call-ID) without losing others.

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/testkit/sipua"
)

const carrierIP = "127.0.0.50"

// trunkReloadWait covers the server's 2 s reload of trunks changed by the CLI.
const trunkReloadWait = 2500 * time.Millisecond

// carrier is one carrier's signalling endpoint.
type carrier struct {
	t         *testing.T
	transport string // "tls" or "udp"
	port      int
	ln        net.Listener
	conns     chan *carrierConn
	mu        sync.Mutex
	handshake []string // TLS handshake errors seen on accepted connections
	accepted  int
}

// carrierConn is one connection (TLS) or the socket (UDP) of a carrier.
type carrierConn struct {
	t         *testing.T
	sc        *sipConn
	transport string
	hostport  string
	mu        sync.Mutex
	queue     []*sipMessage
	trace     []string
	readErr   error
	notify    chan struct{}
}

// issueCert issues a server certificate for ip from ca.
func issueCert(t *testing.T, ca certAuthority, ip string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "carrier " + ip},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP(ip)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}
}

// certPin is the SHA-256 of a certificate's leaf, as `--pin` takes it.
func certPin(c tls.Certificate) string {
	sum := sha256.Sum256(c.Certificate[0])
	return hex.EncodeToString(sum[:])
}

// writeCAFile writes ca's certificate as PEM and returns the path.
func writeCAFile(t *testing.T, ca certAuthority, name string) string {
	t.Helper()
	path := filepath.Join(artifactDir(t), name)
	writePEM(t, path, "CERTIFICATE", ca.cert.Raw)
	return path
}

// startTLSCarrier listens for TLS on carrierIP with cert.
func startTLSCarrier(t *testing.T, cert tls.Certificate) *carrier {
	t.Helper()
	port := freePort(t, "tcp", carrierIP)
	ln, err := tls.Listen("tcp", hostPort(carrierIP, port), &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("carrier listen: %v", err)
	}
	car := &carrier{t: t, transport: "tls", port: port, ln: ln, conns: make(chan *carrierConn, 16)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				tc := nc.(*tls.Conn)
				_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
				err := tc.Handshake()
				_ = tc.SetDeadline(time.Time{})
				car.mu.Lock()
				car.accepted++
				if err != nil {
					car.handshake = append(car.handshake, err.Error())
				}
				car.mu.Unlock()
				if err != nil {
					tc.Close()
					return
				}
				cc := newCarrierConn(t, &sipConn{conn: tc, r: bufio.NewReader(tc)}, "tls")
				car.conns <- cc
			}()
		}
	}()
	return car
}

// startUDPCarrier opens the carrier's UDP socket on carrierIP, connected
// to Veilig's UDP listener (it hears only Veilig).
func startUDPCarrier(t *testing.T, srv *server) (*carrier, *carrierConn) {
	t.Helper()
	port := freePort(t, "udp", carrierIP)
	raddr, err := net.ResolveUDPAddr("udp", srv.udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(carrierIP), Port: port}, raddr)
	if err != nil {
		t.Fatalf("carrier UDP socket: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	cc := newCarrierConn(t, &sipConn{conn: conn, r: bufio.NewReaderSize(conn, 1<<16)}, "udp")
	return &carrier{t: t, transport: "udp", port: port}, cc
}

func newCarrierConn(t *testing.T, sc *sipConn, transport string) *carrierConn {
	cc := &carrierConn{t: t, sc: sc, transport: transport, hostport: sc.conn.LocalAddr().String(), notify: make(chan struct{}, 1)}
	t.Cleanup(func() { sc.conn.Close() })
	go func() {
		for {
			m, err := sc.read(10 * time.Minute)
			cc.mu.Lock()
			if err != nil {
				cc.readErr = err
				cc.mu.Unlock()
				cc.wake()
				return
			}
			cc.queue = append(cc.queue, m)
			cc.trace = append(cc.trace, time.Now().Format("15:04:05.000")+" < received\n"+m.raw)
			cc.mu.Unlock()
			cc.wake()
		}
	}()
	return cc
}

func (cc *carrierConn) wake() {
	select {
	case cc.notify <- struct{}{}:
	default:
	}
}

func (car *carrier) portStr() string { return strconv.Itoa(car.port) }

// accept waits for Veilig's next (handshaken) connection to the carrier.
func (car *carrier) accept(d time.Duration) *carrierConn {
	car.t.Helper()
	select {
	case cc := <-car.conns:
		return cc
	case <-time.After(d):
		car.mu.Lock()
		defer car.mu.Unlock()
		car.t.Fatalf("carrier: no TLS connection from Veilig within %v (handshake errors: %q)", d, car.handshake)
		return nil
	}
}

// stats returns how many TCP connections were accepted and the handshake
// errors seen.
func (car *carrier) stats() (int, []string) {
	car.mu.Lock()
	defer car.mu.Unlock()
	return car.accepted, append([]string(nil), car.handshake...)
}

func (cc *carrierConn) traceText(n int) string {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	tr := cc.trace
	if len(tr) > n {
		tr = tr[len(tr)-n:]
	}
	return strings.Join(tr, "\n")
}

// waitFor takes the first queued message that matches, waiting up to d.
func (cc *carrierConn) waitFor(d time.Duration, what string, match func(*sipMessage) bool) *sipMessage {
	cc.t.Helper()
	m := cc.poll(d, match)
	if m == nil {
		cc.mu.Lock()
		var queued []string
		for _, q := range cc.queue {
			queued = append(queued, q.start)
		}
		err := cc.readErr
		cc.mu.Unlock()
		cc.t.Fatalf("carrier (%s %s): no %s within %v (read error %v; unmatched %q)\ncarrier trace:\n%s",
			cc.transport, cc.hostport, what, d, err, queued, cc.traceText(8))
	}
	return m
}

// poll is waitFor returning nil on timeout.
func (cc *carrierConn) poll(d time.Duration, match func(*sipMessage) bool) *sipMessage {
	deadline := time.Now().Add(d)
	for {
		cc.mu.Lock()
		for i, m := range cc.queue {
			if match(m) {
				cc.queue = append(cc.queue[:i], cc.queue[i+1:]...)
				cc.mu.Unlock()
				return m
			}
		}
		cc.mu.Unlock()
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		select {
		case <-cc.notify:
		case <-time.After(left):
		}
	}
}

// isRequest matches a request of method (and Call-ID, if callID != "").
func isRequest(method, callID string) func(*sipMessage) bool {
	return func(m *sipMessage) bool {
		return m.status() == 0 && strings.HasPrefix(m.start, method+" ") && (callID == "" || m.header("Call-ID") == callID)
	}
}

func (cc *carrierConn) waitRequest(d time.Duration, method, callID string) *sipMessage {
	cc.t.Helper()
	return cc.waitFor(d, method+" request", isRequest(method, callID))
}

// send writes a raw message.
func (cc *carrierConn) send(msg string) {
	cc.t.Helper()
	cc.mu.Lock()
	cc.trace = append(cc.trace, time.Now().Format("15:04:05.000")+" > sent\n"+msg)
	cc.mu.Unlock()
	cc.sc.send(cc.t, msg)
}

func (cc *carrierConn) contact() string {
	return fmt.Sprintf("<sip:carrier@%s;transport=%s>", cc.hostport, cc.transport)
}

// respond answers req; extra are more header lines.
func (cc *carrierConn) respond(req *sipMessage, code int, reason, toTag, body string, extra ...string) {
	cc.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, reason)
	for _, v := range req.all("Via") {
		b.WriteString("Via: " + v + "\r\n")
	}
	to := req.header("To")
	if toTag != "" && tagOf(to) == "" && code > 100 {
		to += ";tag=" + toTag
	}
	b.WriteString("From: " + req.header("From") + "\r\nTo: " + to + "\r\n")
	b.WriteString("Call-ID: " + req.header("Call-ID") + "\r\nCSeq: " + req.header("CSeq") + "\r\n")
	if code > 100 && code < 300 && cseqMethod(req) == "INVITE" {
		b.WriteString("Contact: " + cc.contact() + "\r\n")
	}
	b.WriteString("Server: carrier-e2e\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	if body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	cc.send(b.String())
}

// ---------------------------------------------------------------- digest (carrier side)

// carrierChallenge is a WWW-Authenticate value with a fresh nonce.
func carrierChallenge(realm, alg string) string {
	return fmt.Sprintf(`Digest realm="%s", nonce="%s", opaque="%s", algorithm=%s, qop="auth"`, realm, randHex(16), randHex(4), alg)
}

// checkDigest verifies an Authorization value against (user, pass) as a
// carrier would; it returns why it fails ("" when it is right).
func checkDigest(authz, method, user, pass string) string {
	c, ok := sipua.ParseChallenge(authz)
	if !ok {
		return "not a Digest credential: " + authz
	}
	p := c.Params
	if p["username"] != user {
		return fmt.Sprintf("username %q, want %q", p["username"], user)
	}
	hx := c.HashHex
	ha1 := hx(user + ":" + p["realm"] + ":" + pass)
	ha2 := hx(method + ":" + p["uri"])
	want := hx(ha1 + ":" + p["nonce"] + ":" + p["nc"] + ":" + p["cnonce"] + ":" + p["qop"] + ":" + ha2)
	if p["qop"] == "" {
		want = hx(ha1 + ":" + p["nonce"] + ":" + ha2)
	}
	if p["response"] != want {
		return "response does not match the secret"
	}
	return ""
}

// ---------------------------------------------------------------- server side

// addTrunk runs `veilig trunk add ...` and waits for the server's reload.
func addTrunk(t *testing.T, srv *server, stdin string, args ...string) {
	t.Helper()
	out, code := srv.cli(t, stdin, append([]string{"trunk", "add"}, args...)...)
	if code != 0 {
		t.Fatalf("veilig trunk add %v exited %d:\n%s", args, code, out)
	}
	time.Sleep(trunkReloadWait)
}

// trunkRecord is a call record with the outbound fields.
type trunkRecord struct {
	idCallRecord
	E164          string  `json:"e164"`
	Country       string  `json:"country"`
	Class         string  `json:"class"`
	EstimatedCost float64 `json:"estimated_cost"`
	Trunk         string  `json:"trunk"`
	Fraud         string  `json:"fraud"`
	Source        string  `json:"source"`
}

func (r trunkRecord) String() string {
	b, _ := json.Marshal(map[string]any{"id": r.ID, "from": r.From, "to": r.To, "disposition": r.Disposition,
		"cause": r.Cause, "caller_media": r.CallerMedia, "callee_media": r.CalleeMedia, "media_in_clear": r.MediaInClear,
		"e164": r.E164, "country": r.Country, "class": r.Class, "estimated_cost": r.EstimatedCost,
		"trunk": r.Trunk, "fraud": r.Fraud, "answered_at": r.AnsweredAt, "ended_at": r.EndedAt})
	return string(b)
}

// waitTrunkRecord polls `veilig calls --json` up to d for the ended record
// whose ID is callID.
func waitTrunkRecord(t *testing.T, srv *server, d time.Duration, callID string) trunkRecord {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for {
		out, code := srv.cli(t, "", "calls", "--json", "--limit", "500")
		if code != 0 {
			t.Fatalf("veilig calls --json exited %d:\n%s", code, out)
		}
		var recs []trunkRecord
		if i := strings.Index(out, "["); i >= 0 {
			_ = json.NewDecoder(strings.NewReader(out[i:])).Decode(&recs)
		}
		for _, r := range recs {
			if r.ID == callID && !isEmpty(r.EndedAt) {
				return checkAgainstLog(t, srv, r)
			}
		}
		last = out
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("no ended call record with id %s within %v; records:\n%s", callID, d, tail(last, 40))
	return trunkRecord{}
}

// checkAgainstLog compares the outbound fields of a record from `veilig
// calls --json` with the same record in events.jsonl (the call.record
// line). Fields the log has but the CLI omits are an error (the CLI must
// show them); the log's values are returned so the other checks still run.
func checkAgainstLog(t *testing.T, srv *server, r trunkRecord) trunkRecord {
	t.Helper()
	data, err := os.ReadFile(srv.eventsPath)
	if err != nil {
		return r
	}
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, `"call.record"`) || !strings.Contains(line, r.ID) {
			continue
		}
		var l trunkRecord
		if json.Unmarshal([]byte(line), &l) != nil || l.ID != r.ID {
			continue
		}
		var missing []string
		for _, f := range []struct {
			name      string
			cli, logv any
		}{{"e164", r.E164, l.E164}, {"country", r.Country, l.Country}, {"class", r.Class, l.Class},
			{"estimated_cost", r.EstimatedCost, l.EstimatedCost}, {"trunk", r.Trunk, l.Trunk}, {"fraud", r.Fraud, l.Fraud}} {
			if fmt.Sprint(f.cli) != fmt.Sprint(f.logv) {
				missing = append(missing, fmt.Sprintf("%s=%v (calls --json: %v)", f.name, f.logv, f.cli))
			}
		}
		if len(missing) > 0 {
			t.Errorf("SERVER: `veilig calls --json` differs from the call.record in events.jsonl for %s: %s",
				r.ID, strings.Join(missing, ", "))
			r.E164, r.Country, r.Class, r.EstimatedCost, r.Trunk, r.Fraud = l.E164, l.Country, l.Class, l.EstimatedCost, l.Trunk, l.Fraud
		}
		return r
	}
	return r
}

// requireTrunkRefused waits for the call.refused event of a call to
// dialled with rule and code (outbound refusals carry no call_id field).
func requireTrunkRefused(t *testing.T, srv *server, dialled, rule, code string) event {
	t.Helper()
	return srv.waitEvent(t, 5*time.Second, "call.refused", func(e event) bool {
		return fmt.Sprint(e.Fields["to"]) == dialled && fmt.Sprint(e.Fields["rule"]) == rule && fmt.Sprint(e.Fields["code"]) == code
	})
}
