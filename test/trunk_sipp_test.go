package test

// Carrier trunks with sipp playing the carrier on 127.0.0.50. Debian's sipp
// 3.6.1 has no TLS: a server-mode stunnel (throwaway certificate for
// 127.0.0.50, pinned in the trunk) terminates Veilig's outbound TLS in
// front of a sipp UAS, and a client-mode stunnel bound to 127.0.0.50
// carries a sipp UAC's inbound call to Veilig over TLS.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const sippDID = "0201234567" // national form of the DID the sipp carrier dials

// pemCertPin is the SHA-256 of the first certificate in a PEM file, as
// `veilig trunk add --pin` takes it.
func pemCertPin(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("%s: no PEM certificate", path)
	}
	sum := sha256.Sum256(b.Bytes)
	return hex.EncodeToString(sum[:])
}

// TestTrunkSippCarrierOutbound: agent 1001 (class national) dials
// 0612345678; the sipp carrier behind stunnel on 127.0.0.50 (trunk
// --auth ip, --pin of stunnel's certificate) receives INVITE
// sip:+31612345678@127.0.0.50:<port> with an SRTP offer (the scenario
// checks both), answers 200 with an AES_CM_128_HMAC_SHA1_80 answer using
// the offer's crypto tag, gets the ACK and then 1001's BYE. The record has
// e164 +31612345678 and the trunk name.
func TestTrunkSippCarrierOutbound(t *testing.T) {
	srv := startServer(t, serverOptions{})
	secret := srv.addExtension(t, "1001")

	uasPort := freePort(t, "tcp", "127.0.0.1")
	tlsPort := freePort(t, "tcp", carrierIP)
	uas := sippRun{name: "carrier-uas", scenario: "carrier_uas.xml", port: uasPort, timeout: 60 * time.Second,
		keys: []string{"contact_hostport", hostPort(carrierIP, tlsPort), "carrier_ip", carrierIP}}
	uasProc := uas.start(t)
	waitTCPListening(t, uasPort, 10*time.Second, "sipp carrier UAS")
	startStunnelServer(t, "carrier", hostPort(carrierIP, tlsPort), hostPort("127.0.0.1", uasPort))
	pin := pemCertPin(t, filepath.Join(artifactDir(t), "throwaway.crt"))

	addTrunk(t, srv, "", "carrier", "--host", carrierIP, "--port", strconv.Itoa(tlsPort), "--auth", "ip",
		"--from", carrierIP+"/32", "--pin", pin, "--outbound")
	a := newUA(t, srv, "127.0.0.11", "1001", secret)

	c := a.invite(nlMobile, srtpOffer(a.ip, "sendrecv"))
	res := c.waitAnswer(15 * time.Second)
	if res.status() != 200 {
		t.Errorf("1001's INVITE to %s: got %q, want 200\n%s\n1001's trace:\n%s", nlMobile, res.start, res.raw, a.traceText(8))
		uas.requireSuccess(t, uasProc) // shows what the carrier saw
		t.FailNow()
	}
	requireSRTPBody(t, "200 OK at 1001", res.body)
	c.ack("")
	time.Sleep(time.Second)
	c.bye()
	uas.requireSuccess(t, uasProc)

	msgs := readTail(filepath.Join(artifactDir(t), uas.name+".messages.log"), 1000)
	wantRURI := "INVITE sip:" + nlMobileE1 + "@" + hostPort(carrierIP, tlsPort)
	if !strings.Contains(msgs, wantRURI) {
		t.Errorf("the carrier's messages do not contain %q:\n%s", wantRURI, tail(msgs, 60))
	}

	rec := waitTrunkRecord(t, srv, 10*time.Second, c.callID)
	t.Logf("record: %s", rec)
	if rec.E164 != nlMobileE1 || rec.Trunk != "carrier" || rec.Disposition != "answered" ||
		!mediaIsSRTP(rec.CallerMedia) || !mediaIsSRTP(rec.CalleeMedia) {
		t.Errorf("record: want e164 %s, trunk carrier, answered, SRTP both legs; got %s", nlMobileE1, rec)
	}
}

// TestTrunkSippCarrierInbound: the sipp carrier, through a client-mode
// stunnel whose connections leave from 127.0.0.50 (the trunk's --from),
// sends an INVITE with an SRTP offer and no credentials to the DID
// 0201234567 (--did 0201234567=1001). Agent 1001 (registered from
// 127.0.0.10) receives it with the caller-ID +31612345678 and an SRTP
// offer, answers; sipp gets 200 with an SRTP answer, ACKs and after 1 s
// sends BYE, which reaches the agent. The record says answered on the trunk.
func TestTrunkSippCarrierInbound(t *testing.T) {
	srv := startServer(t, serverOptions{})
	secret := srv.addExtension(t, "1001")
	addTrunk(t, srv, "", "carrier", "--host", carrierIP, "--auth", "ip", "--from", carrierIP+"/32",
		"--did", sippDID+"=1001")
	agent := newUA(t, srv, "127.0.0.10", "1001", secret)

	shim := startStunnelClient(t, "carrier", carrierIP, srv.tlsAddr)
	callID := randHex(12) + "@carrier-sipp"
	uac := sippRun{name: "carrier-uac", scenario: "carrier_uac.xml", target: hostPort("127.0.0.1", shim),
		timeout: 60 * time.Second,
		keys: []string{"domain", srv.domain, "callee", sippDID, "caller", callerID, "carrier_ip", carrierIP,
			"contact_hostport", carrierIP + ":5061"},
		extra: []string{"-cid_str", callID, "-d", "1000"}}
	p := uac.start(t)

	m, err := agent.next(20 * time.Second)
	if err != nil || m.status() != 0 || !strings.HasPrefix(m.start, "INVITE ") {
		got := "nothing"
		if m != nil {
			got = m.raw
		}
		t.Errorf("agent 1001: no INVITE from the carrier's call (err %v), got:\n%s", err, got)
		uac.requireSuccess(t, p)
		t.FailNow()
	}
	in := &uasCall{u: agent, invite: m, toTag: randHex(6)}
	if from := in.invite.header("From"); !strings.Contains(from, callerID) {
		t.Errorf("INVITE at the agent: From %q does not carry the carrier's caller-ID %s", from, callerID)
	}
	requireSRTPBody(t, "INVITE at the agent", in.invite.body)
	in.reply(180, "Ringing", "")
	in.reply(200, "OK", answerTo(in.invite.body, agent.ip, "sendrecv"))
	agent.waitRequest(10*time.Second, "ACK")
	bye := agent.waitRequest(10*time.Second, "BYE")
	agent.respond(bye, 200, "OK", "", "")
	uac.requireSuccess(t, p)

	rec := waitTrunkRecord(t, srv, 10*time.Second, callID)
	t.Logf("record: %s", rec)
	if rec.Trunk != "carrier" || rec.Disposition != "answered" || !strings.Contains(rec.From, callerID) ||
		!mediaIsSRTP(rec.CallerMedia) || !mediaIsSRTP(rec.CalleeMedia) {
		t.Errorf("record: want trunk carrier, answered, from %s, SRTP both legs; got %s", callerID, rec)
	}
}
