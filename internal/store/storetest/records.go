package storetest

import (
	"fmt"
	"maps"
	"net/netip"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/store"
)

func callRecord(id string, started time.Time) store.CallRecord {
	return store.CallRecord{
		ID:          id,
		From:        "1001",
		To:          "+31201234567",
		Source:      netip.MustParseAddrPort("192.0.2.10:5061"),
		StartedAt:   started,
		AnsweredAt:  started.Add(2 * time.Second),
		EndedAt:     started.Add(time.Minute),
		Disposition: "answered",
		Cause:       "200 OK",
		CallerMedia: "SRTP AES_CM_128_HMAC_SHA1_80",
		CalleeMedia: "SRTP AEAD_AES_256_GCM",
	}
}

func equalCallRecord(a, b store.CallRecord) bool {
	return a.ID == b.ID && a.From == b.From && a.To == b.To && a.Source == b.Source &&
		a.StartedAt.Equal(b.StartedAt) && a.AnsweredAt.Equal(b.AnsweredAt) && a.EndedAt.Equal(b.EndedAt) &&
		a.Disposition == b.Disposition && a.Cause == b.Cause &&
		a.CallerMedia == b.CallerMedia && a.CalleeMedia == b.CalleeMedia && a.MediaInClear == b.MediaInClear
}

func ids[T any](xs []T, id func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = id(x)
	}
	return out
}

func crID(r store.CallRecord) string { return r.ID }

func testCallRecords(t *testing.T, s store.Store) {
	ctx := t.Context()
	rs, err := s.ListCallRecords(ctx, store.RecordFilter{Limit: 10})
	must(t, err)
	if len(rs) != 0 {
		t.Fatalf("empty store lists %d call records", len(rs))
	}

	base := now().Add(-time.Hour)
	c1 := callRecord("c1", base)
	c2 := callRecord("c2", base.Add(2*time.Minute))
	c2.AnsweredAt = time.Time{}
	c2.Disposition, c2.Cause = "no-answer", "480 Temporarily Unavailable"
	c2.Source = netip.MustParseAddrPort("[2001:db8::5]:5061")
	c3 := callRecord("c3", base.Add(time.Minute))
	c3.MediaInClear = true
	c3.CalleeMedia = "RTP"
	c3.Source = netip.AddrPort{}
	// Inserted out of time order, across two batches.
	must(t, s.InsertCallRecords(ctx, []store.CallRecord{c1, c2}))
	must(t, s.InsertCallRecords(ctx, []store.CallRecord{c3}))

	rs, err = s.ListCallRecords(ctx, store.RecordFilter{})
	must(t, err)
	want := []store.CallRecord{c2, c3, c1}
	if got := ids(rs, crID); fmt.Sprint(got) != fmt.Sprint(ids(want, crID)) {
		t.Fatalf("ListCallRecords({}) = %v, want %v (newest first)", got, ids(want, crID))
	}
	for i := range want {
		if !equalCallRecord(rs[i], want[i]) {
			t.Errorf("call record %d = %+v, want %+v", i, rs[i], want[i])
		}
	}

	rs, err = s.ListCallRecords(ctx, store.RecordFilter{Limit: 2})
	must(t, err)
	if got := ids(rs, crID); fmt.Sprint(got) != "[c2 c3]" {
		t.Errorf("ListCallRecords(Limit 2) = %v, want [c2 c3]", got)
	}

	// Only calls to outside numbers are outbound; internal ones (no E164)
	// are left out however recent.
	o1 := callRecord("o1", base.Add(-time.Minute))
	o1.E164, o1.Country = "+31201234567", "NL"
	o2 := callRecord("o2", base.Add(-2*time.Minute))
	o2.E164, o2.Country = "+442071234567", "GB"
	must(t, s.InsertCallRecords(ctx, []store.CallRecord{o2, o1}))
	rs, err = s.ListCallRecords(ctx, store.RecordFilter{Outbound: true})
	must(t, err)
	if got := ids(rs, crID); fmt.Sprint(got) != "[o1 o2]" {
		t.Errorf("ListCallRecords(Outbound) = %v, want [o1 o2]", got)
	}
	if len(rs) == 2 && (rs[0].E164 != o1.E164 || rs[1].Country != "GB") {
		t.Errorf("outbound records lost their destination: %+v", rs)
	}
	rs, err = s.ListCallRecords(ctx, store.RecordFilter{Outbound: true, Limit: 1})
	must(t, err)
	if got := ids(rs, crID); fmt.Sprint(got) != "[o1]" {
		t.Errorf("ListCallRecords(Outbound, Limit 1) = %v, want [o1]", got)
	}
}

