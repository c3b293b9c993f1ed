package test

// SIPVicious 0.3.3 (Debian's sipvicious package) against Veilig with its
// UDP listener on: the tools as shipped (User-Agent friendly-scanner) and
// disguised the way a real attacker changes them in one line (see
// testdata/sipvicious/svrun.py), so that besides the scanner fingerprints
// the identical answers, the failure counting and the bans are tested.

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const (
	svmapIP        = "127.0.0.66" // stock svmap
	svwarIP        = "127.0.0.67" // stock svwar
	svcrackIP      = "127.0.0.68" // disguised svcrack: the brute force
	controlIP      = "127.0.0.69" // disguised svcrack from a trusted source: proves the tool works
	svwarDisguised = "127.0.0.70" // disguised svwar
	svcrackStockIP = "127.0.0.71" // stock svcrack
	agentIP        = "127.0.0.10" // the legitimate agent (1001)
	calleeIP       = "127.0.0.11" // 1002
)

// svrun runs one SIPVicious tool through testdata/sipvicious/svrun.py
// (bounded) and returns its output. svwar and svcrack 0.3.3 ignore -b, so
// the wrapper binds the socket to bindIP.
func svrun(t *testing.T, name, bindIP string, disguise bool, tool string, args ...string) string {
	t.Helper()
	if _, err := os.Stat("/usr/share/sipvicious/sipvicious/" + tool + ".py"); err != nil {
		t.Fatalf("SIPVicious is not installed (apt-get install sipvicious): %v", err)
	}
	wrapper, err := filepath.Abs("testdata/sipvicious/svrun.py")
	if err != nil {
		t.Fatal(err)
	}
	argv := []string{"/usr/bin/python3", wrapper, "--bind", bindIP}
	if disguise {
		argv = append(argv, "--disguise")
	}
	argv = append(argv, tool)
	argv = append(argv, args...)
	out, _ := runProc(t, procSpec{name: name, args: argv, timeout: 60 * time.Second})
	t.Logf("%s (%s):\n%s", name, strings.Join(argv[2:], " "), tail(out, 12))
	return out
}

// reFoundExtension matches an extension of 1000-1010 in svwar's or
// svcrack's result table ("| 1001      | reqauth |").
var reFoundExtension = regexp.MustCompile(`(?m)^\|\s*(10(0\d|10))\s*\|`)

