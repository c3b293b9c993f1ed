package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serverOptions selects the listeners and auth settings of one veilig.
type serverOptions struct {
	IP               string // listen IP for all listeners (default 127.0.0.1)
	Domain           string // sip.domain (default: IP)
	UDP              bool   // enable sip.udp_listen
	TCP              bool   // enable sip.tcp_listen
	InsecureMD5First bool   // auth.insecure_md5_first (sipp 3.6.1 needs it)
	// SippDigest sets auth.insecure_digest_uri_without_user: sipp 3.6.1
	// computes an INVITE's digest over sip:<address it sent to>, without
	// the callee, which Veilig otherwise refuses.
	SippDigest bool
	// FileLimit, when set, starts veilig under `prlimit --nofile=N:N`:
	// its open-file limit (soft and hard) for the connection tests.
	FileLimit int
	Extra     string // more YAML appended to the config
}

// server is one running `veilig serve` with its own config and data dir.
type server struct {
	t           *testing.T
	bin         string
	dir         string
	dataDir     string
	configPath  string
	eventsPath  string
	domain      string
	tlsAddr     string
	udpAddr     string
	tcpAddr     string
	caFile      string // from "CA certificate: ..."
	fingerprint string // from "TLS certificate fingerprint: ..."
	fileLimit   int    // serverOptions.FileLimit
	proc        *proc
}

const serverReadyLine = "Veilig is ready"

// extensionReloadWait covers the server's once-a-second poll for
// extensions added by `veilig ext add` while it runs.
const extensionReloadWait = 1500 * time.Millisecond

// startServer writes a config into a fresh directory, starts veilig and
// waits (bounded) for "Veilig is ready". The server is stopped at cleanup.
func startServer(t *testing.T, opts serverOptions) *server {
	t.Helper()
	bin := requireVeilig(t)
	if opts.IP == "" {
		opts.IP = "127.0.0.1"
	}
	if opts.Domain == "" {
		opts.Domain = opts.IP
	}
	dir := filepath.Join(artifactDir(t), "veilig")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, bin: bin, dir: dir, domain: opts.Domain, fileLimit: opts.FileLimit}
	s.dataDir = filepath.Join(dir, "data")
	s.eventsPath = filepath.Join(s.dataDir, "events.jsonl")
	s.configPath = filepath.Join(dir, "veilig.yaml")
	s.tlsAddr = hostPort(opts.IP, freePort(t, "tcp", opts.IP))
	if opts.UDP {
		s.udpAddr = hostPort(opts.IP, freePort(t, "udp", opts.IP))
	}
	if opts.TCP {
		s.tcpAddr = hostPort(opts.IP, freePort(t, "tcp", opts.IP))
	}
	s.writeConfig(t, opts)
	s.proc = startProc(t, procSpec{
		name:    "veilig",
		args:    s.serveArgs(),
		timeout: 15 * time.Minute,
		stop:    syscall.SIGTERM,
		dropEnv: "VEILIG_", // the config file alone decides
	})
	s.waitReady(t, 30*time.Second)
	return s
}

// serveArgs is the command line of `veilig serve` on this server's config,
// under prlimit when a file limit is set (prlimit sets it and execs, so
// the process is veilig itself).
func (s *server) serveArgs() []string {
	args := []string{s.bin, "serve", "--config", s.configPath}
	if s.fileLimit > 0 {
		args = append([]string{"prlimit", fmt.Sprintf("--nofile=%d:%d", s.fileLimit, s.fileLimit), "--"}, args...)
	}
	return args
}

