package test

// After a flood, the server gives its memory back to the operating system
// instead of staying at its peak.

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rssBytes reads VmRSS of pid.
func rssBytes(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// udpRegisterFlood sends n unauthenticated REGISTERs with distinct users
// and Call-IDs from senders sources starting at 127.0.0.<first> (trusted
// in the server's config, so every one is challenged), at about 8000 a
// second, and waits for the last answers.
func udpRegisterFlood(t *testing.T, srv *server, n, senders, first int) {
	t.Helper()
	raddr, _ := net.ResolveUDPAddr("udp", srv.udpAddr)
	var wg sync.WaitGroup
	for s := range senders {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(fmt.Sprintf("127.0.0.%d", first+s))}, raddr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadBuffer(8 << 20)
		wg.Add(2)
		go func() { // drain answers
			defer wg.Done()
			buf := make([]byte, 65535)
			for {
				_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			la := c.LocalAddr().String()
			for i := s; i < n; i += senders {
				msg := fmt.Sprintf("REGISTER sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s;rport\r\nMax-Forwards: 70\r\n"+
					"From: <sip:m%06d@%s>;tag=%s\r\nTo: <sip:m%06d@%s>\r\nCall-ID: %s-%d@mem\r\nCSeq: 1 REGISTER\r\n"+
					"Contact: <sip:m%06d@%s>\r\nExpires: 300\r\nUser-Agent: veilig-e2e\r\nContent-Length: 0\r\n\r\n",
					srv.domain, la, randHex(8), i, srv.domain, randHex(4), i, srv.domain, randHex(8), i, i, la)
				if _, err := c.Write([]byte(msg)); err != nil {
					return
				}
				if i%(senders*40) == s {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
}

// TestMemoryReturnedAfterFlood: 100,000 unauthenticated REGISTERs and
// 3,000 TLS connections opened and closed raise veilig's resident memory;
// within a minute of the end of the load it is back to within a quarter
// of what the flood added (or 32 MiB, whichever is more).
func TestMemoryReturnedAfterFlood(t *testing.T) {
	srv, _ := startGuardServer(t, serverOptions{UDP: true}, "guard:\n  trusted_sources: [\"127.0.0.80/28\"]\n")
	pid := srv.proc.cmd.Process.Pid
	time.Sleep(2 * time.Second)
	base := rssBytes(pid)

	var peak int64
	stop := make(chan struct{})
	var pmu sync.Mutex
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			pmu.Lock()
			peak = max(peak, rssBytes(pid))
			pmu.Unlock()
		}
	}()
	var conns []net.Conn
	for i := range 3000 {
		d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("127.0.0.%d", 80+i%8))}}
		c, err := tls.DialWithDialer(d, "tcp", srv.tlsAddr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test client
		if err != nil {
			continue
		}
		conns = append(conns, c)
	}
	udpRegisterFlood(t, srv, 100_000, 4, 80)
	for _, c := range conns {
		c.Close()
	}
	end := time.Now()
	close(stop)
	pmu.Lock()
	peak = max(peak, rssBytes(pid))
	pmu.Unlock()
	t.Logf("RSS: %.1f MiB before, %.1f MiB at the peak (%d TLS connections held)", mib(base), mib(peak), len(conns))
	added := peak - base
	bound := base + max(added/4, 32<<20)
	var at time.Duration
	last := peak
	for time.Since(end) < 90*time.Second {
		time.Sleep(time.Second)
		last = rssBytes(pid)
		if at == 0 && last <= bound {
			at = time.Since(end)
		}
		if s := int(time.Since(end).Seconds()); s%10 == 0 {
			t.Logf("%3ds after the load: RSS %.1f MiB", s, mib(last))
		}
		if at != 0 && time.Since(end) > at+5*time.Second {
			break
		}
	}
	if added < 64<<20 {
		t.Fatalf("the flood added only %.1f MiB: not a flood", mib(added))
	}
	if at == 0 || at > time.Minute {
		t.Errorf("RSS not back under %.1f MiB within a minute of the load (now %.1f MiB, peak %.1f MiB, before %.1f MiB)",
			mib(bound), mib(last), mib(peak), mib(base))
	} else {
		t.Logf("RSS back under %.1f MiB %v after the load", mib(bound), at.Round(time.Second))
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
