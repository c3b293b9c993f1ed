package test

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestBaresipDoesNotVerifyServer pins what docs/softphones.md says about
// Debian's baresip 1.0: with sip_cafile pointing at a certificate that did
// not issue Veilig's, it still registers over TLS, so it verifies nothing.
// If a baresip update starts verifying, this fails and the guide must
// change.
func TestBaresipDoesNotVerifyServer(t *testing.T) {
	srv := startServer(t, serverOptions{Domain: "veilig.test"})
	secret := srv.addExtension(t, "1001")
	other, _ := writeThrowawayCert(t, "127.0.0.99")
	ph := startPhone(t, srv, phoneConfig{name: "a", ext: "1001", secret: secret, ip: "127.0.0.2",
		proxy: srv.tlsAddr, audioSource: "ausine,1000", rtpLo: freeUDPRange(t, "127.0.0.2", phoneRTPPorts), caFile: other})
	ph.waitRegistered(t, 20*time.Second)
	srv.waitEvent(t, 5*time.Second, "register", forAccount("1001"))
	if !strings.Contains(ph.proc.Output(), "adding SIP CA: "+other) {
		t.Errorf("baresip did not load the unrelated CA file %s; the test proves nothing:\n%s", other, tail(ph.proc.Output(), 30))
	}
}

// TestBaresipThroughVerifyingStunnel runs the guide's workaround exactly:
// its stunnel section and account line. Phone A registers through a
// verifying stunnel and calls phone B (registered directly over TLS) with
// SRTP; with a CA file or a host name that does not match Veilig's
// certificate, stunnel refuses the server and A never registers.
func TestBaresipThroughVerifyingStunnel(t *testing.T) {
	requireTools(t, "baresip", "stunnel")
	const domain = "veilig.test" // in the generated certificate
	srv := startServer(t, serverOptions{Domain: domain})
	secretA := srv.addExtension(t, "1001")
	secretB := srv.addExtension(t, "1002")

	t.Run("wrong-ca", func(t *testing.T) {
		other, _ := writeThrowawayCert(t, "127.0.0.99")
		requireRefusedByStunnel(t, srv, "badca", other, domain, secretA)
	})
	t.Run("wrong-name", func(t *testing.T) {
		requireRefusedByStunnel(t, srv, "badname", srv.caFile, "not-veilig.example", secretA)
	})

	local := startGuideStunnel(t, srv, "good", srv.caFile, domain)
	b := startPhone(t, srv, phoneConfig{name: "b", ext: "1002", secret: secretB, ip: "127.0.0.3",
		proxy: srv.tlsAddr, audioSource: "ausine,700", autoAnswer: true, rtpLo: freeUDPRange(t, "127.0.0.3", phoneRTPPorts)})
	b.waitRegistered(t, 20*time.Second)
	a := startPhone(t, srv, phoneConfig{name: "a", ext: "1001", secret: secretA, ip: "127.0.0.2",
		proxy: local, audioSource: "ausine,1000", rtpLo: freeUDPRange(t, "127.0.0.2", phoneRTPPorts),
		account: "baresip-account-stunnel", proxyToken: "127.0.0.1:5080"})
	a.waitRegistered(t, 20*time.Second)
	ev := srv.waitEvent(t, 5*time.Second, "register", forAccount("1001"))
	t.Logf("1001 registered through stunnel: %s", ev)

	a.do(t, "dial", "sip:1002@"+local)
	a.waitEvent(t, "CALL_ESTABLISHED", 20*time.Second)
	b.waitEvent(t, "CALL_ESTABLISHED", 10*time.Second)
	a.waitEvent(t, "CALL_MENC", 5*time.Second)
	a.do(t, "hangup", "")
	b.waitEvent(t, "CALL_CLOSED", 10*time.Second)
	rec := srv.waitCallRecord(t, 10*time.Second, "1001", "1002")
	if rec.Disposition != "answered" || !mediaIsSRTP(rec.CallerMedia) || !mediaIsSRTP(rec.CalleeMedia) {
		t.Errorf("call through the verifying stunnel: want answered with SRTP on both legs: %s", describeCall(rec))
	}
}

// requireRefusedByStunnel starts the guide's stunnel with a CA file or a
// host name that does not fit Veilig's certificate: phone A must not
// register within 8 s and stunnel must log a verification failure.
func requireRefusedByStunnel(t *testing.T, srv *server, name, caFile, host, secret string) {
	t.Helper()
	local := startGuideStunnel(t, srv, name, caFile, host)
	ph := startPhone(t, srv, phoneConfig{name: "a-" + name, ext: "1001", secret: secret, ip: "127.0.0.2",
		proxy: local, audioSource: "ausine,1000", rtpLo: freeUDPRange(t, "127.0.0.2", phoneRTPPorts),
		account: "baresip-account-stunnel", proxyToken: "127.0.0.1:5080"})
	if _, ok := ph.ctrl.waitFor(8*time.Second, func(m ctrlMessage) bool { return m.Event && m.Type == "REGISTER_OK" }); ok {
		t.Fatalf("baresip registered through a stunnel whose CA file or host name does not match Veilig's certificate")
	}
	for _, e := range srv.events(t) {
		if e.Type == "register" && e.Account == "1001" {
			t.Fatalf("Veilig registered 1001 through a stunnel that should have refused the server: %s", e)
		}
	}
	log := stunnelLog(t, name)
	if !strings.Contains(log, "certificate verify failed") && !strings.Contains(log, "CERT: ") {
		t.Errorf("stunnel %s logged no certificate verification failure:\n%s", name, tail(log, 30))
	}
	ph.quit(t)
}

// startGuideStunnel writes docs/softphones.md's stunnel section with this
// test's values filled in (the server's address, the CA file, the host
// name to check, a free local port) after the harness's global options,
// starts stunnel and returns its local address.
func startGuideStunnel(t *testing.T, srv *server, name, caFile, host string) string {
	t.Helper()
	port := freePort(t, "tcp", "127.0.0.1")
	local := hostPort("127.0.0.1", port)
	fill := strings.NewReplacer("127.0.0.1:5080", local, "HOST:5061", srv.tlsAddr, "/etc/veilig/ca.crt", caFile)
	var section strings.Builder
	seen := map[string]bool{}
	for _, l := range docBlock(t, "baresip-stunnel") {
		if k, v, ok := strings.Cut(l, "="); ok {
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			seen[k] = true
			if k == "checkHost" {
				if v != "HOST" {
					t.Fatalf("the guide's stunnel checkHost is %q, want the HOST placeholder", v)
				}
				v = host
			}
			l = k + " = " + fill.Replace(v)
		}
		section.WriteString(l + "\n")
	}
	for _, k := range []string{"client", "accept", "connect", "verifyChain", "CAfile", "checkHost"} {
		if !seen[k] {
			t.Fatalf("the guide's stunnel section lacks %s", k)
		}
	}
	if !strings.Contains(section.String(), local) || !strings.Contains(section.String(), srv.tlsAddr) {
		t.Fatalf("the guide's stunnel section has no accept/connect to fill in:\n%s", section.String())
	}
	conf := "foreground = yes\npid =\nsyslog = no\ndebug = 5\noutput = " + stunnelLogPath(t, name) + "\n\n" + section.String()
	startStunnel(t, name, conf, port)
	return local
}

func stunnelLogPath(t *testing.T, name string) string {
	return artifactDir(t) + "/stunnel-" + name + ".out"
}

func stunnelLog(t *testing.T, name string) string {
	t.Helper()
	b, _ := os.ReadFile(stunnelLogPath(t, name))
	return string(b)
}
