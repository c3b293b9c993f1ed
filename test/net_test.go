package test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// freePort returns a port on ip that is free for network ("tcp" or
// "udp") at the time of the call.
func freePort(t *testing.T, network, ip string) int {
	t.Helper()
	for range 50 {
		port, err := probePort(network, ip, 0)
		if err == nil {
			return port
		}
	}
	t.Fatalf("no free %s port on %s", network, ip)
	return 0
}

// freePortPair returns p such that p and p+1 are free for both TCP and UDP
// on ip (baresip listens SIP on p and SIP/TLS on p+1).
func freePortPair(t *testing.T, ip string) int {
	t.Helper()
	for range 100 {
		p := freePort(t, "tcp", ip)
		if p >= 65000 {
			continue
		}
		if portsFree(ip, p, p+1) {
			return p
		}
	}
	t.Fatalf("no free port pair on %s", ip)
	return 0
}

func portsFree(ip string, ports ...int) bool {
	for _, p := range ports {
		for _, network := range []string{"tcp", "udp"} {
			if _, err := probePort(network, ip, p); err != nil {
				return false
			}
		}
	}
	return true
}

// probePort binds ip:port (0 = any) and releases it, returning the port.
func probePort(network, ip string, port int) (int, error) {
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	if network == "udp" {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freeUDPRange returns lo such that lo..lo+n-1 are free UDP ports on ip.
func freeUDPRange(t *testing.T, ip string, n int) int {
	t.Helper()
	for range 50 {
		base := 20000 + 20*int(time.Now().UnixNano()%2000)
		ok := true
		for p := base; p < base+n && ok; p++ {
			_, err := probePort("udp", ip, p)
			ok = err == nil
		}
		if ok {
			return base
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no free UDP range of %d ports on %s", n, ip)
	return 0
}

// waitTCPListening waits up to d until something listens on TCP port (any
// address), read from /proc/net/tcp so that no probe connection disturbs
// the listener.
func waitTCPListening(t *testing.T, port int, d time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if tcpListening(port) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s is not listening on TCP port %d after %v", what, port, d)
}

func tcpListening(port int) bool {
	want := fmt.Sprintf(":%04X", port)
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 3 && strings.HasSuffix(fields[1], want) && fields[3] == "0A" {
				f.Close()
				return true
			}
		}
		f.Close()
	}
	return false
}

// hostPort joins an IP and a port.
func hostPort(ip string, port int) string {
	return net.JoinHostPort(ip, strconv.Itoa(port))
}
