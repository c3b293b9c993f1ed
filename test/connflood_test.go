package test

// Connection exhaustion: an attacker holding as many idle TLS connections
// as its own file limit allows, from hundreds of loopback addresses, must
// not keep agents from registering, reconnecting or receiving calls, nor
// run the server out of file descriptors.

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/testkit/sipua"
)

// tryRegisterTLS opens a TLS connection from ip and registers user, as a
// phone would, retrying (a new connection each time) until it gets 200 or
// deadline passes. It returns the registered connection.
func tryRegisterTLS(srv *server, ip, user, pass string, deadline time.Time) (*sipConn, int, error) {
	attempts := 0
	var last error
	for time.Now().Before(deadline) {
		attempts++
		d := &net.Dialer{Timeout: time.Until(deadline), LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		conn, err := tls.DialWithDialer(d, "tcp", srv.tlsAddr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test client
		if err != nil {
			last = err
			time.Sleep(100 * time.Millisecond)
			continue
		}
		c := &sipConn{conn: conn}
		c.r = bufio.NewReader(conn)
		st, err := registerNoFatal(c, srv.domain, user, pass, deadline)
		if err == nil && st == 200 {
			return c, attempts, nil
		}
		conn.Close()
		last = fmt.Errorf("status %d, %v", st, err)
	}
	return nil, attempts, fmt.Errorf("no 200 within the deadline after %d attempts: %v", attempts, last)
}

// registerNoFatal is sipConn.register without failing the test, for use
// under load where a connection may be lost and retried.
func registerNoFatal(c *sipConn, domain, user, pass string, deadline time.Time) (int, error) {
	la := c.conn.LocalAddr().(*net.TCPAddr)
	req := registerRequest{
		user: user, domain: domain, callID: randHex(12) + "@veilig-e2e", fromTag: randHex(6),
		branch: "z9hG4bK" + randHex(8), cseq: 1, expires: 300,
		contact: fmt.Sprintf("<sip:%s@%s;transport=tls>", user, la.String()),
	}
	final := func() (*sipMessage, error) {
		for {
			m, err := c.read(time.Until(deadline))
			if err != nil {
				return nil, err
			}
			if m.status() >= 200 {
				return m, nil
			}
		}
	}
	_ = c.conn.SetWriteDeadline(deadline)
	if _, err := c.conn.Write([]byte(req.build(la.String()))); err != nil {
		return 0, err
	}
	ch, err := final()
	if err != nil {
		return 0, err
	}
	if ch.status() != 401 {
		return ch.status(), nil
	}
	chal, ok := sipua.PickChallenge(ch.all("WWW-Authenticate"), "SHA-256")
	if !ok {
		return 401, errors.New("no SHA-256 challenge")
	}
	req.cseq, req.branch = 2, "z9hG4bK"+randHex(8)
	req.auth = chal.Authorization(user, pass, "REGISTER", "sip:"+domain)
	if _, err := c.conn.Write([]byte(req.build(la.String()))); err != nil {
		return 0, err
	}
	res, err := final()
	if err != nil {
		return 0, err
	}
	return res.status(), nil
}

// connAttacker opens idle TLS connections from many addresses and holds
// them: up to budget at once; beyond it, it closes its oldest and opens
// another, so the server keeps meeting new idle connections.
type connAttacker struct {
	target  string
	budget  int
	sources int

	mu     sync.Mutex
	held   []net.Conn
	opened atomic.Int64
	failed atomic.Int64
	peak   atomic.Int64
}

func (a *connAttacker) run(stop <-chan struct{}, workers int) *sync.WaitGroup {
	var wg sync.WaitGroup
	var seq atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := seq.Add(1)
				src := fmt.Sprintf("127.1.%d.%d", (i%int64(a.sources))/250, (i%int64(a.sources))%250+1)
				a.mu.Lock()
				if len(a.held) >= a.budget {
					old := a.held[0]
					a.held = a.held[1:]
					a.mu.Unlock()
					old.Close()
				} else {
					a.mu.Unlock()
				}
				d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
				c, err := tls.DialWithDialer(d, "tcp", a.target, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // attacker
				if err != nil {
					a.failed.Add(1)
					if errors.Is(err, syscall.EMFILE) {
						time.Sleep(50 * time.Millisecond)
					}
					continue
				}
				a.opened.Add(1)
				a.mu.Lock()
				a.held = append(a.held, c)
				if n := int64(len(a.held)); n > a.peak.Load() {
					a.peak.Store(n)
				}
				a.mu.Unlock()
			}
		}()
	}
	return &wg
}

func (a *connAttacker) closeAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.held {
		c.Close()
	}
	a.held = nil
}

// fdCount counts the open file descriptors of pid.
func fdCount(pid int) int {
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(es)
}