func (s *server) writeConfig(t *testing.T, opts serverOptions) {
	t.Helper()
	cfg := fmt.Sprintf(`data_dir: %q
sip:
  domain: %q
  tls_listen: %q
  udp_listen: %q
  tcp_listen: %q
auth:
  allow_md5: true
  insecure_md5_first: %t
  insecure_digest_uri_without_user: %t
log:
  level: debug
  format: text
events:
  log_file: %q
`, s.dataDir, opts.Domain, s.tlsAddr, s.udpAddr, s.tcpAddr, opts.InsecureMD5First, opts.SippDigest, s.eventsPath) + opts.Extra
	if err := os.WriteFile(s.configPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

var (
	reCALine     = regexp.MustCompile(`(?m)^CA certificate: (\S+)`)
	reFingerLine = regexp.MustCompile(`(?m)^TLS certificate fingerprint: (.+)$`)
	reListenLine = regexp.MustCompile(`(?m)^listening: (\S+) (\S+)`)
)

// waitReady waits for the ready line and reads the CA file, fingerprint and
// listeners from stdout.
func (s *server) waitReady(t *testing.T, d time.Duration) {
	t.Helper()
	if !s.proc.waitOutput(serverReadyLine, d) {
		state := "still running"
		if s.proc.Exited() {
			state = "exited: " + fmt.Sprint(s.proc.waitErr)
		}
		t.Fatalf("veilig did not print %q within %v (%s); output:\n%s",
			serverReadyLine, d, state, tail(s.proc.Output(), 60))
	}
	out := s.proc.stdout.String()
	if m := reCALine.FindStringSubmatch(out); m != nil {
		s.caFile = strings.TrimSpace(m[1])
	}
	if m := reFingerLine.FindStringSubmatch(out); m != nil {
		s.fingerprint = strings.TrimSpace(m[1])
	}
	listeners := reListenLine.FindAllStringSubmatch(out, -1)
	if !hasListener(listeners, "sip+tls", s.tlsAddr) {
		t.Fatalf("veilig stdout has no line 'listening: sip+tls %s'; stdout:\n%s", s.tlsAddr, out)
	}
	if s.caFile == "" {
		t.Fatalf("veilig stdout has no 'CA certificate:' line (no cert files configured); stdout:\n%s", out)
	}
}

func hasListener(lines [][]string, proto, addr string) bool {
	for _, l := range lines {
		if l[1] == proto && l[2] == addr {
			return true
		}
	}
	return false
}

// tlsPort is the port of the server's SIP/TLS listener.
func (s *server) tlsPort() string {
	_, port, _ := net.SplitHostPort(s.tlsAddr)
	return port
}

// tlsHost is the IP of the server's SIP/TLS listener.
func (s *server) tlsHost() string {
	host, _, _ := net.SplitHostPort(s.tlsAddr)
	return host
}

// cli runs a veilig subcommand against this server's config (bounded).
func (s *server) cli(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	argv := append([]string{s.bin}, args...)
	argv = append(argv, "--config", s.configPath)
	return runProc(t, procSpec{
		name:    "veilig-" + args[0] + "-" + time.Now().Format("150405.000"),
		args:    argv,
		stdin:   strings.NewReader(stdin),
		timeout: 30 * time.Second,
		dropEnv: "VEILIG_",
	})
}

var reSecretLine = regexp.MustCompile(`SIP secret for (\S+) \(shown once\): (\S+)`)

// addExtension creates extension num with a generated secret and returns it.
func (s *server) addExtension(t *testing.T, num string) string {
	t.Helper()
	out, code := s.cli(t, "", "ext", "add", num)
	if code != 0 {
		t.Fatalf("veilig ext add %s exited %d:\n%s", num, code, out)
	}
	m := reSecretLine.FindStringSubmatch(out)
	if m == nil || m[1] != num {
		t.Fatalf("veilig ext add %s printed no 'SIP secret for %s (shown once): ...' line:\n%s", num, num, out)
	}
	// A running server picks up extensions added by another process when
	// it next polls the store (every second): wait for that.
	time.Sleep(extensionReloadWait)
	return m[2]
}

// event is one line of <data_dir>/events.jsonl.
type event struct {
	Time     string         `json:"time"`
	Type     string         `json:"type"`
	Severity string         `json:"severity"`
	Source   string         `json:"source"`
	Account  string         `json:"account"`
	Message  string         `json:"message"`
	Fields   map[string]any `json:"fields"`
}

func (e event) String() string {
	return fmt.Sprintf("%s %s source=%s account=%s %q %v", e.Type, e.Severity, e.Source, e.Account, e.Message, e.Fields)
}

// events reads all events logged so far (unparseable lines fail the test).
func (s *server) events(t *testing.T) []event {
	t.Helper()
	f, err := os.Open(s.eventsPath)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("open events: %v", err)
	}
	defer f.Close()
	var evs []event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			// A partly written last line is not an error yet.
			continue
		}
		evs = append(evs, e)
	}
	return evs
}

