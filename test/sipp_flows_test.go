package test

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// TestSippRegister: sipp registers 1001 over TLS (through stunnel) with
// digest auth and gets 200; Veilig logs a register event.
func TestSippRegister(t *testing.T) {
	srv := startServer(t, serverOptions{})
	secret := srv.addExtension(t, "1001")
	shim := startStunnelClient(t, "uac", "127.0.0.11", srv.tlsAddr)
	sippUAC("register", "register.xml", shim, srv, "1001", secret).mustPass(t)
	srv.waitEvent(t, 5*time.Second, "register", forAccount("1001"))
}

// TestSippWrongPassword: a REGISTER with a wrong password is challenged
// again with 401 and logged as an auth.failure event for the account.
func TestSippWrongPassword(t *testing.T) {
	srv := startServer(t, serverOptions{})
	srv.addExtension(t, "1001")
	shim := startStunnelClient(t, "uac", "127.0.0.12", srv.tlsAddr)
	sippUAC("wrong-password", "register_wrong_password.xml", shim, srv, "1001", "Wrong-Passw0rd!x").mustPass(t)
	srv.waitEvent(t, 5*time.Second, "auth.failure", forAccount("1001"))
}

// TestSippPlainRTPRefused: an authenticated INVITE offering plain RTP
// (RTP/AVP, no crypto) to a registered callee gets 488 and a call.refused
// event (the server names it media.refused; call.refused is accepted
// too); the call record says refused.
func TestSippPlainRTPRefused(t *testing.T) {
	srv := startServer(t, serverOptions{SippDigest: true})
	secretA := srv.addExtension(t, "1001")
	secretB := srv.addExtension(t, "1002")
	mustRegisterRaw(t, srv, "127.0.0.14", "1002", secretB) // callee online
	shim := startStunnelClient(t, "uac", "127.0.0.13", srv.tlsAddr)
	sippUAC("plain-rtp", "invite_plain_rtp.xml", shim, srv, "1001", secretA, "callee", "1002").mustPass(t)
	ev := srv.waitEvent(t, 5*time.Second, "call.refused|media.refused", nil)
	if fmt.Sprint(ev.Fields["code"]) != "488" {
		t.Errorf("refusal event does not carry code 488: %s", ev)
	}
	rec := srv.waitCallRecord(t, 5*time.Second, "1001", "1002")
	if rec.Disposition != "refused" {
		t.Errorf("call record disposition = %q, want refused: %s", rec.Disposition, describeCall(rec))
	}
}

// TestSippSRTPCall: a full call between two sipp agents through Veilig:
// UAC 1001 (via stunnel) offers SRTP SDP, the UAS registered as 1002 on its
// own TLS connection answers 180/200; ACK and BYE go through Veilig; the
// call record says answered.
func TestSippSRTPCall(t *testing.T) { sippSRTPCall(t, "call_uac.xml", "call_uas.xml") }

// TestSippPayloadTypeRenumbered: the callee numbers telephone-event 96 where
// the caller offered 101. The callee sees the caller's offer as numbered,
// and the caller gets the answer in its own numbering (the relay rewrites
// the payload type of the RTP; internal/media tests that part).
func TestSippPayloadTypeRenumbered(t *testing.T) {
	sippSRTPCall(t, "call_uac_dtmf.xml", "call_uas_dtmf.xml")
}

func sippSRTPCall(t *testing.T, uacScenario, uasScenario string) {
	srv := startServer(t, serverOptions{SippDigest: true})
	secretA := srv.addExtension(t, "1001")
	secretB := srv.addExtension(t, "1002")

	uasPort := freePort(t, "tcp", "127.0.0.1")
	uas := sippRun{name: "uas", scenario: uasScenario, port: uasPort, timeout: 60 * time.Second,
		keys: []string{"contact_hostport", "127.0.0.16:5061"}}
	uasProc := uas.start(t)
	waitTCPListening(t, uasPort, 10*time.Second, "sipp UAS")
	bridgeToSippUAS(t, srv, "127.0.0.16", "1002", secretB, hostPort("127.0.0.1", uasPort))

	shim := startStunnelClient(t, "uac", "127.0.0.15", srv.tlsAddr)
	uac := sippUAC("uac", uacScenario, shim, srv, "1001", secretA, "callee", "1002")
	uac.extra = append(uac.extra, "-d", strconv.Itoa(1000))
	uac.mustPass(t)
	uas.requireSuccess(t, uasProc)

	rec := srv.waitCallRecord(t, 10*time.Second, "1001", "1002")
	if rec.Disposition != "answered" {
		t.Errorf("call record disposition = %q, want answered: %s", rec.Disposition, describeCall(rec))
	}
	if !mediaIsSRTP(rec.CallerMedia) || !mediaIsSRTP(rec.CalleeMedia) {
		t.Errorf("call record does not say SRTP on both legs: %s", describeCall(rec))
	}
}
