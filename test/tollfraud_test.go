package test

import (
	"fmt"
	"testing"
	"time"
)

// TestClassOfServiceOutbound: every call from an extension to a number
// outside passes the toll-fraud guard. An agent with class national (the
// default; tenant country NL) dialling a German fixed number, a premium
// 0900 number or a +882 satellite number is refused with 403 and a
// call.refused event naming the rule; a Dutch mobile and 112 pass the
// guard (112 with a fraud.emergency event) and, with no carrier trunk
// configured yet, end as 480. Class international still cannot reach
// premium or satellite numbers.
func TestClassOfServiceOutbound(t *testing.T) {
	srv, a, _ := setupCall(t, "127.0.0.71", "127.0.0.72")
	cases := []struct {
		dialled string
		code    int
		rule    string
	}{
		{"0612345678", 480, ""},                   // NL mobile: allowed by class national
		{"004930123456", 403, "class_of_service"}, // German fixed
		{"0900123456", 403, "premium_rate"},       // NL premium
		{"+88216123456", 403, "satellite"},        // Thuraya
		{"112", 480, ""},                          // emergency: always allowed
	}
	for _, tc := range cases {
		t.Run(tc.dialled, func(t *testing.T) {
			c := a.invite(tc.dialled, srtpOffer(a.ip, "sendrecv"))
			requireStatus(t, "INVITE "+tc.dialled, c.waitAnswer(5*time.Second), tc.code)
			if tc.rule != "" {
				srv.waitEvent(t, 5*time.Second, "call.refused", func(e event) bool {
					return fmt.Sprint(e.Fields["rule"]) == tc.rule && fmt.Sprint(e.Fields["to"]) == tc.dialled
				})
			}
		})
	}
	srv.waitEvent(t, 5*time.Second, "fraud.emergency", nil)

	// International class: premium and satellite stay refused for every
	// class. (Germany would now pass, but only within business hours.)
	if out, code := srv.cli(t, "", "ext", "set", "1001", "--class", "international"); code != 0 {
		t.Fatalf("ext set --class: %s", out)
	}
	time.Sleep(1500 * time.Millisecond) // the server reloads extensions within a second
	for dialled, want := range map[string]int{"0900123456": 403, "+88216123456": 403} {
		c := a.invite(dialled, srtpOffer(a.ip, "sendrecv"))
		requireStatus(t, "international class, INVITE "+dialled, c.waitAnswer(5*time.Second), want)
	}
}

// TestCallerIDPresentation: an extension may present (P-Preferred-Identity)
// only its own number or one it was given with `ext set --caller-ids`;
// anything else is refused with 403 and a call.refused event (rule
// caller_id) before the call reaches the fraud guard or a carrier.
func TestCallerIDPresentation(t *testing.T) {
	srv, a, _ := setupCall(t, "127.0.0.73", "127.0.0.74")
	c := a.inviteWith("0612345678", srtpOffer(a.ip, "sendrecv"), "P-Preferred-Identity: <sip:+31205550000@"+srv.domain+">")
	requireStatus(t, "INVITE presenting a number 1001 was not given", c.waitAnswer(5*time.Second), 403)
	srv.waitEvent(t, 5*time.Second, "call.refused", func(e event) bool { return fmt.Sprint(e.Fields["rule"]) == "caller_id" })

	if out, code := srv.cli(t, "", "ext", "set", "1001", "--caller-ids", "+31205550000"); code != 0 {
		t.Fatalf("ext set --caller-ids: %s", out)
	}
	time.Sleep(1500 * time.Millisecond) // the server reloads extensions within a second
	c = a.inviteWith("0612345678", srtpOffer(a.ip, "sendrecv"), "P-Preferred-Identity: <sip:+31205550000@"+srv.domain+">")
	// Allowed by the guard; no trunk is configured in this test.
	requireStatus(t, "INVITE presenting a number 1001 may present", c.waitAnswer(5*time.Second), 480)
}
