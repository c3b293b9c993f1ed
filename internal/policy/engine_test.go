package policy

import (
	"fmt"
	"github.com/veilig/veilig/internal/policy/lockout"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/policy/scanner"
)

var (
	t0       = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	attacker = netip.MustParseAddr("127.0.0.66")
	nat      = netip.MustParseAddr("127.0.0.10")
	carrier  = netip.MustParseAddr("192.0.2.1")
)

func newEngine(t testing.TB, mod func(*Config)) *Engine {
	t.Helper()
	cfg := Default()
	cfg.Carriers = []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// kinds summarises actions as "ban:127.0.0.66 alert:ban.added ...".
func kinds(acts []Action) string {
	var s []string
	for _, a := range acts {
		switch a := a.(type) {
		case BanSource:
			s = append(s, "ban:"+a.Addr.String())
		case LockAccount:
			s = append(s, "lock:"+a.Account)
		case Alert:
			s = append(s, "alert:"+a.Type)
		}
	}
	return strings.Join(s, " ")
}

// TestCrackerBannedOnFourthFailure is svcrack with an ordinary
// User-Agent: three wrong guesses pass, the 4th bans and alerts, and the
// source is dropped from then on.
func TestCrackerBannedOnFourthFailure(t *testing.T) {
	e := newEngine(t, nil)
	for i := range 3 {
		if acts := e.Observe(AuthFailure{Source: attacker, Account: "1001", Reason: "wrong response"}, t0); len(acts) != 0 {
			t.Fatalf("failure %d acted: %s", i+1, kinds(acts))
		}
	}
	acts := e.Observe(AuthFailure{Source: attacker, Account: "1001", Reason: "wrong response"}, t0.Add(time.Second))
	if got := kinds(acts); got != "ban:127.0.0.66 alert:auth.bruteforce alert:ban.added" {
		t.Fatalf("4th failure: %s", got)
	}
	ban := acts[0].(BanSource)
	if ban.Rule != "bruteforce" || ban.Reason != "4 failed digest authentications for 1001 within 10m0s" || ban.Until != t0.Add(time.Second+time.Hour) || len(ban.Cause) != 4 {
		t.Fatalf("ban %+v", ban)
	}
	if d := e.CheckSource(attacker, t0.Add(time.Minute)); d.Verdict != Drop || d.Stage != StageBan || d.Rule != "bruteforce" {
		t.Fatalf("CheckSource = %+v", d)
	}
	if d := e.CheckSource(attacker, ban.Until); d.Verdict != Allow {
		t.Fatalf("ban did not expire: %+v", d)
	}
	// An IPv4-mapped form of the address is the same source.
	if d := e.CheckSource(netip.MustParseAddr("::ffff:127.0.0.66"), t0.Add(time.Minute)); d.Verdict != Drop {
		t.Fatal("mapped address escaped the ban")
	}
}

// TestLockoutSparesAgents: a distributed guesser locks 1001 against new
// sources, the agent's phone keeps working, the gate's refusals ban the
// guessers and escalate the lock, and `veilig ext unlock` ends it.
func TestLockoutSparesAgents(t *testing.T) {
	e := newEngine(t, nil)
	e.Observe(AuthSuccess{Source: nat, Account: "1001"}, t0)
	var acts []Action
	for i := range 5 {
		src := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		acts = e.Observe(AuthFailure{Source: src, Account: "1001", Reason: "wrong response"}, t0)
	}
	if got := kinds(acts); got != "lock:1001 alert:account.locked" {
		t.Fatalf("5th failure: %s", got)
	}
	now := t0.Add(time.Minute)
	guesser := netip.MustParseAddr("198.51.100.7")
	if d := e.CheckAccount("1001", guesser, now); d.Verdict != Reject || d.Code != 403 || d.Stage != StageLockout {
		t.Fatalf("new source not refused: %+v", d)
	}
	if d, acts := e.Gate("1001", nil, nat, now); d.Verdict != Allow || len(acts) != 0 {
		t.Fatalf("known device refused: %+v %s", d, kinds(acts))
	}
	if d := e.CheckAccount("1001", carrier, now); d.Verdict != Allow {
		t.Fatal("trusted carrier refused")
	}
	// Refusals at the gate count: the guesser is banned on its 4th, the
	// lock climbs after 5 more failures.
	var all []Action
	for range 4 {
		_, acts := e.Gate("1001", nil, guesser, now)
		all = append(all, acts...)
	}
	_, acts = e.Gate("1001", nil, netip.MustParseAddr("198.51.100.8"), now)
	all = append(all, acts...)
	if got := kinds(all); got != "ban:198.51.100.7 alert:auth.bruteforce alert:ban.added lock:1001" {
		t.Fatalf("gate refusals: %s", got)
	}
	if l := all[len(all)-1].(LockAccount); l.Level != 1 || l.Until != now.Add(time.Hour) {
		t.Fatalf("escalated lock %+v", l)
	}
	if !e.Unlock("1001", now) {
		t.Fatal("Unlock")
	}
	if d := e.CheckAccount("1001", guesser, now); d.Verdict != Allow {
		t.Fatal("still locked after unlock")
	}
}

// TestReconnectStorm: 500 agents behind one NAT, all known there, fail
// once each after an outage and then succeed: no ban, no alert. Then an
// attacker behind the same address tries unknown accounts: banned.
func TestReconnectStorm(t *testing.T) {
	e := newEngine(t, nil)
	for i := range 500 {
		e.Observe(AuthSuccess{Source: nat, Account: fmt.Sprint(1000 + i)}, t0)
	}
	now := t0.Add(2 * time.Hour) // the outage
	for i := range 500 {
		acct := fmt.Sprint(1000 + i)
		if acts := e.Observe(AuthFailure{Source: nat, Account: acct, Reason: "stale nonce"}, now); len(acts) != 0 {
			t.Fatalf("agent %s: %s", acct, kinds(acts))
		}
		if d, _ := e.Gate(acct, nil, nat, now); d.Verdict != Allow {
			t.Fatalf("agent %s refused at the gate", acct)
		}
		e.Observe(AuthSuccess{Source: nat, Account: acct}, now.Add(50*time.Millisecond))
		now = now.Add(2 * time.Millisecond)
	}
	if d := e.CheckSource(nat, now.Add(time.Minute)); d.Verdict != Allow {
		t.Fatalf("NAT address refused after a reconnect storm: %+v", d)
	}
	var acts []Action
	for i := range 4 {
		e.Observe(AuthFailure{Source: nat, Account: fmt.Sprint(1000 + i), Reason: "stale nonce"}, now)
		acts = append(acts, e.Observe(AuthFailure{Source: nat, Account: fmt.Sprint("77", i), Reason: "unknown user"}, now)...)
		e.Observe(AuthSuccess{Source: nat, Account: fmt.Sprint(1000 + i)}, now)
	}
	if !strings.HasPrefix(kinds(acts), "ban:127.0.0.10") {
		t.Fatalf("attacker behind the NAT not banned: %s", kinds(acts))
	}
}

// TestTrustedNeverBannedButAlerted: a carrier failing auth keeps being
// served and limited by nothing, and raises one auth.bruteforce.
func TestTrustedNeverBannedButAlerted(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.AllowSources = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} })
	var all []Action
	for i := range 20 {
		all = append(all, e.Observe(AuthFailure{Source: carrier, Account: "trunk", Reason: "wrong response"}, t0.Add(time.Duration(i)*time.Second))...)
	}
	// The account still counts them (trusted sources pass its lock), the
	// source is never banned, and the alert is raised once.
	if got := kinds(all); strings.Contains(got, "ban:") || strings.Count(got, "alert:auth.bruteforce") != 1 {
		t.Fatalf("trusted failures: %s", got)
	}
	if d := e.CheckSource(carrier, t0.Add(time.Minute)); d.Verdict != Allow || d.Rule != RuleTrusted {
		t.Fatalf("carrier %+v", d)
	}
	for range 100_000 {
		if !e.AllowMessage(carrier, t0) {
			t.Fatal("carrier rate limited")
		}
	}
	if acts := e.Observe(ScannerSeen{Source: carrier, Fingerprint: "ua:sipsak"}, t0); kinds(acts) != "alert:scanner.detected" {
		t.Fatalf("scanner from carrier: %s", kinds(acts))
	}
	// Outside allow_sources: dropped; inside: served.
	if d := e.CheckSource(attacker, t0); d.Verdict != Drop || d.Rule != RuleAllowSources {
		t.Fatalf("outside allow_sources: %+v", d)
	}
	if d := e.CheckSource(netip.MustParseAddr("10.1.2.3"), t0); d.Verdict != Allow {
		t.Fatalf("inside allow_sources: %+v", d)
	}
}

