package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestScratchTone(t *testing.T) {
	p := filepath.Join(artifactDir(t), "t.wav")
	makeTone(t, p, 700, 3)
	w, err := readWAV(p)
	if err != nil {
		t.Fatal(err)
	}
	hz, share := dominantTone(w.samples[:w.rate/4], w.rate, 100, 3000, 5)
	t.Logf("rate %d n %d hz %d share %.2f", w.rate, len(w.samples), hz, share)
}

func TestScratchPhone(t *testing.T) {
	srv := &server{tlsAddr: "127.0.0.1:9", caFile: "/etc/ssl/certs/ca-certificates.crt"}
	capt := startCapture(t, "x", "lo", "udp and portrange 30000-30019")
	ph := startPhone(t, srv, phoneConfig{name: "a", ext: "1001", secret: "abc", ip: "127.0.0.2", audioSource: "ausine,1000", rtpLo: 30000})
	m, err := ph.ctrl.command("reginfo", "", 3*time.Second)
	t.Logf("reginfo: %v %s", err, m.raw)
	time.Sleep(2 * time.Second)
	t.Logf("events: %s", ph.ctrl.eventTypes())
	ph.quit(t)
	t.Logf("exited %v", ph.proc.Exited())
	pcap := capt.stop(t)
	t.Logf("flows %v", rtpFlows(t, pcap, "30000-30019"))
	startStunnelClient(t, "x", "127.0.0.9", "127.0.0.1:9")
}

func TestScratchNetnsOuter(t *testing.T) {
	exe, _ := os.Executable()
	out, code := runProc(t, procSpec{name: "n", args: []string{"unshare", "-n", "--", exe, "-test.run", "^TestScratchNetnsInner$", "-test.v"},
		env: []string{envNetnsChild + "=1", envVeiligBin + "=/bin/false"}, timeout: time.Minute})
	t.Logf("%d %s", code, out)
	if !strings.Contains(out, "--- PASS: TestScratchNetnsInner") {
		t.Fatal("inner failed")
	}
}

func TestScratchNetnsInner(t *testing.T) {
	if os.Getenv(envNetnsChild) == "" {
		t.Skip()
	}
	runIP(t, "link", "set", "lo", "up")
	dns := startFakeDNS(t, nameservers(t))
	requireFakeDNSWorks(t, dns)
	t.Logf("queries %v", dns.queries())
}
