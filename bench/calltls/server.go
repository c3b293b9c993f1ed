package main

// The servers under test, each started pinned to the server core and
// stopped by the PID this tool started, and the CPU accounting of process
// trees (Kamailio forks its workers).

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is one server under test: how to provision it once and how to
// launch it for a measurement.
type server struct {
	label string   // "kamailio", "veilig", "veilig-before", ...
	kind  string   // "kamailio" or "veilig"
	bin   string   // veilig binary
	argv  []string // launch command, filled in by prepare

	pristine, run string // veilig: provisioned data dir and the per-start copy
}

// parseTargets reads -targets: "kamailio", "veilig" (the given or built
// binary) or LABEL=PATH (a veilig binary under that label).
func parseTargets(s, veiligBin string) ([]*server, error) {
	var out []*server
	seen := map[string]bool{}
	for _, t := range strings.Split(s, ",") {
		t = strings.TrimSpace(t)
		var sv *server
		switch label, path, ok := strings.Cut(t, "="); {
		case t == "kamailio":
			sv = &server{label: t, kind: "kamailio"}
		case t == "veilig":
			sv = &server{label: t, kind: "veilig", bin: veiligBin}
		case ok && label != "" && path != "" && label != "kamailio":
			abs, err := filepath.Abs(path)
			if err != nil {
				return nil, err
			}
			sv = &server{label: label, kind: "veilig", bin: abs}
		default:
			return nil, fmt.Errorf("-targets: %q is not kamailio, veilig or LABEL=/path/to/veilig", t)
		}
		if seen[sv.label] {
			return nil, fmt.Errorf("-targets: %q named twice", sv.label)
		}
		seen[sv.label] = true
		out = append(out, sv)
	}
	if len(out) == 0 {
		return nil, errors.New("-targets: no server named")
	}
	return out, nil
}

// env is what every server's provisioning and launch need.
type env struct {
	harness, work, domain string
	udpPort, tlsPort      int
	cert, key             string
	serverCPUs            string
	pin                   bool
	kamailio              kamailioParams
}

// prepare provisions the server once per measurement: Kamailio's config and
// subscriber table, or Veilig's data directory (`veilig ext import` of
// users.txt), which each start then copies afresh.
func (s *server) prepare(e env) error {
	switch s.kind {
	case "kamailio":
		cfg, err := prepareKamailio(e.harness, e.work, e.domain, e.udpPort, e.tlsPort, e.kamailio)
		if err != nil {
			return err
		}
		s.argv = []string{"kamailio", "-f", cfg, "-DD", "-E", "-m", strconv.Itoa(e.kamailio.shmMB), "-M", strconv.Itoa(e.kamailio.pkgMB)}
	case "veilig":
		s.pristine = filepath.Join(e.work, s.label+"-data")
		s.run = filepath.Join(e.work, s.label+"-run")
		_ = os.RemoveAll(s.pristine)
		// An older build (compare.sh) has no init and makes the
		// directory in ext import; its refusal is not an error.
		_ = exec.Command(s.bin, "init", "--data-dir", s.pristine).Run()
		cmd := exec.Command(s.bin, "ext", "import", filepath.Join(e.work, "users.txt"), "--data-dir", s.pristine,
			"--set", "sip.domain="+e.domain)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s ext import: %v\n%s", s.bin, err, out)
		}
		// The settings bench/peers.sh gives Veilig, minus the one for SDES
		// over UDP: every leg here is TLS.
		s.argv = []string{s.bin, "serve", "--data-dir", s.run, "--sip-domain", e.domain,
			"--sip-tls", "127.0.0.1:" + strconv.Itoa(e.tlsPort), "--tls-cert", e.cert, "--tls-key", e.key,
			"--set", "auth.insecure_md5_first=true", "--set", "guard.trusted_sources=127.0.0.1/32", "--set", "log.level=warn"}
		// sipp's digest uri lacks the callee; a build from before that
		// check (compare.sh's "before") does not know the setting.
		if exe, err := os.ReadFile(s.bin); err == nil && bytes.Contains(exe, []byte("insecure_digest_uri_without_user")) {
			s.argv = append(s.argv, "--set", "auth.insecure_digest_uri_without_user=true")
		}
	}
	return nil
}

// keepEvents copies Veilig's security events of the running data directory
// to dst (before a restart replaces the directory), so that the reason for
// each refused call of a failed step can be read afterwards.
func (s *server) keepEvents(dst string) {
	if s.kind != "veilig" {
		return
	}
	b, err := os.ReadFile(filepath.Join(s.run, "events.jsonl"))
	if err == nil {
		_ = os.WriteFile(dst, b, 0o600)
	}
}

// running is a started server.
type running struct {
	pid    int
	cmd    *exec.Cmd
	exited chan struct{}
	log    *os.File
}

// start launches the server pinned to the server CPUs, on a fresh copy of
// Veilig's data directory (as Kamailio starts with an empty location
// table), and waits until its TLS port accepts connections.
func (s *server) start(e env, logPath string) (*running, error) {
	if portBusy(e.tlsPort) {
		return nil, fmt.Errorf("127.0.0.1:%d is already in use (another server is running there; pick -tls-port)", e.tlsPort)
	}
	if s.kind == "veilig" {
		_ = os.RemoveAll(s.run)
		if out, err := exec.Command("cp", "-a", s.pristine, s.run).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("copy %s: %v: %s", s.pristine, err, out)
		}
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	argv := s.argv
	if e.pin {
		argv = append([]string{"taskset", "-c", e.serverCPUs}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", s.label, err)
	}
	// taskset execs the server in place: the PID is the server's.
	r := &running{pid: cmd.Process.Pid, cmd: cmd, exited: make(chan struct{}), log: logf}
	go func() { _ = cmd.Wait(); close(r.exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(e.tlsPort), time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-r.exited:
			logf.Close()
			return nil, fmt.Errorf("%s exited before it listened on %d (see %s)", s.label, e.tlsPort, logPath)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.stop()
			return nil, fmt.Errorf("%s did not listen on %d within 20 s (see %s)", s.label, e.tlsPort, logPath)
		}
	}
	time.Sleep(500 * time.Millisecond)
	return r, nil
}

func (r *running) alive() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the server's PID and SIGKILL after 10 s, as run.sh
// does.
func (r *running) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
	r.log.Close()
}

func portBusy(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return true
	}
	l.Close()
	return false
}

// treeTicks returns utime+stime (clock ticks) of pid and all its live
// descendants, like run.sh's tree_ticks.
func treeTicks(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	parent := map[int]int{}
	ticks := map[int]int64{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := procStat(p)
		if f == nil {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		parent[p], ticks[p] = pp, u+st
	}
	in := map[int]bool{pid: true}
	for changed := true; changed; {
		changed = false
		for p, pp := range parent {
			if !in[p] && in[pp] {
				in[p], changed = true, true
			}
		}
	}
	var t int64
	for p := range in {
		t += ticks[p]
	}
	return t
}

// procStat returns the fields of /proc/PID/stat after the command name, so
// field N of proc(5) is f[N-3]; nil if unreadable.
func procStat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return nil
	}
	return f
}
