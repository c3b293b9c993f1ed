package tlsconf

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func newGenerated(t *testing.T, dir string, domain string, hosts ...string) *Manager {
	t.Helper()
	m, err := New(Options{Dir: dir, Domain: domain, Hosts: hosts}, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGenerateAndReuse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	m := newGenerated(t, dir, "veilig.local", "127.0.0.1:5061")

	for name, want := range map[string]os.FileMode{
		"ca.crt": 0o644, "ca.key": 0o600, "server.crt": 0o644, "server.key": 0o600,
	} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", fi.Mode().Perm())
	}
	if m.CAFile() != filepath.Join(dir, "ca.crt") {
		t.Errorf("CAFile = %q", m.CAFile())
	}

	ca := readFile(t, m.CAFile())
	caCert := parsePEMCert(t, ca)
	if !caCert.IsCA || caCert.NotAfter.Sub(caCert.NotBefore) < 9*365*24*time.Hour {
		t.Errorf("CA: IsCA=%v validity %v", caCert.IsCA, caCert.NotAfter.Sub(caCert.NotBefore))
	}
	leaf := m.Certificate()
	if d := leaf.NotAfter.Sub(time.Now()); d < 396*24*time.Hour || d > 398*24*time.Hour {
		t.Errorf("server validity %v, want about 397 days", d)
	}
	if err := leaf.CheckSignatureFrom(caCert); err != nil {
		t.Errorf("server cert not signed by CA: %v", err)
	}

	// A restart with the same inputs reuses everything.
	m2 := newGenerated(t, dir, "veilig.local", "127.0.0.1:5061")
	if m2.Fingerprint() != m.Fingerprint() {
		t.Error("server certificate regenerated on restart")
	}
	if !bytes.Equal(readFile(t, m2.CAFile()), ca) {
		t.Error("CA regenerated on restart")
	}
}

func TestSANsCoverHosts(t *testing.T) {
	m := newGenerated(t, t.TempDir(), "veilig.local", "0.0.0.0:5061", "[::]:5061", "192.0.2.7", "sip.example.com:5061")
	leaf := m.Certificate()
	for _, name := range []string{"veilig.local", "localhost", "sip.example.com", "127.0.0.1", "::1", "192.0.2.7"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("certificate does not cover %s: %v", name, err)
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		if err := leaf.VerifyHostname(ipn.IP.String()); err != nil {
			t.Errorf("certificate does not cover interface address %s", ipn.IP)
		}
	}
}

func TestWantedNames(t *testing.T) {
	ifaces := func() ([]net.Addr, error) {
		return []net.Addr{
			&net.IPNet{IP: net.ParseIP("10.0.0.5"), Mask: net.CIDRMask(24, 32)},
			&net.IPNet{IP: net.ParseIP("fe80::1"), Mask: net.CIDRMask(64, 128)},
			&net.IPNet{IP: net.ParseIP("2001:db8::5"), Mask: net.CIDRMask(64, 128)},
		}, nil
	}
	n, err := wantedNames("Veilig.Local", []string{"0.0.0.0:5061", "::", "SIP.example.com"}, ifaces)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"localhost", "sip.example.com", "veilig.local"}; !slices.Equal(n.dns, want) {
		t.Errorf("dns = %v, want %v", n.dns, want)
	}
	var ips []string
	for _, ip := range n.ips {
		ips = append(ips, ip.String())
	}
	if want := []string{"10.0.0.5", "127.0.0.1", "::1", "2001:db8::5"}; !slices.Equal(ips, want) {
		t.Errorf("ips = %v, want %v (no link-local)", ips, want)
	}
	// Without wildcards the interfaces are not consulted.
	n, _ = wantedNames("a.example", []string{"127.0.0.1:5061"}, func() ([]net.Addr, error) {
		t.Error("interfaces listed for a concrete host")
		return nil, nil
	})
	if len(n.ips) != 2 {
		t.Errorf("ips = %v, want the two loopbacks", n.ips)
	}
}

