package test

// Carrier trunks end to end: a Go carrier on 127.0.0.50 (carrier_test.go)
// and raw agents (uaflow_test.go) against the real veilig binary.

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
)

const (
	didNumber  = "+31201234567" // the DID the carrier delivers, mapped to 1001
	callerID   = "+31612345678" // the outside caller the carrier presents
	nlMobile   = "0612345678"   // national dialling of +31612345678
	deFixed    = "004930123456" // German fixed, outside class national
	nlMobileE1 = "+31612345678"
)

// inviteFromCarrier sends an out-of-dialog INVITE from u (a carrier or a
// stranger on its own TLS connection) to number at Veilig, with no
// credentials, and returns the dialog.
func inviteFromCarrier(u *sipUA, number, body string) *uacCall {
	c := &uacCall{u: u, callee: number, callID: randHex(12) + "@carrier-e2e", fromTag: randHex(6),
		inviteBody: body, ruri: fmt.Sprintf("sip:%s@%s", number, u.srv.domain)}
	c.sendInvite("")
	return c
}

// sdpConnAddr returns the c= address of an SDP body.
func sdpConnAddr(body string) string {
	for _, l := range strings.Split(body, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "c=IN IP4 ") {
			return strings.TrimPrefix(l, "c=IN IP4 ")
		}
	}
	return ""
}

// requireVoiceFrom checks that an endpoint received frames sent by name.
func requireVoiceFrom(t *testing.T, e *srtpEndpoint, name string) {
	t.Helper()
	n := 0
	for _, p := range e.received() {
		if bytes.HasPrefix(p.payload, []byte("VOICE:"+name+":")) {
			n++
		}
	}
	if n == 0 {
		t.Errorf("%s received no frame from %s (%d packets)", e.name, name, len(e.received()))
	}
}

// TestTrunkTLSInboundDID: the carrier (TLS, source 127.0.0.50, trunk
// --auth ip with a pinned certificate) sends an INVITE to its DID without
// credentials; it reaches extension 1001 (registered from 127.0.0.10) with
// the carrier's caller-ID, an SRTP offer anchored on Veilig's relay and
// Veilig's own keys. 1001 answers; SRTP flows both ways through the relay;
// the carrier's BYE ends the call at the agent; the record names the trunk.
// An INVITE from the carrier to a number that is not a DID gets 404.
func TestTrunkTLSInboundDID(t *testing.T) {
	srv := startServer(t, serverOptions{})
	cert := issueCert(t, newCA(t), carrierIP)
	secret := srv.addExtension(t, "1001")
	addTrunk(t, srv, "", "carrier", "--host", carrierIP, "--port", "5061", "--auth", "ip", "--from", carrierIP,
		"--pin", certPin(cert), "--did", didNumber+"=1001")
	agent := newUA(t, srv, "127.0.0.10", "1001", secret)
	car := newUA(t, srv, carrierIP, callerID, "")
	car.user = callerID

	ec := newSRTPEndpoint(t, "carrier", carrierIP)
	ea := newSRTPEndpoint(t, "agent", "127.0.0.10")
	offer := ec.offer("AES_CM_128_HMAC_SHA1_80", "sendrecv")
	c := inviteFromCarrier(car, didNumber, offer)
	in := agent.acceptInvite(10 * time.Second)
	if from := in.invite.header("From"); !strings.Contains(from, callerID) {
		t.Errorf("INVITE at the agent: From %q does not carry the carrier's caller-ID %s", from, callerID)
	}
	requireSRTPBody(t, "INVITE at the agent", in.invite.body)
	if got := sdpConnAddr(in.invite.body); got != srv.tlsHost() {
		t.Errorf("INVITE at the agent: c= %q, want Veilig's relay %s\n%s", got, srv.tlsHost(), in.invite.body)
	}
	if strings.Contains(in.invite.body, sdesKeyLine(offer)) {
		t.Errorf("the carrier's SRTP key reached the agent (Veilig must re-key each leg)")
	}
	in.reply(180, "Ringing", "")
	in.reply(200, "OK", ea.answer(in.invite.body, "sendrecv"))
	res := c.waitAnswer(10 * time.Second)
	requireStatus(t, "carrier's INVITE to the DID", res, 200)
	requireSRTPBody(t, "200 OK at the carrier", res.body)
	ec.answered(res.body)
	c.ack("")
	agent.waitRequest(5*time.Second, "ACK")

	ec.startSending()
	ea.startSending()
	ea.waitReceived(25, 5*time.Second)
	ec.waitReceived(25, 5*time.Second)
	ec.stopSending()
	ea.stopSending()
	requireVoiceFrom(t, ea, "carrier")
	requireVoiceFrom(t, ec, "agent")

	c.bye()
	bye := agent.waitRequest(5*time.Second, "BYE")
	agent.respond(bye, 200, "OK", "", "")

	rec := waitTrunkRecord(t, srv, 10*time.Second, c.callID)
	t.Logf("record: %s", rec)
	if rec.Trunk != "carrier" || rec.Disposition != "answered" || !mediaIsSRTP(rec.CallerMedia) ||
		!mediaIsSRTP(rec.CalleeMedia) || rec.MediaInClear != false || !strings.Contains(rec.From, callerID) {
		t.Errorf("record: want trunk carrier, answered, from %s, SRTP on both legs, no media in clear; got %s", callerID, rec)
	}

	// A number the trunk does not route: 404, and the agent hears nothing.
	c2 := inviteFromCarrier(car, "+31209999999", ec.offer("AES_CM_128_HMAC_SHA1_80", "sendrecv"))
	requireStatus(t, "carrier's INVITE to a non-DID number", c2.waitAnswer(5*time.Second), 404)
	agent.expectSilence(1500*time.Millisecond, "the number is not a DID")
}

