package test

// Managing a running server from the CLI: changes take effect before the
// command returns, live calls are listed and ended, the health probes, and
// the messages a first trial found wrong.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestCLIBanTakesEffectAtOnce: `veilig ban add` against a running server
// returns only once the running guard holds the ban, so the banned
// address's very next request is dropped (measured from the command's
// return: well inside 100 ms, since it is already in force); `ban remove`
// lifts it as promptly; another address is served throughout. A network
// ban covers every address in it and no other.
func TestCLIBanTakesEffectAtOnce(t *testing.T) {
	srv := startServer(t, serverOptions{UDP: true})
	const banned, other = "127.0.0.71", "127.0.0.72"
	probe := func(ip string) string {
		return udpAsk(t, ip, srv.udpAddr, optionsMsg("UDP", srv.domain), 700*time.Millisecond)
	}
	if statusOf(probe(banned)) == 0 {
		t.Fatalf("OPTIONS from %s before the ban: no answer", banned)
	}
	if out, code := srv.cli(t, "", "ban", "add", banned, "--for", "1h"); code != 0 {
		t.Fatalf("ban add: exit %d\n%s", code, out)
	}
	returned := time.Now()
	if res := probe(banned); res != "" {
		t.Fatalf("first OPTIONS from %s after `ban add` returned got an answer (the ban was not yet in force):\n%s", banned, firstLine(res))
	}
	t.Logf("first request after `ban add` returned was sent %s later and dropped", time.Since(returned).Round(time.Millisecond))
	if statusOf(probe(other)) == 0 {
		t.Fatalf("OPTIONS from %s (not banned) got no answer", other)
	}
	if out, code := srv.cli(t, "", "ban", "remove", banned); code != 0 {
		t.Fatalf("ban remove: exit %d\n%s", code, out)
	}
	if res := probe(banned); statusOf(res) == 0 {
		t.Fatalf("first OPTIONS from %s after `ban remove` returned: %q, want an answer", banned, firstLine(res))
	}
	// A network: every address in it, and none outside.
	if out, code := srv.cli(t, "", "ban", "add", "127.0.0.80/30"); code != 0 || !strings.Contains(out, "127.0.0.80/30") {
		t.Fatalf("ban add 127.0.0.80/30: exit %d\n%s", code, out)
	}
	if res := probe("127.0.0.82"); res != "" {
		t.Fatalf("OPTIONS from 127.0.0.82 inside the banned network answered: %s", firstLine(res))
	}
	if statusOf(probe("127.0.0.84")) == 0 {
		t.Fatal("OPTIONS from 127.0.0.84, outside the banned network, got no answer")
	}
	if out, _ := srv.cli(t, "", "why", "127.0.0.81"); !strings.Contains(out, "127.0.0.80/30") || !strings.Contains(out, "veilig ban remove 127.0.0.80/30") {
		t.Errorf("why for an address in a banned network does not name the network and its lift:\n%s", out)
	}
	if out, code := srv.cli(t, "", "ban", "add", "0.0.0.0/0"); code == 0 || !strings.Contains(out, "too broad") {
		t.Errorf("ban add 0.0.0.0/0: exit %d\n%s", code, out)
	}
	if out, code := srv.cli(t, "", "ban", "remove", "127.0.0.80/30"); code != 0 {
		t.Fatalf("ban remove 127.0.0.80/30: exit %d\n%s", code, out)
	}
	if statusOf(probe("127.0.0.82")) == 0 {
		t.Fatal("OPTIONS from 127.0.0.82 after the network ban was lifted got no answer")
	}
	out, _ := srv.cli(t, "", "auditlog", "--json")
	for _, action := range []string{"ban.add", "ban.remove"} {
		if !strings.Contains(out, `"`+action+`"`) {
			t.Errorf("audit log has no %s entry:\n%s", action, out)
		}
	}
}

// liveCall is one entry of `veilig calls --live --json`.
type liveCall struct {
	ID              string `json:"id"`
	From            string `json:"from"`
	To              string `json:"to"`
	State           string `json:"state"`
	CallerLeg       string `json:"caller_leg"`
	CalleeLeg       string `json:"callee_leg"`
	DurationSeconds int64  `json:"duration_seconds"`
}

