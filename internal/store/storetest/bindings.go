package storetest

import (
	"net/netip"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/store"
)

func binding(number, contact string, expires time.Time) store.Binding {
	return store.Binding{
		Number:    number,
		Contact:   contact,
		Source:    netip.MustParseAddrPort("192.0.2.10:5061"),
		Transport: "tls",
		ConnID:    "conn-" + contact,
		CallID:    "call-" + number,
		CSeq:      1,
		UserAgent: "Test/1.0",
		Expires:   expires,
		UpdatedAt: now(),
	}
}

func equalBinding(a, b store.Binding) bool {
	return a.Number == b.Number && a.Contact == b.Contact && a.Source == b.Source &&
		a.Transport == b.Transport && a.ConnID == b.ConnID && a.CallID == b.CallID &&
		a.CSeq == b.CSeq && a.UserAgent == b.UserAgent &&
		a.Expires.Equal(b.Expires) && a.UpdatedAt.Equal(b.UpdatedAt)
}

// bindingsByKey loads the unexpired bindings keyed by number and contact,
// since the contract fixes no order for LoadBindings.
func bindingsByKey(t *testing.T, s store.Store, at time.Time) map[[2]string]store.Binding {
	t.Helper()
	bs, err := s.LoadBindings(t.Context(), at)
	must(t, err)
	m := make(map[[2]string]store.Binding, len(bs))
	for _, b := range bs {
		k := [2]string{b.Number, b.Contact}
		if _, dup := m[k]; dup {
			t.Errorf("LoadBindings returned %v twice", k)
		}
		m[k] = b
	}
	return m
}

func testBindingUpsert(t *testing.T, s store.Store) {
	ctx := t.Context()
	createExt(t, s, "1001", "1002")
	exp := now().Add(time.Hour)
	a := binding("1001", "sip:1001@192.0.2.1:5060", exp)
	b := binding("1001", "sip:1001@192.0.2.2:5060", exp)
	c := binding("1002", "sip:1001@192.0.2.1:5060", exp) // same contact, other number
	must(t, s.SaveBindings(ctx, []store.Binding{a, b, c}))

	got := bindingsByKey(t, s, now())
	if len(got) != 3 {
		t.Fatalf("LoadBindings returned %d bindings, want 3", len(got))
	}
	for _, w := range []store.Binding{a, b, c} {
		if g := got[[2]string{w.Number, w.Contact}]; !equalBinding(g, w) {
			t.Errorf("binding = %+v, want %+v", g, w)
		}
	}

	// Re-registering the same contact replaces the row.
	a2 := a
	a2.Source = netip.MustParseAddrPort("198.51.100.7:40000")
	a2.Transport = "tcp"
	a2.ConnID = "conn-new"
	a2.CallID = "call-new"
	a2.CSeq = 2
	a2.UserAgent = "Test/2.0"
	a2.Expires = exp.Add(time.Hour)
	a2.UpdatedAt = now().Add(time.Second)
	must(t, s.SaveBindings(ctx, []store.Binding{a2}))
	got = bindingsByKey(t, s, now())
	if len(got) != 3 {
		t.Fatalf("after upsert LoadBindings returned %d bindings, want 3", len(got))
	}
	if g := got[[2]string{a.Number, a.Contact}]; !equalBinding(g, a2) {
		t.Errorf("upserted binding = %+v, want %+v", g, a2)
	}

	// The last write of a key within one batch wins.
	a3 := a2
	a3.CSeq = 3
	must(t, s.SaveBindings(ctx, []store.Binding{a2, a3}))
	if g := bindingsByKey(t, s, now())[[2]string{a.Number, a.Contact}]; g.CSeq != 3 {
		t.Errorf("after batch with two writes of one key, CSeq = %d, want 3", g.CSeq)
	}
}

