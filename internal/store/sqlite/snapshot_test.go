package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/veilig/veilig/internal/store"
)

// TestSnapshotWhileWriting takes snapshots while another process-like
// writer (a second DB handle on the same file, as the server is to the
// CLI) keeps adding extensions: each snapshot opens, passes the integrity
// check, and holds at least every row committed before it began.
func TestSnapshotWhileWriting(t *testing.T) {
	ctx := t.Context()
	db, path := openTemp(t)
	defer db.Close()
	writer, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()

	var (
		mu        sync.Mutex
		committed int
		wg        sync.WaitGroup
	)
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 5000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := writer.CreateExtension(ctx, store.Extension{Number: fmt.Sprintf("%d", 10000+i)}); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			committed = i + 1
			mu.Unlock()
		}
	}()
	dir := t.TempDir()
	for n := range 5 {
		mu.Lock()
		before := committed
		mu.Unlock()
		out := filepath.Join(dir, fmt.Sprintf("snap%d.db", n))
		if err := db.Snapshot(ctx, out); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(out)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("snapshot mode %v, want 0600", m)
		}
		snap, err := Open(context.Background(), out)
		if err != nil {
			t.Fatal(err)
		}
		if err := snap.Check(ctx); err != nil {
			t.Error(err)
		}
		exts, err := snap.ListExtensions(ctx)
		snap.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(exts) < before {
			t.Errorf("snapshot %d holds %d extensions, %d were committed before it began", n, len(exts), before)
		}
	}
	close(stop)
	wg.Wait()
}

func TestSnapshotRefusesExistingFile(t *testing.T) {
	db, _ := openTemp(t)
	defer db.Close()
	out := filepath.Join(t.TempDir(), "exists.db")
	if err := os.WriteFile(out, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := db.Snapshot(t.Context(), out); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Snapshot onto an existing file: %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "keep me" {
		t.Error("existing file was changed")
	}
}

func TestCheckFindsCorruption(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	for i := range 200 {
		if err := db.CreateExtension(ctx, store.Extension{Number: fmt.Sprintf("%d", 2000+i), Name: "padding padding padding"}); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "c.db")
	if err := db.Snapshot(ctx, out); err != nil {
		t.Fatal(err)
	}
	db.Close()
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// Scribble over the b-tree header of every page after the first.
	const page = 4096
	for off := page; off+16 <= len(b); off += page {
		for i := off; i < off+16; i++ {
			b[i] = 0x5a
		}
	}
	if err := os.WriteFile(out, b, 0o600); err != nil {
		t.Fatal(err)
	}
	snap, err := Open(ctx, out)
	if err != nil {
		return // refusing to open is as good as failing the check
	}
	defer snap.Close()
	if err := snap.Check(ctx); err == nil {
		t.Error("integrity check passed on a scribbled file")
	}
}