// TestLiveCallsAndHangup: an answered SRTP call shows in `calls --live`
// with both legs' encryption and its duration; `calls hangup ID` sends BYE
// on both legs, the record says who ended it, and the audit log has it.
func TestLiveCallsAndHangup(t *testing.T) {
	srv, a, b := setupCall(t, "127.0.0.73", "127.0.0.74")
	if out, _ := srv.cli(t, "", "calls", "--live"); !strings.Contains(out, "No calls in progress.") {
		t.Fatalf("calls --live before any call:\n%s", out)
	}
	c := a.invite("1002", srtpOffer(a.ip, "sendrecv"))
	in := b.acceptInvite(5 * time.Second)
	in.reply(200, "OK", answerTo(in.invite.body, b.ip, "sendrecv"))
	requireStatus(t, "caller's INVITE", c.waitAnswer(5*time.Second), 200)
	c.ack("")
	b.waitRequest(5*time.Second, "ACK")
	time.Sleep(1100 * time.Millisecond)

	out, code := srv.cli(t, "", "calls", "--live", "--json")
	if code != 0 {
		t.Fatalf("calls --live --json: exit %d\n%s", code, out)
	}
	var live []liveCall
	if err := json.Unmarshal([]byte(out), &live); err != nil {
		t.Fatalf("calls --live --json is not one JSON array: %v\n%s", err, out)
	}
	if len(live) != 1 {
		t.Fatalf("calls --live: %d calls, want 1\n%s", len(live), out)
	}
	lc := live[0]
	if lc.From != "1001" || lc.To != "1002" || lc.State != "confirmed" || !strings.HasPrefix(lc.CallerLeg, "SRTP") || !strings.HasPrefix(lc.CalleeLeg, "SRTP") || lc.DurationSeconds < 1 {
		t.Fatalf("live call %+v: want 1001 -> 1002 confirmed, SRTP on both legs, at least 1 s", lc)
	}
	if table, _ := srv.cli(t, "", "calls", "--live"); !strings.Contains(table, lc.ID) || !strings.Contains(table, "CALLER LEG") {
		t.Errorf("calls --live table lacks the call or its columns:\n%s", table)
	}
	if out, code := srv.cli(t, "", "calls", "hangup", "no-such-call"); code == 0 || !strings.Contains(out, "no call no-such-call in progress") {
		t.Errorf("hangup of an unknown call: exit %d\n%s", code, out)
	}
	if out, code := srv.cli(t, "", "calls", "hangup", lc.ID); code != 0 || !strings.Contains(out, "ended") {
		t.Fatalf("calls hangup %s: exit %d\n%s", lc.ID, code, out)
	}
	for _, u := range []*sipUA{a, b} {
		bye := u.waitRequest(5*time.Second, "BYE")
		u.respond(bye, 200, "OK", "", "")
	}
	rec := srv.waitRecordFor(t, 10*time.Second, c.callID)
	if rec.Disposition != "answered" || !strings.Contains(fmt.Sprint(rec.Cause), "ended by") {
		t.Errorf("record after hangup: %s; want answered, cause naming who ended it", describeCall(rec.callRecord))
	}
	if out, _ := srv.cli(t, "", "calls", "--live"); !strings.Contains(out, "No calls in progress.") {
		t.Errorf("calls --live after hangup:\n%s", out)
	}
	if out, _ := srv.cli(t, "", "auditlog", "--json"); !strings.Contains(out, `"call.hangup"`) {
		t.Errorf("audit log has no call.hangup entry:\n%s", out)
	}
}

// TestHealthProbes: /healthz and /readyz on the metrics listener of a
// running server; readiness names its checks.
func TestHealthProbes(t *testing.T) {
	_, maddr := startGuardServer(t, serverOptions{}, "")
	cl := &http.Client{Timeout: 5 * time.Second}
	for path, want := range map[string]string{"/healthz": `"status":"alive"`, "/readyz": `"status":"ready"`} {
		res, err := cl.Get("http://" + maddr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d %s, want an answer with %s", path, res.StatusCode, body, want)
		}
		if path == "/readyz" && (!strings.Contains(string(body), `"store":"ok"`) || !strings.Contains(string(body), `"sip_listeners":"ok"`)) {
			t.Errorf("GET /readyz does not name its checks: %s", body)
		}
	}
}

