package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/store"
)

func equalExt(a, b store.Extension) bool {
	return a.Number == b.Number && a.Name == b.Name && a.Realm == b.Realm &&
		bytes.Equal(a.HA1MD5, b.HA1MD5) && bytes.Equal(a.HA1SHA256, b.HA1SHA256) &&
		a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}

func testExtensionCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	e := ext("1001", now().Add(-time.Hour))
	e.UpdatedAt = e.CreatedAt.Add(time.Minute)
	must(t, s.CreateExtension(ctx, e))

	got, err := s.Extension(ctx, "1001")
	must(t, err)
	if !equalExt(got, e) {
		t.Errorf("Extension = %+v, want %+v", got, e)
	}

	_, err = s.Extension(ctx, "1002")
	wantErr(t, "Extension(missing)", err, store.ErrNotFound)

	dup := ext("1001", now())
	dup.Name = "impostor"
	wantErr(t, "CreateExtension(duplicate)", s.CreateExtension(ctx, dup), store.ErrExists)
	got, err = s.Extension(ctx, "1001")
	must(t, err)
	if got.Name != e.Name {
		t.Errorf("failed duplicate create changed the row: Name = %q", got.Name)
	}
}

func testExtensionCreateDefaultsTimes(t *testing.T, s store.Store) {
	ctx := t.Context()
	before := now()
	e := ext("1001", time.Time{})
	e.HA1MD5 = nil // an extension may have SHA-256 only
	must(t, s.CreateExtension(ctx, e))
	got, err := s.Extension(ctx, "1001")
	must(t, err)
	if got.CreatedAt.Before(before) || got.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("zero CreatedAt became %v, want about now (%v)", got.CreatedAt, before)
	}
	if got.UpdatedAt.IsZero() {
		t.Error("zero UpdatedAt stayed zero on create")
	}
	if len(got.HA1MD5) != 0 {
		t.Errorf("HA1MD5 = %q, want empty", got.HA1MD5)
	}
}

func testExtensionCreateInvalid(t *testing.T, s store.Store) {
	if err := s.CreateExtension(t.Context(), ext("", now())); err == nil {
		t.Error("CreateExtension with empty Number succeeded")
	}
}

func testExtensionUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	created := now().Add(-time.Hour)
	must(t, s.CreateExtension(ctx, ext("1001", created)))

	u := store.Extension{
		Number:    "1001",
		Name:      "Renamed",
		Realm:     "other.test",
		HA1MD5:    []byte("new-md5"),
		HA1SHA256: []byte("new-sha256"),
		CreatedAt: now(), // ignored: creation time is kept
		UpdatedAt: now(),
	}
	must(t, s.UpdateExtension(ctx, u))
	got, err := s.Extension(ctx, "1001")
	must(t, err)
	want := u
	want.CreatedAt = created
	if !equalExt(got, want) {
		t.Errorf("after update = %+v, want %+v", got, want)
	}

	u.UpdatedAt = time.Time{}
	must(t, s.UpdateExtension(ctx, u))
	got, err = s.Extension(ctx, "1001")
	must(t, err)
	if got.UpdatedAt.IsZero() {
		t.Error("zero UpdatedAt stayed zero on update")
	}

	wantErr(t, "UpdateExtension(missing)", s.UpdateExtension(ctx, ext("1002", now())), store.ErrNotFound)
	if _, err := s.Extension(ctx, "1002"); err == nil {
		t.Error("UpdateExtension(missing) created the row")
	}
}

func testExtensionList(t *testing.T, s store.Store) {
	ctx := t.Context()
	es, err := s.ListExtensions(ctx)
	must(t, err)
	if len(es) != 0 {
		t.Fatalf("empty store lists %d extensions", len(es))
	}
	at := now()
	for _, n := range []string{"1003", "1001", "2000", "1002"} {
		must(t, s.CreateExtension(ctx, ext(n, at)))
	}
	es, err = s.ListExtensions(ctx)
	must(t, err)
	want := []string{"1001", "1002", "1003", "2000"}
	if len(es) != len(want) {
		t.Fatalf("ListExtensions returned %d rows, want %d", len(es), len(want))
	}
	for i, e := range es {
		if e.Number != want[i] {
			t.Errorf("ListExtensions[%d] = %s, want %s (ordered by Number)", i, e.Number, want[i])
		}
		if !equalExt(e, ext(want[i], at)) {
			t.Errorf("ListExtensions[%d] = %+v, want %+v", i, e, ext(want[i], at))
		}
	}
}

func testExtensionDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	createExt(t, s, "1001", "1002")
	exp := now().Add(time.Hour)
	must(t, s.SaveBindings(ctx, []store.Binding{
		binding("1001", "sip:a@192.0.2.1", exp),
		binding("1001", "sip:b@192.0.2.2", exp),
		binding("1002", "sip:c@192.0.2.3", exp),
	}))

	must(t, s.DeleteExtension(ctx, "1001"))
	_, err := s.Extension(ctx, "1001")
	wantErr(t, "Extension(deleted)", err, store.ErrNotFound)
	bs, err := s.LoadBindings(ctx, now())
	must(t, err)
	if len(bs) != 1 || bs[0].Number != "1002" {
		t.Errorf("after delete, bindings = %+v, want only 1002's", bs)
	}
	wantErr(t, "DeleteExtension(again)", s.DeleteExtension(ctx, "1001"), store.ErrNotFound)

	// The number can be reused, and the old bindings do not come back.
	createExt(t, s, "1001")
	bs, err = s.LoadBindings(ctx, now())
	must(t, err)
	if len(bs) != 1 {
		t.Errorf("recreated extension resurrected bindings: %+v", bs)
	}
}

func testVersion(t *testing.T, s store.Store) {
	ctx := t.Context()
	v0 := version(t, s)
	if v := version(t, s); v != v0 {
		t.Fatalf("Version changed without writes: %d then %d", v0, v)
	}
	must(t, s.CreateExtension(ctx, ext("1001", now())))
	v1 := version(t, s)
	if v1 == v0 {
		t.Error("Version unchanged by CreateExtension")
	}
	if _, err := s.Extension(ctx, "1001"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListExtensions(ctx); err != nil {
		t.Fatal(err)
	}
	if v := version(t, s); v != v1 {
		t.Errorf("Version changed by reads: %d then %d", v1, v)
	}
	u := ext("1001", now())
	u.Name = "changed"
	must(t, s.UpdateExtension(ctx, u))
	v2 := version(t, s)
	if v2 == v1 {
		t.Error("Version unchanged by UpdateExtension")
	}
	must(t, s.DeleteExtension(ctx, "1001"))
	v3 := version(t, s)
	if v3 == v2 || v3 == v1 {
		t.Errorf("Version after DeleteExtension = %d, seen before (%d, %d)", v3, v1, v2)
	}
}
