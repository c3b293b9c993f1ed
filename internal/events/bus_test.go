package events

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memSink records what it was given; block, when set, holds every write
// until it is closed.
type memSink struct {
	name  string
	block chan struct{}
	fail  atomic.Int32 // fail this many writes first

	mu      sync.Mutex
	events  []Event
	records []CallRecord
	writes  int
}

func (m *memSink) Name() string { return m.name }

func (m *memSink) Write(ctx context.Context, b Batch) error {
	if m.block != nil {
		select {
		case <-m.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if m.fail.Load() > 0 {
		m.fail.Add(-1)
		return errors.New("receiver down")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, b.Events...)
	m.records = append(m.records, b.Records...)
	m.writes++
	return nil
}

func (m *memSink) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.events) + len(m.records)
}

func runBus(t *testing.T, b *Bus) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

func TestSlowSinkNeverBlocksPublishersOrOtherSinks(t *testing.T) {
	b := NewBus(nil)
	slow := &memSink{name: "slow", block: make(chan struct{})}
	fast := &memSink{name: "fast"}
	b.AddSink(slow, SinkOptions{Queue: 10})
	b.AddSink(fast, SinkOptions{Queue: 10000})
	stop := runBus(t, b)
	defer stop()

	start := time.Now()
	for range 5000 {
		b.Emit(New(AuthFailure, netip.AddrPort{}, "1001", "x"))
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("5000 emits took %v with a stuck sink: publishers were held", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for fast.count() < 5000 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if fast.count() != 5000 {
		t.Fatalf("fast sink got %d of 5000 while the slow one was stuck", fast.count())
	}
	var st SinkStats
	for _, s := range b.Stats() {
		if s.Name == "slow" {
			st = s
		}
	}
	// At most queue + the batch in the stuck write survive; the rest
	// were dropped and counted.
	if st.Dropped < 5000-10-1000 || st.Dropped == 0 {
		t.Errorf("slow sink dropped %d, want nearly all of 5000 counted", st.Dropped)
	}
	close(slow.block)
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := uint64(slow.count()) + b.Stats()[0].Dropped; got != 5000 {
		t.Errorf("slow sink written %d + dropped %d != 5000 emitted", slow.count(), b.Stats()[0].Dropped)
	}
}

func TestGroupCommitAndFlush(t *testing.T) {
	b := NewBus(nil)
	s := &memSink{name: "m", block: make(chan struct{})}
	b.AddSink(s, SinkOptions{})
	stop := runBus(t, b)
	defer stop()
	b.Emit(New(Register, netip.AddrPort{}, "1", "first"))
	time.Sleep(20 * time.Millisecond) // the first write is now held
	for range 100 {
		b.Emit(New(Register, netip.AddrPort{}, "1", "queued"))
	}
	b.Record(CallRecord{ID: "c1"})
	close(s.block)
	if err := b.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.events) != 101 || len(s.records) != 1 {
		t.Fatalf("written %d events, %d records; want 101, 1", len(s.events), len(s.records))
	}
	if s.writes != 2 {
		t.Errorf("%d writes, want 2: what queued during the first write goes out in one", s.writes)
	}
	if s.events[0].ID == "" || s.events[0].ID == s.events[1].ID || s.events[0].Severity != Info {
		t.Errorf("events lack unique IDs or their kind's severity: %+v", s.events[:2])
	}
}

func TestFailedWritesAreRetriedThenDropped(t *testing.T) {
	b := NewBus(nil)
	s := &memSink{name: "m"}
	s.fail.Store(2)
	b.AddSink(s, SinkOptions{Retries: 3})
	stop := runBus(t, b)
	defer stop()
	b.Emit(New(Register, netip.AddrPort{}, "1", "x"))
	if err := b.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	st := b.Stats()[0]
	if s.count() != 1 || st.Failures != 2 || st.Dropped != 0 || st.LastError == "" || st.LastSuccess.IsZero() {
		t.Errorf("after 2 failures: written %d, stats %+v", s.count(), st)
	}
	s.fail.Store(10)
	b.Emit(New(Register, netip.AddrPort{}, "1", "y"))
	if err := b.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats()[0]; st.Dropped != 1 {
		t.Errorf("a batch failing past its retries: dropped %d, want 1", st.Dropped)
	}
}

func TestDropOldest(t *testing.T) {
	b := NewBus(nil)
	s := &memSink{name: "siem", block: make(chan struct{})}
	b.AddSink(s, SinkOptions{Queue: 3, DropOldest: true, MaxBatch: 1})
	stop := runBus(t, b)
	defer stop()
	b.Emit(New(Register, netip.AddrPort{}, "", "m0"))
	time.Sleep(20 * time.Millisecond) // m0 is in the held write
	for _, m := range []string{"m1", "m2", "m3", "m4", "m5"} {
		b.Emit(New(Register, netip.AddrPort{}, "", m))
	}
	close(s.block)
	if err := b.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range s.events {
		got = append(got, e.Message)
	}
	if len(got) != 4 || got[0] != "m0" || got[1] != "m3" || got[3] != "m5" {
		t.Errorf("with drop-oldest the newest survive: got %v, want [m0 m3 m4 m5]", got)
	}
}

func TestRunDrainsOnStop(t *testing.T) {
	b := NewBus(nil)
	s := &memSink{name: "m"}
	b.AddSink(s, SinkOptions{})
	stop := runBus(t, b)
	for range 50 {
		b.Emit(New(Register, netip.AddrPort{}, "", "x"))
	}
	stop()
	if s.count() != 50 {
		t.Errorf("after Run returned, %d of 50 were written", s.count())
	}
}

func TestUncatalogued(t *testing.T) {
	b := NewBus(nil)
	b.Emit(Event{Type: "made.up"})
	b.Emit(New(Register, netip.AddrPort{}, "", ""))
	if b.Uncatalogued() != 1 {
		t.Errorf("Uncatalogued = %d, want 1", b.Uncatalogued())
	}
}

func TestCatalogue(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Catalogue() {
		if seen[k.Name] {
			t.Errorf("%s listed twice", k.Name)
		}
		seen[k.Name] = true
		if k.Doc == "" || (k.Severity != Info && k.Severity != Warning && k.Severity != Alert) {
			t.Errorf("%s: missing doc or bad severity %q", k.Name, k.Severity)
		}
		for _, f := range k.Fields {
			if f.Name == "" || f.Doc == "" {
				t.Errorf("%s: undocumented field %+v", k.Name, f)
			}
		}
	}
	if _, ok := GuardKind("ratelimit"); !ok {
		t.Error("guard.ratelimit missing")
	}
}

func TestFileSinkLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	fs, err := OpenFileSink(path)
	if err != nil {
		t.Fatal(err)
	}
	e := New(AuthFailure, netip.MustParseAddrPort("192.0.2.1:5060"), "1001", `bad "digest" ]`, "reason", "wrong credentials")
	if err := fs.Write(t.Context(), Batch{Events: []Event{e}, Records: []CallRecord{{ID: "c1", From: "1001"}}}); err != nil {
		t.Fatal(err)
	}
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("event log mode %v, want 0600", fi.Mode().Perm())
	}
	f, _ := os.Open(path)
	defer f.Close()
	sc := bufio.NewScanner(f)
	var lines []map[string]any
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2", len(lines))
	}
	if lines[0]["v"] != float64(SchemaVersion) || lines[0]["type"] != "auth.failure" || lines[0]["id"] != e.ID ||
		lines[0]["message"] != e.Message || lines[0]["severity"] != "warning" {
		t.Errorf("event line = %v", lines[0])
	}
	if lines[1]["v"] != float64(SchemaVersion) || lines[1]["type"] != "call.record" || lines[1]["id"] != "c1" {
		t.Errorf("record line = %v", lines[1])
	}
}

func BenchmarkEmit(b *testing.B) {
	bus := NewBus(nil)
	bus.AddSink(&memSink{name: "m"}, SinkOptions{Queue: 1 << 20})
	bus.AddSink(&memSink{name: "n"}, SinkOptions{Queue: 1 << 20})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go bus.Run(ctx)
	e := New(AuthFailure, netip.MustParseAddrPort("192.0.2.1:5060"), "1001", "x", "reason", "r")
	b.ReportAllocs()
	for b.Loop() {
		bus.Emit(e)
	}
}