func testBindingFields(t *testing.T, s store.Store) {
	ctx := t.Context()
	createExt(t, s, "1001")
	exp := now().Add(time.Hour)
	v6 := binding("1001", "sip:1001@[2001:db8::1]:5060;transport=tcp", exp)
	v6.Source = netip.MustParseAddrPort("[2001:db8::1]:5060")
	v6.CSeq = 1<<32 - 1
	unset := binding("1001", "sip:1001@example.test", exp)
	unset.Source = netip.AddrPort{}
	unset.ConnID, unset.CallID, unset.UserAgent, unset.Transport = "", "", "", "udp"
	far := binding("1001", "sip:far@example.test", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
	must(t, s.SaveBindings(ctx, []store.Binding{v6, unset, far}))

	got := bindingsByKey(t, s, now())
	for _, w := range []store.Binding{v6, unset} {
		if g := got[[2]string{w.Number, w.Contact}]; !equalBinding(g, w) {
			t.Errorf("binding = %+v, want %+v", g, w)
		}
	}
	// A far-future expiry may be clamped but must stay unexpired.
	if _, ok := got[[2]string{far.Number, far.Contact}]; !ok {
		t.Error("binding expiring in year 9999 is not loaded")
	}
}

func testBindingExpiry(t *testing.T, s store.Store) {
	ctx := t.Context()
	createExt(t, s, "1001")
	n := now()
	short := binding("1001", "sip:short@192.0.2.1", n.Add(time.Minute))
	long := binding("1001", "sip:long@192.0.2.1", n.Add(time.Hour))
	must(t, s.SaveBindings(ctx, []store.Binding{short, long}))

	// LoadBindings judges expiry by the time it is given.
	if got := bindingsByKey(t, s, n.Add(2*time.Minute)); len(got) != 1 {
		t.Errorf("LoadBindings(now+2m) returned %d bindings, want 1", len(got))
	} else if _, ok := got[[2]string{long.Number, long.Contact}]; !ok {
		t.Errorf("LoadBindings(now+2m) = %v, want the long binding", got)
	}
	if got := bindingsByKey(t, s, n.Add(2*time.Hour)); len(got) != 0 {
		t.Errorf("LoadBindings(now+2h) returned %d bindings, want 0", len(got))
	}

	// Saving a zero or past Expires removes the row (an unREGISTER).
	zero := short
	zero.Expires = time.Time{}
	past := long
	past.Expires = n.Add(-time.Second)
	fresh := binding("1001", "sip:fresh@192.0.2.1", n.Add(time.Hour))
	must(t, s.SaveBindings(ctx, []store.Binding{zero, past, fresh}))
	got := bindingsByKey(t, s, n)
	if len(got) != 1 {
		t.Errorf("after expiring two, LoadBindings returned %d bindings, want 1: %v", len(got), got)
	}
	if _, ok := got[[2]string{fresh.Number, fresh.Contact}]; !ok {
		t.Error("fresh binding missing")
	}

	// An expired binding for a contact never stored is not an error.
	gone := binding("1001", "sip:never@192.0.2.1", n.Add(-time.Hour))
	must(t, s.SaveBindings(ctx, []store.Binding{gone}))
}

func testBindingUnknownExtension(t *testing.T, s store.Store) {
	ctx := t.Context()
	createExt(t, s, "1001")
	exp := now().Add(time.Hour)
	err := s.SaveBindings(ctx, []store.Binding{
		binding("1001", "sip:ok@192.0.2.1", exp),
		binding("9999", "sip:orphan@192.0.2.1", exp),
	})
	if err != nil {
		t.Fatalf("SaveBindings with an unknown extension: %v, want it skipped", err)
	}
	got := bindingsByKey(t, s, now())
	if len(got) != 1 {
		t.Errorf("LoadBindings returned %d bindings, want 1: %v", len(got), got)
	}
	if _, ok := got[[2]string{"9999", "sip:orphan@192.0.2.1"}]; ok {
		t.Error("binding for unknown extension was stored")
	}
}

func testBindingDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	createExt(t, s, "1001")
	exp := now().Add(time.Hour)
	must(t, s.SaveBindings(ctx, []store.Binding{
		binding("1001", "sip:a@192.0.2.1", exp),
		binding("1001", "sip:b@192.0.2.1", exp),
	}))
	must(t, s.DeleteBinding(ctx, "1001", "sip:a@192.0.2.1"))
	got := bindingsByKey(t, s, now())
	if len(got) != 1 {
		t.Errorf("after DeleteBinding, %d bindings, want 1", len(got))
	}
	wantErr(t, "DeleteBinding(missing)", s.DeleteBinding(ctx, "1001", "sip:a@192.0.2.1"), store.ErrNotFound)
	wantErr(t, "DeleteBinding(unknown extension)", s.DeleteBinding(ctx, "9999", "sip:b@192.0.2.1"), store.ErrNotFound)
}
