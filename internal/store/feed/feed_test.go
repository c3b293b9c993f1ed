package feed

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/store"
	"github.com/veilig/veilig/internal/store/sqlite"
)

type got struct {
	mu   sync.Mutex
	keys []string
}

func (g *got) handle(_ context.Context, keys []string) {
	g.mu.Lock()
	g.keys = append(g.keys, keys...)
	g.mu.Unlock()
}

func (g *got) list() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.keys)
}

func open(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestSyncDeliversCommittedChangesByTopic(t *testing.T) {
	db := open(t)
	ctx := t.Context()
	// A change before the feed starts is not delivered: subscribers load
	// what is stored themselves.
	if err := db.CreateExtension(ctx, store.Extension{Number: "1000"}); err != nil {
		t.Fatal(err)
	}
	f, err := New(ctx, db, time.Hour, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var exts, bans got
	f.Subscribe(store.TopicExtension, exts.handle)
	f.Subscribe(store.TopicBan, bans.handle)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go f.Run(rctx)

	for _, n := range []string{"1001", "1002"} {
		if err := db.CreateExtension(ctx, store.Extension{Number: n}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.UpdateExtension(ctx, store.Extension{Number: "1001", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	f.Sync(ctx)
	if g := exts.list(); !slices.Equal(g, []string{"1001", "1002"}) {
		t.Errorf("extension keys = %v, want [1001 1002] (each key once per poll)", g)
	}
	if len(bans.list()) != 0 {
		t.Errorf("ban subscriber got %v", bans.list())
	}
}

func TestPollPicksUpOtherWriters(t *testing.T) {
	db := open(t)
	ctx := t.Context()
	f, err := New(ctx, db, 20*time.Millisecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var locks got
	f.Subscribe(store.TopicLock, locks.handle)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go f.Run(rctx)
	if err := db.SaveLock(ctx, store.Lock{Account: "1001", Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(locks.list()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if g := locks.list(); !slices.Equal(g, []string{"1001"}) {
		t.Errorf("lock keys = %v, want [1001] from the periodic poll", g)
	}
}

func TestLostChangesReloadAll(t *testing.T) {
	db := open(t)
	ctx := t.Context()
	if err := db.SaveTrunk(ctx, store.Trunk{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	f, err := New(ctx, db, time.Hour, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var trunks got
	f.Subscribe(store.TopicTrunk, trunks.handle)
	for _, n := range []string{"b", "c"} {
		if err := db.SaveTrunk(ctx, store.Trunk{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	// The feed falls behind and the retention job purges what it missed.
	if _, err := db.PurgeChanges(ctx, time.Now().Add(time.Hour), 2); err != nil {
		t.Fatal(err)
	}
	f.poll(ctx)
	if g := trunks.list(); len(g) == 0 || g[0] != All {
		t.Errorf("after losing changes the subscriber got %v, want a reload-all first", g)
	}
}
