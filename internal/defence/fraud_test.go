package defence

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/config"
	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/store"
	"github.com/veilig/veilig/internal/tollfraud"
)

func newFraud(t *testing.T, st FraudStore, ev events.Emitter) *Fraud {
	t.Helper()
	f, err := NewFraud(config.Default().Fraud, st, ev, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestSuspensionPersistedAndRestored: a suspension the fraud guard
// decides reaches the store as a typed effect (nothing reads event
// fields), a restart replays it, and an admin's lift in the store ends it
// with a fraud.lifted event.
func TestSuspensionPersistedAndRestored(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "veilig.db"))
	f := newFraud(t, st, &recorder{})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(runCtx, time.Hour, func(tollfraud.End) {}) }()

	// An event that merely looks like a trip must persist nothing.
	f.ev.Emit(events.New(events.FraudTripped, netipZero(), "1009", "looks like a trip", "action", "suspend"))
	at := time.Now()
	f.Apply([]tollfraud.Effect{tollfraud.SuspendExtension{Extension: "1001", Reason: "daily budget reached", At: at}})
	eventually(t, "suspension stored", func() bool { _, err := st.Suspension(ctx, "1001"); return err == nil })
	cancel()
	<-done
	if _, err := st.Suspension(ctx, "1009"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an event alone persisted a suspension: %v", err)
	}

	ev := &recorder{}
	f2 := newFraud(t, st, ev)
	if err := f2.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	why, ok := f2.Guard().Suspended("1001")
	if !ok || why != "daily budget reached" {
		t.Fatalf("after restore: suspended=%v %q", ok, why)
	}
	if d := f2.Guard().Decide(tollfraud.Request{Extension: "1001", Class: tollfraud.National, Dialled: "0612345678"}, time.Now()); d.Allow || d.Rule != tollfraud.RuleSuspended {
		t.Fatalf("restored suspension does not refuse: %+v", d)
	}
	if err := st.DeleteSuspension(ctx, "1001"); err != nil {
		t.Fatal(err)
	}
	f2.ApplySuspensions(ctx, []string{"1001"})
	if _, ok := f2.Guard().Suspended("1001"); ok {
		t.Fatal("lifted in the store, still suspended")
	}
	if n := ev.count(tollfraud.EventLifted); n != 1 {
		t.Fatalf("%d fraud.lifted events, want 1", n)
	}
	f2.ApplySuspensions(ctx, []string{"1001"})
	if n := ev.count(tollfraud.EventLifted); n != 1 {
		t.Fatalf("a second delivery wrote another fraud.lifted (%d)", n)
	}
}

// TestSuspensionQueuedAtShutdownIsPersisted: effects still queued when
// Run is stopped are written before it returns.
func TestSuspensionQueuedAtShutdownIsPersisted(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "veilig.db"))
	f := newFraud(t, st, &recorder{})
	f.Apply([]tollfraud.Effect{tollfraud.SuspendExtension{Extension: "1002", Reason: "volume anomaly (calls)", At: time.Now()}})
	runCtx, cancel := context.WithCancel(ctx)
	cancel()
	if err := f.Run(runCtx, time.Hour, func(tollfraud.End) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Suspension(ctx, "1002"); err != nil {
		t.Fatalf("queued suspension lost at shutdown: %v", err)
	}
}