// sdesKeyLine returns the inline key of an SDP's first a=crypto line.
func sdesKeyLine(body string) string {
	for _, l := range strings.Split(body, "\n") {
		if i := strings.Index(l, "inline:"); i >= 0 && strings.HasPrefix(strings.TrimSpace(l), "a=crypto:") {
			k := strings.TrimSpace(l[i+len("inline:"):])
			k, _, _ = strings.Cut(k, "|")
			return k
		}
	}
	return "\x00no key\x00"
}

// TestTrunkInboundFromStrangerChallenged: the same DID dialled from an
// address that is not the carrier's (127.0.0.60, no credentials) is
// challenged with 407 like any request; the agent never sees it.
func TestTrunkInboundFromStrangerChallenged(t *testing.T) {
	srv := startServer(t, serverOptions{})
	secret := srv.addExtension(t, "1001")
	addTrunk(t, srv, "", "carrier", "--host", carrierIP, "--auth", "ip", "--from", carrierIP, "--did", didNumber+"=1001")
	agent := newUA(t, srv, "127.0.0.10", "1001", secret)
	stranger := newUA(t, srv, "127.0.0.60", callerID, "")
	c := inviteFromCarrier(stranger, didNumber, srtpOffer("127.0.0.60", "sendrecv"))
	res := c.waitAnswer(5 * time.Second)
	requireStatus(t, "stranger's INVITE to the DID", res, 407)
	if len(res.all("Proxy-Authenticate")) == 0 {
		t.Errorf("407 without Proxy-Authenticate:\n%s", res.raw)
	}
	agent.expectSilence(2*time.Second, "the INVITE came from outside the trunk")
}

// placeOutbound has the agent call number; the carrier must receive the
// INVITE. It returns the caller dialog and the INVITE at the carrier.
func placeOutbound(t *testing.T, a *sipUA, number, body string, car *carrier, cc **carrierConn) (*uacCall, *sipMessage) {
	t.Helper()
	c := a.invite(number, body)
	if *cc == nil {
		*cc = car.accept(10 * time.Second)
	}
	inv := (*cc).waitRequest(10*time.Second, "INVITE", "")
	return c, inv
}

