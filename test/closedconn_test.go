package test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// The attacker-chosen places a response could be sent to when the request's
// connection is gone: the Via host (a name: needs DNS) and the Contact.
const (
	evilViaPort     = 5099
	evilContactIP   = "127.0.0.66"
	evilContactPort = 5097
)

// probeRequests are requests whose Via names evil-<label>.example.com and
// whose Contact points elsewhere; each is sent on its own connection that
// is closed at once, before Veilig can answer.
func probeRequests(proto, label string) []string {
	via := fmt.Sprintf("SIP/2.0/%s evil-%s.example.com:%d;branch=z9hG4bK%s;rport", proto, label, evilViaPort, randHex(6))
	contacts := []string{
		fmt.Sprintf("<sip:1001@%s:%d;transport=%s>", evilContactIP, evilContactPort, strings.ToLower(proto)),
		fmt.Sprintf("<sip:1001@contact-%s.example.net:%d;transport=%s>", label, evilContactPort, strings.ToLower(proto)),
	}
	var reqs []string
	for _, contact := range contacts {
		for _, method := range []string{"REGISTER", "INVITE", "OPTIONS"} {
			reqs = append(reqs, probeRequest(method, via, contact, label))
		}
	}
	return reqs
}

func probeRequest(method, via, contact, label string) string {
	uri := "sip:127.0.0.1"
	body := ""
	if method == "INVITE" {
		uri = "sip:1002@127.0.0.1"
		body = "v=0\r\no=- 1 1 IN IP4 127.0.0.66\r\ns=-\r\nc=IN IP4 127.0.0.66\r\nt=0 0\r\n" +
			"m=audio 40000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n" +
			"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:KKI8ly2hE+fvyPMaLU93cPhzlxM8dg8yjeiOLKDA\r\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", method, uri)
	fmt.Fprintf(&b, "Via: %s\r\n", via)
	fmt.Fprintf(&b, "Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <sip:1001@127.0.0.1>;tag=%s\r\n", randHex(4))
	fmt.Fprintf(&b, "To: <sip:%s>\r\n", strings.TrimPrefix(uri, "sip:"))
	fmt.Fprintf(&b, "Call-ID: %s@evil-%s.example.com\r\n", randHex(8), label)
	fmt.Fprintf(&b, "CSeq: 1 %s\r\n", method)
	fmt.Fprintf(&b, "Contact: %s\r\n", contact)
	if body != "" {
		fmt.Fprintf(&b, "Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.String()
}

// sendAndClose sends each probe over a new TLS connection (and a new TCP
// connection when the server has a TCP listener), closing it right after
// the write.
func sendAndClose(t *testing.T, srv *server, label string) {
	t.Helper()
	for _, req := range probeRequests("TLS", label) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", srv.tlsAddr,
			&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test client
		if err != nil {
			t.Fatalf("TLS dial: %v", err)
		}
		_, _ = io.WriteString(conn, req)
		conn.Close()
	}
	if srv.tcpAddr == "" {
		return
	}
	for _, req := range probeRequests("TCP", label) {
		conn, err := net.DialTimeout("tcp", srv.tcpAddr, 5*time.Second)
		if err != nil {
			t.Fatalf("TCP dial: %v", err)
		}
		_, _ = io.WriteString(conn, req)
		conn.Close()
	}
}

// connCounter counts connections accepted on a listener.
type connCounter struct {
	mu    sync.Mutex
	addrs []string
}

// listenAndCount accepts (and closes) connections on addr until cleanup.
func listenAndCount(t *testing.T, addr string) *connCounter {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	c := &connCounter{}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.addrs = append(c.addrs, conn.RemoteAddr().String())
			c.mu.Unlock()
			conn.Close()
		}
	}()
	return c
}

func (c *connCounter) seen() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.addrs...)
}

// requireServerAnswers checks that veilig still answers a REGISTER with 401
// (it neither crashed nor stopped reading).
func requireServerAnswers(t *testing.T, srv *server) {
	t.Helper()
	c := dialSIPTLS(t, "127.0.0.1", srv.tlsAddr)
	chal, _ := c.register(t, srv.domain, "1001", "x", "MD5")
	if chal.status() != 401 {
		t.Fatalf("after the probes veilig answered REGISTER with %q, want 401", chal.start)
	}
}

