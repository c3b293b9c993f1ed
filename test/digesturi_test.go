package test

// The digest uri must name the request's own target (RFC 3261 22.4):
// credentials computed for another Request-URI are refused exactly like a
// wrong password.

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// digestAttempt sends method to ruri without credentials, answers the
// challenge with credentials for (user, pass) computed over digestURI, and
// returns both responses normalised, and the final status.
func digestAttempt(t *testing.T, srv *server, transport, localIP, method, user, pass, ruri, digestURI string) exchange {
	t.Helper()
	var c *sipConn
	addr := srv.tlsAddr
	if transport == "UDP" {
		addr = srv.udpAddr
		c = dialSIPUDP(t, localIP, addr)
	} else {
		c = dialSIPTLS(t, localIP, addr)
	}
	defer c.conn.Close()
	local := c.conn.LocalAddr().String()
	callID, fromTag := randHex(12)+"@veilig-e2e", randHex(6)
	to := ruri
	if method == "REGISTER" {
		to = "sip:" + user + "@" + srv.domain
	}
	build := func(cseq int, auth string) string {
		hdrs := []string{
			fmt.Sprintf("Via: SIP/2.0/%s %s;branch=z9hG4bK%s;rport", transport, local, randHex(8)),
			"Max-Forwards: 70",
			fmt.Sprintf("From: <sip:%s@%s>;tag=%s", user, srv.domain, fromTag),
			fmt.Sprintf("To: <%s>", to),
			"Call-ID: " + callID,
			fmt.Sprintf("CSeq: %d %s", cseq, method),
			fmt.Sprintf("Contact: <sip:%s@%s;transport=%s>", user, local, strings.ToLower(transport)),
			"User-Agent: veilig-e2e",
		}
		if method == "REGISTER" {
			hdrs = append(hdrs, "Expires: 300")
		}
		if auth != "" {
			name := "Proxy-Authorization"
			if method == "REGISTER" {
				name = "Authorization"
			}
			hdrs = append(hdrs, name+": "+auth)
		}
		// INVITE without SDP (a late offer): only authentication matters.
		return buildRequest(method, ruri, hdrs, "")
	}
	c.send(t, build(1, ""))
	chal := c.readFinal(t, 5*time.Second)
	hdr := "Proxy-Authenticate"
	if method == "REGISTER" {
		hdr = "WWW-Authenticate"
	}
	if chal.status() != 401 && chal.status() != 407 {
		t.Fatalf("%s %s over %s (no credentials): %q, want a challenge", method, ruri, transport, chal.start)
	}
	ch := pickChallenge(t, chal.all(hdr), "MD5")
	c.send(t, build(2, ch.Authorization(user, pass, method, digestURI)))
	final := c.readFinal(t, 5*time.Second)
	return exchange{
		challenge:   normalise(chal.raw, user, local),
		final:       normalise(final.raw, user, local),
		finalStatus: final.status(),
	}
}

// TestDigestURIBoundToRequest: for REGISTER and INVITE, over UDP and TLS,
// credentials with the right secret but a uri other than the Request-URI
// (another host for REGISTER, another callee for INVITE) get the same
// answer as a wrong password, byte for byte after normalising what differs
// by nature, and are counted as a failed authentication; the same secret
// with the right uri is accepted.
func TestDigestURIBoundToRequest(t *testing.T) {
	srv := startServer(t, serverOptions{UDP: true})
	secret := srv.addExtension(t, "1001")
	srv.addExtension(t, "1002")
	const wrong = "Not-The-Secret-42!"
	regURI := "sip:" + srv.domain
	ip := 20
	next := func() string { ip++; return fmt.Sprintf("127.0.0.%d", ip) }

	for _, transport := range []string{"UDP", "TLS"} {
		for _, tc := range []struct {
			method, ruri, evil string
		}{
			{"REGISTER", regURI, "sip:evil.example.com"},
			{"INVITE", "sip:1002@" + srv.domain, "sip:1003@" + srv.domain},
		} {
			what := tc.method + " over " + transport
			good := digestAttempt(t, srv, transport, next(), tc.method, "1001", secret, tc.ruri, tc.ruri)
			if good.finalStatus == 401 || good.finalStatus == 407 {
				t.Fatalf("%s with the right secret and uri: %d, want it accepted:\n%s", what, good.finalStatus, good.final)
			}
			bad := digestAttempt(t, srv, transport, next(), tc.method, "1001", wrong, tc.ruri, tc.ruri)
			mism := digestAttempt(t, srv, transport, next(), tc.method, "1001", secret, tc.ruri, tc.evil)
			if mism.finalStatus != bad.finalStatus {
				t.Errorf("%s: uri %q for Request-URI %q got %d, a wrong password %d", what, tc.evil, tc.ruri, mism.finalStatus, bad.finalStatus)
			}
			if mism.final != bad.final {
				t.Errorf("%s: the answer to a mismatched uri differs from the answer to a wrong password:\n--- wrong password:\n%s\n--- mismatched uri:\n%s\n--- first difference: %s",
					what, bad.final, mism.final, firstDiff(bad.final, mism.final))
			}
			t.Logf("%s: right secret, uri %q: %d (wrong password: %d); right uri: %d", what, tc.evil, mism.finalStatus, bad.finalStatus, good.finalStatus)
		}
	}
	srv.waitEvent(t, 5*time.Second, "auth.failure", func(e event) bool {
		return e.Account == "1001" && strings.Contains(fmt.Sprint(e.Fields["reason"]), "uri")
	})
	if n := countEvents(srv.events(t), "auth.failure", func(e event) bool { return strings.Contains(fmt.Sprint(e.Fields["reason"]), "uri") }); n != 4 {
		t.Errorf("%d auth.failure events for a mismatched uri, want 4 (REGISTER and INVITE over UDP and TLS):\n%s", n, srv.eventSummary(t))
	}
}