// TestTrunkTLSOutbound: the carrier's certificate is verified against a
// CA file (IP SAN 127.0.0.50). 1001 (class national) dials the Dutch
// mobile 0612345678: the carrier receives INVITE sip:+31612345678@
// 127.0.0.50:<port> over TLS, with an SRTP offer from Veilig's relay and
// Veilig's keys; it answers; SRTP flows both ways; 1001's BYE reaches the
// carrier; the record has e164 +31612345678, country NL, class national,
// the trunk name and fraud rule allowed. A German fixed number is refused
// 403 (class_of_service) and nothing reaches the carrier.
func TestTrunkTLSOutbound(t *testing.T) {
	srv := startServer(t, serverOptions{})
	ca := newCA(t)
	car := startTLSCarrier(t, issueCert(t, ca, carrierIP))
	secret := srv.addExtension(t, "1001")
	addTrunk(t, srv, "", "carrier", "--host", carrierIP, "--port", car.portStr(), "--auth", "ip", "--from", carrierIP,
		"--ca-file", writeCAFile(t, ca, "carrier-ca.pem"), "--outbound")
	a := newUA(t, srv, "127.0.0.11", "1001", secret)
	ea := newSRTPEndpoint(t, "agent", "127.0.0.11")
	ec := newSRTPEndpoint(t, "carrier", carrierIP)

	offer := ea.offer("AES_CM_128_HMAC_SHA1_80", "sendrecv")
	var cc *carrierConn
	c, inv := placeOutbound(t, a, nlMobile, offer, car, &cc)
	wantRURI := fmt.Sprintf("INVITE sip:%s@%s:%d", nlMobileE1, carrierIP, car.port)
	if !strings.HasPrefix(inv.start, wantRURI) {
		t.Errorf("carrier's INVITE: %q, want %s...", inv.start, wantRURI)
	}
	requireSRTPBody(t, "INVITE at the carrier", inv.body)
	if got := sdpConnAddr(inv.body); got != srv.tlsHost() {
		t.Errorf("INVITE at the carrier: c= %q, want Veilig's relay %s", got, srv.tlsHost())
	}
	if strings.Contains(inv.body, sdesKeyLine(offer)) {
		t.Errorf("the agent's SRTP key reached the carrier")
	}
	tag := randHex(6)
	cc.respond(inv, 100, "Trying", "", "")
	cc.respond(inv, 180, "Ringing", tag, "")
	cc.respond(inv, 200, "OK", tag, ec.answer(inv.body, "sendrecv"))
	res := c.waitAnswer(10 * time.Second)
	requireStatus(t, "1001's INVITE to "+nlMobile, res, 200)
	requireSRTPBody(t, "200 OK at 1001", res.body)
	ea.answered(res.body)
	c.ack("")
	cc.waitRequest(5*time.Second, "ACK", inv.header("Call-ID"))

	ea.startSending()
	ec.startSending()
	ec.waitReceived(25, 5*time.Second)
	ea.waitReceived(25, 5*time.Second)
	ea.stopSending()
	ec.stopSending()
	requireVoiceFrom(t, ec, "agent")
	requireVoiceFrom(t, ea, "carrier")

	c.bye()
	bye := cc.waitRequest(5*time.Second, "BYE", inv.header("Call-ID"))
	cc.respond(bye, 200, "OK", "", "")

	rec := waitTrunkRecord(t, srv, 10*time.Second, c.callID)
	t.Logf("record: %s", rec)
	if rec.E164 != nlMobileE1 || rec.Country != "NL" || rec.Class != "national" || rec.Trunk != "carrier" ||
		!strings.HasPrefix(rec.Fraud, "allowed") || rec.Disposition != "answered" ||
		!mediaIsSRTP(rec.CallerMedia) || !mediaIsSRTP(rec.CalleeMedia) || rec.MediaInClear != false {
		t.Errorf("record: want e164 %s, country NL, class national, trunk carrier, fraud allowed, answered, SRTP both legs; got %s", nlMobileE1, rec)
	}

	// German fixed: refused before the carrier.
	c2 := a.invite(deFixed, srtpOffer(a.ip, "sendrecv"))
	requireStatus(t, "1001's INVITE to "+deFixed, c2.waitAnswer(5*time.Second), 403)
	requireTrunkRefused(t, srv, deFixed, "class_of_service", "403")
	if m := cc.poll(1500*time.Millisecond, isRequest("INVITE", "")); m != nil {
		t.Errorf("the carrier received an INVITE for a refused call:\n%s", m.raw)
	}
	rec2 := waitTrunkRecord(t, srv, 5*time.Second, c2.callID)
	t.Logf("refused record: %s", rec2)
	if rec2.Disposition != "refused" || rec2.Country != "DE" || !strings.Contains(rec2.Fraud, "class_of_service") {
		t.Errorf("record of the refused call: want refused, country DE, fraud naming class_of_service; got %s", rec2)
	}
}