func testCallRecordsDuplicate(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := now()
	must(t, s.InsertCallRecords(ctx, []store.CallRecord{callRecord("c1", base)}))
	err := s.InsertCallRecords(ctx, []store.CallRecord{callRecord("c2", base), callRecord("c1", base)})
	wantErr(t, "InsertCallRecords(duplicate)", err, store.ErrExists)
	rs, err := s.ListCallRecords(ctx, store.RecordFilter{})
	must(t, err)
	if len(rs) != 1 {
		t.Errorf("failed batch left %d records, want 1 (batches are atomic)", len(rs))
	}
}

func event(typ, account string, at time.Time) store.Event {
	return store.Event{
		Time:     at,
		Type:     typ,
		Severity: "warning",
		Source:   "192.0.2.66:5060",
		Account:  account,
		Message:  typ + " for " + account,
		Fields:   map[string]string{"user_agent": "friendly-scanner", "reason": "bad digest"},
	}
}

func evMsg(e store.Event) string { return e.Message }

func testEvents(t *testing.T, s store.Store) {
	ctx := t.Context()
	es, err := s.ListEvents(ctx, store.EventFilter{})
	must(t, err)
	if len(es) != 0 {
		t.Fatalf("empty store lists %d events", len(es))
	}

	base := now().Add(-time.Hour)
	e1 := event("auth.failure", "1001", base)
	e1.ID = 12345 // ignored
	e2 := event("register", "1002", base.Add(time.Minute))
	e2.Fields = nil
	e2.Source, e2.Severity = "", "info"
	e3 := event("call.refused", "", base.Add(30*time.Second))
	must(t, s.InsertEvents(ctx, []store.Event{e1, e2}))
	must(t, s.InsertEvents(ctx, []store.Event{e3}))

	es, err = s.ListEvents(ctx, store.EventFilter{})
	must(t, err)
	want := []store.Event{e2, e3, e1}
	if got := ids(es, evMsg); fmt.Sprint(got) != fmt.Sprint(ids(want, evMsg)) {
		t.Fatalf("ListEvents = %v, want %v (newest first)", got, ids(want, evMsg))
	}
	seen := map[int64]bool{}
	for i, g := range es {
		w := want[i]
		if !g.Time.Equal(w.Time) || g.Type != w.Type || g.Severity != w.Severity ||
			g.Source != w.Source || g.Account != w.Account || g.Message != w.Message ||
			!maps.Equal(g.Fields, w.Fields) {
			t.Errorf("event %d = %+v, want %+v", i, g, w)
		}
		if g.ID == 0 || seen[g.ID] {
			t.Errorf("event %d has ID %d, want a fresh non-zero ID", i, g.ID)
		}
		seen[g.ID] = true
	}

	// Equal times come back in reverse insert order.
	same := now()
	must(t, s.InsertEvents(ctx, []store.Event{event("a", "", same), event("b", "", same)}))
	es, err = s.ListEvents(ctx, store.EventFilter{Limit: 2})
	must(t, err)
	if len(es) != 2 || es[0].Type != "b" || es[1].Type != "a" || es[0].ID <= es[1].ID {
		t.Errorf("events with equal times = %+v, want b then a, IDs increasing with insert order", es)
	}
}

func testEventFilters(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := now().Add(-time.Hour)
	var all []store.Event
	for i := range 12 {
		typ := []string{"auth.failure", "register", "call.refused"}[i%3]
		acct := []string{"1001", "1002"}[i%2]
		e := event(typ, acct, base.Add(time.Duration(i)*time.Minute))
		e.Message = fmt.Sprintf("e%02d", i)
		all = append(all, e)
	}
	must(t, s.InsertEvents(ctx, all))

	tests := []struct {
		f    store.EventFilter
		want string
	}{
		{store.EventFilter{}, "[e11 e10 e09 e08 e07 e06 e05 e04 e03 e02 e01 e00]"},
		{store.EventFilter{Limit: 3}, "[e11 e10 e09]"},
		{store.EventFilter{Type: "auth.failure"}, "[e09 e06 e03 e00]"},
		{store.EventFilter{Account: "1002"}, "[e11 e09 e07 e05 e03 e01]"},
		{store.EventFilter{Type: "auth.failure", Account: "1002"}, "[e09 e03]"},
		{store.EventFilter{Since: base.Add(9 * time.Minute)}, "[e11 e10 e09]"},
		{store.EventFilter{Type: "register", Since: base.Add(4 * time.Minute), Limit: 2}, "[e10 e07]"},
		{store.EventFilter{Type: "nope"}, "[]"},
		{store.EventFilter{Since: base.Add(time.Hour)}, "[]"},
	}
	for _, tt := range tests {
		es, err := s.ListEvents(ctx, tt.f)
		must(t, err)
		if got := fmt.Sprint(ids(es, evMsg)); got != tt.want {
			t.Errorf("ListEvents(%+v) = %v, want %v", tt.f, got, tt.want)
		}
	}
}

