package policy

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestSharedSourceNotBanned: an office address that carries registered
// devices is never banned for authentication failures. A phone with a
// wrong secret for 1002 there gets 1002 locked for that address on its
// 4th failure (with the brute-force alert), and on its 5th the account's
// lockout as always; 1001 at the same address keeps working. The same
// five failures from an address without authenticated traffic ban it.
func TestSharedSourceNotBanned(t *testing.T) {
	office := nat
	e, err := New(Default(), Deps{ActiveSource: func(a netip.Addr) bool { return a == office }})
	if err != nil {
		t.Fatal(err)
	}
	e.Observe(AuthSuccess{Source: office, Account: "1001"}, t0)
	var all []Action
	for i := range 5 {
		now := t0.Add(time.Duration(i) * time.Second)
		if d, acts := e.Gate("1002", nil, office, now); d.Verdict != Allow {
			all = append(all, acts...)
			continue
		}
		all = append(all, e.Observe(AuthFailure{Source: office, Account: "1002", Reason: "wrong response"}, now)...)
	}
	got := kinds(all)
	if strings.Contains(got, "ban:") {
		t.Fatalf("the office address was banned: %s", got)
	}
	var srcLock *LockAccount
	alerted := false
	for _, a := range all {
		switch a := a.(type) {
		case LockAccount:
			if a.Source == office {
				srcLock = &a
			}
		case Alert:
			if a.Type == AlertBruteforce && a.Account == "1002" && a.Source == office.String() {
				alerted = true
			}
		}
	}
	if srcLock == nil || srcLock.Account != "1002" {
		t.Fatalf("1002 not locked for the office address: %s", got)
	}
	if !alerted {
		t.Errorf("no auth.bruteforce alert for 1002 at the office: %s", got)
	}
	if !strings.Contains(got, "alert:account.locked") {
		t.Errorf("the 5th failure did not lock 1002 as the lockout does: %s", got)
	}
	now := t0.Add(10 * time.Second)
	if d := e.CheckSource(office, now); d.Verdict != Allow {
		t.Fatalf("office address refused: %+v", d)
	}
	if d, _ := e.Gate("1001", nil, office, now); d.Verdict != Allow {
		t.Fatalf("1001 at the office refused: %+v", d)
	}
	if d := e.CheckAccount("1002", office, now); d.Verdict != Reject {
		t.Fatalf("1002 at the office: %+v, want refused", d)
	}
	if _, ok := e.Lockout().SourceLocked("1002", office, now); !ok {
		t.Fatal("no source lock of 1002 for the office")
	}
	why := e.Explain(office, "1002", now)
	var rules []string
	for _, r := range why {
		rules = append(rules, r.Rule)
	}
	if !strings.Contains(strings.Join(rules, ","), RuleShared) || !strings.Contains(strings.Join(rules, ","), RuleSourceLock) {
		t.Errorf("Explain(office, 1002) rules %v, want %s and %s: %+v", rules, RuleShared, RuleSourceLock, why)
	}

	// An address without authenticated traffic is banned as before.
	fresh := netip.MustParseAddr("127.0.0.41")
	all = nil
	for i := range 5 {
		all = append(all, e.Observe(AuthFailure{Source: fresh, Account: "1003", Reason: "wrong response"}, t0.Add(time.Duration(i)*time.Second))...)
	}
	if !strings.Contains(kinds(all), "ban:127.0.0.41") {
		t.Fatalf("fresh address not banned: %s", kinds(all))
	}
	why = e.Explain(fresh, "", t0.Add(10*time.Second))
	if len(why) == 0 || !why[0].Refuses || why[0].Stage != StageBan {
		t.Errorf("Explain(fresh) %+v, want the ban first", why)
	}

	// Unlocking 1002 lifts its source lock too.
	e.Unlock("1002", now)
	if d := e.CheckAccount("1002", office, now); d.Verdict != Allow {
		t.Fatalf("after unlock: %+v", d)
	}
}

// TestSharedSourceFloodPerAccount: a known address's flood for one
// account and method is cut, while other accounts there are served.
func TestSharedSourceFloodPerAccount(t *testing.T) {
	e := newEngine(t, nil)
	e.Observe(AuthSuccess{Source: nat, Account: "1001"}, t0)
	refused := 0
	for range 1000 {
		if !e.AllowAccountTransaction(nat, "1002", "REGISTER", t0) {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("a flood of REGISTERs for 1002 was not limited")
	}
	if !e.AllowAccountTransaction(nat, "1001", "REGISTER", t0) || !e.AllowAccountTransaction(nat, "1002", "INVITE", t0) {
		t.Fatal("another account or method at the same address was limited")
	}
	if acts := e.Drain(); !strings.Contains(kinds(acts), "alert:flood.detected") {
		t.Errorf("no flood alert: %s", kinds(acts))
	}
	// Unknown sources are held by their per-source limits, not this one.
	if !e.AllowAccountTransaction(attacker, "1002", "REGISTER", t0) {
		t.Error("unknown source limited per account")
	}
}
