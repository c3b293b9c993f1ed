package test

// Server lifecycle: no leaked calls, dialogs, transactions or goroutines
// after many calls; registrations that survive a restart; TLS certificate
// files reloaded without dropping connections.

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// metricsConfig enables the metrics endpoint on a free loopback port.
func metricsConfig(t *testing.T) (yaml, addr string) {
	t.Helper()
	addr = hostPort("127.0.0.1", freePort(t, "tcp", "127.0.0.1"))
	return fmt.Sprintf("metrics:\n  listen: %q\n", addr), addr
}

// TestNoLeaksAfterManyCalls: 20 calls over TLS (answered with early and
// late offer, hung up by either side; cancelled; refused at the offer;
// refused at the callee's answer) leave veilig_calls_active and
// veilig_dialogs_active at 0, no live transactions, and go_goroutines back
// near its value before the calls. Every call has an ended record.
func TestNoLeaksAfterManyCalls(t *testing.T) {
	extra, maddr := metricsConfig(t)
	srv := startServerExtra(t, serverOptions{}, "", extra, false)
	secretA := srv.addExtension(t, "1001")
	secretB := srv.addExtension(t, "1002")
	a := newUA(t, srv, "127.0.0.61", "1001", secretA)
	b := newUA(t, srv, "127.0.0.62", "1002", secretB)
	time.Sleep(time.Second)
	before := scrapeMetrics(t, maddr)
	t.Logf("before: goroutines=%v calls=%v dialogs=%v stx=%v ctx=%v regs=%v", before["go_goroutines"],
		before["veilig_calls_active"], before["veilig_dialogs_active"], before["veilig_sip_server_transactions"],
		before["veilig_sip_client_transactions"], before["veilig_registrations"])

	const n = 20
	var ids []string
	for i := range n {
		switch i % 5 {
		case 0: // early offer, answered, caller hangs up
			c := a.invite("1002", srtpOffer(a.ip, "sendrecv"))
			in := b.acceptInvite(5 * time.Second)
			in.reply(180, "Ringing", "")
			in.reply(200, "OK", answerTo(in.invite.body, b.ip, "sendrecv"))
			requireStatus(t, fmt.Sprintf("call %d", i), c.waitAnswer(5*time.Second), 200)
			c.ack("")
			b.waitRequest(5*time.Second, "ACK")
			c.bye()
			b.respond(b.waitRequest(5*time.Second, "BYE"), 200, "OK", "", "")
			ids = append(ids, c.callID)
		case 1: // late offer, answered, callee hangs up
			c := a.invite("1002", "")
			in := b.acceptInvite(5 * time.Second)
			in.reply(200, "OK", srtpOffer(b.ip, "sendrecv"))
			res := c.waitAnswer(5 * time.Second)
			requireStatus(t, fmt.Sprintf("call %d", i), res, 200)
			// A short pause: an immediate ACK can race the server's ACK
			// table (see TestLateOfferAckRace); this test is about leaks.
			time.Sleep(50 * time.Millisecond)
			c.ack(answerTo(res.body, a.ip, "sendrecv"))
			b.waitRequest(5*time.Second, "ACK")
			in.bye()
			a.respond(a.waitRequest(5*time.Second, "BYE"), 200, "OK", "", "")
			ids = append(ids, c.callID)
		case 2: // cancelled while ringing
			c := a.invite("1002", srtpOffer(a.ip, "sendrecv"))
			in := b.acceptInvite(5 * time.Second)
			in.reply(180, "Ringing", "")
			c.waitProvisional(5 * time.Second)
			c.cancel()
			b.respond(b.waitRequest(5*time.Second, "CANCEL"), 200, "OK", "", "")
			in.reply(487, "Request Terminated", "")
			b.waitRequest(5*time.Second, "ACK")
			requireStatus(t, fmt.Sprintf("call %d", i), c.waitAnswer(5*time.Second), 487)
			ids = append(ids, c.callID)
		case 3: // plain RTP offer refused by Veilig
			c := a.invite("1002", plainRTP(a.ip))
			requireStatus(t, fmt.Sprintf("call %d", i), c.waitAnswer(5*time.Second), 488)
			ids = append(ids, c.callID)
		case 4: // callee answers with plain RTP
			c := a.invite("1002", srtpOffer(a.ip, "sendrecv"))
			in := b.acceptInvite(5 * time.Second)
			in.reply(200, "OK", plainRTP(b.ip))
			requireStatus(t, fmt.Sprintf("call %d", i), c.waitAnswer(5*time.Second), 488)
			in.expectAckAndBye(5 * time.Second)
			ids = append(ids, c.callID)
		}
	}

	show := func(m map[string]float64) string {
		return fmt.Sprintf("goroutines=%v calls=%v dialogs=%v server_tx=%v client_tx=%v", m["go_goroutines"],
			m["veilig_calls_active"], m["veilig_dialogs_active"], m["veilig_sip_server_transactions"],
			m["veilig_sip_client_transactions"])
	}
	// Calls and dialogs go at once.
	var after map[string]float64
	for range 30 {
		after = scrapeMetrics(t, maddr)
		if after["veilig_calls_active"] == 0 && after["veilig_dialogs_active"] == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("right after the calls: %s", show(after))
	if after["veilig_calls_active"] != 0 || after["veilig_dialogs_active"] != 0 {
		t.Errorf("calls/dialogs still held 3 s after every call ended: %s", show(after))
	}
	// Transactions: on TLS, Timer L/M (RFC 6026, 64*T1 = 32 s) keep
	// 2xx-answered INVITE transactions; Veilig keeps non-2xx INVITE server
	// transactions for T4 (5 s) after their ACK. Allow 40 s.
	settleStart := time.Now()
	for time.Since(settleStart) < 40*time.Second {
		after = scrapeMetrics(t, maddr)
		if after["veilig_calls_active"] == 0 && after["veilig_dialogs_active"] == 0 &&
			after["veilig_sip_server_transactions"] == 0 && after["veilig_sip_client_transactions"] == 0 &&
			after["go_goroutines"] <= before["go_goroutines"]+5 {
			break
		}
		time.Sleep(time.Second)
	}
	t.Logf("%v later: %s", time.Since(settleStart).Round(time.Second), show(after))
	for _, g := range []string{"veilig_calls_active", "veilig_dialogs_active", "veilig_sip_server_transactions", "veilig_sip_client_transactions"} {
		if v, ok := after[g]; !ok || v != 0 {
			t.Errorf("%s = %v (present %v) after all calls ended, want 0", g, v, ok)
		}
	}
	if after["go_goroutines"] > before["go_goroutines"]+5 {
		t.Errorf("go_goroutines %v after the calls, %v before: leak", after["go_goroutines"], before["go_goroutines"])
	}

	// Every call has an ended record.
	out, code := srv.cli(t, "", "calls", "--json", "--limit", "500")
	if code != 0 {
		t.Fatalf("veilig calls --json exited %d:\n%s", code, out)
	}
	var recs []idCallRecord
	if i := strings.Index(out, "["); i >= 0 {
		_ = json.NewDecoder(strings.NewReader(out[i:])).Decode(&recs)
	}
	disp := map[string]string{}
	for _, r := range recs {
		if !isEmpty(r.EndedAt) {
			disp[r.ID] = r.Disposition
		}
	}
	count := map[string]int{}
	for _, id := range ids {
		d, ok := disp[id]
		if !ok {
			t.Errorf("no ended record for call %s", id)
		}
		count[d]++
	}
	t.Logf("dispositions: %v", count)
	if count["answered"] != 8 || count["cancelled"] != 4 {
		t.Errorf("dispositions %v: want 8 answered and 4 cancelled (plus 8 refused/failed)", count)
	}
}

// dialSIPUDP opens a connected UDP socket from localIP to addr; sipConn
// reads one datagram per message through a large buffer.
func dialSIPUDP(t *testing.T, localIP, addr string) *sipConn {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(localIP)}, raddr)
	if err != nil {
		t.Fatalf("UDP dial %s from %s: %v", addr, localIP, err)
	}
	c := &sipConn{conn: conn, r: bufio.NewReaderSize(conn, 1<<16)}
	t.Cleanup(func() { conn.Close() })
	return c
}

