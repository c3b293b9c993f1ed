package test

// After a restart every TLS connection is gone, and a phone can be called
// again only once it has registered on a new one. Veilig makes that
// happen within a minute: RFC 5626 outbound where the phone supports it
// (it notices the lost flow and registers again), and an expiry of at
// most sip.connection_max_expires (60 s) where it does not.

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// regStates returns extension -> state from `veilig regs --json`.
func regStates(t *testing.T, srv *server) map[string]string {
	t.Helper()
	out, code := srv.cli(t, "", "regs", "--json")
	if code != 0 {
		t.Fatalf("veilig regs --json: %d\n%s", code, out)
	}
	var regs []struct {
		Extension string `json:"extension"`
		State     string `json:"state"`
	}
	if i := strings.Index(out, "["); i >= 0 {
		if err := json.Unmarshal([]byte(out[i:]), &regs); err != nil {
			t.Fatalf("regs --json: %v\n%s", err, out)
		}
	}
	st := map[string]string{}
	for _, r := range regs {
		if st[r.Extension] != "registered" {
			st[r.Extension] = r.State
		}
	}
	return st
}

// TestBaresipReachableAfterRestart: two baresip phones register over TLS
// asking for an hour: 1001 plainly (Veilig grants 60 s), 1002 with RFC
// 5626 outbound (it keeps its hour, with keep-alives at Flow-Timer).
// Veilig restarts: both are listed as disconnected, then each registers
// again within a minute and is listed registered, and a call from the
// other to each connects.
func TestBaresipReachableAfterRestart(t *testing.T) {
	requireTools(t, "baresip")
	srv := startServer(t, serverOptions{Extra: "media:\n  port_range: " + relayPorts + "\n"})
	s1, s2 := srv.addExtension(t, "1001"), srv.addExtension(t, "1002")
	a := startPhone(t, srv, phoneConfig{name: "a", ext: "1001", secret: s1, ip: "127.0.0.2", proxy: srv.tlsAddr,
		audioSource: "ausine,1000", autoAnswer: true, rtpLo: freeUDPRange(t, "127.0.0.2", phoneRTPPorts), regint: 3600})
	b := startPhone(t, srv, phoneConfig{name: "b", ext: "1002", secret: s2, ip: "127.0.0.3", proxy: srv.tlsAddr,
		audioSource: "ausine,700", autoAnswer: true, rtpLo: freeUDPRange(t, "127.0.0.3", phoneRTPPorts), regint: 3600, outbound: true})
	a.waitRegistered(t, 20*time.Second)
	b.waitRegistered(t, 20*time.Second)
	if st := regStates(t, srv); st["1001"] != "registered" || st["1002"] != "registered" {
		t.Fatalf("before the restart: %v, want both registered", st)
	}
	if !strings.Contains(b.proc.Output(), "Flow-Timer") {
		t.Logf("note: no Flow-Timer seen in 1002's SIP trace")
	}

	srv.restart(t, "veilig-restarted")
	restarted := time.Now()
	if st := regStates(t, srv); st["1001"] != "disconnected" || st["1002"] != "disconnected" {
		t.Errorf("right after the restart: %v, want both disconnected", st)
	}
	back := map[string]time.Duration{}
	for time.Since(restarted) < 75*time.Second && len(back) < 2 {
		for ext, state := range regStates(t, srv) {
			if _, ok := back[ext]; !ok && state == "registered" {
				back[ext] = time.Since(restarted)
				t.Logf("%s registered again %v after the restart", ext, back[ext].Round(100*time.Millisecond))
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, ext := range []string{"1001", "1002"} {
		d, ok := back[ext]
		if !ok || d > time.Minute+5*time.Second {
			t.Errorf("%s not registered again within a minute of the restart (%v)", ext, d)
		}
	}
	// Each is reached by the other.
	for _, c := range []struct {
		from, to *phone
	}{{a, b}, {b, a}} {
		start := time.Now()
		c.from.do(t, "dial", "sip:"+c.to.cfg.ext+"@"+srv.tlsAddr)
		c.from.waitEvent(t, "CALL_ESTABLISHED", 20*time.Second)
		c.to.waitEvent(t, "CALL_ESTABLISHED", 10*time.Second)
		t.Logf("%s -> %s connected %v after dialling, %v after the restart", c.from.cfg.ext, c.to.cfg.ext,
			time.Since(start).Round(10*time.Millisecond), time.Since(restarted).Round(100*time.Millisecond))
		c.from.do(t, "hangup", "")
		c.from.waitEvent(t, "CALL_CLOSED", 10*time.Second)
		c.to.waitEvent(t, "CALL_CLOSED", 10*time.Second)
	}
}