// TestTrunkCarrierCertificateRefused: a carrier whose certificate does not
// verify — signed by another CA than --ca-file, then not matching --pin —
// gets no call: the agent's call ends 503, a trunk.connect_failed event
// names the trunk, and the carrier's TLS side sees Veilig abort the
// handshake (bad certificate) with not one SIP byte received.
func TestTrunkCarrierCertificateRefused(t *testing.T) {
	srv := startServer(t, serverOptions{})
	car := startTLSCarrier(t, issueCert(t, newCA(t), carrierIP))
	other := newCA(t)
	secret := srv.addExtension(t, "1001")
	addTrunk(t, srv, "", "carrier", "--host", carrierIP, "--port", car.portStr(), "--auth", "ip", "--from", carrierIP,
		"--ca-file", writeCAFile(t, other, "other-ca.pem"), "--outbound")
	a := newUA(t, srv, "127.0.0.14", "1001", secret)

	try := func(what string, wantFailures int) {
		t.Helper()
		c := a.invite(nlMobile, srtpOffer(a.ip, "sendrecv"))
		requireStatus(t, what+": 1001's INVITE", c.waitAnswer(15*time.Second), 503)
		srv.waitEvent(t, 5*time.Second, "trunk.connect_failed", func(e event) bool {
			return fmt.Sprint(e.Fields["trunk"]) == "carrier" && countEvents(srv.events(t), "trunk.connect_failed", nil) >= wantFailures
		})
		deadline := time.Now().Add(3 * time.Second)
		for {
			_, hs := car.stats()
			if len(hs) >= wantFailures || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		n, hs := car.stats()
		t.Logf("%s: carrier accepted %d connections, handshake errors %q", what, n, hs)
		if len(hs) < wantFailures {
			t.Errorf("%s: carrier saw %d failed handshakes, want %d", what, len(hs), wantFailures)
		}
		for _, h := range hs {
			if !strings.Contains(h, "bad certificate") && !strings.Contains(h, "certificate") {
				t.Errorf("%s: carrier handshake error %q does not say Veilig refused the certificate", what, h)
			}
		}
		select {
		case cc := <-car.conns:
			t.Errorf("%s: a TLS session with the carrier was established:\n%s", what, cc.traceText(4))
		default:
		}
	}
	try("wrong CA", 1)

	// The right name, no CA file, but a pin that is not the carrier's.
	out, code := srv.cli(t, "", "trunk", "set", "carrier", "--ca-file", "", "--pin", strings.Repeat("ab", 32))
	if code != 0 {
		t.Fatalf("trunk set --pin: %s", out)
	}
	time.Sleep(trunkReloadWait)
	try("wrong pin", 2)
}

// TestTrunkUDPPlainMedia: a UDP trunk needs --insecure-transport (refused
// without it); with it and --media rtp, 1001's SRTP call goes to the
// carrier over Veilig's UDP listener with an RTP/AVP offer and no keys;
// the carrier answers RTP/AVP; plain RTP from the carrier reaches the
// agent as SRTP and the agent's SRTP reaches the carrier as plain RTP;
// the record says the callee leg is plain and media_in_clear true.
func TestTrunkUDPPlainMedia(t *testing.T) {
	srv := startServer(t, serverOptions{UDP: true})
	car, cc := startUDPCarrier(t, srv)
	secret := srv.addExtension(t, "1001")
	if out, code := srv.cli(t, "", "trunk", "add", "plain", "--host", carrierIP, "--port", car.portStr(),
		"--transport", "udp", "--auth", "ip", "--from", carrierIP, "--media", "rtp", "--outbound"); code == 0 ||
		!strings.Contains(out, "--insecure-transport") {
		t.Errorf("trunk add --transport udp without --insecure-transport: exit %d, want an error naming --insecure-transport:\n%s", code, out)
	}
	addTrunk(t, srv, "", "plain", "--host", carrierIP, "--port", car.portStr(), "--transport", "udp",
		"--insecure-transport", "--auth", "ip", "--from", carrierIP, "--media", "rtp", "--outbound")
	a := newUA(t, srv, "127.0.0.15", "1001", secret)
	ea := newSRTPEndpoint(t, "agent", "127.0.0.15")

	c := a.invite(nlMobile, ea.offer("AES_CM_128_HMAC_SHA1_80", "sendrecv"))
	inv := cc.waitRequest(10*time.Second, "INVITE", "")
	if !strings.HasPrefix(inv.start, fmt.Sprintf("INVITE sip:%s@%s:%d", nlMobileE1, carrierIP, car.port)) {
		t.Errorf("carrier's INVITE: %q", inv.start)
	}
	if !strings.Contains(inv.header("Via"), "SIP/2.0/UDP") {
		t.Errorf("carrier's INVITE Via %q: want UDP", inv.header("Via"))
	}
	if !strings.Contains(inv.body, " RTP/AVP ") || strings.Contains(inv.body, "a=crypto") {
		t.Errorf("INVITE at the plain carrier: want RTP/AVP without a=crypto:\n%s", inv.body)
	}
	relay := sdpMediaAddr(t, inv.body)

	// The carrier's plain media socket.
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(carrierIP)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	mport := pc.LocalAddr().(*net.UDPAddr).Port
	answer := sdpBody(carrierIP, mport, "RTP/AVP", "sendrecv")
	tag := randHex(6)
	cc.respond(inv, 100, "Trying", "", "")
	cc.respond(inv, 200, "OK", tag, answer)
	res := c.waitAnswer(10 * time.Second)
	requireStatus(t, "1001's INVITE over the UDP trunk", res, 200)
	requireSRTPBody(t, "200 OK at 1001 (the agent's leg stays SRTP)", res.body)
	ea.answered(res.body)
	c.ack("")
	cc.waitRequest(5*time.Second, "ACK", inv.header("Call-ID"))

	// Plain RTP both ways through the relay.
	gotPlain := make(chan int, 1)
	go func() {
		buf := make([]byte, 2048)
		n := 0
		_ = pc.SetReadDeadline(time.Now().Add(6 * time.Second))
		for n < 20 {
			k, err := pc.Read(buf)
			if err != nil {
				break
			}
			var p rtp.Packet
			if p.Unmarshal(buf[:k]) == nil && bytes.HasPrefix(p.Payload, []byte("VOICE:agent:")) {
				n++
			}
		}
		gotPlain <- n
	}()
	ea.startSending()
	stop := make(chan struct{})
	go func() {
		for i := 0; i < 300; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(i + 1),
				Timestamp: uint32(160 * i), SSRC: 0x0c0ffee0}, Payload: voicePayload("carrier", i)}
			raw, _ := p.Marshal()
			_, _ = pc.WriteToUDP(raw, relay)
		}
	}()
	ea.waitReceived(20, 6*time.Second)
	close(stop)
	ea.stopSending()
	requireVoiceFrom(t, ea, "carrier")
	if n := <-gotPlain; n < 20 {
		t.Errorf("the carrier received %d plain RTP frames from the agent, want >= 20", n)
	}

	c.bye()
	bye := cc.waitRequest(5*time.Second, "BYE", inv.header("Call-ID"))
	cc.respond(bye, 200, "OK", "", "")
	rec := waitTrunkRecord(t, srv, 10*time.Second, c.callID)
	t.Logf("record: %s", rec)
	callee := strings.ToLower(fmt.Sprint(rec.CalleeMedia))
	if rec.Disposition != "answered" || rec.Trunk != "plain" || !strings.Contains(callee, "plain") ||
		rec.MediaInClear != true || !mediaIsSRTP(rec.CallerMedia) {
		t.Errorf("record: want answered on trunk plain, callee leg RTP (plain), caller SRTP, media_in_clear true; got %s", rec)
	}
}