// registerUDP registers user over a UDP sipConn (Via/Contact say UDP).
func registerUDP(t *testing.T, c *sipConn, domain, user, pass string) *sipMessage {
	t.Helper()
	la := c.conn.LocalAddr().String()
	req := registerRequest{
		user: user, domain: domain, callID: randHex(12) + "@veilig-e2e", fromTag: randHex(6),
		branch: "z9hG4bK" + randHex(8), cseq: 1, expires: 300,
		contact: fmt.Sprintf("<sip:%s@%s;transport=udp>", user, la),
	}
	udp := func(s string) string { return strings.Replace(s, "SIP/2.0/TLS", "SIP/2.0/UDP", 1) }
	c.send(t, udp(req.build(la)))
	chal := c.readFinal(t, 5*time.Second)
	if chal.status() != 401 {
		t.Fatalf("UDP REGISTER %s: got %q, want 401", user, chal.start)
	}
	ch := pickChallenge(t, chal.all("WWW-Authenticate"), "SHA-256")
	req.cseq, req.branch = 2, "z9hG4bK"+randHex(8)
	req.auth = ch.Authorization(user, pass, "REGISTER", "sip:"+domain)
	c.send(t, udp(req.build(la)))
	return c.readFinal(t, 5*time.Second)
}

// TestRegistrationsSurviveRestart: 1002 registers over TLS and 1003 over
// UDP; after SIGTERM (clean exit) and a new start on the same data dir the
// server reports the restored registrations (banner and
// veilig_registrations), and a call to 1003 reaches the UDP device on the
// binding it registered before the restart.
func TestRegistrationsSurviveRestart(t *testing.T) {
	extra, maddr := metricsConfig(t)
	srv := startServerExtra(t, serverOptions{UDP: true}, "  insecure_sdes_over_plain_transport: true\n", extra, false)
	secretA := srv.addExtension(t, "1001")
	secretB := srv.addExtension(t, "1002")
	secretC := srv.addExtension(t, "1003")
	newUA(t, srv, "127.0.0.64", "1002", secretB)
	udpConn := dialSIPUDP(t, "127.0.0.65", srv.udpAddr)
	if res := registerUDP(t, udpConn, srv.domain, "1003", secretC); res.status() != 200 {
		t.Fatalf("UDP REGISTER 1003: got %q\n%s", res.start, res.raw)
	}
	time.Sleep(700 * time.Millisecond) // bindings are persisted every 200 ms
	if v := scrapeMetrics(t, maddr)["veilig_registrations"]; v != 2 {
		t.Errorf("veilig_registrations before restart = %v, want 2", v)
	}

	srv.restart(t, "veilig-restarted")
	if !strings.Contains(srv.proc.stdout.String(), "restored 2 registrations") {
		t.Errorf("restart banner does not say 'restored 2 registrations':\n%s", srv.proc.stdout.String())
	}
	var regs float64
	for range 40 {
		if m, err := tryScrapeMetrics(maddr); err == nil {
			if regs = m["veilig_registrations"]; regs >= 2 {
				break
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	if regs < 2 {
		t.Errorf("veilig_registrations after restart = %v, want 2", regs)
	}

	// The UDP device registered before the restart is reached.
	a := newUA(t, srv, "127.0.0.63", "1001", secretA)
	dev := &sipUA{sipConn: udpConn, t: t, srv: srv, ip: "127.0.0.65", user: "1003"}
	c := a.invite("1003", srtpOffer(a.ip, "sendrecv"))
	in := dev.acceptInvite(5 * time.Second)
	in.reply(486, "Busy Here", "")
	requireStatus(t, "call to the UDP device restored from the store", c.waitAnswer(5*time.Second), 486)
	if rec := srv.waitRecordFor(t, 10*time.Second, c.callID); rec.Disposition != "busy" {
		t.Errorf("record: want busy; got %s", describeCall(rec.callRecord))
	}
}

// certAuthority is a throwaway CA for TestTLSCertificateReload.
type certAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T) certAuthority {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "veilig e2e test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return certAuthority{cert: cert, key: key}
}

// issue writes a new server certificate (serial, CN name) and key to
// certPath/keyPath, each replaced atomically (key first), and returns the
// certificate's DER.
func (ca certAuthority) issue(t *testing.T, serial int64, name, certPath, keyPath string) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(30 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
	writeAtomic(t, keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	writeAtomic(t, certPath, chain)
	return der
}

func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// handshakeCert makes a new TLS connection (verifying against the test CA)
// and returns the leaf certificate the server presented.
func handshakeCert(t *testing.T, addr string, ca certAuthority) ([]byte, error) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.72")}}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Raw, nil
}

// waitCert polls new handshakes for up to d until the server presents want.
func waitCert(t *testing.T, addr string, ca certAuthority, want []byte, d time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		got, err := handshakeCert(t, addr, ca)
		if err != nil {
			t.Fatalf("TLS handshake after certificate change: %v", err)
		}
		if string(got) == string(want) {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// TestTLSCertificateReload: with tls.cert_file/key_file configured, a
// replaced certificate is served to new handshakes after the file poll
// (2 s) and at once after SIGHUP, while a connection opened (and
// registered) before keeps working: re-REGISTER and OPTIONS on it are
// answered.
func TestTLSCertificateReload(t *testing.T) {
	dir := artifactDir(t)
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca := newCA(t)
	first := ca.issue(t, 100, "veilig e2e first", certPath, keyPath)
	tlsYAML := fmt.Sprintf("tls:\n  cert_file: %q\n  key_file: %q\n", certPath, keyPath)
	srv := startServerExtra(t, serverOptions{}, "", tlsYAML, true)
	secret := srv.addExtension(t, "1001")

	if got, err := handshakeCert(t, srv.tlsAddr, ca); err != nil || string(got) != string(first) {
		t.Fatalf("initial handshake: err=%v, certificate is the configured one: %v", err, string(got) == string(first))
	}
	old := newUA(t, srv, "127.0.0.71", "1001", secret)

	oldStillWorks := func(when string) {
		t.Helper()
		if _, final := old.register(t, srv.domain, "1001", secret, "SHA-256"); final.status() != 200 {
			t.Errorf("%s: re-REGISTER on the old connection: got %q, want 200", when, final.start)
		}
		old.outOfDialog("OPTIONS", "1001", nil, "")
		if res := old.waitFinal(5*time.Second, "OPTIONS"); res.status() != 407 {
			t.Errorf("%s: OPTIONS on the old connection: got %q, want 407", when, res.start)
		}
	}

	// Replace the files; the poller picks them up.
	time.Sleep(1100 * time.Millisecond) // a new mtime second
	second := ca.issue(t, 101, "veilig e2e second", certPath, keyPath)
	start := time.Now()
	if !waitCert(t, srv.tlsAddr, ca, second, 8*time.Second) {
		t.Errorf("new handshakes still get the old certificate 8 s after the files were replaced")
	} else {
		t.Logf("file poll: new certificate served after %v", time.Since(start).Round(100*time.Millisecond))
	}
	oldStillWorks("after the file poll reload")

	// Replace again and send SIGHUP: served at once.
	third := ca.issue(t, 102, "veilig e2e third", certPath, keyPath)
	if err := srv.proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if !waitCert(t, srv.tlsAddr, ca, third, 5*time.Second) {
		t.Errorf("new handshakes still get the old certificate 5 s after SIGHUP")
	} else {
		t.Logf("SIGHUP: new certificate served after %v", time.Since(start).Round(100*time.Millisecond))
	}
	srv.waitEvent(t, 5*time.Second, "tls.reloaded", nil)
	oldStillWorks("after SIGHUP")
	if srv.proc.Exited() {
		t.Fatalf("veilig exited during the reloads")
	}
}
