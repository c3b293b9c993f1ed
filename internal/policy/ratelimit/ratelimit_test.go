package ratelimit

import (
	"net/netip"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestZeroValuesFailClosed(t *testing.T) {
	var l Limiter[netip.Addr]
	if l.Allow(addr("127.0.0.1"), t0) {
		t.Error("zero Limiter allowed")
	}
	var c Counter[netip.Addr]
	if c.Acquire(addr("127.0.0.1"), 10) {
		t.Error("zero Counter allowed")
	}
	var g Guard
	a := addr("127.0.0.1")
	if g.AllowMessage(a, true, t0) || g.AllowHandshake(a, true, t0) || g.ConnOpened(a, true) {
		t.Error("zero Guard allowed")
	}
	if ok, _ := g.AllowTransaction(a, true, t0); ok {
		t.Error("zero Guard allowed a transaction")
	}
	if ok, _ := g.AllowTransaction(a, false, t0); ok {
		t.Error("zero Guard allowed an unknown transaction")
	}
	_ = g.State(a, false, t0)
}

func TestLimiterBurstAndRefill(t *testing.T) {
	l := Limiter[string]{Rate: 10, Burst: 3, Size: 10}
	for i := range 3 {
		if !l.Allow("k", t0) {
			t.Fatalf("event %d of the burst refused", i)
		}
	}
	if l.Allow("k", t0) {
		t.Fatal("4th event of a 3 burst allowed")
	}
	if !l.Allow("other", t0) {
		t.Fatal("another key was limited")
	}
	if l.Allow("k", t0.Add(50*time.Millisecond)) {
		t.Fatal("half a token allowed")
	}
	if !l.Allow("k", t0.Add(100*time.Millisecond)) {
		t.Fatal("refilled token refused")
	}
	if tok, seen := l.Tokens("k", t0.Add(100*time.Millisecond)); !seen || tok >= 1 {
		t.Fatalf("Tokens = %v, %v", tok, seen)
	}
}

// TestLimiterBoundedMemory feeds a million distinct keys: the limiter
// must remember no more than Size.
func TestLimiterBoundedMemory(t *testing.T) {
	l := Limiter[netip.Addr]{Rate: 1, Burst: 1, Size: 1000}
	b := [4]byte{10, 0, 0, 0}
	for i := range 1_000_000 {
		b[1], b[2], b[3] = byte(i>>16), byte(i>>8), byte(i)
		if !l.Allow(netip.AddrFrom4(b), t0) {
			t.Fatalf("fresh key %d refused", i)
		}
		if n := l.Len(); n > 1000 {
			t.Fatalf("limiter holds %d keys, bound is 1000", n)
		}
	}
	if n := l.Len(); n != 1000 {
		t.Fatalf("limiter holds %d keys, want 1000", n)
	}
}

func TestCounter(t *testing.T) {
	c := Counter[string]{Size: 2}
	if !c.Acquire("a", 2) || !c.Acquire("a", 2) || c.Acquire("a", 2) {
		t.Fatal("per-key cap of 2 not enforced")
	}
	if !c.Acquire("b", 1) || c.Acquire("c", 1) {
		t.Fatal("key bound of 2 not enforced")
	}
	c.Release("a")
	c.Release("a")
	c.Release("a") // extra release is harmless
	if c.Count("a") != 0 || !c.Acquire("c", 1) {
		t.Fatal("released key not forgotten")
	}
}

func TestGuardKnownSourcesAndGlobalCap(t *testing.T) {
	cfg := Default()
	cfg.GlobalUnauthenticated = Bucket{Rate: 10, Burst: 10}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Unknown source: 400 burst.
	flood := addr("127.0.0.66")
	n := 0
	for range 1000 {
		if g.AllowMessage(flood, false, t0) {
			n++
		}
	}
	if n != 400 {
		t.Fatalf("unknown source got %d of 1000 messages, want the burst 400", n)
	}
	// A known source behind NAT gets ten times as much.
	nat := addr("127.0.0.10")
	n = 0
	for range 5000 {
		if g.AllowMessage(nat, true, t0) {
			n++
		}
	}
	if n != 4000 {
		t.Fatalf("known source got %d of 5000, want the burst 4000", n)
	}
	// Unknown sources together share the global cap; known ones do not.
	n = 0
	for i := range 100 {
		if ok, _ := g.AllowTransaction(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), false, t0); ok {
			n++
		}
	}
	if n != 10 {
		t.Fatalf("unknown sources got %d transactions, want the global burst 10", n)
	}
	if ok, k := g.AllowTransaction(addr("10.1.1.1"), false, t0); ok || k != GlobalUnauthenticated {
		t.Fatalf("want refusal by the global cap, got %v %v", ok, k)
	}
	if ok, _ := g.AllowTransaction(nat, true, t0); !ok {
		t.Fatal("known source refused while unknown sources flood")
	}
	s := g.Stats()
	if s.Get(Messages) != 1600 || s.Get(GlobalUnauthenticated) != 91 {
		t.Fatalf("stats %+v", s)
	}
	if st := g.State(flood, false, t0); len(st) == 0 || st[0].Kind != Messages || st[0].Refill <= 0 {
		t.Fatalf("State = %+v", st)
	}
}

func TestGuardConns(t *testing.T) {
	cfg := Default()
	cfg.Conns, cfg.ConnsKnown = 2, 3
	g, _ := New(cfg)
	a := addr("127.0.0.5")
	if !g.ConnOpened(a, false) || !g.ConnOpened(a, false) || g.ConnOpened(a, false) {
		t.Fatal("unknown cap 2 not enforced")
	}
	if !g.ConnOpened(a, true) || g.ConnOpened(a, true) {
		t.Fatal("known cap 3 not enforced")
	}
	g.ConnClosed(a)
	if !g.ConnOpened(a, true) {
		t.Fatal("closed connection's slot not given back")
	}
}

func TestValidate(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
	c := Default()
	c.Messages.Rate = 0
	c.MaxKeys = 0
	if _, err := New(c); err == nil {
		t.Fatal("invalid config accepted")
	}
}

func BenchmarkLimiterAllow(b *testing.B) {
	l := Limiter[netip.Addr]{Rate: 1e9, Burst: 1 << 30, Size: 1000}
	a := addr("127.0.0.1")
	b.ReportAllocs()
	for b.Loop() {
		l.Allow(a, t0)
	}
}
