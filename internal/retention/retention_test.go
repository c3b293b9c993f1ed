package retention

import (
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/store"
	"github.com/veilig/veilig/internal/store/sqlite"
)

type rec struct {
	mu sync.Mutex
	es []events.Event
}

func (r *rec) Emit(e events.Event)      { r.mu.Lock(); r.es = append(r.es, e); r.mu.Unlock() }
func (r *rec) Record(events.CallRecord) {}

// TestPurgeWithFakeClock runs the job at a time 200 days after the data:
// what is past its retention goes, the rest stays, and each kind purged
// is one event with its count.
func TestPurgeWithFakeClock(t *testing.T) {
	ctx := t.Context()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var evs []store.Event
	for i := range 2500 {
		evs = append(evs, store.Event{Time: base.Add(time.Duration(i) * time.Hour / 10), Type: "auth.failure", Severity: "warning"})
	}
	if err := db.InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	// The clock: 200 days after base. Events older than 180 days go:
	// the first 20 days' worth (10 an hour = 4800 > 2500: all of them).
	now := base.Add(200 * 24 * time.Hour)
	recent := store.Event{Time: now.Add(-time.Hour), Type: "register", Severity: "info"}
	if err := db.InsertEvents(ctx, []store.Event{recent}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveBan(ctx, store.Ban{Addr: netip.MustParseAddr("192.0.2.1"), Rule: "manual", Start: base, End: base.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := db.InsertCallRecords(ctx, []store.CallRecord{
		{ID: "old", StartedAt: now.Add(-400 * 24 * time.Hour)}, {ID: "new", StartedAt: now.Add(-time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	r := &rec{}
	j := New(db, r, slog.New(slog.DiscardHandler), Options{Events: 180 * 24 * time.Hour, CallRecords: 365 * 24 * time.Hour,
		Batch: 300, Pause: time.Millisecond, Now: func() time.Time { return now }})
	if err := j.Once(ctx); err != nil {
		t.Fatal(err)
	}
	left, _ := db.ListEvents(ctx, store.EventFilter{})
	if len(left) != 1 || left[0].Type != "register" {
		t.Errorf("%d events left, want only the recent one", len(left))
	}
	rs, _ := db.ListCallRecords(ctx, store.RecordFilter{})
	if len(rs) != 1 || rs[0].ID != "new" {
		t.Errorf("call records left: %v", rs)
	}
	counts := map[string]string{}
	for _, e := range r.es {
		if e.Type != "retention.purged" {
			t.Errorf("unexpected event %s", e.Type)
		}
		counts[e.Fields["kind"]] = e.Fields["count"]
	}
	if counts["events"] != "2500" || counts["call_records"] != "1" || counts["bans_locks"] != "1" {
		t.Errorf("purge events = %v", counts)
	}
}

// TestPurgeKeepsStoreServing purges a large table while another writer
// keeps writing: no write fails and none waits long.
func TestPurgeKeepsStoreServing(t *testing.T) {
	if testing.Short() {
		t.Skip("large purge")
	}
	ctx := t.Context()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := time.Now().Add(-400 * 24 * time.Hour)
	const n = 200_000
	for i := 0; i < n; i += 10000 {
		batch := make([]store.Event, 10000)
		for k := range batch {
			batch[k] = store.Event{Time: old, Type: "auth.failure", Severity: "warning", Message: "x"}
		}
		if err := db.InsertEvents(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.CreateExtension(ctx, store.Extension{Number: "1001"}); err != nil {
		t.Fatal(err)
	}
	j := New(db, events.Discard{}, slog.New(slog.DiscardHandler), Options{Events: 180 * 24 * time.Hour})
	done := make(chan error, 1)
	go func() { done <- j.Once(ctx) }()
	var worst time.Duration
	writes := 0
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			left, _ := db.ListEvents(ctx, store.EventFilter{Type: "auth.failure", Limit: 1})
			if len(left) != 0 {
				t.Error("old events survived")
			}
			t.Logf("purged %d events; %d binding writes meanwhile, slowest %v", n, writes, worst)
			if writes == 0 {
				t.Error("no write ran during the purge")
			}
			if worst > 2*time.Second {
				t.Errorf("a write waited %v during the purge", worst)
			}
			return
		default:
		}
		start := time.Now()
		err := db.SaveBindings(ctx, []store.Binding{{Number: "1001", Contact: "sip:a@b", Transport: "udp", Expires: time.Now().Add(time.Hour)}})
		if err != nil {
			t.Fatalf("write during purge: %v", err)
		}
		worst = max(worst, time.Since(start))
		writes++
		time.Sleep(2 * time.Millisecond)
	}
}
