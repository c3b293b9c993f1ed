package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// startStunnelClient starts a client-mode stunnel: plain TCP accepted on
// 127.0.0.1:<returned port> is carried over TLS to connect (the server),
// leaving from localIP. It is a test shim for sipp 3.6.1, which has no TLS:
// it verifies nothing.
func startStunnelClient(t *testing.T, name, localIP, connect string) int {
	t.Helper()
	requireTools(t, "stunnel")
	port := freePort(t, "tcp", "127.0.0.1")
	conf := fmt.Sprintf(`foreground = yes
pid =
syslog = no
debug = 5
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1

[%s]
client = yes
accept = 127.0.0.1:%d
connect = %s
local = %s
sslVersionMin = TLSv1.2
verifyChain = no
verifyPeer = no
`, name, port, connect, localIP)
	startStunnel(t, name, conf, port)
	return port
}

// startStunnelServer starts a server-mode stunnel that terminates TLS on
// listen (with a throwaway self-signed certificate) and forwards plain TCP
// to connect (a sipp UAS).
func startStunnelServer(t *testing.T, name, listen, connect string) {
	t.Helper()
	requireTools(t, "stunnel")
	host, _, _ := net.SplitHostPort(listen)
	cert, key := writeThrowawayCert(t, host)
	_, portStr, _ := net.SplitHostPort(listen)
	port, _ := strconv.Atoi(portStr)
	conf := fmt.Sprintf(`foreground = yes
pid =
syslog = no
debug = 5

[%s]
accept = %s
connect = %s
cert = %s
key = %s
sslVersionMin = TLSv1.2
`, name, listen, connect, cert, key)
	startStunnel(t, name, conf, port)
}

func startStunnel(t *testing.T, name, conf string, port int) {
	t.Helper()
	path := filepath.Join(artifactDir(t), name+".stunnel.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	startProc(t, procSpec{name: "stunnel-" + name, args: []string{"stunnel", path}, timeout: 10 * time.Minute})
	waitTCPListening(t, port, 10*time.Second, "stunnel "+name)
}

// writeThrowawayCert writes a self-signed ECDSA certificate for host and
// returns the cert and key file paths.
func writeThrowawayCert(t *testing.T, host string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP(host)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := artifactDir(t)
	certPath, keyPath = filepath.Join(dir, "throwaway.crt"), filepath.Join(dir, "throwaway.key")
	writePEM(t, certPath, "CERTIFICATE", der)
	writePEM(t, keyPath, "EC PRIVATE KEY", kb)
	return certPath, keyPath
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