// sdpMediaAddr is the c= address and m=audio port of an SDP.
func sdpMediaAddr(t *testing.T, body string) *net.UDPAddr {
	t.Helper()
	ip := sdpConnAddr(body)
	port := 0
	for _, l := range strings.Split(body, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "m=audio" {
			fmt.Sscan(f[1], &port)
		}
	}
	if ip == "" || port == 0 {
		t.Fatalf("no c=/m=audio address in SDP:\n%s", body)
	}
	return &net.UDPAddr{IP: net.ParseIP(ip), Port: port}
}

// TestTrunkRegistration: a --auth register trunk over TLS (pinned) makes
// Veilig REGISTER at the carrier: 401 (MD5, qop=auth) is answered with a
// digest the carrier verifies against the secret; 200 with Expires: 4 is
// refreshed about 2 s later (half the expiry), this time answering a
// SHA-256 challenge. For a second trunk with a wrong secret
// the carrier keeps answering 401 and a trunk.registration_failed event
// (severity alert) names the trunk. Changing a trunk's secret makes Veilig
// register again with the new one.
func TestTrunkRegistration(t *testing.T) {
	const user, pass, realm = "acme-pbx", "Carrier-Secret-9!x", "carrier.test"
	srv := startServer(t, serverOptions{})
	cert := issueCert(t, newCA(t), carrierIP)
	car := startTLSCarrier(t, cert)
	addTrunk(t, srv, pass+"\n", "reg", "--host", carrierIP, "--port", car.portStr(), "--auth", "register",
		"--username", user, "--secret-stdin", "--pin", certPin(cert))
	cc := car.accept(10 * time.Second)

	register := func(alg string, expires int) (first, second *sipMessage, registeredAt time.Time) {
		t.Helper()
		first = cc.waitRequest(10*time.Second, "REGISTER", "")
		if first.header("Authorization") != "" {
			t.Errorf("first REGISTER already carries credentials (before any challenge)")
		}
		cc.respond(first, 401, "Unauthorized", randHex(4), "", "WWW-Authenticate: "+carrierChallenge(realm, alg))
		second = cc.waitRequest(5*time.Second, "REGISTER", first.header("Call-ID"))
		authz := second.header("Authorization")
		if why := checkDigest(authz, "REGISTER", user, pass); why != "" {
			t.Fatalf("REGISTER credentials (%s challenge): %s\n%s", alg, why, second.raw)
		}
		if cseqNum(second) <= cseqNum(first) {
			t.Errorf("authenticated REGISTER CSeq %d not above %d", cseqNum(second), cseqNum(first))
		}
		cc.respond(second, 200, "OK", randHex(4), "", "Contact: "+second.header("Contact")+fmt.Sprintf(";expires=%d", expires),
			fmt.Sprintf("Expires: %d", expires))
		return first, second, time.Now()
	}
	first, second, at := register("MD5", 4)
	t.Logf("REGISTER at the carrier:\n%s", second.raw)
	if !strings.HasPrefix(first.start, fmt.Sprintf("REGISTER sip:%s:%d", carrierIP, car.port)) ||
		!strings.Contains(first.header("From"), "sip:"+user+"@") || !strings.Contains(first.header("To"), "sip:"+user+"@") {
		t.Errorf("REGISTER: want Request-URI sip:%s:%d and AoR user %s; got %q From %q To %q",
			carrierIP, car.port, user, first.start, first.header("From"), first.header("To"))
	}
	// Refresh at half the granted 4 s, on the same connection.
	_, _, again := register("SHA-256", 300)
	if d := again.Sub(at); d < 1500*time.Millisecond || d > 4500*time.Millisecond {
		t.Errorf("refresh came %v after a 4 s registration, want about 2 s", d)
	}

	if n := len(first.all("Content-Length")); n != 1 {
		t.Errorf("SERVER: Veilig's REGISTER carries %d Content-Length headers, want exactly 1", n)
	}

	// A second trunk with a wrong secret (its own connection): the carrier
	// keeps answering 401 and Veilig raises trunk.registration_failed.
	const wrong = "Wrong-Secret-00!x"
	addTrunk(t, srv, wrong+"\n", "badreg", "--host", carrierIP, "--port", car.portStr(), "--auth", "register",
		"--username", user, "--secret-stdin", "--pin", certPin(cert))
	cb := car.accept(10 * time.Second)
	r1 := cb.waitRequest(10*time.Second, "REGISTER", "")
	cb.respond(r1, 401, "Unauthorized", randHex(4), "", "WWW-Authenticate: "+carrierChallenge(realm, "MD5"))
	r2 := cb.waitRequest(5*time.Second, "REGISTER", r1.header("Call-ID"))
	if why := checkDigest(r2.header("Authorization"), "REGISTER", user, wrong); why != "" {
		t.Errorf("badreg REGISTER credentials are not the configured (wrong) secret's: %s", why)
	}
	if checkDigest(r2.header("Authorization"), "REGISTER", user, pass) == "" {
		t.Fatalf("badreg REGISTER carries the right secret")
	}
	cb.respond(r2, 401, "Unauthorized", randHex(4), "", "WWW-Authenticate: "+carrierChallenge(realm, "MD5"))
	ev := srv.waitEvent(t, 10*time.Second, "trunk.registration_failed", func(e event) bool { return fmt.Sprint(e.Fields["trunk"]) == "badreg" })
	t.Logf("event: %s", ev)
	if ev.Severity != "alert" {
		t.Errorf("trunk.registration_failed severity %q, want alert: %s", ev.Severity, ev)
	}
	if m := cb.poll(1500*time.Millisecond, isRequest("REGISTER", "")); m != nil {
		t.Errorf("Veilig retried the refused credentials at once (want a back-off):\n%s", m.raw)
	}

	// Changing reg's secret re-registers with the new one (bounded 15 s,
	// on whatever connection Veilig uses).
	const pass2 = "Carrier-Secret-10!y"
	if out, code := srv.cli(t, pass2+"\n", "trunk", "set", "reg", "--secret-stdin"); code != 0 {
		t.Fatalf("trunk set --secret-stdin: %s", out)
	}
	conns := []*carrierConn{cc}
	deadline := time.Now().Add(15 * time.Second)
	var lost []string
	ok := false
	for !ok && time.Now().Before(deadline) {
		select {
		case n := <-car.conns:
			conns = append(conns, n)
		default:
		}
		for _, x := range conns {
			m := x.poll(100*time.Millisecond, isRequest("REGISTER", ""))
			if m == nil {
				continue
			}
			x.respond(m, 401, "Unauthorized", randHex(4), "", "WWW-Authenticate: "+carrierChallenge(realm, "SHA-256"))
			m2 := x.poll(3*time.Second, isRequest("REGISTER", m.header("Call-ID")))
			if m2 == nil {
				x.mu.Lock()
				lost = append(lost, fmt.Sprintf("REGISTER Call-ID %s on %s: challenged, no answer (connection read error: %v)",
					m.header("Call-ID"), x.hostport, x.readErr))
				x.mu.Unlock()
				continue
			}
			if why := checkDigest(m2.header("Authorization"), "REGISTER", user, pass2); why != "" {
				lost = append(lost, "REGISTER with the old or a wrong secret: "+why)
				x.respond(m2, 401, "Unauthorized", randHex(4), "", "WWW-Authenticate: "+carrierChallenge(realm, "SHA-256"))
				continue
			}
			x.respond(m2, 200, "OK", randHex(4), "", "Expires: 300")
			ok = true
			break
		}
	}
	var regFailed []string
	for _, e := range srv.events(t) {
		if e.Type == "trunk.registration_failed" && fmt.Sprint(e.Fields["trunk"]) == "reg" {
			regFailed = append(regFailed, e.Time+" "+e.Message)
		}
	}
	if !ok {
		t.Errorf("SERVER: after `trunk set reg --secret-stdin` no REGISTER with the new secret was completed within 15 s (%q); trunk.registration_failed for reg: %q",
			lost, regFailed)
	}
	if len(regFailed) > 0 {
		t.Errorf("SERVER: the carrier never refused trunk reg, yet reconfiguring it raised trunk.registration_failed: %q", regFailed)
	}
}