func TestSIPViciousAttack(t *testing.T) {
	srv, maddr := startGuardServer(t, serverOptions{UDP: true, InsecureMD5First: true},
		// The control run's source is trusted: never banned or locked out.
		"guard:\n  trusted_sources: [\""+controlIP+"/32\"]\n")
	_, udpPort, _ := strings.Cut(srv.udpAddr, ":")
	udpHost := srv.tlsHost()

	// 1001 has a chosen secret that is in the attacker's wordlist.
	const secret = "Veilig-Attack-Test-7x!"
	if out, code := srv.cli(t, secret+"\n", "ext", "add", "1001", "--secret-stdin"); code != 0 {
		t.Fatalf("ext add 1001 --secret-stdin: %d\n%s", code, out)
	}
	secret2 := srv.addExtension(t, "1002")
	// The agent's device registered before the attack (a known device).
	newUA(t, srv, agentIP, "1001", secret)
	callee := newUA(t, srv, calleeIP, "1002", secret2)

	// 1. svmap as shipped: its OPTIONS carries User-Agent friendly-scanner
	// and svmap's From 100@1.1.1.1: dropped unanswered, source banned.
	out := svrun(t, "svmap", svmapIP, false, "svmap", "-b", svmapIP, "-x", svmapIP, "-p", udpPort, udpHost)
	requireNothingRevealed(t, "svmap", out)
	if strings.Contains(out, "Veilig") || strings.Contains(out, "| "+udpHost) {
		t.Errorf("svmap found the server (it must be dropped as a scanner):\n%s", out)
	}
	srv.waitEvent(t, 5*time.Second, "scanner.detected", fromSource(svmapIP))
	srv.waitEvent(t, 5*time.Second, "ban.added", fromSource(svmapIP))

	// 2. svwar as shipped: dropped at its first request, banned.
	out = svrun(t, "svwar-stock", svwarIP, false, "svwar", "-m", "REGISTER", "-e", "1000-1010", "-p", udpPort, "--maximumtime", "3", udpHost)
	requireNothingRevealed(t, "svwar (stock)", out)
	srv.waitEvent(t, 5*time.Second, "scanner.detected", fromSource(svwarIP))

	// 2b. svwar disguised: every extension, existing or not, gets the same
	// challenge, so it finds nothing even when forced past its own check.
	for _, m := range []struct{ method, force string }{{"REGISTER", "--force"}, {"OPTIONS", "--force"}, {"INVITE", ""}} {
		args := []string{"-m", m.method, "-e", "1000-1010", "-p", udpPort, "--maximumtime", "3"}
		if m.force != "" {
			args = append(args, m.force)
		}
		out = svrun(t, "svwar-disguised-"+m.method, svwarDisguised, true, "svwar", append(args, udpHost)...)
		requireNothingRevealed(t, "svwar (disguised, "+m.method+")", out)
	}

	// 3. Control: the disguised svcrack from a trusted source (never banned)
	// cracks the secret with 3 wrong guesses first, so the tool works
	// against Veilig and "cracked nothing" below is the defence.
	dir := artifactDir(t)
	control := filepath.Join(dir, "control-words.txt")
	writeFile(t, control, "Wrong-Guess-1a!\nWrong-Guess-2b!\nWrong-Guess-3c!\n"+secret+"\n")
	out = svrun(t, "svcrack-control", controlIP, true, "svcrack", "-u", "1001", "-d", control, "-p", udpPort, "--maximumtime", "3", udpHost)
	if !strings.Contains(out, secret) {
		t.Fatalf("control: svcrack from the trusted %s did not find the secret, so a failed crack would prove nothing:\n%s", controlIP, out)
	}

	// 4. The brute force: disguised svcrack with the real secret 6th. The
	// 4th failure bans the source; the 6th guess never gets an answer.
	words := filepath.Join(dir, "words.txt")
	writeFile(t, words, "Wrong-Guess-1a!\nWrong-Guess-2b!\nWrong-Guess-3c!\nWrong-Guess-4d!\nWrong-Guess-5e!\n"+secret+"\nWrong-Guess-7g!\n")
	out = svrun(t, "svcrack-attack", svcrackIP, true, "svcrack", "-u", "1001", "-d", words, "-p", udpPort, "--maximumtime", "3", udpHost)
	if strings.Contains(out, secret) || reFoundExtension.MatchString(out) {
		t.Errorf("svcrack cracked 1001 from %s:\n%s", svcrackIP, out)
	}
	ban := srv.waitEvent(t, 5*time.Second, "ban.added", fromSource(svcrackIP))
	t.Logf("ban: %s", ban)
	srv.waitEvent(t, 5*time.Second, "auth.bruteforce", fromSource(svcrackIP))
	evs := srv.events(t)
	if n := countEvents(evs, "auth.failure", fromSource(svcrackIP)); n != 4 {
		t.Errorf("%d auth.failure events from %s, want exactly 4 (the 4th bans, then silence)", n, svcrackIP)
	}
	if n := countEvents(evs, "auth.success", fromSource(svcrackIP)); n != 0 {
		t.Errorf("%d auth.success events from %s", n, svcrackIP)
	}

	// 4b. svcrack as shipped: its fixed From tag and User-Agent give it
	// away at the first REGISTER.
	out = svrun(t, "svcrack-stock", svcrackStockIP, false, "svcrack", "-u", "1001", "-d", words, "-p", udpPort, "--maximumtime", "3", udpHost)
	if strings.Contains(out, secret) || reFoundExtension.MatchString(out) {
		t.Errorf("stock svcrack cracked 1001:\n%s", out)
	}
	srv.waitEvent(t, 5*time.Second, "scanner.detected", fromSource(svcrackStockIP))

	// 5. Banned sources get no answer at all, on UDP and on TLS (closed
	// before the handshake).
	for _, ip := range []string{svmapIP, svcrackIP} {
		if res := udpAsk(t, ip, srv.udpAddr, optionsMsg("UDP", srv.domain), 2*time.Second); res != "" {
			t.Errorf("banned %s got an answer over UDP: %q", ip, firstLine(res))
		}
		if res, err := tlsAsk(ip, srv.tlsAddr, optionsMsg("TLS", srv.domain), 2*time.Second); err == nil {
			t.Errorf("banned %s completed a TLS handshake (answer %q)", ip, firstLine(res))
		}
	}
	// ... while an unbanned source does get one (the probe itself works).
	if res := udpAsk(t, "127.0.0.72", srv.udpAddr, optionsMsg("UDP", srv.domain), 2*time.Second); statusOf(res) == 0 {
		t.Errorf("control OPTIONS from 127.0.0.72 got no answer")
	}

	// 6. The operator sees the bans with their reasons and how to lift them.
	list, code := srv.cli(t, "", "ban", "list")
	if code != 0 {
		t.Fatalf("ban list: %d\n%s", code, list)
	}
	t.Logf("veilig ban list:\n%s", list)
	for ip, rule := range map[string]string{svmapIP: "scanner", svcrackIP: "bruteforce"} {
		line := lineWith(list, ip)
		if line == "" || !strings.Contains(line, rule) {
			t.Errorf("ban list has no %s ban for %s:\n%s", rule, ip, list)
		}
	}
	if line := lineWith(list, svcrackIP); !strings.Contains(line, "failed") {
		t.Errorf("ban of %s has no reason naming the failures: %q", svcrackIP, line)
	}
	for _, ip := range []string{svmapIP, svcrackIP} {
		why, code := srv.cli(t, "", "why", ip)
		t.Logf("veilig why %s:\n%s", ip, why)
		if code != 0 && !strings.Contains(why, "ban") {
			t.Errorf("why %s: exit %d\n%s", ip, code, why)
		}
		if !strings.Contains(why, "banned") || !strings.Contains(why, "veilig ban remove "+ip) {
			t.Errorf("veilig why %s does not explain the ban and its lift command:\n%s", ip, why)
		}
	}

	// 7. Meanwhile the legitimate agent still registers (a new TLS
	// connection from its usual address) and calls.
	agent := newUA(t, srv, agentIP, "1001", secret)
	c := agent.invite("1002", srtpOffer(agent.ip, "sendrecv"))
	in := callee.acceptInvite(5 * time.Second)
	in.reply(180, "Ringing", "")
	in.reply(200, "OK", answerTo(in.invite.body, callee.ip, "sendrecv"))
	requireStatus(t, "agent's call after the attack", c.waitAnswer(5*time.Second), 200)
	c.ack("")
	callee.waitRequest(5*time.Second, "ACK")
	c.bye()
	callee.respond(callee.waitRequest(5*time.Second, "BYE"), 200, "OK", "", "")

	m := metricsText(t, maddr)
	t.Logf("guard decisions:\n%s", metricLines(m, "veilig_guard_decisions_total"))
}

// requireNothingRevealed fails when a tool's result table names an
// extension of the scanned range.
func requireNothingRevealed(t *testing.T, what, out string) {
	t.Helper()
	if m := reFoundExtension.FindAllString(out, -1); len(m) > 0 {
		t.Errorf("%s revealed extensions %q:\n%s", what, m, out)
	}
	if strings.Contains(out, "exists") && (strings.Contains(out, "'1001'") || strings.Contains(out, "'1002'")) {
		t.Errorf("%s reports 1001/1002 as existing:\n%s", what, out)
	}
}

func lineWith(text, substr string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			return l
		}
	}
	return ""
}
