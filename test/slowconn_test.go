package test

// Slow peers: a connection may not take forever to finish a message, nor
// stay without authenticating, however faithfully it sends keep-alives.

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// closedBy reads from c (discarding pongs) until the server closes it or
// limit passes, and returns when that was.
func closedBy(c net.Conn, limit time.Time) (time.Time, bool) {
	buf := make([]byte, 256)
	for {
		_ = c.SetReadDeadline(limit)
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return time.Now(), false
			}
			return time.Now(), true
		}
	}
}

// TestSlowConnectionsClosed: with sip.message_timeout 5s and
// sip.auth_timeout 10s, a TLS connection that drips one byte of a
// REGISTER every 2 s is closed about 5 s after its first byte, and one
// that sends only CRLF keep-alives every 2 s about 10 s after its
// handshake; a registered device's connection, sending the same
// keep-alives, is still served afterwards. Both closures are events.
func TestSlowConnectionsClosed(t *testing.T) {
	srv := startServerExtra(t, serverOptions{}, "  message_timeout: 5s\n  auth_timeout: 10s\n", "", false)
	secret := srv.addExtension(t, "1001")
	agent := mustRegisterRaw(t, srv, "127.0.0.10", "1001", secret)

	dial := func(ip string) net.Conn {
		d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		c, err := tls.DialWithDialer(d, "tcp", srv.tlsAddr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test client
		if err != nil {
			t.Fatalf("TLS dial from %s: %v", ip, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	drip, ping := dial("127.0.0.20"), dial("127.0.0.21")
	start := time.Now()
	msg := []byte(optionsMsg("TLS", srv.domain))
	go func() {
		for i := 0; i < len(msg) && time.Since(start) < 30*time.Second; i++ {
			if _, err := drip.Write(msg[i : i+1]); err != nil {
				return
			}
			time.Sleep(2 * time.Second)
		}
	}()
	go func() {
		for time.Since(start) < 30*time.Second {
			if _, err := io.WriteString(ping, "\r\n\r\n"); err != nil {
				return
			}
			_ = agent.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(agent.conn, "\r\n\r\n"); err != nil {
				return
			}
			time.Sleep(2 * time.Second)
		}
	}()
	at, closed := closedBy(drip, start.Add(15*time.Second))
	if !closed {
		t.Fatalf("the dripping connection is still open after %v", time.Since(start).Round(time.Second))
	}
	if d := at.Sub(start); d < 4*time.Second || d > 7*time.Second {
		t.Errorf("the dripping connection was closed after %v, want about 5s (sip.message_timeout)", d.Round(100*time.Millisecond))
	}
	t.Logf("dripping connection closed after %v", at.Sub(start).Round(100*time.Millisecond))
	at, closed = closedBy(ping, start.Add(20*time.Second))
	if !closed {
		t.Fatalf("the keep-alive-only connection is still open after %v", time.Since(start).Round(time.Second))
	}
	if d := at.Sub(start); d < 9*time.Second || d > 12*time.Second {
		t.Errorf("the keep-alive-only connection was closed after %v, want about 10s (sip.auth_timeout)", d.Round(100*time.Millisecond))
	}
	t.Logf("keep-alive-only connection closed after %v", at.Sub(start).Round(100*time.Millisecond))

	// The registered device, idle but for the same keep-alives, is served.
	agent.send(t, optionsMsg("TLS", srv.domain))
	if m := agent.readFinal(t, 5*time.Second); m.status() == 0 {
		t.Errorf("registered device: no answer after %v", time.Since(start).Round(time.Second))
	}
	for _, reason := range []string{"message_timeout", "auth_timeout"} {
		srv.waitEvent(t, 5*time.Second, "connection.timeout", func(e event) bool { return e.Fields["reason"] == reason })
	}
}