// TestFloodAlertDedupe: a sustained flood is dropped, counted, and
// raises one flood.detected per window, the next one saying how many it
// stands for; agents who have authenticated keep being served.
func TestFloodAlertDedupe(t *testing.T) {
	e := newEngine(t, nil)
	e.Observe(AuthSuccess{Source: nat, Account: "1001"}, t0)
	dropped, agentRefused := 0, 0
	now := t0
	for ms := range 10_000 { // ten seconds at 100k msgs/s, 100 per ms
		now = t0.Add(time.Duration(ms) * time.Millisecond)
		for range 100 {
			if !e.AllowMessage(attacker, now) {
				dropped++
			}
		}
		if ms%5 == 0 && (!e.AllowMessage(nat, now) || !e.AllowTransaction(nat, now, false)) {
			agentRefused++
		}
	}
	if agentRefused != 0 {
		t.Fatalf("%d agent messages refused during the flood", agentRefused)
	}
	if want := 1_000_000 - 400 - 200*10; dropped < want-200 || dropped > want+200 {
		t.Fatalf("dropped %d, want about %d", dropped, want)
	}
	acts := e.Drain()
	if got := kinds(acts); got != "alert:flood.detected" {
		t.Fatalf("flood alerts: %s", got)
	}
	if a := acts[0].(Alert); a.Source != "127.0.0.66" || a.Fields["limit"] != "messages" {
		t.Fatalf("alert %+v", a)
	}
	if st := e.Stats(); st.RateLimit.Dropped[0] != uint64(dropped) || st.AlertsSuppressed != uint64(dropped-1) {
		t.Fatalf("stats %+v", st)
	}
	// A window after that alert, a still-running flood alerts again.
	for range 1000 {
		e.AllowMessage(attacker, t0.Add(11*time.Minute))
	}
	acts = e.Drain()
	if len(acts) != 1 || acts[0].(Alert).Fields["suppressed"] == "" {
		t.Fatalf("second window: %+v", acts)
	}
}

