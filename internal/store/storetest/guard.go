package storetest

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/store"
)

func ban(addr string, start, end time.Time) store.Ban {
	return store.Ban{
		Addr: netip.MustParseAddr(addr), Rule: "bruteforce", Reason: "4 failures in 10m",
		Cause: []string{"auth.failure 1001", "auth.failure 1002"}, Start: start, End: end, Level: 1,
	}
}

func equalBan(a, b store.Ban) bool {
	return a.Addr == b.Addr && a.Rule == b.Rule && a.Reason == b.Reason && slices.Equal(a.Cause, b.Cause) &&
		a.Start.Equal(b.Start) && a.End.Equal(b.End) && a.Level == b.Level
}

func testBans(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := now()
	b1 := ban("192.0.2.1", at, at.Add(time.Hour))
	b2 := ban("2001:db8::1", at, at.Add(2*time.Hour))
	b2.Cause = nil
	expired := ban("192.0.2.9", at.Add(-2*time.Hour), at.Add(-time.Hour))
	for _, b := range []store.Ban{b2, b1, expired} {
		must(t, s.SaveBan(ctx, b))
	}
	got, err := s.ListBans(ctx, at)
	must(t, err)
	if len(got) != 2 || !equalBan(got[0], b1) || got[1].Addr != b2.Addr || len(got[1].Cause) != 0 {
		t.Fatalf("ListBans = %+v, want b1 then b2 (soonest to end first, expired left out)", got)
	}
	g, err := s.Ban(ctx, b1.Addr, at)
	must(t, err)
	if !equalBan(g, b1) {
		t.Errorf("Ban = %+v, want %+v", g, b1)
	}
	// A mapped address is the same source.
	if _, err := s.Ban(ctx, netip.MustParseAddr("::ffff:192.0.2.1"), at); err != nil {
		t.Errorf("Ban(mapped address): %v", err)
	}
	_, err = s.Ban(ctx, expired.Addr, at)
	wantErr(t, "Ban(expired)", err, store.ErrNotFound)

	// Upsert escalates in place.
	b1.Level, b1.End, b1.Rule = 2, at.Add(24*time.Hour), "manual"
	must(t, s.SaveBan(ctx, b1))
	g, err = s.Ban(ctx, b1.Addr, at)
	must(t, err)
	if !equalBan(g, b1) {
		t.Errorf("Ban after upsert = %+v, want %+v", g, b1)
	}

	must(t, s.DeleteBan(ctx, b1.Addr))
	wantErr(t, "DeleteBan(again)", s.DeleteBan(ctx, b1.Addr), store.ErrNotFound)
	_, err = s.Ban(ctx, b1.Addr, at)
	wantErr(t, "Ban(deleted)", err, store.ErrNotFound)
	got, err = s.ListBans(ctx, at)
	must(t, err)
	if len(got) != 1 || got[0].Addr != b2.Addr {
		t.Errorf("ListBans after delete = %+v, want only b2", got)
	}
	// Later, b2 has expired too.
	got, err = s.ListBans(ctx, at.Add(3*time.Hour))
	must(t, err)
	if len(got) != 0 {
		t.Errorf("ListBans after expiry = %+v, want none", got)
	}
}

func testLocks(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := now()
	l1 := store.Lock{Account: "1002", Until: at.Add(15 * time.Minute), Level: 1, Reason: "5 failures"}
	l2 := store.Lock{Account: "1001", Until: at.Add(time.Hour), Level: 2, Reason: "again"}
	old := store.Lock{Account: "1003", Until: at.Add(-time.Minute), Level: 1}
	for _, l := range []store.Lock{l1, l2, old} {
		must(t, s.SaveLock(ctx, l))
	}
	got, err := s.ListLocks(ctx, at)
	must(t, err)
	if fmt.Sprint(ids(got, func(l store.Lock) string { return l.Account })) != "[1001 1002]" {
		t.Fatalf("ListLocks = %+v, want 1001, 1002 (by account, expired left out)", got)
	}
	if got[0].Level != 2 || got[0].Reason != "again" || !got[0].Until.Equal(l2.Until) {
		t.Errorf("lock = %+v, want %+v", got[0], l2)
	}
	g, err := s.Lock(ctx, "1002", at)
	must(t, err)
	if g != (store.Lock{Account: "1002", Until: g.Until, Level: 1, Reason: "5 failures"}) || !g.Until.Equal(l1.Until) {
		t.Errorf("Lock = %+v, want %+v", g, l1)
	}
	_, err = s.Lock(ctx, "1003", at)
	wantErr(t, "Lock(expired)", err, store.ErrNotFound)
	l1.Level, l1.Until = 3, at.Add(24*time.Hour)
	must(t, s.SaveLock(ctx, l1))
	g, err = s.Lock(ctx, "1002", at)
	must(t, err)
	if g.Level != 3 || !g.Until.Equal(l1.Until) {
		t.Errorf("Lock after upsert = %+v", g)
	}
	must(t, s.DeleteLock(ctx, "1002"))
	wantErr(t, "DeleteLock(again)", s.DeleteLock(ctx, "1002"), store.ErrNotFound)
	_, err = s.Lock(ctx, "1002", at)
	wantErr(t, "Lock(deleted)", err, store.ErrNotFound)
}

