package sipedge

import (
	"net/netip"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestDigestURIMatches(t *testing.T) {
	local := newLocalHosts([]string{"pbx.example.com", "192.0.2.10", "0.0.0.0"})
	arrived := netip.MustParseAddr("198.51.100.7")
	isLocal := func(h string) bool { return local.is(h, arrived) }
	for _, tc := range []struct {
		digest, ruri string
		want         bool
	}{
		{"sip:pbx.example.com", "sip:pbx.example.com", true},
		{"sip:PBX.example.COM", "sip:pbx.example.com", true},
		{"sip:1002@pbx.example.com", "sip:1002@pbx.example.com", true},
		{"sip:1002@pbx.example.com;transport=tls", "sip:1002@pbx.example.com;transport=TLS", true},
		{"sip:%31002@pbx.example.com", "sip:1002@pbx.example.com", true},
		// RFC 3261 22.4: the attack the check exists for.
		{"sip:evil.example.com", "sip:127.0.0.1", false},
		{"sip:evil.example.com", "sip:pbx.example.com", false},
		{"sip:1003@pbx.example.com", "sip:1002@pbx.example.com", false},
		{"sip:1002@evil.example.com", "sip:1002@pbx.example.com", false},
		{"sips:1002@pbx.example.com", "sip:1002@pbx.example.com", false},
		{"sip:1002@pbx.example.com", "sip:1002@pbx.example.com;user=phone", false},
		{"sip:1002@pbx.example.com;transport=udp", "sip:1002@pbx.example.com;transport=tls", false},
		{"sip:1002@pbx.example.com?Subject=x", "sip:1002@pbx.example.com", false},
		{"sip:User@pbx.example.com", "sip:user@pbx.example.com", false},
		// Names of this server stand for each other, ports included
		// (sipp puts the address it sent to into uri).
		{"sip:192.0.2.10:15071", "sip:pbx.example.com", true},
		{"sip:198.51.100.7:5061", "sip:pbx.example.com", true},
		{"sip:1002@192.0.2.10", "sip:1002@pbx.example.com:5061", true},
		{"sip:1003@192.0.2.10", "sip:1002@pbx.example.com", false},
		// Not ours: ports must agree exactly.
		{"sip:1002@203.0.113.5:5060", "sip:1002@203.0.113.5", false},
		{"sip:1002@[2001:db8::1]", "sip:1002@[2001:db8:0::1]", true},
		{"tel:+31201234567", "tel:+31201234567", true},
		{"tel:+31201234567", "tel:+31201234568", false},
		{"not a uri", "sip:pbx.example.com", false},
		{"", "sip:pbx.example.com", false},
	} {
		var ruri sip.Uri
		if err := sip.ParseUri(tc.ruri, &ruri); err != nil {
			t.Fatalf("parse %q: %v", tc.ruri, err)
		}
		if got := digestURIMatches(tc.digest, &ruri, isLocal); got != tc.want {
			t.Errorf("digest uri %q vs Request-URI %q: %v, want %v", tc.digest, tc.ruri, got, tc.want)
		}
	}
}

func TestUserlessLocalURI(t *testing.T) {
	local := newLocalHosts([]string{"pbx.example.com", "192.0.2.10"})
	isLocal := func(h string) bool { return local.is(h, netip.Addr{}) }
	for _, tc := range []struct {
		digest, ruri string
		want         bool
	}{
		{"sip:192.0.2.10:15071", "sip:1002@pbx.example.com", true},
		{"sip:1003@192.0.2.10", "sip:1002@pbx.example.com", false},
		{"sip:evil.example.com", "sip:1002@pbx.example.com", false},
		{"sip:192.0.2.10", "sip:1002@evil.example.com", false},
	} {
		var ruri sip.Uri
		if err := sip.ParseUri(tc.ruri, &ruri); err != nil {
			t.Fatal(err)
		}
		if got := userlessLocalURI(tc.digest, &ruri, isLocal); got != tc.want {
			t.Errorf("userless %q vs %q: %v, want %v", tc.digest, tc.ruri, got, tc.want)
		}
	}
}