// TestGlobalUnauthenticatedCap: many unknown sources together exhaust the
// global cap; a known source is still served, and one alert names the
// global limit.
func TestGlobalUnauthenticatedCap(t *testing.T) {
	e := newEngine(t, nil)
	e.Observe(AuthSuccess{Source: nat, Account: "1001"}, t0)
	refused := 0
	for i := range 10_000 {
		if !e.AllowTransaction(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), t0, false) {
			refused++
		}
	}
	if refused != 10_000-4000 {
		t.Fatalf("refused %d", refused)
	}
	if !e.AllowTransaction(nat, t0, false) || !e.AllowTransaction(netip.MustParseAddr("10.9.9.9"), t0, true) {
		t.Fatal("known source refused under an unauthenticated flood")
	}
	acts := e.Drain()
	if len(acts) != 1 || acts[0].(Alert).Source != "" || acts[0].(Alert).Fields["limit"] != "global_unauthenticated" {
		t.Fatalf("alerts %+v", acts)
	}
}

func TestScanner(t *testing.T) {
	e := newEngine(t, nil)
	d, acts := e.Scan(scanner.Message{Method: "OPTIONS", UserAgent: "friendly-scanner"}, attacker, t0)
	if d.Verdict != Drop || d.Stage != StageScanner || d.Rule != "ua:friendly-scanner" {
		t.Fatalf("decision %+v", d)
	}
	if got := kinds(acts); got != "ban:127.0.0.66 alert:scanner.detected alert:ban.added" {
		t.Fatalf("actions %s", got)
	}
	if b := acts[0].(BanSource); b.Rule != "scanner" || b.Until != t0.Add(time.Hour) {
		t.Fatalf("ban %+v", b)
	}
	// A burst of matches before the ban is applied does not escalate.
	if acts := e.Observe(ScannerSeen{Source: attacker, Fingerprint: "ua:friendly-scanner"}, t0); len(acts) != 0 {
		t.Fatalf("re-ban: %s", kinds(acts))
	}
	// A shape match from a source that has authenticated is alerted only.
	e.Observe(AuthSuccess{Source: nat, Account: "1001"}, t0)
	d, acts = e.Scan(scanner.Message{Method: "REGISTER", FromTag: "3206210844"}, nat, t0)
	if d.Verdict != Allow || kinds(acts) != "alert:scanner.detected" {
		t.Fatalf("known source shape match: %+v %s", d, kinds(acts))
	}
	if d, _ := e.Scan(scanner.Message{Method: "REGISTER", UserAgent: "baresip"}, nat, t0); d.Verdict != Allow {
		t.Fatal("real phone dropped")
	}
}