func testEmptyBatches(t *testing.T, s store.Store) {
	ctx := t.Context()
	v := version(t, s)
	must(t, s.SaveBindings(ctx, nil))
	must(t, s.InsertCallRecords(ctx, nil))
	must(t, s.InsertEvents(ctx, []store.Event{}))
	if got := version(t, s); got != v {
		t.Errorf("empty batches moved the change feed from %d to %d", v, got)
	}
}

func testEventFilterMore(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := now().Add(-time.Hour)
	mk := func(msg, typ, src, sev string, at time.Duration) store.Event {
		e := event(typ, "", base.Add(at))
		e.Message, e.Source, e.Severity, e.UID = msg, src, sev, "uid-"+msg
		return e
	}
	must(t, s.InsertEvents(ctx, []store.Event{
		mk("a", "guard.ban", "192.0.2.1", "warning", 0),
		mk("b", "guard.ratelimit", "192.0.2.1:5060", "warning", time.Minute),
		mk("c", "guardian", "192.0.2.10:5060", "info", 2*time.Minute),
		mk("d", "auth.failure", "[2001:db8::1]:5061", "alert", 3*time.Minute),
		mk("e", "auth.failure", "2001:db8::1", "warning", 4*time.Minute),
	}))
	all, err := s.ListEvents(ctx, store.EventFilter{})
	must(t, err)
	if len(all) != 5 || all[0].UID != "uid-e" {
		t.Fatalf("ListEvents = %+v (UID must round-trip)", all)
	}
	for _, tt := range []struct {
		f    store.EventFilter
		want string
	}{
		{store.EventFilter{Type: "guard."}, "[b a]"},
		{store.EventFilter{Source: "192.0.2.1"}, "[b a]"},
		{store.EventFilter{Source: "2001:db8::1"}, "[e d]"},
		{store.EventFilter{Severity: "alert"}, "[d]"},
		{store.EventFilter{Until: base.Add(2 * time.Minute)}, "[b a]"},
		{store.EventFilter{BeforeID: all[1].ID}, "[c b a]"},
		{store.EventFilter{BeforeID: all[1].ID, Limit: 1}, "[c]"},
	} {
		es, err := s.ListEvents(ctx, tt.f)
		must(t, err)
		if got := fmt.Sprint(ids(es, evMsg)); got != tt.want {
			t.Errorf("ListEvents(%+v) = %v, want %v", tt.f, got, tt.want)
		}
	}
	if _, err := s.ListEvents(ctx, store.EventFilter{Source: "not-an-ip"}); err == nil {
		t.Error("ListEvents with a Source that is not an address succeeded")
	}
}

func testCallRecordFilters(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := now().Add(-time.Hour)
	var rs []store.CallRecord
	for i := range 6 {
		r := callRecord(fmt.Sprintf("r%d", i), base.Add(time.Duration(i)*time.Minute))
		r.From, r.To = []string{"1001", "1002"}[i%2], []string{"1003", "+31201234567", "1001"}[i%3]
		if i%3 == 1 {
			r.E164 = r.To
		}
		if i == 4 {
			r.Disposition = "busy"
		}
		rs = append(rs, r)
	}
	must(t, s.InsertCallRecords(ctx, rs))
	for _, tt := range []struct {
		f    store.RecordFilter
		want string
	}{
		{store.RecordFilter{}, "[r5 r4 r3 r2 r1 r0]"},
		{store.RecordFilter{Party: "1001"}, "[r5 r4 r2 r0]"},
		{store.RecordFilter{Disposition: "busy"}, "[r4]"},
		{store.RecordFilter{Outbound: true}, "[r4 r1]"},
		{store.RecordFilter{Since: base.Add(2 * time.Minute), Until: base.Add(4 * time.Minute)}, "[r3 r2]"},
		{store.RecordFilter{Offset: 2, Limit: 2}, "[r3 r2]"},
		{store.RecordFilter{Offset: 5}, "[r0]"},
	} {
		got, err := s.ListCallRecords(ctx, tt.f)
		must(t, err)
		if g := fmt.Sprint(ids(got, crID)); g != tt.want {
			t.Errorf("ListCallRecords(%+v) = %v, want %v", tt.f, g, tt.want)
		}
	}
}

func testEventUIDIdempotent(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := event("a", "", now()), event("b", "", now())
	a.UID, b.UID = "uid-a", "uid-b"
	must(t, s.InsertEvents(ctx, []store.Event{a}))
	// A retried batch holding a again and a new one stores only the new one.
	must(t, s.InsertEvents(ctx, []store.Event{a, b}))
	// Events without a UID are never deduplicated.
	must(t, s.InsertEvents(ctx, []store.Event{event("c", "", now()), event("c", "", now())}))
	es, err := s.ListEvents(ctx, store.EventFilter{})
	must(t, err)
	if len(es) != 4 {
		t.Errorf("%d events stored, want 4 (a once, b, c twice)", len(es))
	}
}
