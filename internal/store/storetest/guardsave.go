package storetest

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/store"
)

// testGuardSave: SaveGuard writes bans, account locks and source locks in
// one call; the lists return what is in force, locks ordered by account
// with the account-wide lock first; each account's change reaches the change feed.
func testGuardSave(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := now()
	v0, err := s.LastChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	office := netip.MustParseAddr("192.0.2.7")
	bans := []store.Ban{
		{Addr: netip.MustParseAddr("203.0.113.9"), Rule: "bruteforce", Reason: "4 failures", Cause: []string{"a", "b"}, Start: t0, End: t0.Add(time.Hour)},
		{Addr: netip.MustParseAddr("203.0.113.10"), Rule: "scanner", Reason: "sipvicious", Start: t0, End: t0.Add(-time.Second)}, // already over
	}
	locks := []store.Lock{
		{Account: "1002", Source: office, Until: t0.Add(15 * time.Minute), Level: 0, Reason: "4 failures from the office"},
		{Account: "1002", Until: t0.Add(time.Hour), Level: 1, Reason: "5 failures"},
		{Account: "1001", Source: office, Until: t0.Add(time.Minute), Reason: "x"},
	}
	if err := s.SaveGuard(ctx, bans, locks); err != nil {
		t.Fatalf("SaveGuard: %v", err)
	}
	cs, err := s.Changes(ctx, v0, 100)
	if err != nil {
		t.Fatal(err)
	}
	topics := map[string]bool{}
	for _, c := range cs {
		topics[c.Topic+" "+c.Key] = true
	}
	for _, k := range []string{"ban 203.0.113.9", "lock 1002", "lock 1001"} {
		if !topics[k] {
			t.Errorf("no change %q in the feed after SaveGuard: %+v", k, cs)
		}
	}
	gotBans, err := s.ListBans(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(gotBans) != 1 || gotBans[0].Addr != bans[0].Addr || !gotBans[0].End.Equal(bans[0].End) || len(gotBans[0].Cause) != 2 {
		t.Fatalf("ListBans = %+v, want the one ban in force", gotBans)
	}
	gotLocks, err := s.ListLocks(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Lock{locks[2], locks[1], locks[0]}
	if len(gotLocks) != len(want) {
		t.Fatalf("ListLocks = %+v, want %+v", gotLocks, want)
	}
	for i, l := range gotLocks {
		w := want[i]
		if l.Account != w.Account || l.Source != w.Source || !l.Until.Equal(w.Until) || l.Level != w.Level || l.Reason != w.Reason {
			t.Errorf("ListLocks[%d] = %+v, want %+v", i, l, w)
		}
	}
	// Upsert by account and source.
	upd := locks[0]
	upd.Level, upd.Until = 1, t0.Add(time.Hour)
	if err := s.SaveLock(ctx, upd); err != nil {
		t.Fatal(err)
	}
	gotLocks, _ = s.ListLocks(ctx, t0)
	if len(gotLocks) != 3 || gotLocks[2].Level != 1 {
		t.Errorf("after re-saving a source lock: %+v", gotLocks)
	}
	// Unlocking an account removes its lock and its source locks.
	if err := s.DeleteLock(ctx, "1002"); err != nil {
		t.Fatalf("DeleteLock: %v", err)
	}
	gotLocks, _ = s.ListLocks(ctx, t0)
	if len(gotLocks) != 1 || gotLocks[0].Account != "1001" {
		t.Errorf("after DeleteLock(1002): %+v, want only 1001's source lock", gotLocks)
	}
	if err := s.DeleteLock(ctx, "1001"); err != nil {
		t.Errorf("DeleteLock of an account with only a source lock: %v", err)
	}
	if err := s.DeleteLock(ctx, "1001"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteLock of an unlocked account: %v, want ErrNotFound", err)
	}
	if err := s.SaveGuard(ctx, nil, nil); err != nil {
		t.Errorf("SaveGuard with nothing: %v", err)
	}
}

// testNetBans: a network ban is kept under its masked prefix, beside an
// address ban of an address inside it; each is read and lifted by its own
// key; both reach the change feed.
func testNetBans(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := now()
	v0, err := s.LastChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	net := store.Ban{Net: netip.MustParsePrefix("203.0.113.0/24"), Rule: "manual", Reason: "hostile network", Start: t0, End: t0.Add(time.Hour)}
	one := store.Ban{Addr: netip.MustParseAddr("203.0.113.0"), Rule: "manual", Reason: "the network address itself", Start: t0, End: t0.Add(time.Hour)}
	if err := s.SaveBan(ctx, net); err != nil {
		t.Fatalf("SaveBan(network): %v", err)
	}
	if err := s.SaveBan(ctx, one); err != nil {
		t.Fatalf("SaveBan(address): %v", err)
	}
	got, err := s.NetBan(ctx, netip.MustParsePrefix("203.0.113.99/24"), t0)
	if err != nil || got.Net != net.Net || got.Addr.IsValid() || got.Reason != net.Reason {
		t.Fatalf("NetBan = %+v, %v; want the network ban (looked up by an unmasked prefix)", got, err)
	}
	if b, err := s.Ban(ctx, one.Addr, t0); err != nil || b.Net.IsValid() || b.Reason != one.Reason {
		t.Fatalf("Ban(address) = %+v, %v; want the address ban alone", b, err)
	}
	bans, err := s.ListBans(ctx, t0)
	if err != nil || len(bans) != 2 {
		t.Fatalf("ListBans = %+v, %v; want both", bans, err)
	}
	cs, err := s.Changes(ctx, v0, 100)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, c := range cs {
		keys[c.Topic+" "+c.Key] = true
	}
	if !keys["ban 203.0.113.0/24"] || !keys["ban 203.0.113.0"] {
		t.Errorf("change feed after two bans: %+v", cs)
	}
	if err := s.DeleteNetBan(ctx, net.Net); err != nil {
		t.Fatalf("DeleteNetBan: %v", err)
	}
	if _, err := s.NetBan(ctx, net.Net, t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("NetBan after delete: %v, want ErrNotFound", err)
	}
	if _, err := s.Ban(ctx, one.Addr, t0); err != nil {
		t.Errorf("deleting the network ban removed the address ban: %v", err)
	}
	if err := s.DeleteNetBan(ctx, net.Net); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteNetBan: %v, want ErrNotFound", err)
	}
}