func testSuspensions(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := now()
	must(t, s.SaveSuspension(ctx, store.Suspension{Extension: "1002", Reason: "spend", Since: at}))
	must(t, s.SaveSuspension(ctx, store.Suspension{Extension: "1001", Reason: "rate", Since: at.Add(-time.Hour)}))
	got, err := s.ListSuspensions(ctx)
	must(t, err)
	if len(got) != 2 || got[0].Extension != "1001" || got[1].Reason != "spend" || !got[1].Since.Equal(at) {
		t.Fatalf("ListSuspensions = %+v", got)
	}
	must(t, s.SaveSuspension(ctx, store.Suspension{Extension: "1002", Reason: "spend again", Since: at.Add(time.Minute)}))
	g, err := s.Suspension(ctx, "1002")
	must(t, err)
	if g.Reason != "spend again" || !g.Since.Equal(at.Add(time.Minute)) {
		t.Errorf("Suspension after upsert = %+v", g)
	}
	must(t, s.DeleteSuspension(ctx, "1002"))
	wantErr(t, "DeleteSuspension(again)", s.DeleteSuspension(ctx, "1002"), store.ErrNotFound)
	_, err = s.Suspension(ctx, "1002")
	wantErr(t, "Suspension(deleted)", err, store.ErrNotFound)
}

func testTrunks(t *testing.T, s store.Store) {
	ctx := t.Context()
	tr := store.Trunk{
		Name: "carrier", Host: "sip.carrier.example", Port: 5061, Transport: "tls", Auth: "register",
		Username: "acme", Secret: []byte("sealed"), Realm: "carrier", Addresses: []string{"198.51.100.0/24"},
		Media: "srtp", ServerName: "sip.carrier.example", Pin: "ab12", CAFile: "/etc/ca.pem",
		DIDs: map[string]string{"+31201234567": "1001"}, Outbound: true,
	}
	must(t, s.SaveTrunk(ctx, tr))
	must(t, s.SaveTrunk(ctx, store.Trunk{Name: "backup", Host: "b.example", Transport: "udp", InsecureTransport: true, Auth: "ip", Media: "rtp"}))
	if err := s.SaveTrunk(ctx, store.Trunk{}); err == nil {
		t.Error("SaveTrunk without a name succeeded")
	}
	got, err := s.ListTrunks(ctx)
	must(t, err)
	if len(got) != 2 || got[0].Name != "backup" || got[1].Name != "carrier" {
		t.Fatalf("ListTrunks = %+v, want backup, carrier", got)
	}
	g, err := s.Trunk(ctx, "carrier")
	must(t, err)
	if fmt.Sprintf("%+v", g) != fmt.Sprintf("%+v", tr) {
		t.Errorf("Trunk = %+v\nwant    %+v", g, tr)
	}
	tr.Outbound, tr.DIDs = false, nil
	must(t, s.SaveTrunk(ctx, tr))
	g, err = s.Trunk(ctx, "carrier")
	must(t, err)
	if g.Outbound || len(g.DIDs) != 0 {
		t.Errorf("Trunk after upsert = %+v", g)
	}
	must(t, s.DeleteTrunk(ctx, "carrier"))
	wantErr(t, "DeleteTrunk(again)", s.DeleteTrunk(ctx, "carrier"), store.ErrNotFound)
	_, err = s.Trunk(ctx, "carrier")
	wantErr(t, "Trunk(deleted)", err, store.ErrNotFound)
}
