package test

// Helpers for the edge-defence tests (attack, torture, lockout, flood):
// a server with metrics and guard settings, labelled metrics, one-shot UDP
// and TLS probes that report silence, and CLI checks.

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/testkit/sipua"
)

// startGuardServer starts veilig with the metrics endpoint on and extra
// YAML appended (e.g. a guard: section). It returns the metrics address.
func startGuardServer(t *testing.T, opts serverOptions, extraYAML string) (*server, string) {
	t.Helper()
	m, maddr := metricsConfig(t)
	return startServerExtra(t, opts, "", m+extraYAML, false), maddr
}

// metricsText returns the raw text of GET /metrics.
func metricsText(t *testing.T, addr string) string {
	t.Helper()
	cl := &http.Client{Timeout: 5 * time.Second}
	res, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET metrics: %v", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read metrics: %v", err)
	}
	return string(b)
}

// metricSum adds every sample of the named metric whose labels include
// all of want (name="value" pairs as written in the exposition format).
func metricSum(text, name string, want ...string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		series, val := line[:i], line[i+1:]
		base, labels, _ := strings.Cut(series, "{")
		if base != name {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(labels, w)
		}
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			sum += v
		}
	}
	return sum
}

// metricLines returns the sample lines of one metric (for logs).
func metricLines(text, name string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			out = append(out, "  "+l)
		}
	}
	return strings.Join(out, "\n")
}

// udpAsk sends msg from a fresh socket on localIP to addr and returns the
// first datagram that comes back within d, or "" (silence).
func udpAsk(t *testing.T, localIP, addr, msg string, d time.Duration) string {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(localIP)}, raddr)
	if err != nil {
		t.Fatalf("UDP from %s to %s: %v", localIP, addr, err)
	}
	defer c.Close()
	msg = strings.ReplaceAll(msg, "LOCALADDR", c.LocalAddr().String())
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("UDP write: %v", err)
	}
	buf := make([]byte, 65535)
	_ = c.SetReadDeadline(time.Now().Add(d))
	n, err := c.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// tlsAsk opens a TLS connection from localIP, writes msg and returns what
// the server answered within d ("" for nothing), or an error when the
// connection or handshake failed.
func tlsAsk(localIP, addr, msg string, d time.Duration) (string, error) {
	dl := &net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}}
	conn, err := tls.DialWithDialer(dl, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test client
	if err != nil {
		return "", err
	}
	defer conn.Close()
	msg = strings.ReplaceAll(msg, "LOCALADDR", conn.LocalAddr().String())
	_ = conn.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(conn, msg); err != nil {
		return "", err
	}
	var b strings.Builder
	buf := make([]byte, 65535)
	for {
		n, err := conn.Read(buf)
		b.Write(buf[:n])
		// One response is enough; stop at the end of its headers (all
		// responses here have no body).
		if strings.Contains(b.String(), "\r\n\r\n") || err != nil {
			break
		}
	}
	return b.String(), nil
}

// optionsMsg is an ordinary OPTIONS (a phone's keep-alive) over transport;
// LOCALADDR is replaced by the sender's address.
func optionsMsg(transport, domain string) string {
	return fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\n"+
		"Via: SIP/2.0/%s LOCALADDR;branch=z9hG4bK%s;rport\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:probe@%s>;tag=%s\r\n"+
		"To: <sip:%s>\r\n"+
		"Call-ID: %s@veilig-e2e\r\n"+
		"CSeq: 1 OPTIONS\r\n"+
		"User-Agent: veilig-e2e\r\n"+
		"Content-Length: 0\r\n\r\n", domain, transport, randHex(8), domain, randHex(6), domain, randHex(12))
}

// statusOf returns the status code of a raw response (0 for none).
func statusOf(raw string) int { return sipua.StatusOf(raw) }

func firstLine(raw string) string {
	l, _, _ := strings.Cut(raw, "\r\n")
	return l
}

// countEvents counts events of type typ that match.
func countEvents(evs []event, typ string, match func(event) bool) int {
	n := 0
	for _, e := range evs {
		if e.Type == typ && (match == nil || match(e)) {
			n++
		}
	}
	return n
}

// fromSource matches events whose source is ip (with or without a port).
func fromSource(ip string) func(event) bool {
	return func(e event) bool { return e.Source == ip || strings.HasPrefix(e.Source, ip+":") }
}

// procCPUSeconds returns utime+stime of pid from /proc/PID/stat.
func procCPUSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}
