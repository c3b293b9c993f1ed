package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/store"
)

func auditEntry(seq int64, action, target string, at time.Time) store.AuditEntry {
	return store.AuditEntry{
		Seq: seq, Time: at, Actor: "root", Role: "owner", Channel: "cli", Source: "unix:uid=0",
		Action: action, Target: target, Before: `{"name":"a"}`, After: `{"name":"b"}`,
		PrevHash: fmt.Sprintf("%064d", seq-1), Hash: fmt.Sprintf("%064d", seq),
	}
}

func appendAudit(t *testing.T, s store.Store, e store.AuditEntry) error {
	t.Helper()
	return s.Update(t.Context(), func(tx store.Tx) error { return tx.AppendAudit(t.Context(), e) })
}

func testAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.AuditHead(ctx)
	wantErr(t, "AuditHead(empty)", err, store.ErrNotFound)

	base := now().Add(-time.Hour)
	want := []store.AuditEntry{
		auditEntry(1, "extension.create", "1001", base),
		auditEntry(2, "ban.add", "192.0.2.1", base.Add(time.Minute)),
		auditEntry(3, "extension.update", "1001", base.Add(2*time.Minute)),
	}
	want[0].Before = ""
	want[2].Actor, want[2].Channel = "anna", "api"
	for _, e := range want {
		must(t, appendAudit(t, s, e))
	}
	// Only the head's successor may be appended.
	wantErr(t, "AppendAudit(duplicate seq)", appendAudit(t, s, auditEntry(3, "x", "y", base)), store.ErrConflict)
	wantErr(t, "AppendAudit(gap)", appendAudit(t, s, auditEntry(5, "x", "y", base)), store.ErrConflict)

	head, err := s.AuditHead(ctx)
	must(t, err)
	if head != (store.AuditEntry{}) && (head.Seq != 3 || head.Hash != want[2].Hash) {
		t.Errorf("AuditHead = %+v, want seq 3", head)
	}
	all, err := s.ScanAudit(ctx, 0, 0)
	must(t, err)
	if len(all) != 3 {
		t.Fatalf("ScanAudit = %d entries, want 3", len(all))
	}
	for i, g := range all {
		w := want[i]
		if !g.Time.Equal(w.Time) {
			t.Errorf("entry %d time %v, want %v", i, g.Time, w.Time)
		}
		g.Time = w.Time
		if g != w {
			t.Errorf("entry %d = %+v\nwant %+v", i, g, w)
		}
	}
	part, err := s.ScanAudit(ctx, 1, 1)
	must(t, err)
	if len(part) != 1 || part[0].Seq != 2 {
		t.Errorf("ScanAudit(after 1, limit 1) = %+v, want seq 2", part)
	}
	for _, tt := range []struct {
		f    store.AuditFilter
		want string
	}{
		{store.AuditFilter{}, "[3 2 1]"},
		{store.AuditFilter{Limit: 1}, "[3]"},
		{store.AuditFilter{Action: "extension."}, "[3 1]"},
		{store.AuditFilter{Action: "ban.add"}, "[2]"},
		{store.AuditFilter{Actor: "anna"}, "[3]"},
		{store.AuditFilter{Target: "1001"}, "[3 1]"},
		{store.AuditFilter{Since: base.Add(time.Minute)}, "[3 2]"},
		{store.AuditFilter{BeforeSeq: 3, Limit: 1}, "[2]"},
	} {
		es, err := s.ListAudit(ctx, tt.f)
		must(t, err)
		got := fmt.Sprint(ids(es, func(e store.AuditEntry) string { return fmt.Sprint(e.Seq) }))
		if got != tt.want {
			t.Errorf("ListAudit(%+v) = %v, want %v", tt.f, got, tt.want)
		}
	}
}

