package defence

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/config"
	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/store"
	"github.com/veilig/veilig/internal/store/sqlite"
)

// recorder is an events.Emitter that keeps what it is given.
type recorder struct {
	mu  sync.Mutex
	evs []events.Event
}

func (r *recorder) Emit(e events.Event)      { r.mu.Lock(); r.evs = append(r.evs, e); r.mu.Unlock() }
func (r *recorder) Record(events.CallRecord) {}
func (r *recorder) count(typ string) (n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.evs {
		if e.Type == typ {
			n++
		}
	}
	return n
}

type noAllowlists struct{}

func (noAllowlists) AllowFrom(string) []netip.Prefix { return nil }

func openStore(t *testing.T, path string) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newGuard(t *testing.T, st store.Store, ev events.Emitter) *Guard {
	t.Helper()
	cfg := config.Default()
	g, err := New(Options{Config: &cfg, Store: st, Events: ev, Directory: noAllowlists{}})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// runGuard runs g until the test ends, and waits for it to stop.
func runGuard(t *testing.T, g *Guard) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = g.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var attacker = netip.MustParseAddr("203.0.113.9")

// failUntilBanned feeds wrong digests from attacker until the engine bans it.
func failUntilBanned(t *testing.T, g *Guard) {
	t.Helper()
	for i := range 10 {
		g.Observe(netip.AddrPortFrom(attacker, 5060), "1001", false, "wrong response")
		if _, ok := g.Engine().IPBan().Banned(attacker, time.Now()); ok {
			return
		}
		if i == 9 {
			t.Fatal("ten failures did not ban the source")
		}
	}
}

// TestBanPersistedAndRestored: a ban the engine decides is committed to
// the store with its alert after it, and a new guard on the same store
// (a restart) refuses the address before any traffic.
func TestBanPersistedAndRestored(t *testing.T) {
	path := filepath.Join(t.TempDir(), "veilig.db")
	st := openStore(t, path)
	ev := &recorder{}
	g := newGuard(t, st, ev)
	runGuard(t, g)
	failUntilBanned(t, g)
	eventually(t, "ban stored", func() bool { _, err := st.Ban(context.Background(), attacker, time.Now()); return err == nil })
	eventually(t, "ban.added alert", func() bool { return ev.count(events.AlertBanAdded.Name) == 1 })

	g2 := newGuard(t, st, &recorder{})
	if g2.Admit(attacker, "udp", false) != true {
		t.Fatal("a fresh guard refuses before Restore: the test cannot tell restore from default")
	}
	g2.Restore(context.Background(), time.Now())
	if g2.Admit(attacker, "udp", false) {
		t.Fatal("restored guard admits the banned address")
	}
}

// TestRefusalEventsDeduplicated: a flood of refusals of one source by one
// rule is counted in full and written as one event a minute.
func TestRefusalEventsDeduplicated(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "veilig.db"))
	ev := &recorder{}
	g := newGuard(t, st, ev)
	failUntilBanned(t, g)
	for range 500 {
		if g.Admit(attacker, "udp", false) {
			t.Fatal("banned source admitted")
		}
	}
	if n := ev.count(events.GuardBan.Name); n != 1 {
		t.Fatalf("%d guard.ban events for 500 refusals, want 1", n)
	}
	other := netip.MustParseAddr("203.0.113.10")
	g.Engine().IPBan().Add(other, "manual", "test", nil, time.Hour, time.Now())
	g.Admit(other, "udp", false)
	if n := ev.count(events.GuardBan.Name); n != 2 {
		t.Fatalf("a second source's refusal: %d guard.ban events, want 2", n)
	}
}

// TestChangesFromElsewhere: bans and locks written to the store by another
// process (the CLI) take effect through ApplyBans/ApplyLocks, and their
// removal lifts them; a lock covers the account's source locks too.
func TestChangesFromElsewhere(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "veilig.db"))
	g := newGuard(t, st, &recorder{})
	now := time.Now()
	addr := netip.MustParseAddr("198.51.100.7")
	if err := st.SaveBan(ctx, store.Ban{Addr: addr, Rule: "manual", Reason: "by admin", Start: now, End: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	g.ApplyBans(ctx, []string{addr.String()})
	if g.Admit(addr, "udp", false) {
		t.Fatal("ban stored elsewhere not in force after ApplyBans")
	}
	if err := st.DeleteBan(ctx, addr); err != nil {
		t.Fatal(err)
	}
	g.ApplyBans(ctx, []string{addr.String()})
	if !g.Admit(addr, "udp", false) {
		t.Fatal("ban lifted elsewhere still in force after ApplyBans")
	}

	office := netip.MustParseAddr("192.0.2.7")
	if err := st.SaveGuard(ctx, nil, []store.Lock{
		{Account: "1002", Until: now.Add(time.Hour), Level: 1, Reason: "5 failures"},
		{Account: "1002", Source: office, Until: now.Add(time.Hour), Reason: "4 failures from the office"},
	}); err != nil {
		t.Fatal(err)
	}
	g.ApplyLocks(ctx, []string{"1002"})
	if _, ok := g.Engine().Lockout().Locked("1002", now); !ok {
		t.Fatal("account lock stored elsewhere not in force")
	}
	if _, ok := g.Engine().Lockout().SourceLocked("1002", office, now); !ok {
		t.Fatal("source lock stored elsewhere not in force")
	}
	if err := st.DeleteLock(ctx, "1002"); err != nil {
		t.Fatal(err)
	}
	g.ApplyLocks(ctx, []string{"1002"})
	if _, ok := g.Engine().Lockout().Locked("1002", now); ok {
		t.Fatal("account lock lifted elsewhere still in force")
	}
	if _, ok := g.Engine().Lockout().SourceLocked("1002", office, now); ok {
		t.Fatal("source lock lifted elsewhere still in force")
	}
}

// TestPendingBanSurvivesEarlyFeed: a feed delivery for an address whose
// ban is decided but not yet committed must not take it for lifted.
func TestPendingBanSurvivesEarlyFeed(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "veilig.db"))
	g := newGuard(t, st, &recorder{})
	failUntilBanned(t, g) // not running: the ban is pending, not stored
	if _, err := st.Ban(context.Background(), attacker, time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ban stored without Run: %v", err)
	}
	g.ApplyBans(context.Background(), []string{attacker.String()})
	if g.Admit(attacker, "udp", false) {
		t.Fatal("an early feed delivery lifted a ban not yet committed")
	}
}

func netipZero() netip.AddrPort { return netip.AddrPort{} }
