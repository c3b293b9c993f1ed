package test

// One misconfigured phone behind an office's shared address must not cut
// the office off: the address carries authenticated devices, so its
// failures lock the failing account for that address instead of banning
// it. An address without authenticated traffic is banned as before.

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// udpRegisterAttempt sends REGISTER for user over UDP from ip and answers
// the challenge with pass; it returns the final status, 0 when the server
// stayed silent (a banned source).
func udpRegisterAttempt(t *testing.T, srv *server, ip, user, pass string) int {
	t.Helper()
	c := dialSIPUDP(t, ip, srv.udpAddr)
	defer c.conn.Close()
	la := c.conn.LocalAddr().String()
	req := registerRequest{
		user: user, domain: srv.domain, callID: randHex(12) + "@veilig-e2e", fromTag: randHex(6),
		branch: "z9hG4bK" + randHex(8), cseq: 1, expires: 300,
		contact: fmt.Sprintf("<sip:%s@%s;transport=udp>", user, la),
	}
	udp := func(s string) string { return strings.Replace(s, "SIP/2.0/TLS", "SIP/2.0/UDP", 1) }
	final := func() *sipMessage {
		for {
			m, err := c.read(2 * time.Second)
			if err != nil {
				return nil
			}
			if m.status() >= 200 {
				return m
			}
		}
	}
	c.send(t, udp(req.build(la)))
	chal := final()
	if chal == nil {
		return 0
	}
	if chal.status() != 401 {
		return chal.status()
	}
	ch := pickChallenge(t, chal.all("WWW-Authenticate"), "SHA-256")
	req.cseq, req.branch = 2, "z9hG4bK"+randHex(8)
	req.auth = ch.Authorization(user, pass, "REGISTER", "sip:"+srv.domain)
	c.send(t, udp(req.build(la)))
	if m := final(); m != nil {
		return m.status()
	}
	return 0
}

// TestSharedAddressSparesGoodDevices: 1001 is registered over TLS from
// the office address 127.0.0.40. Five REGISTERs for 1002 with a wrong
// secret arrive over UDP from the same address: the address is not
// banned, 1002 is locked for it (auth.bruteforce alert naming 1002; its
// right secret is refused there), and 1001 keeps re-registering and
// receives a call from 1003 that connects.
// `veilig why` says which rule applies. From the fresh address
// 127.0.0.42, the same five failures ban it.
func TestSharedAddressSparesGoodDevices(t *testing.T) {
	srv, _ := startGuardServer(t, serverOptions{UDP: true}, "")
	s1, s2, s3 := srv.addExtension(t, "1001"), srv.addExtension(t, "1002"), srv.addExtension(t, "1003")
	const office, fresh = "127.0.0.40", "127.0.0.42"
	agent := newUA(t, srv, office, "1001", s1)
	caller := newUA(t, srv, "127.0.0.41", "1003", s3)

	for i := range 5 {
		st := udpRegisterAttempt(t, srv, office, "1002", "Wrong-Secret-1x!")
		t.Logf("wrong secret for 1002 from the office #%d: %d", i+1, st)
		if st == 0 {
			t.Fatalf("the office address got no answer on attempt %d: banned?\n%s", i+1, srv.eventSummary(t))
		}
	}
	alert := srv.waitEvent(t, 5*time.Second, "auth.bruteforce", func(e event) bool {
		return e.Account == "1002" && fromSource(office)(e)
	})
	t.Logf("alert: %s", alert)
	if n := countEvents(srv.events(t), "ban.added", fromSource(office)); n != 0 {
		t.Fatalf("the office address was banned:\n%s", srv.eventSummary(t))
	}
	// The good device keeps working: it refreshes and takes a call.
	if _, final := agent.register(t, srv.domain, "1001", s1, "SHA-256"); final.status() != 200 {
		t.Fatalf("1001 at the office re-registering: %d", final.status())
	}
	c := caller.invite("1001", srtpOffer(caller.ip, "sendrecv"))
	in := agent.acceptInvite(5 * time.Second)
	in.reply(200, "OK", answerTo(in.invite.body, agent.ip, "sendrecv"))
	requireStatus(t, "1003's call to 1001 at the office", c.waitAnswer(5*time.Second), 200)
	c.ack("")
	agent.waitRequest(5*time.Second, "ACK")
	c.bye()
	agent.respond(agent.waitRequest(5*time.Second, "BYE"), 200, "OK", "", "")
	// 1002 is locked for the office: even its right secret is refused
	// there (answered like a wrong one), and `why` says so.
	if st := udpRegisterAttempt(t, srv, office, "1002", s2); st != 401 {
		t.Errorf("1002 with its right secret from the office while locked for it: %d, want 401", st)
	}
	why, _ := srv.cli(t, "", "why", office, "--ext", "1002")
	t.Logf("veilig why %s --ext 1002:\n%s", office, why)
	if !strings.Contains(why, "shared_source") || !strings.Contains(why, "source_lock") {
		t.Errorf("veilig why does not say the office is shared and 1002 locked for it:\n%s", why)
	}

	// A fresh address with no authenticated traffic: banned.
	for i := range 5 {
		st := udpRegisterAttempt(t, srv, fresh, "1002", "Wrong-Secret-1x!")
		t.Logf("wrong secret for 1002 from %s #%d: %d", fresh, i+1, st)
	}
	srv.waitEvent(t, 5*time.Second, "ban.added", fromSource(fresh))
	why, _ = srv.cli(t, "", "why", fresh)
	t.Logf("veilig why %s:\n%s", fresh, why)
	if !strings.Contains(why, "ban remove "+fresh) {
		t.Errorf("veilig why %s does not show the ban:\n%s", fresh, why)
	}
}
