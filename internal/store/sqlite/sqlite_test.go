package sqlite

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/store"
	"github.com/veilig/veilig/internal/store/storetest"
)

func openTemp(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "veilig.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return db, path
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		db, _ := openTemp(t)
		return db
	})
}

func TestOpenFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no unix permissions")
	}
	db, path := openTemp(t)
	defer db.Close()
	if err := db.CreateExtension(t.Context(), store.Extension{Number: "1001"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(p), m)
		}
	}
}

func TestOpenPragmas(t *testing.T) {
	db, _ := openTemp(t)
	defer db.Close()
	ctx := t.Context()
	for _, tc := range []struct {
		pool  string
		query string
		want  string
	}{
		{"writer", "PRAGMA journal_mode", "wal"},
		{"writer", "PRAGMA foreign_keys", "1"},
		{"writer", "PRAGMA synchronous", "1"}, // NORMAL
		{"writer", "PRAGMA busy_timeout", "5000"},
		{"reader", "PRAGMA busy_timeout", "5000"},
		{"reader", "PRAGMA query_only", "1"},
	} {
		p := db.w
		if tc.pool == "reader" {
			p = db.r
		}
		var got string
		if err := p.QueryRowContext(ctx, tc.query).Scan(&got); err != nil {
			t.Fatalf("%s %s: %v", tc.pool, tc.query, err)
		}
		if got != tc.want {
			t.Errorf("%s %s = %s, want %s", tc.pool, tc.query, got, tc.want)
		}
	}
}

func TestOpenBadPath(t *testing.T) {
	for _, p := range []string{"", ":memory:", "x.db?mode=ro", filepath.Join(t.TempDir(), "missing", "x.db")} {
		if db, err := Open(t.Context(), p); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	db, path := openTemp(t)
	ctx := t.Context()
	if err := db.CreateExtension(ctx, store.Extension{Number: "1001", Name: "A"}); err != nil {
		t.Fatal(err)
	}
	v, err := db.LastChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if e, err := db.Extension(ctx, "1001"); err != nil || e.Name != "A" {
		t.Errorf("after reopen: %+v, %v", e, err)
	}
	if v2, err := db.LastChange(ctx); err != nil || v2 != v {
		t.Errorf("LastChange after reopen = %d, %v; want %d", v2, err, v)
	}
	var n int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if ms, _ := loadMigrations(); n != len(ms) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(ms))
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	db, path := openTemp(t)
	if _, err := db.w.ExecContext(t.Context(),
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, '0999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err := Open(t.Context(), path); err == nil {
		db.Close()
		t.Fatal("Open accepted a database from a newer build")
	}
}

// TestTwoHandles opens the same file twice, as the server and a CLI command
// do, and checks each sees the other's commits and change feed.
func TestTwoHandles(t *testing.T) {
	a, path := openTemp(t)
	defer a.Close()
	b, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := t.Context()

	va, err := a.LastChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateExtension(ctx, store.Extension{Number: "1001", Name: "from b"}); err != nil {
		t.Fatal(err)
	}
	va2, err := a.LastChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if va2 == va {
		t.Error("a's LastChange did not move after b created an extension")
	}
	if e, err := a.Extension(ctx, "1001"); err != nil || e.Name != "from b" {
		t.Errorf("a sees %+v, %v", e, err)
	}
	if err := a.UpdateExtension(ctx, store.Extension{Number: "1001", Name: "from a"}); err != nil {
		t.Fatal(err)
	}
	if e, err := b.Extension(ctx, "1001"); err != nil || e.Name != "from a" {
		t.Errorf("b sees %+v, %v", e, err)
	}
	if vb, err := b.LastChange(ctx); err != nil || vb == va2 {
		t.Errorf("b's LastChange = %d, %v; want a change from %d", vb, err, va2)
	}

	// Concurrent writers on both handles queue on the busy timeout rather
	// than fail.
	errc := make(chan error, 2)
	for i, db := range []*DB{a, b} {
		go func() {
			for j := range 50 {
				err := db.InsertEvents(ctx, []store.Event{{Time: time.Now(), Type: "t", Message: fmt.Sprint(i, j)}})
				if err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	if es, err := a.ListEvents(ctx, store.EventFilter{}); err != nil || len(es) != 100 {
		t.Errorf("ListEvents: %d events, %v; want 100", len(es), err)
	}
}

// TestOtherProcess runs a real second process against the file, so file
// locking and WAL sharing are exercised across processes, not just across
// connections of one process.
func TestOtherProcess(t *testing.T) {
	if os.Getenv("VEILIG_SQLITE_CHILD") != "" {
		t.Skip("child")
	}
	db, path := openTemp(t)
	defer db.Close()
	ctx := t.Context()
	v0, err := db.LastChange(ctx)
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestChildProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "VEILIG_SQLITE_CHILD="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}

	v1, err := db.LastChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v1 == v0 {
		t.Error("LastChange unchanged after another process added an extension")
	}
	if e, err := db.Extension(ctx, "7777"); err != nil || e.Name != "child" {
		t.Errorf("extension from child: %+v, %v", e, err)
	}
}

// TestChildProcess is the second process of TestOtherProcess.
func TestChildProcess(t *testing.T) {
	path := os.Getenv("VEILIG_SQLITE_CHILD")
	if path == "" {
		t.Skip("only run by TestOtherProcess")
	}
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.CreateExtension(t.Context(), store.Extension{Number: "7777", Name: "child"}); err != nil {
		t.Fatal(err)
	}
}

func TestSaveBindingsForeignKeyCascade(t *testing.T) {
	db, _ := openTemp(t)
	defer db.Close()
	ctx := t.Context()
	if err := db.CreateExtension(ctx, store.Extension{Number: "1001"}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveBindings(ctx, []store.Binding{{Number: "1001", Contact: "sip:a@x", Expires: time.Now().Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	// Deleting through SQL directly (as an operator might) still cascades.
	if _, err := db.w.ExecContext(ctx, `DELETE FROM extensions WHERE number = '1001'`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM bindings`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d bindings left after direct delete, want 0", n)
	}
}

func TestErrorsAreSentinels(t *testing.T) {
	db, _ := openTemp(t)
	defer db.Close()
	_, err := db.Extension(t.Context(), "nope")
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
}

func BenchmarkSaveBindings1000(b *testing.B) {
	db, _ := openTemp(b)
	defer db.Close()
	ctx := context.Background()
	const exts = 100
	for i := range exts {
		if err := db.CreateExtension(ctx, store.Extension{Number: fmt.Sprint(1000 + i)}); err != nil {
			b.Fatal(err)
		}
	}
	bs := make([]store.Binding, 1000)
	exp := time.Now().Add(time.Hour)
	for i := range bs {
		bs[i] = store.Binding{
			Number:    fmt.Sprint(1000 + i%exts),
			Contact:   fmt.Sprintf("sip:%d@192.0.2.%d:5060;transport=tls", 1000+i%exts, i/exts),
			Source:    netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 5061),
			Transport: "tls",
			ConnID:    fmt.Sprint("conn-", i),
			CallID:    fmt.Sprint("call-", i),
			CSeq:      uint32(i),
			UserAgent: "Bench/1.0",
			Expires:   exp,
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		for i := range bs {
			bs[i].CSeq++
		}
		if err := db.SaveBindings(ctx, bs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/binding")
}
