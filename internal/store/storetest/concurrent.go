package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/store"
)

func testCanceled(t *testing.T, s store.Store) {
	createExt(t, s, "1001")
	ctx := canceledContext()
	exp := now().Add(time.Hour)
	calls := map[string]func() error{
		"CreateExtension": func() error { return s.CreateExtension(ctx, ext("1002", now())) },
		"UpdateExtension": func() error { return s.UpdateExtension(ctx, ext("1001", now())) },
		"Extension":       func() error { _, err := s.Extension(ctx, "1001"); return err },
		"ListExtensions":  func() error { _, err := s.ListExtensions(ctx); return err },
		"DeleteExtension": func() error { return s.DeleteExtension(ctx, "1001") },
		"SaveBindings": func() error {
			return s.SaveBindings(ctx, []store.Binding{binding("1001", "sip:a@192.0.2.1", exp)})
		},
		"DeleteBinding": func() error { return s.DeleteBinding(ctx, "1001", "sip:a@192.0.2.1") },
		"LoadBindings":  func() error { _, err := s.LoadBindings(ctx, now()); return err },
		"InsertCallRecords": func() error {
			return s.InsertCallRecords(ctx, []store.CallRecord{callRecord("c1", now())})
		},
		"ListCallRecords": func() error { _, err := s.ListCallRecords(ctx, store.RecordFilter{}); return err },
		"InsertEvents": func() error {
			return s.InsertEvents(ctx, []store.Event{event("x", "1001", now())})
		},
		"ListEvents": func() error { _, err := s.ListEvents(ctx, store.EventFilter{}); return err },
		"LastChange": func() error { _, err := s.LastChange(ctx); return err },
		"Changes":    func() error { _, err := s.Changes(ctx, 0, 10); return err },
		"SaveBan": func() error {
			return s.SaveBan(ctx, store.Ban{Addr: netip.MustParseAddr("192.0.2.1"), Rule: "manual", Start: now(), End: exp})
		},
		"ListBans":        func() error { _, err := s.ListBans(ctx, now()); return err },
		"SaveLock":        func() error { return s.SaveLock(ctx, store.Lock{Account: "1001", Until: exp}) },
		"ListLocks":       func() error { _, err := s.ListLocks(ctx, now()); return err },
		"SaveSuspension":  func() error { return s.SaveSuspension(ctx, store.Suspension{Extension: "1001", Since: now()}) },
		"ListSuspensions": func() error { _, err := s.ListSuspensions(ctx); return err },
		"SaveTrunk":       func() error { return s.SaveTrunk(ctx, store.Trunk{Name: "c"}) },
		"ListTrunks":      func() error { _, err := s.ListTrunks(ctx); return err },
		"ListAudit":       func() error { _, err := s.ListAudit(ctx, store.AuditFilter{}); return err },
		"Update": func() error {
			return s.Update(ctx, func(tx store.Tx) error { return tx.SaveLock(ctx, store.Lock{Account: "1001", Until: exp}) })
		},
		"PurgeEvents": func() error { _, err := s.PurgeEvents(ctx, now(), 10); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: error = %v, want context.Canceled", name, err)
		}
	}
	// Nothing above may have taken effect.
	if _, err := s.Extension(t.Context(), "1001"); err != nil {
		t.Errorf("extension 1001 after canceled calls: %v", err)
	}
	if _, err := s.Extension(t.Context(), "1002"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("extension 1002 after canceled create: %v, want ErrNotFound", err)
	}
}

// testConcurrent runs writers and readers of every kind at once; under
// -race it also checks the implementation's own synchronisation.
func testConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const workers, rounds = 8, 20
	exp := now().Add(time.Hour)
	v0 := version(t, s)

	var wg sync.WaitGroup
	errc := make(chan error, workers*rounds*8)
	for w := range workers {
		wg.Go(func() {
			number := fmt.Sprintf("%d", 3000+w)
			if err := s.CreateExtension(ctx, ext(number, now())); err != nil {
				errc <- err
				return
			}
			for r := range rounds {
				contact := fmt.Sprintf("sip:%s@192.0.2.%d", number, r)
				steps := []func() error{
					func() error {
						return s.SaveBindings(ctx, []store.Binding{binding(number, contact, exp)})
					},
					func() error {
						id := fmt.Sprintf("w%d-r%d", w, r)
						return s.InsertCallRecords(ctx, []store.CallRecord{callRecord(id, now())})
					},
					func() error {
						return s.InsertEvents(ctx, []store.Event{event("register", number, now())})
					},
					func() error {
						e := ext(number, now())
						e.Name = fmt.Sprintf("round %d", r)
						return s.UpdateExtension(ctx, e)
					},
					func() error { _, err := s.Extension(ctx, number); return err },
					func() error { _, err := s.LoadBindings(ctx, now()); return err },
					func() error { _, err := s.ListEvents(ctx, store.EventFilter{Account: number, Limit: 5}); return err },
					func() error { _, err := s.LastChange(ctx); return err },
				}
				for _, step := range steps {
					if err := step(); err != nil {
						errc <- err
					}
				}
			}
		})
	}
	// A creator and deleter racing the workers on its own extension.
	wg.Go(func() {
		for range rounds {
			if err := s.CreateExtension(ctx, ext("4000", now())); err != nil {
				errc <- err
				return
			}
			if err := s.DeleteExtension(ctx, "4000"); err != nil {
				errc <- err
				return
			}
		}
	})
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}

	bs, err := s.LoadBindings(ctx, now())
	must(t, err)
	if len(bs) != workers*rounds {
		t.Errorf("%d bindings, want %d", len(bs), workers*rounds)
	}
	rs, err := s.ListCallRecords(ctx, store.RecordFilter{})
	must(t, err)
	if len(rs) != workers*rounds {
		t.Errorf("%d call records, want %d", len(rs), workers*rounds)
	}
	es, err := s.ListEvents(ctx, store.EventFilter{})
	must(t, err)
	if len(es) != workers*rounds {
		t.Errorf("%d events, want %d", len(es), workers*rounds)
	}
	if v := version(t, s); v == v0 {
		t.Error("change feed unchanged after concurrent extension writes")
	}
}
