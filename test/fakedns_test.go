package test

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// fakeDNS answers every A query with evilContactIP and records each
// question name. It only runs inside a private network namespace.
type fakeDNS struct {
	mu    sync.Mutex
	names []string
}

// nameservers returns the IPv4 name servers of /etc/resolv.conf (what Go's
// resolver would query), adding each non-loopback one to lo so that the
// namespace routes queries to the fake DNS; 127.0.0.1 when none is set.
func nameservers(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("/etc/resolv.conf")
	if err != nil {
		return []string{"127.0.0.1"}
	}
	defer f.Close()
	var ns []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			if ip := net.ParseIP(fields[1]); ip != nil && ip.To4() != nil {
				ns = append(ns, fields[1])
			}
		}
	}
	if len(ns) == 0 {
		return []string{"127.0.0.1"}
	}
	for _, n := range ns {
		if !net.ParseIP(n).IsLoopback() {
			runIP(t, "addr", "add", n+"/32", "dev", "lo")
		}
	}
	return ns
}

// startFakeDNS serves UDP and TCP port 53 on every address in ns.
func startFakeDNS(t *testing.T, ns []string) *fakeDNS {
	t.Helper()
	d := &fakeDNS{}
	for _, ip := range ns {
		addr := hostPort(ip, 53)
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("fake DNS on %s/udp: %v", addr, err)
		}
		t.Cleanup(func() { pc.Close() })
		go d.serveUDP(pc)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("fake DNS on %s/tcp: %v", addr, err)
		}
		t.Cleanup(func() { l.Close() })
		go d.serveTCP(l)
	}
	return d
}

func (d *fakeDNS) serveUDP(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp := d.answer(buf[:n]); resp != nil {
			_, _ = pc.WriteTo(resp, from)
		}
	}
}

func (d *fakeDNS) serveTCP(l net.Listener) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			var n uint16
			if binary.Read(conn, binary.BigEndian, &n) != nil {
				return
			}
			q := make([]byte, n)
			if _, err := io.ReadFull(conn, q); err != nil {
				return
			}
			if resp := d.answer(q); resp != nil {
				_ = binary.Write(conn, binary.BigEndian, uint16(len(resp)))
				_, _ = conn.Write(resp)
			}
		}()
	}
}

// answer records the question and builds the reply (A -> evilContactIP).
func (d *fakeDNS) answer(query []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	d.mu.Lock()
	d.names = append(d.names, q.Type.String()+" "+q.Name.String())
	d.mu.Unlock()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true})
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	if q.Type == dnsmessage.TypeA {
		var ip [4]byte
		copy(ip[:], net.ParseIP(evilContactIP).To4())
		_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: ip})
	}
	resp, err := b.Finish()
	if err != nil {
		return nil
	}
	return resp
}

func (d *fakeDNS) queries() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.names...)
}

func (d *fakeDNS) reset() {
	d.mu.Lock()
	d.names = nil
	d.mu.Unlock()
}

// requireFakeDNSWorks resolves a name the way a Go program would and
// checks that the fake DNS saw it and answered, so that "no query seen"
// later means no query was sent.
func requireFakeDNSWorks(t *testing.T, d *fakeDNS) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := &net.Resolver{PreferGo: true}
	addrs, err := r.LookupHost(ctx, "probe-"+randHex(4)+".example.org")
	if err != nil || len(addrs) == 0 || addrs[0] != evilContactIP || len(d.queries()) == 0 {
		t.Fatalf("fake DNS self-check failed: addrs=%v err=%v queries=%v", addrs, err, d.queries())
	}
}