// TestManagementMessages: the messages and formats a first trial found
// wrong, each as it should be.
func TestManagementMessages(t *testing.T) {
	srv := startServer(t, serverOptions{})
	srv.addExtension(t, "1003")

	out, code := srv.cli(t, "", "ext", "set", "1003", "--caller-ids", "+31205550000")
	if code != 0 || strings.Contains(out, "only from .") || !strings.Contains(out, "+31205550000") {
		t.Errorf("ext set --caller-ids: exit %d\n%s", code, out)
	}
	out, code = srv.cli(t, "", "ext", "unlock", "9999")
	if code == 0 || !strings.Contains(out, "extension 9999 does not exist") {
		t.Errorf("ext unlock of a missing extension: exit %d\n%s", code, out)
	}
	out, code = srv.cli(t, "", "ext", "lift", "1003")
	if code == 0 || !strings.Contains(out, "not suspended") {
		t.Errorf("ext lift of an extension never suspended: exit %d\n%s", code, out)
	}
	// Global flags before the command name.
	out, code = runProc(t, procSpec{name: "veilig-global-flags", args: []string{srv.bin, "--config", srv.configPath, "ext", "list"},
		timeout: 30 * time.Second, dropEnv: "VEILIG_"})
	if code != 0 || !strings.Contains(out, "1003") {
		t.Errorf("veilig --config F ext list: exit %d\n%s", code, out)
	}
	out, code = srv.cli(t, "", "events", "--json")
	var evs []map[string]any
	if err := json.Unmarshal([]byte(out), &evs); code != 0 || err != nil || len(evs) == 0 {
		t.Fatalf("events --json is not one JSON array of events (exit %d, %v):\n%s", code, err, out)
	}
	for _, k := range []string{"id", "time", "type", "severity"} {
		if _, ok := evs[0][k]; !ok {
			t.Errorf("events --json entries lack %q: %v", k, evs[0])
		}
	}
	if strings.Contains(out, `"ID"`) || strings.Contains(out, `"Time"`) {
		t.Errorf("events --json has Go field names:\n%s", out)
	}
	time.Sleep(300 * time.Millisecond)
	if n := countEvents(srv.events(t), "fraud.lifted", forAccount("1003")); n != 0 {
		t.Errorf("a refused ext lift wrote %d fraud.lifted events", n)
	}
}

// TestOrderedShutdown: SIGTERM stops the edge first and the event bus
// last: the exit status is 0, the log says so, and server.stopped is the
// last event written, after the registration a device made just before.
func TestOrderedShutdown(t *testing.T) {
	srv := startServer(t, serverOptions{})
	secret := srv.addExtension(t, "1001")
	c := dialSIPTLS(t, "127.0.0.75", srv.tlsAddr)
	if _, final := c.register(t, srv.domain, "1001", secret, "SHA-256"); final.status() != 200 {
		t.Fatalf("REGISTER: %s", final.start)
	}
	srv.proc.Stop(20 * time.Second)
	exited, code := srv.proc.Wait(time.Second)
	if !exited || code != 0 {
		t.Fatalf("after SIGTERM: exited=%v code=%d", exited, code)
	}
	out := srv.proc.Output()
	for _, line := range []string{"shutting down", "msg=stopped"} {
		if !strings.Contains(out, line) {
			t.Errorf("log lacks %q:\n%s", line, out)
		}
	}
	evs := srv.events(t)
	if len(evs) == 0 || evs[len(evs)-1].Type != "server.stopped" {
		t.Fatalf("last event is not server.stopped: %v", evs)
	}
	if countEvents(evs, "register", forAccount("1001")) != 1 {
		t.Errorf("the registration before the stop is not in the event log")
	}
}

// TestCLIWithoutDataDirCreatesNothing: a management command run from a
// directory with no data (no flag, no environment, no installed config)
// fails, says where it looked and how to point at the server, and creates
// nothing; `veilig init` is the one way to make a directory by hand.
func TestCLIWithoutDataDirCreatesNothing(t *testing.T) {
	bin := requireVeilig(t)
	if _, err := os.Stat("/etc/veilig/veilig.yaml"); err == nil {
		t.Skip("an installed /etc/veilig/veilig.yaml would be found")
	}
	dir := t.TempDir()
	for _, args := range [][]string{{"regs"}, {"ext", "add", "1001"}, {"ban", "list"}} {
		out, code := runProc(t, procSpec{name: "veilig-nodata-" + args[0], args: append([]string{bin}, args...), dir: dir,
			timeout: 30 * time.Second, dropEnv: "VEILIG_"})
		if code == 0 || !strings.Contains(out, "no Veilig data directory found: looked at ./veilig-data") || !strings.Contains(out, "--data-dir DIR") {
			t.Errorf("veilig %s from an empty directory: exit %d\n%s", strings.Join(args, " "), code, out)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("a refused command created %v in the working directory", ents)
	}
	out, code := runProc(t, procSpec{name: "veilig-init", args: []string{bin, "init", "--data-dir", "made"}, dir: dir,
		timeout: 30 * time.Second, dropEnv: "VEILIG_"})
	if code != 0 || !strings.Contains(out, "made the data directory") {
		t.Fatalf("veilig init: exit %d\n%s", code, out)
	}
	if out, code := runProc(t, procSpec{name: "veilig-list-made", args: []string{bin, "ext", "list", "--data-dir", "made"}, dir: dir,
		timeout: 30 * time.Second, dropEnv: "VEILIG_"}); code != 0 {
		t.Fatalf("ext list in the made directory: exit %d\n%s", code, out)
	}
}