// testUpdate checks that a transaction's writes and its audit entry
// commit together or not at all, and that reads inside it see its writes.
func testUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := now()
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateExtension(ctx, ext("1001", at)); err != nil {
			return err
		}
		if _, err := tx.Extension(ctx, "1001"); err != nil {
			return fmt.Errorf("read own write: %w", err)
		}
		if err := tx.SaveBan(ctx, ban("192.0.2.1", at, at.Add(time.Hour))); err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, auditEntry(1, "extension.create", "1001", at)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want fn's error", err)
	}
	if _, err := s.Extension(ctx, "1001"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("extension after a failed Update: %v, want ErrNotFound", err)
	}
	if bs, _ := s.ListBans(ctx, at); len(bs) != 0 {
		t.Errorf("ban after a failed Update: %+v", bs)
	}
	if _, err := s.AuditHead(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("audit entry after a failed Update: %v", err)
	}
	v := version(t, s)

	// A write that fails inside the transaction (a duplicate) fails it all.
	createExt(t, s, "1002")
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.AppendAudit(ctx, auditEntry(1, "extension.create", "1002", at)); err != nil {
			return err
		}
		return tx.CreateExtension(ctx, ext("1002", at))
	})
	wantErr(t, "Update(duplicate create)", err, store.ErrExists)
	if _, err := s.AuditHead(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("audit entry of a failed change was kept: %v", err)
	}

	must(t, s.Update(ctx, func(tx store.Tx) error {
		if err := tx.DeleteExtension(ctx, "1002"); err != nil {
			return err
		}
		if err := tx.SaveLock(ctx, store.Lock{Account: "1002", Until: at.Add(time.Hour)}); err != nil {
			return err
		}
		if err := tx.SaveSuspension(ctx, store.Suspension{Extension: "1002", Since: at}); err != nil {
			return err
		}
		if err := tx.SaveTrunk(ctx, store.Trunk{Name: "t"}); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, auditEntry(1, "extension.remove", "1002", at))
	}))
	if _, err := s.Extension(ctx, "1002"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("extension deleted in a committed Update: %v", err)
	}
	if _, err := s.Lock(ctx, "1002", at); err != nil {
		t.Errorf("lock saved in a committed Update: %v", err)
	}
	if _, err := s.Suspension(ctx, "1002"); err != nil {
		t.Errorf("suspension saved in a committed Update: %v", err)
	}
	if _, err := s.Trunk(ctx, "t"); err != nil {
		t.Errorf("trunk saved in a committed Update: %v", err)
	}
	if h, err := s.AuditHead(ctx); err != nil || h.Target != "1002" {
		t.Errorf("AuditHead after a committed Update = %+v, %v", h, err)
	}
	cs, err := s.Changes(ctx, v, 0)
	must(t, err)
	if len(cs) < 4 {
		t.Errorf("a committed Update fed %d changes, want one per row written (>= 4): %+v", len(cs), cs)
	}
}

func testPurge(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := now()
	var evs []store.Event
	for i := range 25 {
		evs = append(evs, event("e", "", at.Add(time.Duration(i-20)*time.Minute)))
	}
	must(t, s.InsertEvents(ctx, evs))
	total := 0
	for {
		n, err := s.PurgeEvents(ctx, at.Add(-10*time.Minute), 4)
		must(t, err)
		if n > 4 {
			t.Fatalf("PurgeEvents deleted %d, over its limit of 4", n)
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total != 10 {
		t.Errorf("purged %d events, want the 10 older than 10 minutes", total)
	}
	es, err := s.ListEvents(ctx, store.EventFilter{})
	must(t, err)
	if len(es) != 15 {
		t.Errorf("%d events left, want 15", len(es))
	}
	for _, e := range es {
		if e.Time.Before(at.Add(-10 * time.Minute)) {
			t.Errorf("event at %v survived the purge", e.Time)
		}
	}

	must(t, s.InsertCallRecords(ctx, []store.CallRecord{
		callRecord("old", at.Add(-48*time.Hour)), callRecord("new", at.Add(-time.Hour)),
	}))
	n, err := s.PurgeCallRecords(ctx, at.Add(-24*time.Hour), 10)
	must(t, err)
	rs, _ := s.ListCallRecords(ctx, store.RecordFilter{})
	if n != 1 || len(rs) != 1 || rs[0].ID != "new" {
		t.Errorf("PurgeCallRecords deleted %d, left %v", n, ids(rs, crID))
	}

	must(t, s.SaveBan(ctx, ban("192.0.2.1", at.Add(-2*time.Hour), at.Add(-time.Hour))))
	must(t, s.SaveBan(ctx, ban("192.0.2.2", at, at.Add(time.Hour))))
	must(t, s.SaveLock(ctx, store.Lock{Account: "1001", Until: at.Add(-time.Minute)}))
	must(t, s.SaveLock(ctx, store.Lock{Account: "1002", Until: at.Add(time.Minute)}))
	n, err = s.PurgeExpired(ctx, at, 10)
	must(t, err)
	if n != 2 {
		t.Errorf("PurgeExpired deleted %d, want 2 (one ban, one lock)", n)
	}
	if _, err := s.Ban(ctx, ban("192.0.2.2", at, at).Addr, at); err != nil {
		t.Errorf("ban in force was purged: %v", err)
	}
	if _, err := s.Lock(ctx, "1002", at); err != nil {
		t.Errorf("lock in force was purged: %v", err)
	}
	if _, err := s.PurgeEvents(ctx, at, 0); err == nil {
		t.Error("PurgeEvents with limit 0 succeeded; an unbounded purge must be refused")
	}
}