func TestRegenerateOnDomainChange(t *testing.T) {
	dir := t.TempDir()
	m1 := newGenerated(t, dir, "a.example")
	ca := readFile(t, m1.CAFile())
	m2 := newGenerated(t, dir, "b.example")
	if m2.Fingerprint() == m1.Fingerprint() {
		t.Fatal("server certificate kept after the domain changed")
	}
	if err := m2.Certificate().VerifyHostname("b.example"); err != nil {
		t.Error(err)
	}
	if !bytes.Equal(readFile(t, m2.CAFile()), ca) {
		t.Error("CA replaced on a domain change; phones would have to trust it again")
	}
	// Adding a host regenerates as well.
	m3 := newGenerated(t, dir, "b.example", "192.0.2.9")
	if m3.Fingerprint() == m2.Fingerprint() {
		t.Error("server certificate kept after a host was added")
	}
}

func TestRegenerateNearExpiryOrDamage(t *testing.T) {
	dir := t.TempDir()
	m := newGenerated(t, dir, "veilig.local")
	ca := readFile(t, m.CAFile())

	// A server certificate 10 days from expiry is replaced.
	caPair, why, err := readPair(caCertPath(dir), caKeyPath(dir))
	if err != nil || why != "" {
		t.Fatalf("readPair CA: %v %s", err, why)
	}
	want, _ := wantedNames("veilig.local", nil, net.InterfaceAddrs)
	now := time.Now()
	old, err := newServer(caPair, "veilig.local", want, now.Add(-380*24*time.Hour), now.Add(10*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := writePair(old, serverCertPath(dir), serverKeyPath(dir)); err != nil {
		t.Fatal(err)
	}
	m = newGenerated(t, dir, "veilig.local")
	if m.Certificate().Equal(old.cert) || time.Until(m.Certificate().NotAfter) < 300*24*time.Hour {
		t.Error("near-expiry server certificate reused")
	}

	for _, damage := range []func(){
		func() { os.Remove(serverKeyPath(dir)) },
		func() { os.WriteFile(serverCertPath(dir), []byte("garbage"), 0o644) },
	} {
		before := m.Fingerprint()
		damage()
		m = newGenerated(t, dir, "veilig.local")
		if m.Fingerprint() == before {
			t.Error("damaged server certificate reused")
		}
		if !bytes.Equal(readFile(t, m.CAFile()), ca) {
			t.Error("CA replaced when only the server files were damaged")
		}
	}

	// A lost CA key means a new CA and a server certificate it signed.
	os.Remove(caKeyPath(dir))
	m = newGenerated(t, dir, "veilig.local")
	newCA := readFile(t, m.CAFile())
	if bytes.Equal(newCA, ca) {
		t.Fatal("CA kept without its key")
	}
	if err := m.Certificate().CheckSignatureFrom(parsePEMCert(t, newCA)); err != nil {
		t.Errorf("server certificate not reissued by the new CA: %v", err)
	}
}

func TestLooseKeyModeIsTightened(t *testing.T) {
	dir := t.TempDir()
	newGenerated(t, dir, "veilig.local")
	if err := os.Chmod(caKeyPath(dir), 0o644); err != nil {
		t.Fatal(err)
	}
	newGenerated(t, dir, "veilig.local")
	if fi, _ := os.Stat(caKeyPath(dir)); fi.Mode().Perm() != 0o600 {
		t.Errorf("ca.key mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestServerConfig(t *testing.T) {
	m := newGenerated(t, t.TempDir(), "veilig.local")
	c := m.ServerConfig()
	if c.MinVersion != tls.VersionTLS12 || c.ClientAuth != tls.NoClientCert || c.NextProtos != nil || c.GetCertificate == nil {
		t.Errorf("unexpected config: min %x auth %v protos %v", c.MinVersion, c.ClientAuth, c.NextProtos)
	}
	for _, id := range c.CipherSuites {
		name := tls.CipherSuiteName(id)
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "_GCM_") || strings.Contains(name, "CHACHA20")) {
			t.Errorf("suite %s is not ECDHE with AEAD", name)
		}
	}
	legacy, err := New(Options{Dir: t.TempDir(), MinVersion: tls.VersionTLS10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lc := legacy.ServerConfig(); lc.MinVersion != tls.VersionTLS10 || len(lc.CipherSuites) <= len(c.CipherSuites) {
		t.Errorf("legacy config: min %x, %d suites", lc.MinVersion, len(lc.CipherSuites))
	}
}

func TestFingerprintFormat(t *testing.T) {
	m := newGenerated(t, t.TempDir(), "veilig.local")
	if !regexp.MustCompile(`^SHA-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}$`).MatchString(m.Fingerprint()) {
		t.Errorf("Fingerprint = %q", m.Fingerprint())
	}
}

// TestHandshake is a real TLS handshake on loopback, verified the way a
// phone given CAFile verifies it.
func TestHandshake(t *testing.T) {
	m := newGenerated(t, t.TempDir(), "veilig.local", "127.0.0.1:0")
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(readFile(t, m.CAFile())) {
		t.Fatal("CA file holds no certificate")
	}
	srv := startEcho(t, m.ServerConfig())

	for _, serverName := range []string{"", "veilig.local", "localhost"} {
		conn, err := tls.Dial("tcp", srv, &tls.Config{RootCAs: pool, ServerName: serverName})
		if err != nil {
			t.Fatalf("dial (ServerName %q): %v", serverName, err)
		}
		st := conn.ConnectionState()
		if st.Version < tls.VersionTLS12 || st.NegotiatedProtocol != "" {
			t.Errorf("version %x, ALPN %q", st.Version, st.NegotiatedProtocol)
		}
		echo(t, conn, "hello")
		conn.Close()
	}

	refused := []*tls.Config{
		{RootCAs: pool, MaxVersion: tls.VersionTLS11},
		{RootCAs: pool, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}},
		{ServerName: "veilig.local"}, // system roots do not know the local CA
	}
	for i, cfg := range refused {
		if conn, err := tls.Dial("tcp", srv, cfg); err == nil {
			conn.Close()
			t.Errorf("client %d: handshake succeeded, want refusal", i)
		}
	}
}

// testCA issues server certificates the way an operator's own CA would.
type testCA struct {
	pair keyPair
	pool *x509.CertPool
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	ca, err := newCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return testCA{pair: ca, pool: pool}
}

// write issues a certificate for domain and localhost and writes it to
// cert.pem/key.pem in dir.
func (ca testCA) write(t *testing.T, dir, domain string) keyPair {
	t.Helper()
	want, _ := wantedNames(domain, nil, nil)
	now := time.Now()
	kp, err := newServer(ca.pair, domain, want, now, now.Add(90*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := writePair(kp, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")); err != nil {
		t.Fatal(err)
	}
	return kp
}

func newFromFiles(t *testing.T, dir string, log *slog.Logger) *Manager {
	t.Helper()
	m, err := New(Options{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"), Domain: "a.example"}, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

func TestFileReloadKeepsExistingConnections(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	a := ca.write(t, dir, "a.example")
	m := newFromFiles(t, dir, nil)
	if m.CAFile() != "" {
		t.Errorf("CAFile = %q with configured files", m.CAFile())
	}
	srv := startEcho(t, m.ServerConfig())
	client := &tls.Config{RootCAs: ca.pool, ServerName: "localhost"}

	conn1, err := tls.Dial("tcp", srv, client)
	if err != nil {
		t.Fatal(err)
	}
	defer conn1.Close()
	if !conn1.ConnectionState().PeerCertificates[0].Equal(a.cert) {
		t.Fatal("first handshake did not serve certificate A")
	}

	b := ca.write(t, dir, "b.example")
	if err := m.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	conn2, err := tls.Dial("tcp", srv, client)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	if !conn2.ConnectionState().PeerCertificates[0].Equal(b.cert) {
		t.Error("new handshake after reload did not serve certificate B")
	}
	echo(t, conn1, "still here") // the connection made before the reload lives on
	echo(t, conn2, "new")
}

func TestBadFilesKeepOldCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	ca.write(t, dir, "a.example")
	m := newFromFiles(t, dir, nil)

	other := newTestCA(t).write(t, t.TempDir(), "x.example")
	for name, damage := range map[string]func(){
		"garbage cert":   func() { os.WriteFile(filepath.Join(dir, "cert.pem"), []byte("not a cert"), 0o644) },
		"mismatched key": func() { os.WriteFile(filepath.Join(dir, "key.pem"), other.keyPEM, 0o600) },
		"missing key":    func() { os.Remove(filepath.Join(dir, "key.pem")) },
	} {
		ca.write(t, dir, "a.example") // start each case from a good pair
		if err := m.Reload(); err != nil {
			t.Fatal(err)
		}
		before := m.Fingerprint()
		damage()
		if err := m.Reload(); err == nil {
			t.Errorf("%s: Reload succeeded", name)
		}
		if m.Fingerprint() != before {
			t.Errorf("%s: certificate changed after a failed reload", name)
		}
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(Options{CertFile: "x.pem"}, nil); err == nil {
		t.Error("cert file without key file accepted")
	}
	if _, err := New(Options{}, nil); err == nil {
		t.Error("no files and no directory accepted")
	}
	if _, err := New(Options{CertFile: filepath.Join(dir, "none.pem"), KeyFile: filepath.Join(dir, "none.key")}, nil); err == nil {
		t.Error("missing files accepted")
	}

	// An expired certificate is refused at start.
	ca := newTestCA(t)
	want, _ := wantedNames("a.example", nil, nil)
	now := time.Now()
	kp, err := newServer(ca.pair, "a.example", want, now.Add(-48*time.Hour), now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := writePair(kp, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}, nil); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired certificate: err = %v", err)
	}
}

// TestWatch runs the poller on fake time: a broken write is logged and
// ignored, the next good write is picked up.
func TestWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		ca := newTestCA(t)
		ca.write(t, dir, "a.example")
		var logs lockedBuffer
		m := newFromFiles(t, dir, slog.New(slog.NewTextHandler(&logs, nil)))
		before := m.Fingerprint()

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- m.Watch(ctx) }()

		time.Sleep(5 * time.Second) // nothing changed: nothing happens
		synctest.Wait()
		if strings.Contains(logs.String(), "failed") || m.Fingerprint() != before {
			t.Fatalf("reload without a change; logs:\n%s", logs.String())
		}

		if err := writeAtomic(filepath.Join(dir, "cert.pem"), []byte("half written"), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if !strings.Contains(logs.String(), "tls certificate reload failed") || m.Fingerprint() != before {
			t.Fatalf("broken file: fingerprint changed or no error logged; logs:\n%s", logs.String())
		}

		b := ca.write(t, dir, "a.example")
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if !m.Certificate().Equal(b.cert) {
			t.Fatal("Watch did not pick up the new certificate")
		}

		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch returned %v", err)
		}
	})
}

func TestWatchRenewsGenerated(t *testing.T) {
	m := newGenerated(t, t.TempDir(), "veilig.local")
	if m.due() {
		t.Fatal("fresh certificate due for renewal")
	}
	before := m.Certificate()
	m.now = func() time.Time { return before.NotAfter.Add(-20 * 24 * time.Hour) }
	if !m.due() {
		t.Fatal("certificate 20 days from expiry not due")
	}
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	if m.Certificate().Equal(before) || !m.Certificate().NotAfter.After(before.NotAfter) {
		t.Error("certificate not renewed")
	}
}

// startEcho serves cfg on a loopback port, echoing each connection, and
// returns its address. Everything stops when the test ends.
func startEcho(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { io.Copy(c, c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func echo(t *testing.T, c *tls.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo got %q, %v", buf, err)
	}
}

func parsePEMCert(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatal("no certificate in PEM")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