// TestNoDNSOrOutboundOnClosedConnection: requests whose Via names
// evil-<label>.example.com:5099 and whose Contact points elsewhere are sent
// over TLS and TCP and the connection is closed at once. For 3 s tshark on
// all interfaces must see no DNS query naming the label and no TCP SYN to
// the Via port, and nothing may connect to the Contact address.
func TestNoDNSOrOutboundOnClosedConnection(t *testing.T) {
	requireTools(t, "tshark")
	requireRoot(t, "packet capture")
	srv := startServer(t, serverOptions{TCP: true})
	srv.addExtension(t, "1001")
	contact := listenAndCount(t, hostPort(evilContactIP, evilContactPort))
	label := randHex(6)
	filter := fmt.Sprintf("port 53 or (tcp[tcpflags] & tcp-syn != 0 and (dst port %d or dst port %d))", evilViaPort, evilContactPort)
	capt := startCapture(t, "dns", "any", filter)

	sendAndClose(t, srv, label)
	time.Sleep(3 * time.Second)
	pcap := capt.stop(t)

	rows := tsharkFields(t, pcap, nil, "", "frame.number", "ip.src", "ip.dst", "udp.dstport", "tcp.dstport", "dns.qry.name")
	var ours, others []string
	for _, r := range rows {
		line := strings.Join(r, " ")
		if strings.Contains(r[5], label) || r[4] == fmt.Sprint(evilViaPort) || r[4] == fmt.Sprint(evilContactPort) {
			ours = append(ours, line)
		} else {
			others = append(others, line)
		}
	}
	if len(others) > 0 {
		t.Logf("unrelated packets in the capture (other processes on this host): %d, e.g. %q", len(others), others[0])
	}
	if len(ours) > 0 {
		t.Errorf("veilig resolved or connected to an address taken from a received message:\n  %s", strings.Join(ours, "\n  "))
	}
	if got := contact.seen(); len(got) > 0 {
		t.Errorf("veilig connected to the Contact address %s:%d: %v", evilContactIP, evilContactPort, got)
	}
	requireServerAnswers(t, srv)
}

// TestNoDNSOrOutboundInNetns runs the same probe inside a fresh network
// namespace (unshare -n) where the resolv.conf name servers are served by
// a fake DNS in the test that answers every A query with 127.0.0.66, and
// 127.0.0.66:5099 and :5097 accept connections. Any DNS query and any
// connection counts, so unrelated traffic on the host cannot disturb it.
func TestNoDNSOrOutboundInNetns(t *testing.T) {
	requireTools(t, "unshare", "ip")
	requireRoot(t, "network namespaces")
	bin := requireVeilig(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, code := runProc(t, procSpec{
		name: "netns-child",
		args: []string{"unshare", "-n", "--", exe, "-test.run", "^TestNetnsChildClosedConnection$",
			"-test.v", "-test.count=1", "-test.timeout=3m"},
		env:     []string{envNetnsChild + "=1", envVeiligBin + "=" + bin},
		timeout: 4 * time.Minute,
	})
	t.Logf("output of the test inside the namespace:\n%s", out)
	if code != 0 || !strings.Contains(out, "--- PASS: TestNetnsChildClosedConnection") {
		t.Fatalf("the probe inside the network namespace failed (exit %d); see its output above", code)
	}
}

// TestNetnsChildClosedConnection is the part of TestNoDNSOrOutboundInNetns
// that runs inside the namespace; it is skipped anywhere else.
func TestNetnsChildClosedConnection(t *testing.T) {
	if os.Getenv(envNetnsChild) == "" {
		t.Skip("runs only inside the network namespace made by TestNoDNSOrOutboundInNetns")
	}
	runIP(t, "link", "set", "lo", "up")
	dns := startFakeDNS(t, nameservers(t))
	requireFakeDNSWorks(t, dns)

	srv := startServer(t, serverOptions{TCP: true})
	srv.addExtension(t, "1001")
	viaConns := listenAndCount(t, hostPort(evilContactIP, evilViaPort))
	contactConns := listenAndCount(t, hostPort(evilContactIP, evilContactPort))
	dns.reset()

	sendAndClose(t, srv, randHex(6))
	time.Sleep(3 * time.Second)

	if q := dns.queries(); len(q) > 0 {
		t.Errorf("veilig sent DNS queries for names taken from received messages: %v", q)
	}
	if c := viaConns.seen(); len(c) > 0 {
		t.Errorf("veilig connected to the Via host's port %d: %v", evilViaPort, c)
	}
	if c := contactConns.seen(); len(c) > 0 {
		t.Errorf("veilig connected to the Contact port %d: %v", evilContactPort, c)
	}
	requireServerAnswers(t, srv)
}

func runIP(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