// TestConnectionFloodAgentsKeepWorking: veilig runs with an open-file
// limit of 4096; the test lowers its own soft limit to 8192 and, from 500
// loopback addresses, holds as many idle TLS connections as that allows
// (and, once there, keeps replacing its oldest with new ones) for 25 s.
// Meanwhile an agent's known device reconnects and registers, a new
// device registers within 5 s, a registered device receives a call that
// connects and ends, and the metrics endpoint answers; the server's
// descriptor count never reaches its limit, evictions are counted and
// reported, and flood.connections is raised.
func TestConnectionFloodAgentsKeepWorking(t *testing.T) {
	const serverFiles, ownFiles = 4096, 8192
	m, maddr := metricsConfig(t)
	srv := startServerExtra(t, serverOptions{FileLimit: serverFiles},
		"  auth_timeout: 10m\n", // idle attackers stay until evicted
		m, false)
	if !strings.Contains(srv.proc.stdout.String(), fmt.Sprintf("(open-file limit %d)", serverFiles)) {
		t.Fatalf("veilig did not report the open-file limit %d:\n%s", serverFiles, srv.proc.stdout.String())
	}
	s1, s2, s3 := srv.addExtension(t, "1001"), srv.addExtension(t, "1002"), srv.addExtension(t, "1003")
	known := mustRegisterRaw(t, srv, "127.0.0.10", "1001", s1)
	known.conn.Close()
	callee := newUA(t, srv, "127.0.0.12", "1003", s3)
	pid := srv.proc.cmd.Process.Pid

	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	saved := rl
	rl.Cur = min(uint64(ownFiles), rl.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved) })
	t.Logf("test file limit %d, server file limit %d", rl.Cur, serverFiles)

	att := &connAttacker{target: srv.tlsAddr, budget: int(rl.Cur) - 300 - fdCount(os.Getpid()), sources: 500}
	stop := make(chan struct{})
	maxFDs := 0
	var fdMu sync.Mutex
	fdDone := make(chan struct{})
	go func() {
		defer close(fdDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if n := fdCount(pid); n > 0 {
				fdMu.Lock()
				maxFDs = max(maxFDs, n)
				fdMu.Unlock()
			}
		}
	}()
	start := time.Now()
	wg := att.run(stop, 48)
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
		att.closeAll()
	})

	// Wait until the server is full and evicting.
	for time.Since(start) < 30*time.Second {
		mt, err := tryScrapeMetrics(maddr)
		if err == nil && mt["veilig_sip_connections_evicted_total"] > 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	mt := scrapeMetrics(t, maddr)
	t.Logf("%.1fs: server full: %v connections, limit %v, %v evicted; attacker holds %d (opened %d)",
		time.Since(start).Seconds(), mt["veilig_sip_connections"], mt["veilig_sip_connection_limit"],
		mt["veilig_sip_connections_evicted_total"], att.peak.Load(), att.opened.Load())
	if mt["veilig_sip_connections_evicted_total"] == 0 {
		t.Fatalf("the attacker never filled the server (opened %d, failed %d)", att.opened.Load(), att.failed.Load())
	}

	// The known device reconnects and registers.
	t0 := time.Now()
	kc, attempts, err := tryRegisterTLS(srv, "127.0.0.10", "1001", s1, t0.Add(5*time.Second))
	if err != nil {
		t.Fatalf("known device 1001 could not reconnect and register during the flood: %v", err)
	}
	t.Logf("known device re-registered in %v (%d attempt(s))", time.Since(t0).Round(time.Millisecond), attempts)
	// A device never seen before registers within 5 s.
	t0 = time.Now()
	nc, attempts, err := tryRegisterTLS(srv, "127.0.0.11", "1002", s2, t0.Add(5*time.Second))
	if err != nil {
		t.Fatalf("new device 1002 could not register within 5 s during the flood: %v", err)
	}
	t.Logf("new device registered in %v (%d attempt(s))", time.Since(t0).Round(time.Millisecond), attempts)
	defer nc.conn.Close()

	// The registered callee, on its connection from before the flood,
	// receives a call from the device that just reconnected.
	caller := &sipUA{sipConn: kc, t: t, srv: srv, ip: "127.0.0.10", user: "1001", secret: s1}
	c := caller.invite("1003", srtpOffer(caller.ip, "sendrecv"))
	in := callee.acceptInvite(10 * time.Second)
	in.reply(200, "OK", answerTo(in.invite.body, callee.ip, "sendrecv"))
	res := c.waitAnswer(10 * time.Second)
	requireStatus(t, "1001's INVITE to 1003 during the flood", res, 200)
	c.ack("")
	callee.waitRequest(5*time.Second, "ACK")
	c.bye()
	bye := callee.waitRequest(5*time.Second, "BYE")
	callee.respond(bye, 200, "OK", "", "")

	// Keep the flood on until it has lasted 25 s (flood.connections needs
	// 10 s of sustained pressure), then stop.
	time.Sleep(time.Until(start.Add(25 * time.Second)))
	mt = scrapeMetrics(t, maddr) // the metrics listener still answers
	close(stop)
	wg.Wait()
	<-fdDone
	t.Logf("attacker: opened %d, failed %d, held at most %d; server: %v evicted, %v refused, %v open at the end",
		att.opened.Load(), att.failed.Load(), att.peak.Load(), mt["veilig_sip_connections_evicted_total"],
		mt["veilig_sip_connections_refused_total"], mt["veilig_sip_connections"])
	fdMu.Lock()
	t.Logf("server descriptors: at most %d of %d", maxFDs, serverFiles)
	if maxFDs >= serverFiles || maxFDs <= 0 {
		t.Errorf("server descriptor count reached %d, its limit is %d", maxFDs, serverFiles)
	}
	fdMu.Unlock()
	if att.peak.Load() <= int64(mt["veilig_sip_connection_limit"]) {
		t.Errorf("the attacker held at most %d connections, not more than the server's limit %v: no flood", att.peak.Load(), mt["veilig_sip_connection_limit"])
	}
	att.closeAll()
	srv.waitEvent(t, 10*time.Second, "flood.connections", nil)
	if n := countEvents(srv.events(t), "connection.evicted", nil); n == 0 {
		t.Errorf("no connection.evicted event:\n%s", srv.eventSummary(t))
	}
	// And afterwards the device registers again at once.
	if _, final := callee.register(t, srv.domain, "1003", s3, "SHA-256"); final.status() != 200 {
		t.Errorf("1003's re-REGISTER after the flood: %d", final.status())
	}
}
