package main

import (
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCallTLSAgainstVeilig runs one short step of the real measurement
// against a freshly built veilig: sipp's calls through stunnel, 20 callees
// on their own TLS connections. It proves that every call reached its
// callee over the connection the callee registered on, and was ended there.
func TestCallTLSAgainstVeilig(t *testing.T) {
	if testing.Short() {
		t.Skip("starts veilig, sipp and stunnel")
	}
	for _, tool := range []string{"sipp", "stunnel"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found in PATH: install it (apt-get install sip-tester stunnel4)", tool)
		}
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	harness := filepath.Join(root, "..", "shared", "bench", "peers")
	if _, err := os.Stat(filepath.Join(harness, "scenarios", "call_uac.xml")); err != nil {
		t.Skipf("the shared bench harness is not beside this checkout (%v)", err)
	}
	out := t.TempDir()
	bin := filepath.Join(out, "veilig")
	if err := goBuild(root, bin); err != nil {
		t.Fatal(err)
	}
	o := options{targets: "veilig", harness: harness, out: out, domain: "bench.test",
		users: 20, seconds: 5, holdMS: 200, start: 40, refine: 0, maxSteps: 1, maxRate: 40, budget: time.Minute,
		crit:    criteria{maxFailPct: 1, minAchievedPct: 95, slowMS: 200, maxSlowPct: 1},
		udpPort: freePort(t), tlsPort: freePort(t), shimPort: freePort(t), uacPort: freePort(t), mediaPort: freePort(t),
		buffSize: 1 << 20, workers: 4, sipTimeout: 5 * time.Second,
		kamailio: kamailioParams{children: 4, shmMB: 64, pkgMB: 16, udpMaxBuffer: 1 << 20}}
	servers, err := parseTargets(o.targets, bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := measureAll(o, root, servers); err != nil {
		t.Fatal(err)
	}
	res, err := os.ReadFile(filepath.Join(out, "results.txt"))
	if err != nil {
		t.Fatal(err)
	}
	steps, _ := os.ReadFile(filepath.Join(out, "steps.csv"))
	if !strings.HasPrefix(string(res), "veilig call tls: 40 calls/s (fail 0.00%)") {
		errs, _ := filepath.Glob(filepath.Join(out, "veilig-call-tls-*.errors.log"))
		sippErrs := ""
		for _, f := range errs {
			sippErrs += readFile(f)
		}
		t.Fatalf("result:\n%s\nsteps:\n%s\nsipp errors:\n%s\nserver log:\n%s", res, steps, sippErrs,
			readFile(filepath.Join(out, "server-veilig.log")))
	}
	// 40 calls/s for 5 s: each of the 200 reached a callee and was ended by
	// a BYE on the callee's own connection.
	if !strings.Contains(string(steps), "INVITE 200, answered 200, refused 0, BYE 200") {
		t.Fatalf("callees did not see every call:\n%s", steps)
	}
}

var usedPorts = map[int]bool{}

// freePort returns a free TCP and UDP port below the ephemeral range, where
// no callee connection can take it before sipp binds it, and never the same
// one twice (sipp's media ports are that port and the next).
func freePort(t *testing.T) int {
	t.Helper()
	for p := 20000 + rand.IntN(10000); p < 32000; p++ {
		if usedPorts[p] || usedPorts[p+1] || usedPorts[p-1] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		usedPorts[p] = true
		return p
	}
	t.Fatal("no free port below 32000")
	return 0
}

func readFile(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return string(b)
}
