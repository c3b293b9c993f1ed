package test

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// phoneConfig is one baresip softphone, configured as docs/softphones.md
// says (recipe first found in shared/peers/baresip.md).
type phoneConfig struct {
	name        string // label, also the config dir name
	ext, secret string
	ip          string // 127.0.0.x: sip_listen and net_interface
	proxy       string // host:port the account registers to (SIP/TLS)
	audioSource string // e.g. "ausine,1000" or "aufile,/path/tone.wav"
	autoAnswer  bool
	rtpLo       int // rtp_ports rtpLo..rtpLo+19
	// caFile replaces the server's CA certificate as sip_cafile.
	caFile string
	// account names the guide's account block ("baresip-account" unless
	// set) and proxyToken the part of it that proxy replaces ("HOST:5061").
	account, proxyToken string
	// regint is the registration interval asked for (0: 60 s).
	regint int
	// outbound registers an RFC 5626 flow (sipnat=outbound: reg-id,
	// +sip.instance, keep-alives at the server's Flow-Timer).
	outbound bool
}

// phone is a running baresip controlled over ctrl_tcp.
type phone struct {
	cfg    phoneConfig
	dir    string
	recDir string
	proc   *proc
	ctrl   *ctrlClient
}

const phoneRTPPorts = 20 // size of each phone's rtp_ports range

