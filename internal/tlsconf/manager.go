// Package tlsconf provides the TLS settings and the server certificate for
// Veilig's listeners.
//
// With no certificate configured it runs a local CA under Options.Dir and
// issues a server certificate from it, so TLS works from the first start;
// users hand CAFile to their softphones. With configured files it serves
// those and reloads them when they change (Watch) or on request (Reload).
// Either way the served certificate sits behind an atomic pointer read by
// GetCertificate: a reload affects new handshakes only, never established
// connections or the registrations riding on them.
package tlsconf

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options says where the certificate comes from and which names it must
// cover.
type Options struct {
	// CertFile and KeyFile are a PEM chain and key; both or neither. When
	// neither is set, a local CA and server certificate are kept in Dir.
	CertFile, KeyFile string

	// Dir holds generated material (data_dir/tls); created 0700.
	Dir string

	// Domain is the SIP domain, always covered by a generated certificate.
	Domain string

	// Hosts are the listen hosts (host or host:port). A wildcard ("",
	// "0.0.0.0", "::") stands for every local interface address plus
	// 127.0.0.1, ::1 and localhost.
	Hosts []string

	// MinVersion is a crypto/tls version constant; 0 means TLS 1.2. A lower
	// value is honoured (config gates it behind an insecure_ key).
	MinVersion uint16
}

// renewBefore is how long before expiry a generated certificate is
// replaced, so a server that stays up renews without anyone noticing.
const renewBefore = 30 * 24 * time.Hour

// Manager owns the served certificate. It is safe for concurrent use.
type Manager struct {
	opts Options
	log  *slog.Logger

	cert atomic.Pointer[tls.Certificate] // never nil after New

	mu     sync.Mutex // serialises reloads and guards stamps
	stamps [2]stamp   // configured cert and key files as last read

	pollEvery time.Duration    // Watch interval; tests shorten it
	now       func() time.Time // tests move it
}

// New loads or generates the certificate. It fails when configured files
// cannot be used or generated material cannot be written, since a TLS
// listener without a certificate is useless.
func New(opts Options, log *slog.Logger) (*Manager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, errors.New("tlsconf: cert file and key file must be given together")
	}
	if opts.CertFile == "" && opts.Dir == "" {
		return nil, errors.New("tlsconf: a directory for generated certificates is required when no cert file is configured")
	}
	if opts.MinVersion == 0 {
		opts.MinVersion = tls.VersionTLS12
	}
	m := &Manager{
		opts:      opts,
		log:       log.With("component", "tlsconf"),
		pollEvery: 2 * time.Second,
		now:       time.Now,
	}
	if opts.MinVersion < tls.VersionTLS12 {
		m.log.Warn("legacy TLS versions enabled", "min_version", tls.VersionName(opts.MinVersion))
	}
	if err := m.reload(); err != nil {
		return nil, err
	}
	return m, nil
}

// files reports whether the certificate comes from configured files.
func (m *Manager) files() bool { return m.opts.CertFile != "" }

// Reload re-reads the configured files, or re-checks the generated
// material (renewing it, or covering hosts that changed). On failure the
// current certificate stays in service and the error is returned for the
// caller (the SIGHUP handler) to report.
func (m *Manager) Reload() error {
	return m.reload()
}

func (m *Manager) reload() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var (
		c   *tls.Certificate
		err error
	)
	if m.files() {
		c, err = m.loadFiles()
	} else {
		c, err = m.ensureGenerated()
	}
	if err != nil {
		return err
	}
	old := m.cert.Swap(c)
	if old == nil || !sameLeaf(old, c) {
		m.log.Info("tls certificate in service",
			"fingerprint", fingerprint(c.Leaf),
			"not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339),
			"names", strings.Join(sanNames(c.Leaf), ","))
	}
	return nil
}

// Watch polls until ctx ends: configured files are reloaded when their
// size, mtime or identity changes (covering editors, cp and the symlink
// swaps of Kubernetes secrets); generated certificates are renewed before
// they expire. Failures are logged and the current certificate is kept.
func (m *Manager) Watch(ctx context.Context) error {
	t := time.NewTicker(m.pollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if !m.due() {
				continue
			}
			if err := m.reload(); err != nil {
				m.log.Error("tls certificate reload failed; keeping the current one", "err", err)
			}
		}
	}
}

// due reports whether a reload is needed now.
func (m *Manager) due() bool {
	if !m.files() {
		return m.now().Add(renewBefore).After(m.cert.Load().Leaf.NotAfter)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, err := statFiles(m.opts.CertFile, m.opts.KeyFile)
	if err != nil {
		return false // mid-replacement; look again next tick
	}
	return cur[0].differs(m.stamps[0]) || cur[1].differs(m.stamps[1])
}

// ServerConfig returns a fresh tls.Config for one listener. TLS 1.2 is
// limited to forward-secret AEAD suites; TLS 1.3 suites are all AEAD.
// Clients are not asked for certificates (SIP digest authenticates users)
// and no ALPN protocols are offered.
func (m *Manager) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     m.opts.MinVersion,
		CipherSuites:   cipherSuites(m.opts.MinVersion),
		GetCertificate: m.getCertificate,
		ClientAuth:     tls.NoClientCert,
	}
}

func (m *Manager) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.cert.Load(), nil
}

// cipherSuites lists the TLS 1.0-1.2 suites allowed at min version v.
func cipherSuites(v uint16) []uint16 {
	s := []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
	if v < tls.VersionTLS12 {
		// TLS 1.0/1.1 have no AEAD suites; without these the legacy
		// versions that config allowed could not be negotiated at all.
		s = append(s,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
			tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
			tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
		)
	}
	return s
}

// Certificate returns the leaf currently served, for audits (expiry,
// names).
func (m *Manager) Certificate() *x509.Certificate { return m.cert.Load().Leaf }

// Fingerprint returns "SHA-256 AB:CD:..." of the current leaf, the form
// softphones show when asking the user to trust a certificate.
func (m *Manager) Fingerprint() string { return fingerprint(m.cert.Load().Leaf) }

// CAFile returns the generated CA certificate to give to softphones
// (baresip's sip_cafile), or "" when certificate files are configured.
func (m *Manager) CAFile() string {
	if m.files() {
		return ""
	}
	return caCertPath(m.opts.Dir)
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	var b strings.Builder
	b.WriteString("SHA-256 ")
	for i, x := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", x)
	}
	return b.String()
}

func sameLeaf(a, b *tls.Certificate) bool {
	return a.Leaf != nil && b.Leaf != nil && a.Leaf.Equal(b.Leaf)
}

func sanNames(c *x509.Certificate) []string {
	out := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}