// answerCall has the carrier answer the INVITE with an SRTP answer and
// waits for 1001's 200 and the ACK.
func answerCall(t *testing.T, c *uacCall, cc *carrierConn, inv *sipMessage) {
	t.Helper()
	cc.respond(inv, 200, "OK", randHex(6), answerTo(inv.body, carrierIP, "sendrecv"))
	requireStatus(t, "INVITE to "+c.callee, c.waitAnswer(10*time.Second), 200)
	c.ack("")
	cc.waitRequest(5*time.Second, "ACK", inv.header("Call-ID"))
}

// secondConn is another TLS connection as user (not registered), for a
// second call while the first UA's connection carries a running call.
func secondConn(t *testing.T, srv *server, ip, user, secret string) *sipUA {
	u := newUA(t, srv, ip, user, "")
	u.secret = secret
	return u
}

// TestTrunkOutboundLimits: fraud limits on the trunk path.
// extension_concurrent 1: while 1001's answered call runs, a second
// outbound call is refused 403 (concurrent_limit) and never reaches the
// carrier. extension_max_duration 3s: the answered call is ended by Veilig
// with BYE to 1001 and to the carrier after about 3 s. extension_per_minute
// 2: 1002's third call within the minute is refused 403 (rate_limit).
func TestTrunkOutboundLimits(t *testing.T) {
	srv := startServer(t, serverOptions{Extra: "fraud:\n  extension_concurrent: 1\n  extension_per_minute: 2\n  extension_max_duration: 3s\n"})
	cert := issueCert(t, newCA(t), carrierIP)
	car := startTLSCarrier(t, cert)
	s1 := srv.addExtension(t, "1001")
	s2 := srv.addExtension(t, "1002")
	addTrunk(t, srv, "", "carrier", "--host", carrierIP, "--port", car.portStr(), "--auth", "ip", "--from", carrierIP,
		"--pin", certPin(cert), "--outbound")
	a := newUA(t, srv, "127.0.0.16", "1001", s1)
	a2 := secondConn(t, srv, "127.0.0.17", "1001", s1)
	b := newUA(t, srv, "127.0.0.18", "1002", s2)

	var cc *carrierConn
	c1, inv := placeOutbound(t, a, nlMobile, srtpOffer(a.ip, "sendrecv"), car, &cc)
	answerCall(t, c1, cc, inv)
	answered := time.Now()

	t.Run("concurrent_limit", func(t *testing.T) {
		c2 := a2.invite("0687654321", srtpOffer(a2.ip, "sendrecv"))
		requireStatus(t, "1001's second simultaneous call", c2.waitAnswer(5*time.Second), 403)
		requireTrunkRefused(t, srv, "0687654321", "concurrent_limit", "403")
	})

	t.Run("max_duration", func(t *testing.T) {
		byeA := a.waitRequest(8*time.Second, "BYE")
		a.respond(byeA, 200, "OK", "", "")
		byeC := cc.waitRequest(3*time.Second, "BYE", inv.header("Call-ID"))
		cc.respond(byeC, 200, "OK", "", "")
		if d := time.Since(answered); d < 2500*time.Millisecond || d > 6*time.Second {
			t.Errorf("call ended %v after the answer, want about 3 s", d)
		}
		rec := waitTrunkRecord(t, srv, 10*time.Second, c1.callID)
		t.Logf("record: %s", rec)
		if rec.Disposition != "answered" || rec.Trunk != "carrier" {
			t.Errorf("record: want answered on trunk carrier; got %s", rec)
		}
	})
	if m := cc.poll(500*time.Millisecond, isRequest("INVITE", "")); m != nil {
		t.Errorf("the carrier received an INVITE for a call over the concurrency limit:\n%s", m.raw)
	}

	t.Run("rate_limit", func(t *testing.T) {
		for i := 1; i <= 2; i++ {
			c, inv := placeOutbound(t, b, nlMobile, srtpOffer(b.ip, "sendrecv"), car, &cc)
			cc.respond(inv, 486, "Busy Here", randHex(6), "")
			requireStatus(t, fmt.Sprintf("1002's call %d", i), c.waitAnswer(5*time.Second), 486)
		}
		c3 := b.invite(nlMobile, srtpOffer(b.ip, "sendrecv"))
		requireStatus(t, "1002's third call within a minute", c3.waitAnswer(5*time.Second), 403)
		requireTrunkRefused(t, srv, nlMobile, "rate_limit", "403")
	})
}

