package test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// procSpec describes one external process a test starts.
type procSpec struct {
	name    string        // label for logs and the log file name
	args    []string      // argv; args[0] is the program
	dir     string        // working directory (default: the artifact dir)
	env     []string      // added to os.Environ()
	stdin   io.Reader     // default: empty
	timeout time.Duration // the process is killed after this (required)
	stop    os.Signal     // signal used to stop it (default SIGTERM)
	dropEnv string        // environment variables with this prefix are not passed on
}

// proc is a started external process. Its stdout and stderr are kept in
// memory (for waiting on lines) and written to <artifacts>/<name>.log.
type proc struct {
	spec    procSpec
	cmd     *exec.Cmd
	logPath string
	stdout  *syncBuffer
	stderr  *syncBuffer
	done    chan struct{}
	waitErr error
}

// syncBuffer is a goroutine-safe bytes.Buffer that also copies to a file.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	out io.Writer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if b.out != nil {
		_, _ = b.out.Write(p)
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lockedWriter serialises writes of stdout and stderr into one log file.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// startProc starts spec and registers a cleanup that stops it (stop signal,
// then SIGKILL) and, when the test failed, logs the tail of its output.
func startProc(t *testing.T, spec procSpec) *proc {
	t.Helper()
	if spec.timeout <= 0 {
		t.Fatalf("startProc %s: a timeout is required", spec.name)
	}
	if spec.stop == nil {
		spec.stop = syscall.SIGTERM
	}
	dir := artifactDir(t)
	if spec.dir == "" {
		spec.dir = dir
	}
	logPath := filepath.Join(dir, spec.name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("create log for %s: %v", spec.name, err)
	}
	lw := &lockedWriter{w: f}
	p := &proc{
		spec:    spec,
		logPath: logPath,
		stdout:  &syncBuffer{out: lw},
		stderr:  &syncBuffer{out: lw},
		done:    make(chan struct{}),
	}
	cmd := exec.Command(spec.args[0], spec.args[1:]...)
	cmd.Dir = spec.dir
	cmd.Env = append(environWithout(spec.dropEnv), spec.env...)
	cmd.Stdin = spec.stdin
	cmd.Stdout = p.stdout
	cmd.Stderr = p.stderr
	cmd.WaitDelay = 3 * time.Second
	p.cmd = cmd
	fmt.Fprintf(lw, "# %s\n", strings.Join(spec.args, " "))
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s (%s): %v", spec.name, spec.args[0], err)
	}
	go p.wait(f)
	go p.killAfter(spec.timeout)
	t.Cleanup(func() {
		p.Stop(5 * time.Second)
		if t.Failed() {
			t.Logf("--- last output of %s (%s):\n%s", spec.name, logPath, tail(p.Output(), 40))
		}
	})
	return p
}

func (p *proc) wait(f *os.File) {
	p.waitErr = p.cmd.Wait()
	f.Close()
	close(p.done)
}

func (p *proc) killAfter(d time.Duration) {
	select {
	case <-p.done:
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
	}
}

// Stop sends the stop signal, waits up to grace, then kills. It returns
// once the process has exited (or 5 s after SIGKILL).
func (p *proc) Stop(grace time.Duration) {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(p.spec.stop)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// Wait waits up to d for the process to exit on its own. It reports
// whether it exited and its exit code (-1 when killed by a signal).
func (p *proc) Wait(d time.Duration) (exited bool, code int) {
	select {
	case <-p.done:
		return true, p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		return false, 0
	}
}

// Exited reports whether the process has ended.
func (p *proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Output returns stdout followed by stderr.
func (p *proc) Output() string {
	return p.stdout.String() + p.stderr.String()
}

// waitOutput waits up to d for substr to appear in stdout or stderr. It
// returns false on timeout or when the process exits without printing it.
func (p *proc) waitOutput(substr string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if strings.Contains(p.Output(), substr) {
			return true
		}
		if p.Exited() {
			return strings.Contains(p.Output(), substr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// runProc runs a short command to completion (bounded by timeout) and
// returns its combined output and exit code.
func runProc(t *testing.T, spec procSpec) (string, int) {
	t.Helper()
	p := startProc(t, spec)
	exited, code := p.Wait(spec.timeout + 5*time.Second)
	if !exited {
		t.Fatalf("%s did not finish within %v", spec.name, spec.timeout)
	}
	return p.Output(), code
}

// environWithout returns os.Environ() minus variables starting with prefix
// ("" keeps all).
func environWithout(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if prefix == "" || !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// artifactDir is where a test writes configs, logs and captures: a
// t.TempDir, or E2E_ARTIFACTS/<test name> when that is set (kept
// after the run for debugging).
func artifactDir(t *testing.T) string {
	t.Helper()
	artifactMu.Lock()
	defer artifactMu.Unlock()
	if d, ok := artifactDirs[t.Name()]; ok {
		return d
	}
	var d string
	if root := os.Getenv("E2E_ARTIFACTS"); root != "" {
		d = filepath.Join(root, strings.ReplaceAll(t.Name(), "/", "_"))
		_ = os.RemoveAll(d)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("artifact dir: %v", err)
		}
	} else {
		d = t.TempDir()
	}
	artifactDirs[t.Name()] = d
	t.Cleanup(func() {
		artifactMu.Lock()
		delete(artifactDirs, t.Name())
		artifactMu.Unlock()
	})
	return d
}

var (
	artifactMu   sync.Mutex
	artifactDirs = map[string]string{}
)

// toolPackages names the Debian package that provides each external tool.
var toolPackages = map[string]string{
	"sipp":    "sip-tester",
	"baresip": "baresip-core",
	"tshark":  "tshark",
	"sox":     "sox",
	"stunnel": "stunnel4",
	"unshare": "util-linux",
	"ip":      "iproute2",
}

// requireTools fails the test (not skip: CI installs them) when a tool is
// missing from PATH.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found in PATH: install it (apt-get install %s)", tool, toolPackages[tool])
		}
	}
}

// requireRoot fails the test when not running as root (needed for packet
// capture and network namespaces).
func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("this test needs root (%s); run go test as root", why)
	}
}
