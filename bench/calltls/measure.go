package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// measurer runs the rate search of one server after another.
type measurer struct {
	o       options
	e       env
	tc      *tls.Config
	subs    []subscriber
	shimPID int
	sipp    sippStep
	steps   io.Writer
	retries []string // failed bring-ups of the current server
}

// up is a server with its callees registered.
type up struct {
	srv     *running
	callees *callees
}

// bringUpAttempts bounds the starts of one bring-up. Debian's Kamailio 5.6.3
// with OpenSSL 3 sometimes aborts in its TLS allocator while 1000
// connections arrive at once (kamailio/kamailio#3791, "qm: fragm. ...
// beginning overwritten"); a server that dies while its callees register is
// started again, and each retry is reported with the result.
const bringUpAttempts = 3

// bringUp starts the server and registers every callee over its own
// connection (run.sh's bring_up, which pre-registers the sipp UAS). A
// failed attempt is noted in m.retries.
func (m *measurer) bringUp(ctx context.Context, s *server) (*up, error) {
	var last error
	for attempt := 1; attempt <= bringUpAttempts; attempt++ {
		u, died, err := m.bringUpOnce(ctx, s)
		if err == nil {
			return u, nil
		}
		last = err
		m.retries = append(m.retries, fmt.Sprintf("%v", err))
		fmt.Fprintf(os.Stderr, "  bring-up %d of %d failed (server died: %v): %v\n", attempt, bringUpAttempts, died, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, last
}

func (m *measurer) bringUpOnce(ctx context.Context, s *server) (*up, bool, error) {
	r, err := s.start(m.e, filepath.Join(m.o.out, "server-"+s.label+".log"))
	if err != nil {
		return nil, false, err
	}
	rctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	c, err := startCallees(rctx, "127.0.0.1:"+strconv.Itoa(m.o.tlsPort), m.tc, m.o.domain, m.subs, m.o.workers, m.o.sipTimeout)
	if err != nil {
		died := !r.alive()
		r.stop()
		return nil, died, err
	}
	return &up{srv: r, callees: c}, false, nil
}

func (u *up) tearDown() {
	u.callees.close()
	u.srv.stop()
}

// measure is run.sh's measure() for call-tls: the rate search, with the
// server restarted (and the callees registered again) after a failed step.
// It returns the harness's result line and the sustained rate.
func (m *measurer) measure(ctx context.Context, s *server) (string, int, error) {
	if err := s.prepare(m.e); err != nil {
		return "", 0, err
	}
	fmt.Fprintf(os.Stderr, "== %s call-tls (from %d/s, %ds steps)\n", s.label, m.o.start, m.o.seconds)
	m.retries = nil
	t0 := time.Now()
	u, err := m.bringUp(ctx, s)
	if err != nil {
		return "", 0, err
	}
	defer func() {
		if u != nil {
			u.tearDown()
		}
	}()
	var bestInfo, failInfo, crashes string
	var stepErr error
	restart := false
	lo, _ := search(searchParams{start: m.o.start, maxRate: m.o.maxRate, maxSteps: m.o.maxSteps, refine: m.o.refine},
		func(rate int) (bool, bool) {
			// An overloaded server keeps queues and transactions (and may
			// have died): a step after a failed one starts from a fresh one.
			if restart {
				u.tearDown()
				if u, err = m.bringUp(ctx, s); err != nil {
					stepErr = fmt.Errorf("restart before the %d/s step: %w", rate, err)
					return false, false
				}
				restart = false
			}
			p := m.sipp
			base := filepath.Join(m.o.out, fmt.Sprintf("%s-call-tls-%d", s.label, rate))
			p.statFile, p.logFile, p.errFile = base+".stat.csv", base+".sipp.log", base+".errors.log"
			r, err := runStep(ctx, p, rate, u.srv.pid, m.shimPID, m.o.crit)
			if err != nil {
				stepErr = err
				return false, false
			}
			r.callees = u.callees.take()
			if n := u.callees.alive(); n < len(m.subs) {
				r.callees += fmt.Sprintf("; %d of %d callee connections closed", len(m.subs)-n, len(m.subs))
			}
			if !u.srv.alive() {
				r.crashed, r.pass = true, false
				crashes += fmt.Sprintf(" %d/s", rate)
				fmt.Fprintf(os.Stderr, "  %s (pid %d) died during the %d/s step; see its log\n", s.label, u.srv.pid, rate)
			}
			m.logStep(s.label, r)
			if r.pass {
				bestInfo = fmt.Sprintf("fail %.2f%%) [throughput %.1f/s, p99 %sms, retrans %d; CPU%% %s %.0f, sipp-uac %.0f, callees %.0f, stunnel %.0f",
					r.failPct, r.achieved, r.p99, r.retrans, s.label, r.cpu[0], r.cpu[1], r.cpu[2], r.cpu[3])
			} else {
				failInfo = fmt.Sprintf("%d/s: fail %.2f%%, throughput %.1f/s, slow %.2f%%, p99 %sms, CPU%% %s %.0f, load-gen %.0f",
					rate, r.failPct, r.achieved, r.slowPct, r.p99, s.label, r.cpu[0], r.cpu[1]+r.cpu[2]+r.cpu[3])
				if r.crashed {
					failInfo += ", SERVER CRASHED"
				}
			}
			if !r.pass {
				s.keepEvents(base + ".events.jsonl")
				restart = true
			} else {
				time.Sleep(time.Second)
			}
			return r.pass, time.Since(t0) < m.o.budget && ctx.Err() == nil
		})
	if stepErr != nil {
		return "", 0, stepErr
	}
	if failInfo == "" {
		failInfo = fmt.Sprintf("none (stopped at cap %d/s, max steps or budget)", m.o.maxRate)
	}
	var line string
	if lo > 0 {
		line = fmt.Sprintf("%s call tls: %d calls/s (%s; lowest failing step %s]", s.label, lo, bestInfo, failInfo)
	} else {
		line = fmt.Sprintf("%s call tls: no sustainable rate found (lowest failing step %s)", s.label, failInfo)
	}
	if crashes != "" {
		line += " {server crashed at:" + crashes + "}"
	}
	if len(m.retries) > 0 {
		line += fmt.Sprintf(" {bring-up retried %d times: %s}", len(m.retries), m.retries[0])
	}
	return line, lo, nil
}

func (m *measurer) logStep(label string, r stepResult) {
	verdict := "FAIL"
	if r.pass {
		verdict = "PASS"
	}
	fmt.Fprintf(os.Stderr, "  call-tls rate=%d sent=%d ok=%d fail=%.2f%% throughput=%.1f/s retrans=%d p99%sms slow=%.2f%% cpu: server=%.0f%% uac=%.0f%% callees=%.0f%% stunnel=%.0f%% -> %s (callees: %s)\n",
		r.rate, r.count, r.succ, r.failPct, r.achieved, r.retrans, r.p99, r.slowPct, r.cpu[0], r.cpu[1], r.cpu[2], r.cpu[3], verdict, r.callees)
	pass := 0
	if r.pass {
		pass = 1
	}
	fmt.Fprintf(m.steps, "%s;call-tls;%d;%d;%d;%d;%.2f;%.1f;%.2f;%d;%s;%.2f;%.0f;%.0f;%.0f;%.0f;%d;%d;%s\n",
		label, r.rate, r.count, r.succ, r.failed, r.failPct, r.achieved, r.elapsed, r.retrans, r.p99, r.slowPct,
		r.cpu[0], r.cpu[1], r.cpu[2], r.cpu[3], pass, r.sippRC, strings.ReplaceAll(r.callees, ";", ","))
}

// shim is the stunnel that carries sipp's TCP to the server over TLS, as
// the harness's [sip-tls-client] does (it verifies nothing: it stands in
// for a TLS stack sipp 3.6.1 lacks).
type shim struct {
	pid    int
	cmd    *exec.Cmd
	exited chan struct{}
}

func startShim(o options, work string) (*shim, error) {
	if portBusy(o.shimPort) {
		return nil, fmt.Errorf("127.0.0.1:%d is already in use (pick -shim-port)", o.shimPort)
	}
	conf := fmt.Sprintf(`foreground = yes
pid =
syslog = no
debug = 3
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1

[sip-tls-client]
client = yes
accept = 127.0.0.1:%d
connect = 127.0.0.1:%d
sslVersionMin = TLSv1.2
verifyChain = no
verifyPeer = no
`, o.shimPort, o.tlsPort)
	path := filepath.Join(work, "stunnel.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	argv := []string{"stunnel", path}
	if o.pin {
		argv = append([]string{"taskset", "-c", o.loadCPUs}, argv...)
	}
	logf, err := os.Create(filepath.Join(o.out, "stunnel.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start stunnel: %w", err)
	}
	s := &shim{pid: cmd.Process.Pid, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(s.exited) }()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(o.shimPort), time.Second); err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("stunnel exited (see %s)", filepath.Join(o.out, "stunnel.log"))
		default:
		}
	}
	s.stop()
	return nil, fmt.Errorf("stunnel did not listen on %d", o.shimPort)
}

func (s *shim) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}