func TestAccountAllowlist(t *testing.T) {
	e := newEngine(t, nil)
	office := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	if d, _ := e.Gate("1001", office, netip.MustParseAddr("10.1.1.1"), t0); d.Verdict != Allow {
		t.Fatal("allowed network refused")
	}
	var all []Action
	for range 4 {
		d, acts := e.Gate("1001", office, attacker, t0)
		if d.Verdict != Reject || d.Rule != RuleAccountAllowlist {
			t.Fatalf("outside network: %+v", d)
		}
		all = append(all, acts...)
	}
	if !strings.HasPrefix(kinds(all), "ban:127.0.0.66") {
		t.Fatalf("allowlist refusals did not count as failures: %s", kinds(all))
	}
}

func TestExplain(t *testing.T) {
	e, err := New(Default(), Deps{AccountSources: func(string) []netip.Prefix {
		return []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	}})
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		e.Observe(AuthFailure{Source: attacker, Account: "1001", Reason: "wrong response"}, t0)
	}
	for range 5 {
		e.Observe(AuthFailure{Source: netip.MustParseAddr("203.0.113.1"), Account: "1002", Reason: "wrong response"}, t0)
	}
	rs := e.Explain(attacker, "1002", t0.Add(time.Minute))
	var lifts []string
	for _, r := range rs {
		if r.Refuses {
			lifts = append(lifts, r.Lift)
		}
	}
	want := []string{"veilig ban remove 127.0.0.66", "add 127.0.0.66 to extension 1002's allowed networks", "veilig ext unlock 1002"}
	if strings.Join(lifts, "|") != strings.Join(want, "|") {
		t.Fatalf("lifts %q\nreasons %+v", lifts, rs)
	}
	if !strings.Contains(rs[0].Message, "4 failed digest authentications for 1001 within 10m0s") || !rs[0].Until.Equal(t0.Add(time.Hour)) {
		t.Fatalf("ban reason %+v", rs[0])
	}
	// Rate limit state shows up too, without spending tokens.
	flood := netip.MustParseAddr("10.6.6.6")
	for range 500 {
		e.AllowMessage(flood, t0)
	}
	rs = e.Explain(flood, "", t0)
	if len(rs) != 1 || rs[0].Stage != StageRateLimit || !rs[0].Refuses || rs[0].Rule != "messages" {
		t.Fatalf("rate limit reasons %+v", rs)
	}
}

func TestZeroEngineFailsClosed(t *testing.T) {
	for _, e := range []*Engine{nil, {}} {
		a := netip.MustParseAddr("127.0.0.1")
		if e.CheckSource(a, t0).Verdict != Drop || e.CheckAccount("1", a, t0).Verdict == Allow ||
			e.AllowMessage(a, t0) || e.AllowTransaction(a, t0, true) || e.AllowHandshake(a, t0) || e.ConnOpened(a, t0) {
			t.Fatal("zero engine allowed")
		}
		if d, _ := e.Gate("1", nil, a, t0); d.Verdict == Allow {
			t.Fatal("zero engine gate allowed")
		}
		e.ConnClosed(a)
		_ = e.Observe(AuthSuccess{Source: a}, t0)
		_ = e.Drain()
		_ = e.Explain(a, "1", t0)
	}
	var d Decision
	if d.Verdict == Allow || d.Verdict.String() != "invalid" {
		t.Fatal("zero Decision allows")
	}
}

