package lockout

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

var (
	t0       = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	phone    = netip.MustParseAddr("127.0.0.10")
	attacker = netip.MustParseAddr("127.0.0.66")
)

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

func failN(tb *Table, n int, src netip.Addr, now time.Time) Outcome {
	var o Outcome
	for range n {
		o = tb.Failure("1001", src, "wrong response", now)
	}
	return o
}

func TestLockSparesKnownDevices(t *testing.T) {
	tb := newTable(t, nil)
	tb.Success("1001", phone, t0)
	if o := failN(tb, 4, attacker, t0); o.Locked || o.Consecutive != 4 {
		t.Fatalf("locked early: %+v", o)
	}
	o := failN(tb, 1, attacker, t0.Add(time.Second))
	if !o.Locked || o.Lock.Until != t0.Add(time.Second+15*time.Minute) || o.Lock.Level != 0 {
		t.Fatalf("5th failure: %+v", o)
	}
	if o.Lock.Reason != "5 consecutive failed authentications, the last from 127.0.0.66 (wrong response)" {
		t.Fatalf("reason %q", o.Lock.Reason)
	}
	now := t0.Add(time.Minute)
	if _, refused := tb.Refused("1001", attacker, now); !refused {
		t.Fatal("unknown source not refused")
	}
	if _, refused := tb.Refused("1001", phone, now); refused {
		t.Fatal("known device refused: an attacker could lock agents out")
	}
	if _, refused := tb.Refused("1002", attacker, now); refused {
		t.Fatal("another account refused")
	}
	if _, refused := tb.Refused("1001", attacker, o.Lock.Until); refused {
		t.Fatal("lock did not expire by itself")
	}
}

func TestEscalationWhileFailuresContinue(t *testing.T) {
	tb := newTable(t, nil)
	now := t0
	for step, d := range []time.Duration{15 * time.Minute, time.Hour, 24 * time.Hour, 24 * time.Hour} {
		o := failN(tb, 5, attacker, now)
		if !o.Locked || o.Lock.Level != step || o.Lock.Until != now.Add(d) {
			t.Fatalf("step %d: %+v, want %v", step, o, d)
		}
		now = o.Lock.Until
	}
	// A day without failures forgets the ladder.
	now = now.Add(24 * time.Hour)
	if o := failN(tb, 5, attacker, now); o.Lock.Level != 0 {
		t.Fatalf("ladder not forgotten: %+v", o.Lock)
	}
}

func TestFailuresDuringLockEscalate(t *testing.T) {
	tb := newTable(t, nil)
	first := failN(tb, 5, attacker, t0)
	o := failN(tb, 5, attacker, t0.Add(time.Minute))
	if !o.Locked || o.Lock.Level != 1 || o.Lock.Until != t0.Add(time.Minute+time.Hour) || o.Lock.Since != first.Lock.Since {
		t.Fatalf("continued attack did not escalate: %+v", o.Lock)
	}
}

func TestSuccessResetsCounter(t *testing.T) {
	tb := newTable(t, nil)
	failN(tb, 4, attacker, t0)
	tb.Success("1001", phone, t0)
	if tb.Consecutive("1001") != 0 {
		t.Fatal("success did not reset the counter")
	}
	if o := failN(tb, 4, attacker, t0); o.Locked {
		t.Fatal("counter not reset")
	}
}

func TestUnlockAndPersistence(t *testing.T) {
	tb := newTable(t, nil)
	tb.Success("1001", phone, t0)
	failN(tb, 5, attacker, t0)
	locks := tb.Locks(t0)
	devs := tb.Devices()
	if len(locks) != 1 || locks[0].Account != "1001" || len(devs) != 1 || devs[0].Source != phone {
		t.Fatalf("state %+v %+v", locks, devs)
	}
	fresh := newTable(t, nil)
	fresh.Restore(locks)
	fresh.RestoreDevices(devs)
	if _, refused := fresh.Refused("1001", attacker, t0); !refused {
		t.Fatal("restored lock not enforced")
	}
	if _, refused := fresh.Refused("1001", phone, t0); refused || !fresh.SourceKnown(phone, t0) {
		t.Fatal("restored device not known")
	}
	if !fresh.Unlock("1001", t0) || fresh.Unlock("1001", t0) {
		t.Fatal("Unlock")
	}
	if _, refused := fresh.Refused("1001", attacker, t0); refused {
		t.Fatal("unlocked account still refuses")
	}
	if o := failN(fresh, 5, attacker, t0); o.Lock.Level != 0 {
		t.Fatal("unlock did not reset the ladder")
	}
}

func TestDevicesBounded(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.MaxDevices = 3; c.MaxSources = 5 })
	for i := range 10 {
		tb.Success("1001", netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), t0.Add(time.Duration(i)*time.Second))
	}
	devs := tb.Devices()
	if len(devs) != 3 {
		t.Fatalf("%d devices kept, bound 3", len(devs))
	}
	if !tb.Known("1001", netip.AddrFrom4([4]byte{10, 0, 0, 9}), t0.Add(time.Hour)) ||
		tb.Known("1001", netip.AddrFrom4([4]byte{10, 0, 0, 0}), t0.Add(time.Hour)) {
		t.Fatal("wrong device forgotten")
	}
	if len(tb.sources) > 5 {
		t.Fatalf("%d sources kept, bound 5", len(tb.sources))
	}
	// Known devices expire.
	if tb.Known("1001", netip.AddrFrom4([4]byte{10, 0, 0, 9}), t0.Add(31*24*time.Hour)) {
		t.Fatal("device known forever")
	}
}

func TestCountersBounded(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.MaxAccounts = 100 })
	for i := range 100_000 {
		tb.Failure(fmt.Sprint(i), attacker, "unknown user", t0)
	}
	if n := tb.counters.Len(); n > 100 {
		t.Fatalf("%d counters, bound 100", n)
	}
}

func TestValidate(t *testing.T) {
	c := Default()
	c.Threshold = 0
	c.Durations = nil
	if _, err := New(c); err == nil {
		t.Fatal("invalid config accepted")
	}
}
