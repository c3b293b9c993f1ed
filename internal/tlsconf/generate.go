package tlsconf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

const (
	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 397 * 24 * time.Hour // the CA/Browser Forum ceiling, which Apple clients enforce
	backdate       = 5 * time.Minute      // tolerate clients whose clocks run slightly behind
)

func caCertPath(dir string) string     { return filepath.Join(dir, "ca.crt") }
func caKeyPath(dir string) string      { return filepath.Join(dir, "ca.key") }
func serverCertPath(dir string) string { return filepath.Join(dir, "server.crt") }
func serverKeyPath(dir string) string  { return filepath.Join(dir, "server.key") }

// keyPair is a parsed certificate with its signer and PEM forms.
type keyPair struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
	keyPEM  []byte
}

// ensureGenerated returns the server certificate from Dir, reusing what is
// there when it is still good and regenerating what is missing, invalid,
// close to expiry, or (for the server certificate) not covering the
// current names. Called with m.mu held.
func (m *Manager) ensureGenerated() (*tls.Certificate, error) {
	dir := m.opts.Dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tlsconf: create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tlsconf: restrict %s: %w", dir, err)
	}
	want, err := wantedNames(m.opts.Domain, m.opts.Hosts, net.InterfaceAddrs)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: list interface addresses: %w", err)
	}
	now := m.now()

	ca, why, err := readPair(caCertPath(dir), caKeyPath(dir))
	if err != nil {
		return nil, err
	}
	if why == "" {
		switch {
		case !ca.cert.IsCA:
			why = "ca.crt is not a CA certificate"
		case now.Add(renewBefore).After(ca.cert.NotAfter):
			why = "the local CA expires within 30 days"
		}
	}
	if why != "" {
		ca, err = newCA(m.opts.Domain, now)
		if err != nil {
			return nil, err
		}
		if err := writePair(ca, caCertPath(dir), caKeyPath(dir)); err != nil {
			return nil, err
		}
		m.log.Warn("generated a new local CA; give its certificate to phones that must trust this server",
			"reason", why, "ca_file", caCertPath(dir))
	}

	srv, why, err := readPair(serverCertPath(dir), serverKeyPath(dir))
	if err != nil {
		return nil, err
	}
	if why == "" {
		why = serverProblem(srv.cert, ca.cert, want, now)
	}
	if why != "" {
		srv, err = newServer(ca, m.opts.Domain, want, now, now.Add(serverValidity))
		if err != nil {
			return nil, err
		}
		if err := writePair(srv, serverCertPath(dir), serverKeyPath(dir)); err != nil {
			return nil, err
		}
		m.log.Info("generated a server certificate", "reason", why)
	}
	return &tls.Certificate{
		Certificate: [][]byte{srv.cert.Raw},
		PrivateKey:  srv.key,
		Leaf:        srv.cert,
	}, nil
}

// serverProblem says why an existing server certificate cannot be reused,
// or "" when it can.
func serverProblem(leaf, ca *x509.Certificate, want names, now time.Time) string {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return "server.crt does not verify against the local CA: " + err.Error()
	}
	if now.Add(renewBefore).After(leaf.NotAfter) {
		return "server.crt expires within 30 days"
	}
	if !want.coveredBy(leaf.DNSNames, leaf.IPAddresses) {
		return "server.crt does not cover the current domain and hosts"
	}
	return ""
}

// readPair loads a certificate and its key. A missing or unusable pair is
// not an error but a reason to regenerate (why != ""); any other I/O
// failure, such as a permission problem, is an error, so that a CA users
// already trust is never replaced by accident.
func readPair(certPath, keyPath string) (kp keyPair, why string, err error) {
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		return kp, filepath.Base(certPath) + " is missing", nil
	}
	if err != nil {
		return kp, "", fmt.Errorf("tlsconf: read %s: %w", certPath, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return kp, filepath.Base(keyPath) + " is missing", nil
	}
	if err != nil {
		return kp, "", fmt.Errorf("tlsconf: read %s: %w", keyPath, err)
	}
	if err := restrictKey(keyPath); err != nil {
		return kp, "", err
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return kp, fmt.Sprintf("%s and %s are unusable: %v", filepath.Base(certPath), filepath.Base(keyPath), err), nil
	}
	signer, ok := c.PrivateKey.(crypto.Signer)
	if !ok {
		return kp, filepath.Base(keyPath) + " holds a key that cannot sign", nil
	}
	return keyPair{cert: c.Leaf, key: signer, certPEM: certPEM, keyPEM: keyPEM}, "", nil
}

// restrictKey tightens a private key file someone loosened, since anyone
// who can read ca.key can impersonate this server to every phone.
func restrictKey(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("tlsconf: stat %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return fmt.Errorf("tlsconf: restrict %s: %w", path, err)
		}
	}
	return nil
}

func newCA(domain string, now time.Time) (keyPair, error) {
	subject := pkix.Name{Organization: []string{"Veilig"}, CommonName: "Veilig local CA"}
	if domain != "" {
		subject.CommonName += " " + domain
	}
	tmpl := &x509.Certificate{
		Subject:               subject,
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return issue(tmpl, nil)
}

func newServer(ca keyPair, domain string, want names, notBefore, notAfter time.Time) (keyPair, error) {
	cn := domain
	if cn == "" {
		cn = "localhost"
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"Veilig"}, CommonName: cn},
		NotBefore:             notBefore.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              want.dns,
		IPAddresses:           want.netIPs(),
	}
	return issue(tmpl, &ca)
}

// issue creates a fresh P-256 key and a certificate for it, signed by
// parent or, when parent is nil, by itself.
func issue(tmpl *x509.Certificate, parent *keyPair) (keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return keyPair{}, fmt.Errorf("tlsconf: generate key: %w", err)
	}
	tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return keyPair{}, fmt.Errorf("tlsconf: generate serial: %w", err)
	}
	signerCert, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signerCert, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		return keyPair{}, fmt.Errorf("tlsconf: create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return keyPair{}, fmt.Errorf("tlsconf: parse new certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return keyPair{}, fmt.Errorf("tlsconf: encode key: %w", err)
	}
	return keyPair{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// writePair writes the key before the certificate, so that a crash in
// between leaves a pair that fails to match and is regenerated, never a
// new certificate next to a stale key.
func writePair(kp keyPair, certPath, keyPath string) error {
	if err := writeAtomic(keyPath, kp.keyPEM, 0o600); err != nil {
		return err
	}
	return writeAtomic(certPath, kp.certPEM, 0o644)
}

// writeAtomic replaces path with data through a synced temporary file and
// a rename, so readers (and a crash) see the old or the new file, whole.
func writeAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("tlsconf: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("tlsconf: write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("tlsconf: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("tlsconf: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("tlsconf: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tlsconf: write %s: %w", path, err)
	}
	return nil
}