// waitEvent polls the event log up to d for an event whose type is typ
// (or one of several separated by "|") that matches (match may be nil) and
// fails the test with the events seen when none arrives.
func (s *server) waitEvent(t *testing.T, d time.Duration, typ string, match func(event) bool) event {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		for _, e := range s.events(t) {
			if slices.Contains(strings.Split(typ, "|"), e.Type) && (match == nil || match(e)) {
				return e
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no %q event within %v; events logged:\n%s", typ, d, s.eventSummary(t))
	return event{}
}

func (s *server) eventSummary(t *testing.T) string {
	var b strings.Builder
	for _, e := range s.events(t) {
		b.WriteString("  " + e.String() + "\n")
	}
	if b.Len() == 0 {
		return "  (none)\n"
	}
	return b.String()
}

// forAccount matches events about one account.
func forAccount(acc string) func(event) bool {
	return func(e event) bool { return e.Account == acc }
}

// callRecord is one element of `veilig calls --json`.
type callRecord struct {
	From         string `json:"from"`
	To           string `json:"to"`
	Disposition  string `json:"disposition"`
	Cause        any    `json:"cause"`
	CallerMedia  any    `json:"caller_media"`
	CalleeMedia  any    `json:"callee_media"`
	MediaInClear any    `json:"media_in_clear"`
	StartedAt    any    `json:"started_at"`
	AnsweredAt   any    `json:"answered_at"`
	EndedAt      any    `json:"ended_at"`
}

// calls returns the call records.
func (s *server) calls(t *testing.T) []callRecord {
	t.Helper()
	out, code := s.cli(t, "", "calls", "--json")
	if code != 0 {
		t.Fatalf("veilig calls --json exited %d:\n%s", code, out)
	}
	start := strings.Index(out, "[")
	if start < 0 {
		t.Fatalf("veilig calls --json printed no JSON array:\n%s", out)
	}
	var recs []callRecord
	dec := json.NewDecoder(strings.NewReader(out[start:]))
	if err := dec.Decode(&recs); err != nil {
		t.Fatalf("parse veilig calls --json: %v\n%s", err, out)
	}
	return recs
}

// waitCallRecord polls the call records up to d for one from→to that has
// ended, and returns it.
func (s *server) waitCallRecord(t *testing.T, d time.Duration, from, to string) callRecord {
	t.Helper()
	deadline := time.Now().Add(d)
	var recs []callRecord
	for {
		recs = s.calls(t)
		for _, r := range recs {
			if strings.Contains(r.From, from) && strings.Contains(r.To, to) && !isEmpty(r.EndedAt) {
				return r
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("no ended call record %s -> %s within %v; records: %+v", from, to, d, recs)
	return callRecord{}
}

func isEmpty(v any) bool {
	if v == nil {
		return true
	}
	str, ok := v.(string)
	return ok && (str == "" || strings.HasPrefix(str, "0001-01-01"))
}

// mediaIsSRTP reports whether a call record's media description names SRTP.
func mediaIsSRTP(v any) bool {
	b, _ := json.Marshal(v)
	return strings.Contains(strings.ToLower(string(b)), "srtp")
}
