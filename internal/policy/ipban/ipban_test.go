package ipban

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func newTable(t *testing.T, mod func(*Config)) *Table {
	t.Helper()
	cfg := Default()
	if mod != nil {
		mod(&cfg)
	}
	tb, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

var attacker = netip.MustParseAddr("127.0.0.66")

func fail(tb *Table, src netip.Addr, account string, known bool, now time.Time) Outcome {
	return tb.Failure(Failure{Source: src, Account: account, Reason: "wrong response", Known: known}, now)
}

func TestFourthFailureBans(t *testing.T) {
	tb := newTable(t, nil)
	for i := range 3 {
		if o := fail(tb, attacker, "1001", false, t0.Add(time.Duration(i)*time.Second)); o.Banned || o.Counted != i+1 {
			t.Fatalf("failure %d: %+v", i+1, o)
		}
	}
	o := fail(tb, attacker, "1001", false, t0.Add(3*time.Second))
	if !o.Banned || !o.Exceeded {
		t.Fatalf("4th failure did not ban: %+v", o)
	}
	b := o.Ban
	if b.Rule != RuleBruteforce || b.Reason != "4 failed digest authentications for 1001 within 10m0s" ||
		len(b.Cause) != 4 || b.Cause[0] != "2026-03-01T10:00:00Z 1001: wrong response" ||
		!b.Start.Equal(t0.Add(3*time.Second)) || b.End.Sub(b.Start) != time.Hour {
		t.Fatalf("ban %+v", b)
	}
	if _, ok := tb.Banned(attacker, b.End.Add(-time.Nanosecond)); !ok {
		t.Fatal("not banned just before the end")
	}
	if _, ok := tb.Banned(attacker, b.End); ok {
		t.Fatal("ban did not expire by itself")
	}
}

func TestWindowSlides(t *testing.T) {
	tb := newTable(t, nil)
	for i := range 3 {
		fail(tb, attacker, "1001", false, t0.Add(time.Duration(i)*time.Minute))
	}
	// 10m after the first, only two remain in the window.
	if o := fail(tb, attacker, "1001", false, t0.Add(10*time.Minute)); o.Banned || o.Counted != 3 {
		t.Fatalf("failure outside the window banned: %+v", o)
	}
	if o := fail(tb, attacker, "1001", false, t0.Add(10*time.Minute+time.Second)); !o.Banned {
		t.Fatalf("4 failures within 10m did not ban: %+v", o)
	}
}

func TestEscalation(t *testing.T) {
	tb := newTable(t, nil)
	now := t0
	want := []time.Duration{time.Hour, 6 * time.Hour, 24 * time.Hour, 24 * time.Hour}
	for step, d := range want {
		var o Outcome
		for range 4 {
			o = fail(tb, attacker, "", false, now)
			now = now.Add(time.Second)
		}
		if !o.Banned || o.Ban.End.Sub(o.Ban.Start) != d || o.Ban.Level != step {
			t.Fatalf("offence %d: %+v, want %v", step+1, o, d)
		}
		if o.Ban.Reason != "4 failed digest authentications within 10m0s" {
			t.Fatalf("reason %q", o.Ban.Reason)
		}
		// Failures while banned change nothing.
		if o := fail(tb, attacker, "", false, now); o.Banned || o.Counted != 0 {
			t.Fatalf("failure while banned: %+v", o)
		}
		now = o.Ban.End
	}
	// After Memory of good behaviour the ladder starts again.
	now = now.Add(24*time.Hour + 7*24*time.Hour)
	var o Outcome
	for range 4 {
		o = fail(tb, attacker, "", false, now)
	}
	if o.Ban.Level != 0 || o.Ban.End.Sub(o.Ban.Start) != time.Hour {
		t.Fatalf("ladder not reset after memory: %+v", o.Ban)
	}
}

func TestTrustedNeverBanned(t *testing.T) {
	tb := newTable(t, nil)
	carrier := netip.MustParseAddr("192.0.2.1")
	var o Outcome
	for i := range 10 {
		o = tb.Failure(Failure{Source: carrier, Account: "trunk", Reason: "wrong response", Trusted: true}, t0.Add(time.Duration(i)*time.Second))
		if o.Banned {
			t.Fatal("trusted source banned")
		}
		if want := i >= 3; o.Exceeded != want {
			t.Fatalf("failure %d: exceeded %v, want %v", i+1, o.Exceeded, want)
		}
	}
	if len(tb.Bans(t0)) != 0 {
		t.Fatal("ban recorded for a trusted source")
	}
}

// TestReconnectStorm: 500 agents behind one NAT address, all known there,
// each fail once (stale nonce) and succeed right after: no ban. An
// attacker behind the same address interleaving failures for accounts
// never seen there is banned on its 4th.
func TestReconnectStorm(t *testing.T) {
	tb := newTable(t, nil)
	nat := netip.MustParseAddr("127.0.0.10")
	now := t0
	for i := range 500 {
		acct := fmt.Sprint(1000 + i)
		if o := tb.Failure(Failure{Source: nat, Account: acct, Reason: "stale nonce", Known: true}, now); o.Banned || !o.Held {
			t.Fatalf("agent %s failure: %+v", acct, o)
		}
		now = now.Add(time.Millisecond)
		tb.Success(nat, acct, now)
	}
	if _, banned := tb.Banned(nat, now); banned || tb.Counted(nat, now) != 0 {
		t.Fatal("reconnect storm counted")
	}
	// Interleaved attacker: unknown accounts count at once.
	var o Outcome
	for i := range 4 {
		acct := fmt.Sprint(1000 + i)
		tb.Failure(Failure{Source: nat, Account: acct, Reason: "stale nonce", Known: true}, now)
		o = tb.Failure(Failure{Source: nat, Account: fmt.Sprint("9", i), Reason: "unknown user"}, now)
		tb.Success(nat, acct, now)
		now = now.Add(time.Millisecond)
	}
	if !o.Banned {
		t.Fatalf("attacker behind the NAT not banned: %+v", o)
	}
	if want := "4 failed digest authentications for 90, 91, 92 and 1 other accounts within 10m0s"; o.Ban.Reason != want {
		t.Fatalf("reason %q, want %q", o.Ban.Reason, want)
	}
}

// TestHeldFailuresCount: a known account's failure that is not followed
// by a success counts once the grace has passed, and a guesser gets at
// most ForgiveMax held failures per account.
func TestHeldFailuresCount(t *testing.T) {
	tb := newTable(t, nil)
	nat := netip.MustParseAddr("127.0.0.10")
	o1 := fail(tb, nat, "1001", true, t0)
	o2 := fail(tb, nat, "1001", true, t0)
	o3 := fail(tb, nat, "1001", true, t0)
	if !o1.Held || !o2.Held || o3.Held || o3.Counted != 1 {
		t.Fatalf("held: %+v %+v %+v", o1, o2, o3)
	}
	// 30s later the two held ones count: 3 + this one = 4.
	o := fail(tb, nat, "1002", false, t0.Add(30*time.Second))
	if !o.Banned {
		t.Fatalf("unforgiven failures not counted: %+v", o)
	}
	// A success after the grace forgives nothing.
	tb2 := newTable(t, nil)
	fail(tb2, nat, "1001", true, t0)
	tb2.Success(nat, "1001", t0.Add(31*time.Second))
	if n := tb2.Counted(nat, t0.Add(31*time.Second)); n != 1 {
		t.Fatalf("late success forgave: counted %d", n)
	}
}

func TestManualBansAndRestore(t *testing.T) {
	tb := newTable(t, nil)
	a := netip.MustParseAddr("203.0.113.7")
	b := tb.Add(a, RuleManual, "abuse report", []string{"ticket 42"}, 2*time.Hour, t0)
	if b.End != t0.Add(2*time.Hour) || b.Rule != RuleManual {
		t.Fatalf("manual ban %+v", b)
	}
	s := tb.Add(attacker, RuleScanner, "scanner fingerprint ua:friendly-scanner", nil, 0, t0.Add(time.Second))
	if s.End.Sub(s.Start) != time.Hour {
		t.Fatalf("scanner ban %+v", s)
	}
	saved := tb.Bans(t0.Add(time.Minute))
	if len(saved) != 2 || saved[0].Addr != a {
		t.Fatalf("Bans = %+v", saved)
	}
	fresh := newTable(t, nil)
	fresh.Restore(saved)
	if got := fresh.Bans(t0.Add(time.Minute)); !slices.EqualFunc(got, saved, func(x, y Ban) bool { return x.Addr == y.Addr && x.End.Equal(y.End) }) {
		t.Fatalf("restored %+v", got)
	}
	// The restored level drives escalation.
	if again := fresh.Add(attacker, RuleScanner, "again", nil, 0, s.End); again.Level != 1 || again.End.Sub(again.Start) != 6*time.Hour {
		t.Fatalf("restored ban did not escalate: %+v", again)
	}
	if !fresh.Remove(a, t0.Add(time.Minute)) || fresh.Remove(a, t0.Add(time.Minute)) {
		t.Fatal("Remove")
	}
	if _, ok := fresh.Banned(a, t0.Add(time.Minute)); ok {
		t.Fatal("removed ban still holds")
	}
}

func TestBoundedBans(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.MaxBans = 100; c.MaxSources = 50 })
	for i := range 1000 {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		tb.Add(a, RuleManual, "x", nil, time.Duration(i+1)*time.Minute, t0)
		for range 2 {
			fail(tb, netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), "", false, t0)
		}
	}
	if tb.Len() > 100 {
		t.Fatalf("%d bans held, bound 100", tb.Len())
	}
	// The survivors are the longest bans.
	if _, ok := tb.Banned(netip.AddrFrom4([4]byte{10, 0, 3, 231}), t0); !ok {
		t.Fatal("longest ban evicted")
	}
}