// TestTrunkDailyBudget: extension_daily_budget 1.2 at rate_national 1 a
// minute. Two calls are admitted (each with at least a minute of budget
// left); together they spend 2 a minute, so the budget is crossed after
// about 36 s, well before either call's own limit: the guard's tick ends
// both (BYE on both legs) and raises fraud.budget_reached. A third call is
// then refused 403 daily_budget (trip: alert, so the extension is not
// suspended, which would refuse with rule suspended instead).
func TestTrunkDailyBudget(t *testing.T) {
	srv := startServer(t, serverOptions{Extra: "fraud:\n  extension_daily_budget: 1.2\n  rate_national: 1\n  trip: alert\n"})
	cert := issueCert(t, newCA(t), carrierIP)
	car := startTLSCarrier(t, cert)
	s1 := srv.addExtension(t, "1001")
	addTrunk(t, srv, "", "carrier", "--host", carrierIP, "--port", car.portStr(), "--auth", "ip", "--from", carrierIP,
		"--pin", certPin(cert), "--outbound")
	a := newUA(t, srv, "127.0.0.19", "1001", s1)
	a2 := secondConn(t, srv, "127.0.0.20", "1001", s1)

	var cc *carrierConn
	start := time.Now()
	c1, inv1 := placeOutbound(t, a, nlMobile, srtpOffer(a.ip, "sendrecv"), car, &cc)
	answerCall(t, c1, cc, inv1)
	c2, inv2 := placeOutbound(t, a2, "0687654321", srtpOffer(a2.ip, "sendrecv"), car, &cc)
	answerCall(t, c2, cc, inv2)
	t.Logf("two calls running %v after the first INVITE", time.Since(start))

	for _, x := range []struct {
		u   *sipUA
		inv *sipMessage
	}{{a, inv1}, {a2, inv2}} {
		bye := x.u.waitRequest(60*time.Second, "BYE")
		x.u.respond(bye, 200, "OK", "", "")
		byeC := cc.waitRequest(5*time.Second, "BYE", x.inv.header("Call-ID"))
		cc.respond(byeC, 200, "OK", "", "")
	}
	ended := time.Since(start)
	t.Logf("both calls ended %v after the first INVITE", ended)
	if ended > 55*time.Second {
		t.Errorf("calls ended %v after start: the budget (crossed at ~36 s) did not end them, only their own limit", ended)
	}
	for _, id := range []string{c1.callID, c2.callID} {
		rec := waitTrunkRecord(t, srv, 10*time.Second, id)
		t.Logf("record: %s", rec)
		if !strings.Contains(rec.Fraud, "daily_budget") {
			t.Errorf("record %s: fraud %q does not say the budget ended it", id, rec.Fraud)
		}
	}

	bev := srv.waitEvent(t, 5*time.Second, "fraud.budget_reached", forAccount("1001"))
	t.Logf("event: %s", bev)
	var spent float64
	fmt.Sscan(fmt.Sprint(bev.Fields["spent"]), &spent)
	if spent < 1.0 {
		t.Errorf("SERVER: fraud.budget_reached says spent %v, but the two calls had spent about 1.2 (running calls not counted)", bev.Fields["spent"])
	}
	c3 := a.invite(nlMobile, srtpOffer(a.ip, "sendrecv"))
	requireStatus(t, "call after the budget is spent", c3.waitAnswer(5*time.Second), 403)
	requireTrunkRefused(t, srv, nlMobile, "daily_budget", "403")
}
