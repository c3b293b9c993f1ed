package test

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// startMD5OnlyShim starts a TLS relay on listenIP in front of upstream (the
// server's TLS listener) that removes every non-MD5 digest challenge from
// the server's messages, one client connection per upstream connection.
// baresip 1.0.0 (libre 1.1.0) aborts registration with ENOSYS as soon as a
// 401 carries any non-MD5 challenge, whatever the order, so this is the
// only way to drive it through Veilig until Veilig can offer MD5 alone.
// It returns the relay's address.
func startMD5OnlyShim(t *testing.T, listenIP, upstream string) string {
	t.Helper()
	certFile, keyFile := writeThrowawayCert(t, listenIP)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", net.JoinHostPort(listenIP, "0"), &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatalf("MD5-only shim: %v", err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			server, err := tls.Dial("tcp", upstream, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test relay
			if err != nil {
				client.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, client, server)
			mu.Unlock()
			go func() { _, _ = io.Copy(server, client); server.Close() }()
			go func() { _ = relayWithoutStrongChallenges(client, server); client.Close() }()
		}
	}()
	return l.Addr().String()
}

// relayWithoutStrongChallenges copies SIP messages from src to dst,
// dropping WWW-/Proxy-Authenticate headers that name a non-MD5 algorithm.
func relayWithoutStrongChallenges(dst io.Writer, src io.Reader) error {
	r := bufio.NewReader(src)
	for {
		var msg strings.Builder
		length := 0
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			trimmed := strings.TrimRight(line, "\r\n")
			if msg.Len() == 0 && trimmed == "" {
				msg.WriteString(line) // keep-alive CRLF
				break
			}
			name, value, _ := strings.Cut(trimmed, ":")
			name = strings.ToLower(strings.TrimSpace(name))
			if (name == "www-authenticate" || name == "proxy-authenticate") &&
				strings.Contains(strings.ToLower(value), "algorithm=") && !strings.Contains(strings.ToLower(value), "algorithm=md5") {
				continue
			}
			if name == "content-length" || name == "l" {
				length, _ = strconv.Atoi(strings.TrimSpace(value))
			}
			msg.WriteString(line)
			if trimmed == "" {
				break
			}
		}
		body := make([]byte, length)
		if _, err := io.ReadFull(r, body); err != nil {
			return err
		}
		if _, err := io.WriteString(dst, msg.String()+string(body)); err != nil {
			return err
		}
	}
}
