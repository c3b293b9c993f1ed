package storetest

import (
	"bytes"
	"fmt"
	"net/netip"
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

func testChanges(t *testing.T, s store.Store) {
	ctx := t.Context()
	v0 := version(t, s)
	if v := version(t, s); v != v0 {
		t.Fatalf("LastChange moved without writes: %d then %d", v0, v)
	}
	must(t, s.CreateExtension(ctx, ext("1001", now())))
	v1 := version(t, s)
	if v1 <= v0 {
		t.Error("LastChange did not move with CreateExtension")
	}
	if _, err := s.Extension(ctx, "1001"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListExtensions(ctx); err != nil {
		t.Fatal(err)
	}
	if v := version(t, s); v != v1 {
		t.Errorf("LastChange moved with reads: %d then %d", v1, v)
	}
	u := ext("1001", now())
	u.Name = "changed"
	must(t, s.UpdateExtension(ctx, u))
	must(t, s.SaveBan(ctx, store.Ban{Addr: netip.MustParseAddr("192.0.2.7"), Rule: "manual", Start: now(), End: now().Add(time.Hour)}))
	must(t, s.SaveLock(ctx, store.Lock{Account: "1001", Until: now().Add(time.Hour)}))
	must(t, s.SaveSuspension(ctx, store.Suspension{Extension: "1001", Reason: "r", Since: now()}))
	must(t, s.SaveTrunk(ctx, store.Trunk{Name: "carrier"}))
	must(t, s.DeleteBan(ctx, netip.MustParseAddr("192.0.2.7")))
	must(t, s.DeleteExtension(ctx, "1001"))
	// Rows that are not mirrored in memory do not feed it.
	must(t, s.InsertEvents(ctx, []store.Event{event("x", "", now())}))

	cs, err := s.Changes(ctx, v0, 0)
	must(t, err)
	var got []string
	last := v0
	for _, c := range cs {
		got = append(got, c.Topic+":"+c.Key)
		if c.Seq <= last {
			t.Errorf("change %+v: Seq not increasing (after %d)", c, last)
		}
		if c.At.IsZero() || time.Since(c.At) > time.Minute {
			t.Errorf("change %+v: At is not the commit time", c)
		}
		last = c.Seq
	}
	want := "[extension:1001 extension:1001 ban:192.0.2.7 lock:1001 suspension:1001 trunk:carrier ban:192.0.2.7 extension:1001]"
	if fmt.Sprint(got) != want {
		t.Errorf("Changes = %v, want %v", got, want)
	}
	if v := version(t, s); v != last {
		t.Errorf("LastChange = %d, want the last change's Seq %d", v, last)
	}
	cs, err = s.Changes(ctx, v0, 2)
	must(t, err)
	if len(cs) != 2 {
		t.Errorf("Changes(limit 2) returned %d", len(cs))
	}
	cs, err = s.Changes(ctx, last, 0)
	must(t, err)
	if len(cs) != 0 {
		t.Errorf("Changes after the last = %+v, want none", cs)
	}
	// Purging old changes never moves the sequence back.
	n, err := s.PurgeChanges(ctx, now().Add(time.Hour), 100)
	must(t, err)
	if n != 8 {
		t.Errorf("PurgeChanges deleted %d, want 8", n)
	}
	if v := version(t, s); v != last {
		t.Errorf("LastChange after a purge = %d, want %d", v, last)
	}
	createExt(t, s, "1002")
	if v := version(t, s); v <= last {
		t.Errorf("LastChange after a purge and a write = %d, want > %d", v, last)
	}
}
