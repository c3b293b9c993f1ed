package test

// Durability: a REGISTER is answered 200 only once its binding is
// committed, so killing the server cannot lose a registration a device
// was told about.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAcknowledgedRegistrationsSurviveKill: 500 devices register over UDP
// at 300 a second (bench/flood/agents, which writes each 200 it gets to a
// file at once); 2 s in, veilig is killed with SIGKILL. After a restart,
// every registration answered 200 is in the store.
func TestAcknowledgedRegistrationsSurviveKill(t *testing.T) {
	agents := buildAgents(t)
	srv := startServer(t, serverOptions{UDP: true, Domain: "bench.test"})
	users := writeAgentUsers(t, 500)
	if out, code := srv.cli(t, "", "ext", "import", users); code != 0 {
		t.Fatalf("ext import: %d\n%s", code, out)
	}
	time.Sleep(2 * extensionReloadWait)
	ackedPath := filepath.Join(artifactDir(t), "acked.txt")
	ag := startProc(t, procSpec{name: "agents", timeout: 40 * time.Second, args: []string{
		agents, "-server", srv.udpAddr, "-local", "127.0.0.10", "-users", users, "-domain", srv.domain,
		"-rate", "300", "-duration", "5s", "-sockets", "32", "-timeout", "2s", "-acked", ackedPath,
	}})
	time.Sleep(2 * time.Second)
	if err := srv.proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	if exited, _ := srv.proc.Wait(10 * time.Second); !exited {
		t.Fatal("veilig did not die of SIGKILL")
	}
	ag.Wait(40 * time.Second)
	b, err := os.ReadFile(ackedPath)
	if err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" {
			acked[strings.Replace(l, "\t", " ", 1)] = true
		}
	}
	if len(acked) < 300 {
		t.Fatalf("only %d registrations were acknowledged before the kill: the load did not run", len(acked))
	}

	srv.launch(t, "veilig-after-kill", false)
	out, code := srv.cli(t, "", "regs", "--json")
	if code != 0 {
		t.Fatalf("veilig regs --json: %d\n%s", code, out)
	}
	var regs []struct {
		Extension string `json:"extension"`
		Contact   string `json:"contact"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "["):]), &regs); err != nil {
		t.Fatalf("regs --json: %v\n%s", err, out)
	}
	stored := map[string]bool{}
	for _, r := range regs {
		stored[r.Extension+" "+r.Contact] = true
	}
	var missing []string
	for k := range acked {
		if !stored[k] {
			missing = append(missing, k)
		}
	}
	t.Logf("%d registrations acknowledged before the kill (%s), %d stored after the restart", len(acked), killedAt.Format("15:04:05.000"), len(stored))
	if len(missing) > 0 {
		t.Errorf("%d of %d acknowledged registrations lost by the kill, e.g. %q", len(missing), len(acked), missing[:min(5, len(missing))])
	}
}