func TestInvalidSource(t *testing.T) {
	e := newEngine(t, nil)
	if d := e.CheckSource(netip.Addr{}, t0); d.Verdict != Drop || d.Rule != RuleInvalidSource {
		t.Fatalf("%+v", d)
	}
}

func TestValidate(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
	c := Default()
	c.TrustedSources = []netip.Prefix{{}}
	c.AlertWindow = 0
	c.Ban.Durations = nil
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, s := range []string{"trusted_sources[0]", "alerts:", "ipban: durations"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %q", err, s)
		}
	}
}

func TestConnections(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.RateLimit.Conns = 2 })
	if !e.ConnOpened(attacker, t0) || !e.ConnOpened(attacker, t0) || e.ConnOpened(attacker, t0) {
		t.Fatal("connection cap not enforced")
	}
	e.ConnClosed(attacker)
	if !e.ConnOpened(attacker, t0) {
		t.Fatal("slot not given back")
	}
	// Once the source authenticates, the known cap applies.
	e.Observe(AuthSuccess{Source: attacker, Account: "1001"}, t0)
	if !e.ConnOpened(attacker, t0) {
		t.Fatal("known source held to the unknown cap")
	}
}

func BenchmarkCheckSourceAllowMessage(b *testing.B) {
	e := newEngine(b, func(c *Config) {
		c.RateLimit.MessagesKnown.Rate = 1e12
		c.RateLimit.MessagesKnown.Burst = 1 << 40
	})
	e.Observe(AuthSuccess{Source: nat, Account: "1001"}, t0)
	b.ReportAllocs()
	for b.Loop() {
		if e.CheckSource(nat, t0).Verdict != Allow || !e.AllowMessage(nat, t0) {
			b.Fatal("refused")
		}
	}
}

func BenchmarkCheckSourceAllowMessageParallel(b *testing.B) {
	e := newEngine(b, func(c *Config) {
		c.RateLimit.MessagesKnown.Rate = 1e12
		c.RateLimit.MessagesKnown.Burst = 1 << 40
	})
	e.Observe(AuthSuccess{Source: nat, Account: "1001"}, t0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e.CheckSource(nat, t0)
			e.AllowMessage(nat, t0)
		}
	})
}

func BenchmarkFloodDrop(b *testing.B) {
	e := newEngine(b, nil)
	b.ReportAllocs()
	for b.Loop() {
		e.CheckSource(attacker, t0)
		e.AllowMessage(attacker, t0)
	}
}

// TestExplainRestoredLock: a lock restored from the store keeps only its
// end; the explanation must not invent a start (it once read "locked
// since 0001-01-01T00:00:00Z").
func TestExplainRestoredLock(t *testing.T) {
	e := newEngine(t, nil)
	office := netip.MustParseAddr("192.0.2.7")
	e.Lockout().Restore([]lockout.Lock{
		{Account: "1001", Until: t0.Add(time.Hour), Level: 1, Reason: "5 failures"},
		{Account: "1002", Source: office, Until: t0.Add(time.Hour), Reason: "4 failures from the office"},
	})
	for _, c := range []struct {
		addr    netip.Addr
		account string
	}{{attacker, "1001"}, {office, "1002"}} {
		rs := e.Explain(c.addr, c.account, t0)
		if len(rs) == 0 {
			t.Fatalf("%s at %s: no reasons for a restored lock", c.account, c.addr)
		}
		for _, r := range rs {
			if strings.Contains(r.Message, "0001-01-01") || strings.Contains(r.Message, "since") {
				t.Errorf("%s: %q names a start the lock does not have", c.account, r.Message)
			}
		}
	}
}
