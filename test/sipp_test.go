package test

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// sippRun is one bounded sipp invocation (Debian's sipp 3.6.1 has no TLS:
// it speaks TCP to a stunnel shim, -t t1 = one connection).
type sippRun struct {
	name     string
	scenario string   // file in testdata/sipp
	target   string   // host:port (the stunnel shim); "" for a UAS
	keys     []string // name, value pairs passed with -key
	extra    []string // further arguments
	port     int      // sipp's own -p port (0 = pick one)
	timeout  time.Duration
}

// args renders the sipp command line; message/error traces go to the
// artifact dir.
func (r sippRun) args(t *testing.T) []string {
	t.Helper()
	dir := artifactDir(t)
	scen, err := filepath.Abs(filepath.Join("testdata", "sipp", r.scenario))
	if err != nil {
		t.Fatal(err)
	}
	if r.port == 0 {
		r.port = freePort(t, "tcp", "127.0.0.1")
	}
	argv := []string{"sipp"}
	if r.target != "" {
		argv = append(argv, r.target)
	}
	argv = append(argv, "-t", "t1", "-sf", scen, "-i", "127.0.0.1", "-p", strconv.Itoa(r.port),
		"-mp", strconv.Itoa(freeUDPRange(t, "127.0.0.1", 4)),
		"-m", "1", "-timeout", strconv.Itoa(int(r.timeout.Seconds())), "-recv_timeout", "10000",
		"-nostdin", "-trace_msg", "-message_file", filepath.Join(dir, r.name+".messages.log"),
		"-trace_err", "-error_file", filepath.Join(dir, r.name+".errors.log"))
	for i := 0; i+1 < len(r.keys); i += 2 {
		argv = append(argv, "-key", r.keys[i], r.keys[i+1])
	}
	return append(argv, r.extra...)
}

// start starts sipp in the background.
func (r sippRun) start(t *testing.T) *proc {
	t.Helper()
	requireTools(t, "sipp")
	if r.timeout == 0 {
		r.timeout = 30 * time.Second
	}
	return startProc(t, procSpec{name: "sipp-" + r.name, args: r.args(t), timeout: r.timeout + 10*time.Second})
}

// mustPass runs sipp to completion and fails the test, showing the SIP
// messages sipp exchanged, unless the scenario succeeded (exit code 0).
func (r sippRun) mustPass(t *testing.T) {
	t.Helper()
	p := r.start(t)
	r.requireSuccess(t, p)
}

// requireSuccess waits for a started sipp and checks its exit code.
func (r sippRun) requireSuccess(t *testing.T, p *proc) {
	t.Helper()
	exited, code := p.Wait(p.spec.timeout + 5*time.Second)
	if !exited || code != 0 {
		t.Fatalf("sipp %s (%s) failed: exited=%v code=%d\nsipp output:\n%s\nerrors:\n%s\nmessages:\n%s",
			r.name, r.scenario, exited, code, tail(p.Output(), 30),
			readTail(filepath.Join(artifactDir(t), r.name+".errors.log"), 40),
			readTail(filepath.Join(artifactDir(t), r.name+".messages.log"), 120))
	}
}

func readTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return tail(string(b), n)
}

// sippUAC describes the usual caller-side run through a stunnel shim.
func sippUAC(name, scenario string, shimPort int, srv *server, user, pass string, keys ...string) sippRun {
	return sippRun{
		name:     name,
		scenario: scenario,
		target:   hostPort("127.0.0.1", shimPort),
		keys: append([]string{
			"user", user, "domain", srv.domain, "expires", "300",
			"contact_hostport", "127.0.0.1:5060",
		}, keys...),
		extra: []string{"-au", user, "-ap", pass},
	}
}

// bridgeToSippUAS registers ext over its own TLS connection (from localIP)
// and then splices that connection to a sipp UAS listening on TCP uasAddr,
// so requests Veilig sends to the registered device reach sipp.
func bridgeToSippUAS(t *testing.T, srv *server, localIP, ext, secret, uasAddr string) *sipConn {
	t.Helper()
	c := dialSIPTLS(t, localIP, srv.tlsAddr)
	if _, final := c.register(t, srv.domain, ext, secret, "SHA-256"); final.status() != 200 {
		t.Fatalf("registering %s for the sipp UAS: got %q, want 200\n%s", ext, final.start, final.raw)
	}
	uas, err := net.DialTimeout("tcp", uasAddr, 5*time.Second)
	if err != nil {
		t.Fatalf("connect to sipp UAS %s: %v", uasAddr, err)
	}
	t.Cleanup(func() { uas.Close() })
	_ = c.conn.SetDeadline(time.Time{})
	go func() { _, _ = io.Copy(uas, c.r); uas.Close() }()
	go func() { _, _ = io.Copy(c.conn, uas); c.conn.Close() }()
	return c
}

// mustRegisterRaw registers ext over a new TLS connection that stays open
// (the device is "online") and fails the test unless Veilig answers 200.
func mustRegisterRaw(t *testing.T, srv *server, localIP, ext, secret string) *sipConn {
	t.Helper()
	c := dialSIPTLS(t, localIP, srv.tlsAddr)
	if _, final := c.register(t, srv.domain, ext, secret, "SHA-256"); final.status() != 200 {
		t.Fatalf("REGISTER %s: got %q, want 200\n%s", ext, final.start, final.raw)
	}
	return c
}

func describeCall(r callRecord) string {
	return fmt.Sprintf("%+v", r)
}
