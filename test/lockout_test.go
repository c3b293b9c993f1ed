package test

// Account lockout and per-extension allowlists, end to end over TLS.

import (
	"strings"
	"testing"
	"time"
)

// registerOnce registers user from a fresh TLS connection on ip and
// returns the final status (401 again for refused credentials).
func registerOnce(t *testing.T, srv *server, ip, user, pass string) int {
	t.Helper()
	c := dialSIPTLS(t, ip, srv.tlsAddr)
	defer c.conn.Close()
	_, final := c.register(t, srv.domain, user, pass, "SHA-256")
	return final.status()
}

// TestAccountLockout: five failed REGISTERs for 1001, spread over sources
// 127.0.0.20-22 (at most two each, so no source reaches the ban at its
// 4th failure), lock the account: a new source with the right password is
// refused like a wrong password, while the agent's known device (it
// registered from 127.0.0.10 before) keeps registering. `veilig ext
// unlock 1001` lets the new source in.
func TestAccountLockout(t *testing.T) {
	srv, maddr := startGuardServer(t, serverOptions{}, "")
	secret := srv.addExtension(t, "1001")

	if st := registerOnce(t, srv, "127.0.0.10", "1001", secret); st != 200 {
		t.Fatalf("known device's first REGISTER: %d, want 200", st)
	}
	for i, ip := range []string{"127.0.0.20", "127.0.0.20", "127.0.0.21", "127.0.0.21", "127.0.0.22"} {
		if st := registerOnce(t, srv, ip, "1001", "Wrong-Password-9x!"); st != 401 {
			t.Fatalf("wrong password #%d from %s: %d, want 401", i+1, ip, st)
		}
	}
	lock := srv.waitEvent(t, 5*time.Second, "account.locked", forAccount("1001"))
	t.Logf("lock: %s", lock)
	evs := srv.events(t)
	if n := countEvents(evs, "ban.added", nil); n != 0 {
		t.Errorf("%d ban.added events; no source failed more than twice:\n%s", n, srv.eventSummary(t))
	}

	// A new source with the right password is refused while locked.
	if st := registerOnce(t, srv, "127.0.0.26", "1001", secret); st == 200 {
		t.Errorf("new source 127.0.0.26 registered 1001 while it is locked")
	}
	srv.waitEvent(t, 5*time.Second, "guard.lockout", func(e event) bool { return e.Account == "1001" && e.Source == "127.0.0.26" })
	// The known device keeps working.
	if st := registerOnce(t, srv, "127.0.0.10", "1001", secret); st != 200 {
		t.Errorf("known device 127.0.0.10 refused while 1001 is locked: %d", st)
	}
	why, _ := srv.cli(t, "", "why", "127.0.0.26", "--ext", "1001")
	t.Logf("veilig why 127.0.0.26 --ext 1001:\n%s", why)
	if !strings.Contains(strings.ToLower(why), "lock") {
		t.Errorf("veilig why does not mention the lock:\n%s", why)
	}

	// The operator unlocks; the new source gets in.
	// (Right after the lock, as an operator answering the alert would:
	// the server must pick the unlock up within a second.)
	if out, code := srv.cli(t, "", "ext", "unlock", "1001"); code != 0 {
		t.Fatalf("ext unlock 1001: %d\n%s", code, out)
	}
	time.Sleep(extensionReloadWait)
	if st := registerOnce(t, srv, "127.0.0.26", "1001", secret); st != 200 {
		t.Errorf("127.0.0.26 after `veilig ext unlock 1001`: %d, want 200\nevents:\n%s", st, srv.eventSummary(t))
	}
	t.Logf("guard decisions:\n%s", metricLines(metricsText(t, maddr), "veilig_guard_decisions_total"))
}

// TestExtensionAllowFrom: `veilig ext set 1002 --allow-from
// 127.0.0.30/32` on a running server: 1002 with the right password is
// refused from 127.0.0.31 (with an event) and registers from 127.0.0.30.
func TestExtensionAllowFrom(t *testing.T) {
	srv, _ := startGuardServer(t, serverOptions{}, "")
	secret := srv.addExtension(t, "1002")
	if out, code := srv.cli(t, "", "ext", "set", "1002", "--allow-from", "127.0.0.30/32"); code != 0 {
		t.Fatalf("ext set 1002 --allow-from: %d\n%s", code, out)
	}
	time.Sleep(extensionReloadWait)
	if st := registerOnce(t, srv, "127.0.0.31", "1002", secret); st == 200 {
		t.Errorf("1002 registered from 127.0.0.31, outside its allowlist 127.0.0.30/32")
	}
	e := srv.waitEvent(t, 5*time.Second, "guard.lockout|guard.account|guard.allowlist|auth.failure", func(e event) bool {
		return e.Account == "1002" && strings.HasPrefix(e.Source, "127.0.0.31")
	})
	t.Logf("refusal event: %s", e)
	if st := registerOnce(t, srv, "127.0.0.30", "1002", secret); st != 200 {
		t.Errorf("1002 from 127.0.0.30 (its allowlist): %d, want 200\nevents:\n%s", st, srv.eventSummary(t))
	}
	t.Logf("events:\n%s", srv.eventSummary(t))
}