// startPhone writes the phone's config dir, starts baresip and connects to
// its ctrl_tcp socket. baresip is quit (then killed) at cleanup.
func startPhone(t *testing.T, srv *server, cfg phoneConfig) *phone {
	t.Helper()
	requireTools(t, "baresip")
	dir := filepath.Join(artifactDir(t), cfg.name)
	ph := &phone{cfg: cfg, dir: dir, recDir: filepath.Join(dir, "rec")}
	if err := os.MkdirAll(ph.recDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sipPort := freePortPair(t, cfg.ip)
	ctrlPort := freePort(t, "tcp", cfg.ip)
	writeFile(t, filepath.Join(dir, "config"), baresipConfig(t, srv, cfg, sipPort, ctrlPort, ph.recDir))
	writeFile(t, filepath.Join(dir, "accounts"), baresipAccount(t, cfg)+"\n")
	writeFile(t, filepath.Join(dir, "contacts"), "")
	ph.proc = startProc(t, procSpec{
		name:    "baresip-" + cfg.name,
		args:    []string{"baresip", "-4", "-s", "-f", dir}, // -s: SIP trace in the log
		stdin:   strings.NewReader(""),
		timeout: 5 * time.Minute,
	})
	ph.ctrl = dialCtrl(t, hostPort(cfg.ip, ctrlPort), ph.proc, 15*time.Second)
	t.Cleanup(func() { ph.quit(t) })
	return ph
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// softphoneGuide is the user documentation the baresip config comes from:
// the tests run exactly its documented lines.
const softphoneGuide = "../docs/softphones.md"

// docBlock returns the lines of the fenced block that follows the marker
// comment <!-- name: ... --> in the softphone guide.
func docBlock(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(softphoneGuide)
	if err != nil {
		t.Fatalf("read the softphone guide: %v", err)
	}
	doc := string(b)
	start := strings.Index(doc, "<!-- "+name+":")
	end := strings.Index(doc, "<!-- /"+name+" -->")
	if start < 0 || end < start {
		t.Fatalf("%s has no <!-- %s: --> ... <!-- /%s --> block", softphoneGuide, name, name)
	}
	var lines []string
	for _, l := range strings.Split(doc[start:end], "\n")[1:] {
		// Blocks may sit indented in a list item.
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "```") || l == "" {
			continue
		}
		lines = append(lines, l)
	}
	return lines
}

// baresipFilled are the documented keys the guide tells the reader to fill
// in; every other documented line is used as written.
var baresipFilled = []string{"sip_listen", "sip_cafile", "audio_source"}

// baresipConfig renders the config file: the guide's headless config with
// its three fill-in values, then what the harness adds (this phone's
// address and RTP ports, recording, ctrl_tcp), each of which the guide
// describes as an optional addition. An addition may not change a
// documented setting.
func baresipConfig(t *testing.T, srv *server, cfg phoneConfig, sipPort, ctrlPort int, recDir string) string {
	t.Helper()
	fill := map[string]string{
		"sip_listen":   hostPort(cfg.ip, sipPort),
		"sip_cafile":   cmp.Or(cfg.caFile, srv.caFile),
		"audio_source": cfg.audioSource,
	}
	var b strings.Builder
	documented := map[string]bool{}
	for _, l := range docBlock(t, "baresip-config") {
		f := strings.Fields(l)
		if len(f) != 2 {
			t.Fatalf("%s: baresip config line %q is not 'key value'", softphoneGuide, l)
		}
		key := f[0]
		documented[key] = true
		if v, ok := fill[key]; ok {
			fmt.Fprintf(&b, "%s\t\t%s\n", key, v)
			delete(fill, key)
			continue
		}
		b.WriteString(l + "\n")
	}
	if len(fill) > 0 {
		t.Fatalf("%s: the baresip config block lacks the keys the guide says to fill in: %v", softphoneGuide, fill)
	}
	harness := [][2]string{
		{"rtp_ports", fmt.Sprintf("%d-%d", cfg.rtpLo, cfg.rtpLo+phoneRTPPorts-1)},
		{"net_interface", cfg.ip},
		{"module", "sndfile.so"},
		{"snd_path", recDir},
		{"module_app", "ctrl_tcp.so"},
		{"ctrl_tcp_listen", hostPort(cfg.ip, ctrlPort)},
	}
	for _, l := range harness {
		if documented[l[0]] && !strings.HasPrefix(l[0], "module") {
			t.Fatalf("the harness would override the documented baresip setting %s", l[0])
		}
		fmt.Fprintf(&b, "%s\t\t%s\n", l[0], l[1])
	}
	return b.String()
}

// baresipAccount renders the guide's accounts line for this phone: SIP/TLS
// to the server, digest secret, mandatory SRTP (plus auto-answer, which the
// guide offers as an addition).
func baresipAccount(t *testing.T, cfg phoneConfig) string {
	t.Helper()
	block, proxy := cmp.Or(cfg.account, "baresip-account"), cmp.Or(cfg.proxyToken, "HOST:5061")
	lines := docBlock(t, block)
	if len(lines) != 1 {
		t.Fatalf("%s: the baresip account block has %d lines, want 1", softphoneGuide, len(lines))
	}
	line := strings.TrimSpace(lines[0])
	for _, token := range []string{"NUMBER", proxy, "SECRET"} {
		if !strings.Contains(line, token) {
			t.Fatalf("%s: the baresip account line %q has no %s", softphoneGuide, line, token)
		}
	}
	line = strings.NewReplacer("NUMBER", cfg.ext, proxy, cfg.proxy, "SECRET", cfg.secret).Replace(line)
	if cfg.regint != 0 {
		if !strings.Contains(line, ";regint=60") {
			t.Fatalf("%s: the baresip account line %q has no regint=60 to replace", softphoneGuide, line)
		}
		line = strings.Replace(line, ";regint=60", fmt.Sprintf(";regint=%d", cfg.regint), 1)
	}
	if cfg.outbound {
		// baresip registers an outbound flow per configured outbound
		// proxy (reg-id 1 here) and none without one.
		line += fmt.Sprintf(";sipnat=outbound;outbound=\"sip:%s;transport=tls\"", cfg.proxy)
	}
	if cfg.autoAnswer {
		line += ";answermode=auto"
	}
	return line
}

// quit asks baresip to quit and waits (bounded) for it to exit.
func (ph *phone) quit(t *testing.T) {
	if ph.proc.Exited() {
		return
	}
	if ph.ctrl != nil {
		_, _ = ph.ctrl.command("quit", "", 3*time.Second)
	}
	if exited, _ := ph.proc.Wait(5 * time.Second); !exited {
		ph.proc.Stop(5 * time.Second)
	}
}

// ctrlMessage is one JSON message from ctrl_tcp (response or event).
type ctrlMessage struct {
	Response bool   `json:"response"`
	OK       bool   `json:"ok"`
	Data     string `json:"data"`
	Token    string `json:"token"`
	Event    bool   `json:"event"`
	Class    string `json:"class"`
	Type     string `json:"type"`
	Param    string `json:"param"`
	PeerURI  string `json:"peeruri"`
	raw      string
}

// ctrlClient speaks baresip's ctrl_tcp protocol: netstring-framed JSON
// ("LEN:{json},"); it collects every event it receives.
type ctrlClient struct {
	conn   net.Conn
	mu     sync.Mutex
	msgs   []ctrlMessage
	closed bool
	seq    int
}

// dialCtrl connects to ctrl_tcp, retrying while baresip starts.
func dialCtrl(t *testing.T, addr string, p *proc, d time.Duration) *ctrlClient {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c := &ctrlClient{conn: conn}
			go c.readLoop()
			t.Cleanup(func() { conn.Close() })
			return c
		}
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("cannot connect to baresip ctrl_tcp %s: %v\n%s", addr, err, tail(p.Output(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *ctrlClient) readLoop() {
	r := bufio.NewReader(c.conn)
	for {
		msg, err := readNetstring(r)
		if err != nil {
			break
		}
		var m ctrlMessage
		if json.Unmarshal(msg, &m) == nil {
			m.raw = string(msg)
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			c.mu.Unlock()
		}
	}
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
}

// readNetstring reads one "LEN:payload," frame.
func readNetstring(r *bufio.Reader) ([]byte, error) {
	lenStr, err := r.ReadString(':')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(lenStr, ":")))
	if err != nil || n < 0 || n > 1<<20 {
		return nil, fmt.Errorf("bad netstring length %q", lenStr)
	}
	buf := make([]byte, n+1)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	if buf[n] != ',' {
		return nil, fmt.Errorf("netstring not terminated by ','")
	}
	return buf[:n], nil
}

// command sends a ctrl_tcp command and waits up to d for its response.
func (c *ctrlClient) command(cmd, params string, d time.Duration) (ctrlMessage, error) {
	c.mu.Lock()
	c.seq++
	token := fmt.Sprintf("t%d", c.seq)
	c.mu.Unlock()
	req, _ := json.Marshal(map[string]string{"command": cmd, "params": params, "token": token})
	_ = c.conn.SetWriteDeadline(time.Now().Add(d))
	if _, err := fmt.Fprintf(c.conn, "%d:%s,", len(req), req); err != nil {
		return ctrlMessage{}, err
	}
	m, ok := c.waitFor(d, func(m ctrlMessage) bool { return m.Response && m.Token == token })
	if !ok {
		return ctrlMessage{}, fmt.Errorf("no response to %q within %v", cmd, d)
	}
	return m, nil
}

// waitFor waits up to d for a message (already received or new) matching.
func (c *ctrlClient) waitFor(d time.Duration, match func(ctrlMessage) bool) (ctrlMessage, bool) {
	deadline := time.Now().Add(d)
	for {
		c.mu.Lock()
		for _, m := range c.msgs {
			if match(m) {
				c.mu.Unlock()
				return m, true
			}
		}
		closed := c.closed
		c.mu.Unlock()
		if closed || time.Now().After(deadline) {
			return ctrlMessage{}, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eventTypes lists the types of the events received so far.
func (c *ctrlClient) eventTypes() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ts []string
	for _, m := range c.msgs {
		if m.Event {
			ts = append(ts, m.Type+"("+m.Param+")")
		}
	}
	return strings.Join(ts, " ")
}

// waitEvent waits up to d for a baresip event of the given type and fails
// the test (showing the events and the phone's log) when none comes.
func (ph *phone) waitEvent(t *testing.T, typ string, d time.Duration) ctrlMessage {
	t.Helper()
	m, ok := ph.ctrl.waitFor(d, func(m ctrlMessage) bool { return m.Event && m.Type == typ })
	if !ok {
		t.Fatalf("phone %s (%s): no %s event within %v; events: %s\nlog:\n%s",
			ph.cfg.name, ph.cfg.ext, typ, d, ph.ctrl.eventTypes(), tail(ph.proc.Output(), 40))
	}
	return m
}

// waitRegistered waits up to d until the phone's account is registered:
// a REGISTER_OK event, or (since the event may fire before the test's
// ctrl_tcp connection is up) "OK" in the reginfo command's answer.
func (ph *phone) waitRegistered(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		if _, ok := ph.ctrl.waitFor(500*time.Millisecond, func(m ctrlMessage) bool { return m.Event && m.Type == "REGISTER_OK" }); ok {
			return
		}
		if strings.Contains(ph.proc.Output(), "Register: Function not implemented") {
			t.Fatalf("phone %s (%s): baresip gave up registering with ENOSYS (\"Function not implemented\"): "+
				"baresip 1.0.0 / libre 1.1.0 fails as soon as a 401 carries any non-MD5 digest challenge, "+
				"whatever the order, so it cannot register while Veilig also offers SHA-256", ph.cfg.name, ph.cfg.ext)
		}
		m, err := ph.ctrl.command("reginfo", "", 3*time.Second)
		if err == nil {
			last = reANSI.ReplaceAllString(m.Data, "")
			if reRegOK.MatchString(last) {
				return
			}
		}
	}
	t.Fatalf("phone %s (%s) did not register within %v; reginfo: %q; events: %s\nlog:\n%s",
		ph.cfg.name, ph.cfg.ext, d, last, ph.ctrl.eventTypes(), tail(ph.proc.Output(), 40))
}

var (
	reANSI  = regexp.MustCompile(`\x1b\[[0-9;]*m`)
	reRegOK = regexp.MustCompile(`\bOK\b`)
)

// do runs a ctrl_tcp command and fails the test when it is refused.
func (ph *phone) do(t *testing.T, cmd, params string) {
	t.Helper()
	m, err := ph.ctrl.command(cmd, params, 5*time.Second)
	if err != nil || !m.OK {
		t.Fatalf("phone %s: command %s %s failed: %v %s", ph.cfg.name, cmd, params, err, m.raw)
	}
}

// recordings returns the phone's sndfile dumps ending in suffix
// ("-dec.wav" = received audio, "-enc.wav" = sent).
func (ph *phone) recordings(suffix string) []string {
	matches, _ := filepath.Glob(filepath.Join(ph.recDir, "dump-*"+suffix))
	return matches
}
