package tlsconf

import (
	"crypto/tls"
	"fmt"
	"os"
	"time"
)

// stamp identifies one version of a file without reading it.
type stamp struct {
	info os.FileInfo
}

func (s stamp) differs(old stamp) bool {
	if s.info == nil || old.info == nil {
		return s.info != old.info
	}
	return !os.SameFile(s.info, old.info) ||
		!s.info.ModTime().Equal(old.info.ModTime()) ||
		s.info.Size() != old.info.Size()
}

func statFiles(paths ...string) ([2]stamp, error) {
	var out [2]stamp
	for i, p := range paths[:2] {
		fi, err := os.Stat(p)
		if err != nil {
			return out, fmt.Errorf("tlsconf: stat %s: %w", p, err)
		}
		out[i] = stamp{fi}
	}
	return out, nil
}

// loadFiles reads the configured pair. The files' stamps are recorded
// before reading, and even when the pair is unusable, so Watch retries
// only after the files change again rather than every poll.
// Called with m.mu held.
func (m *Manager) loadFiles() (*tls.Certificate, error) {
	if st, err := statFiles(m.opts.CertFile, m.opts.KeyFile); err == nil {
		m.stamps = st
	}
	c, err := tls.LoadX509KeyPair(m.opts.CertFile, m.opts.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: load %s and %s: %w", m.opts.CertFile, m.opts.KeyFile, err)
	}
	leaf := c.Leaf
	now := m.now()
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("tlsconf: %s expired on %s", m.opts.CertFile, leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	if now.Add(renewBefore).After(leaf.NotAfter) {
		m.log.Warn("tls certificate expires soon; replace the file", "file", m.opts.CertFile,
			"not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if m.opts.Domain != "" {
		if err := leaf.VerifyHostname(m.opts.Domain); err != nil {
			m.log.Warn("tls certificate does not cover the SIP domain; clients that check names will refuse it",
				"file", m.opts.CertFile, "domain", m.opts.Domain)
		}
	}
	return &c, nil
}