func TestValidate(t *testing.T) {
	bad := []func(*Config){
		func(c *Config) { c.Window = 0 },
		func(c *Config) { c.Durations = nil },
		func(c *Config) { c.Durations = []time.Duration{-1} },
		func(c *Config) { c.Forgive = time.Hour },
		func(c *Config) { c.MaxBans = 0 },
	}
	for i, mod := range bad {
		c := Default()
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("case %d: invalid config accepted", i)
		}
	}
}

// TestNetworkBan: a network ban refuses every address in it and none
// outside, survives Restore, is listed, and lifts as a whole.
func TestNetworkBan(t *testing.T) {
	tb, err := New(Default())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	p := netip.MustParsePrefix("203.0.113.77/24") // masked to .0/24
	b := tb.AddNet(p, RuleManual, "hostile network", time.Hour, now)
	if b.Net.String() != "203.0.113.0/24" || b.Addr.IsValid() {
		t.Fatalf("ban %+v", b)
	}
	for addr, want := range map[string]bool{"203.0.113.1": true, "203.0.113.254": true, "203.0.114.1": false, "198.51.100.1": false} {
		if _, got := tb.Banned(netip.MustParseAddr(addr), now); got != want {
			t.Errorf("Banned(%s) = %v, want %v", addr, got, want)
		}
	}
	if _, got := tb.Banned(netip.MustParseAddr("203.0.113.1"), now.Add(2*time.Hour)); got {
		t.Error("network ban active after its end")
	}
	bans := tb.Bans(now)
	if len(bans) != 1 || bans[0].Net != b.Net {
		t.Fatalf("Bans = %+v", bans)
	}
	fresh, _ := New(Default())
	fresh.Restore(bans)
	if _, got := fresh.Banned(netip.MustParseAddr("203.0.113.9"), now); !got {
		t.Error("restored network ban does not refuse")
	}
	if !tb.RemoveNet(netip.MustParsePrefix("203.0.113.0/24"), now) {
		t.Error("RemoveNet reported no active ban")
	}
	if _, got := tb.Banned(netip.MustParseAddr("203.0.113.1"), now); got {
		t.Error("lifted network ban still refuses")
	}
}
