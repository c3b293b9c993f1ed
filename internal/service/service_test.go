package service_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/call"
	"github.com/veilig/veilig/internal/config"
	"github.com/veilig/veilig/internal/datakey"
	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/policy"
	"github.com/veilig/veilig/internal/service"
	"github.com/veilig/veilig/internal/store"
	"github.com/veilig/veilig/internal/store/sqlite"
)

const goodSecret = "Chosen-Secret-42!"

type fixture struct {
	t      *testing.T
	st     store.Store
	svc    *service.Service
	owner  service.Caller
	events *recorder
	synced int
	path   string
}

// exec runs SQL on the database file behind the store, as an attacker
// with the file would.
func (f *fixture) exec(q string) {
	f.t.Helper()
	db, err := sql.Open("sqlite", f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(q); err != nil {
		f.t.Fatalf("%s: %v", q, err)
	}
}

type recorder struct {
	mu sync.Mutex
	es []events.Event
}

func (r *recorder) Emit(e events.Event)      { r.mu.Lock(); r.es = append(r.es, e); r.mu.Unlock() }
func (r *recorder) Record(events.CallRecord) {}
func (r *recorder) all() []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Event(nil), r.es...)
}
func (f *fixture) as(a service.Actor) service.Caller { return service.Local{S: f.svc, Actor: a} }

func newFixture(t *testing.T, live ...func(*service.Deps)) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "veilig.db")
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	raw := make([]byte, 32)
	key, err := datakey.New(raw)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.SIP.Domain = "pbx.test"
	f := &fixture{t: t, st: st, events: &recorder{}, path: path}
	d := service.Deps{Store: st, Key: key, Config: &cfg, Events: f.events, Changed: func(context.Context) { f.synced++ }}
	for _, l := range live {
		l(&d)
	}
	f.svc = service.New(d)
	f.owner = f.as(service.Actor{Name: "root", Role: service.RoleOwner, Channel: service.CLI, Source: "unix:uid=0"})
	return f
}

func wantKind(t *testing.T, err error, k service.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", k)
	}
	if got := service.KindOf(err); got != k {
		t.Fatalf("error %q is %s, want %s", err, got, k)
	}
}

func (f *fixture) audit() []store.AuditEntry {
	f.t.Helper()
	es, err := f.st.ScanAudit(f.t.Context(), 0, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	return es
}

func TestAddExtensionGeneratesSecretAndAudits(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	res, err := service.OpAddExtension.Call(ctx, f.owner, service.AddExtensionRequest{Number: "1001", Name: "Anna"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Secret) != 32 || res.Realm != "pbx.test" || res.Extension.Number != "1001" {
		t.Errorf("result = %+v, want a generated 32-character secret in pbx.test", res)
	}
	x, err := f.st.Extension(ctx, "1001")
	if err != nil || x.Name != "Anna" || len(x.HA1SHA256) == 0 {
		t.Fatalf("stored extension %+v, %v", x, err)
	}
	as := f.audit()
	if len(as) != 1 {
		t.Fatalf("%d audit entries, want 1", len(as))
	}
	a := as[0]
	if a.Action != "extension.create" || a.Target != "1001" || a.Actor != "root" || a.Channel != "cli" || a.Role != "owner" ||
		a.Source != "unix:uid=0" || a.Before != "" || a.Seq != 1 || a.PrevHash != strings.Repeat("0", 64) || a.Hash == "" || len(a.Hash) != 64 {
		t.Errorf("audit entry = %+v", a)
	}
	if strings.Contains(a.After, res.Secret) || !strings.Contains(a.After, `"secret":"hmac-sha256:`) {
		t.Errorf("audit After must hold a keyed hash of the secret, never the secret: %s", a.After)
	}
	if f.synced != 1 {
		t.Errorf("Changed called %d times, want 1 (the running server applies the change before the call returns)", f.synced)
	}
	evs := f.events.all()
	if len(evs) != 1 || evs[0].Type != "admin.change" || evs[0].Fields["action"] != "extension.create" || evs[0].Fields["audit_seq"] != "1" {
		t.Errorf("events = %+v, want one admin.change", evs)
	}
}

func TestErrorKinds(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	_, err := service.OpAddExtension.Call(ctx, f.owner, service.AddExtensionRequest{Number: "bad number"})
	wantKind(t, err, service.Invalid)
	var se *service.Error
	if !errors.As(err, &se) || se.Field != "number" {
		t.Errorf("invalid number error names field %q, want number", se.Field)
	}
	_, err = service.OpAddExtension.Call(ctx, f.owner, service.AddExtensionRequest{Number: "1001", Secret: "short"})
	wantKind(t, err, service.Invalid)
	if !errors.As(err, &se) || se.Field != "secret" {
		t.Errorf("weak secret error names field %q, want secret", se.Field)
	}
	if _, err := service.OpAddExtension.Call(ctx, f.owner, service.AddExtensionRequest{Number: "1001", Secret: goodSecret}); err != nil {
		t.Fatal(err)
	}
	_, err = service.OpAddExtension.Call(ctx, f.owner, service.AddExtensionRequest{Number: "1001"})
	wantKind(t, err, service.Conflict)
	if !errors.Is(err, service.ErrConflict) {
		t.Error("errors.Is(err, ErrConflict) is false")
	}
	_, err = service.OpRemoveExtension.Call(ctx, f.owner, service.ExtensionRequest{Number: "9999"})
	wantKind(t, err, service.NotFound)
	if !strings.Contains(err.Error(), "9999 does not exist") {
		t.Errorf("not-found message %q does not name the extension", err)
	}
	// Unlock of a missing extension says so, not "not locked".
	_, err = service.OpUnlock.Call(ctx, f.owner, service.ExtensionRequest{Number: "9999"})
	wantKind(t, err, service.NotFound)
	if !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("unlock of a missing extension: %q", err)
	}
	_, err = service.OpUnlock.Call(ctx, f.owner, service.ExtensionRequest{Number: "1001"})
	wantKind(t, err, service.NotFound)
	if !strings.Contains(err.Error(), "not locked") {
		t.Errorf("unlock of an unlocked extension: %q", err)
	}
	// Lift of an extension never suspended writes nothing.
	_, err = service.OpLift.Call(ctx, f.owner, service.ExtensionRequest{Number: "1001"})
	wantKind(t, err, service.NotFound)
	if len(f.audit()) != 1 || len(f.events.all()) != 1 {
		t.Errorf("failed operations left audit entries or events: %d, %d", len(f.audit()), len(f.events.all()))
	}
	_, err = service.OpHangup.Call(ctx, f.owner, service.CallRequest{ID: "x"})
	wantKind(t, err, service.Unavailable)
	_, err = service.OpAddBan.Call(ctx, f.owner, service.AddBanRequest{Addr: "not-an-ip"})
	wantKind(t, err, service.Invalid)
	_, err = service.OpEvents.Call(ctx, f.owner, service.EventsRequest{Limit: 100001})
	wantKind(t, err, service.Invalid)
}

func TestForbiddenRoles(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	auditor := f.as(service.Actor{Name: "eve", Role: service.RoleAuditor, Channel: service.API})
	_, err := service.OpAddExtension.Call(ctx, auditor, service.AddExtensionRequest{Number: "1001"})
	wantKind(t, err, service.Forbidden)
	if _, err := service.OpAudit.Call(ctx, auditor, service.AuditRequest{}); err != nil {
		t.Errorf("auditor reading the audit log: %v", err)
	}
	agent := f.as(service.Actor{Name: "anna", Role: service.RoleAgent, Channel: service.Panel, Extension: "1001"})
	_, err = service.OpListBans.Call(ctx, agent, struct{}{})
	wantKind(t, err, service.Forbidden)
	for _, n := range []string{"1001", "1002"} {
		if _, err := service.OpAddExtension.Call(ctx, f.owner, service.AddExtensionRequest{Number: n}); err != nil {
			t.Fatal(err)
		}
	}
	xs, err := service.OpListExtensions.Call(ctx, agent, service.ListExtensionsRequest{})
	if err != nil || len(xs) != 1 || xs[0].Number != "1001" {
		t.Errorf("agent lists %+v, %v; want only their own extension", xs, err)
	}
	_, err = service.OpGetExtension.Call(ctx, agent, service.ExtensionRequest{Number: "1002"})
	wantKind(t, err, service.Forbidden)
	if len(f.audit()) != 2 {
		t.Errorf("refused operations were audited: %d entries", len(f.audit()))
	}
}

func TestSetExtensionBeforeAndAfter(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	if _, err := service.OpAddExtension.Call(ctx, f.owner, service.AddExtensionRequest{Number: "1003"}); err != nil {
		t.Fatal(err)
	}
	allow := []string{"192.0.2.0/24", "198.51.100.7"}
	class := "international"
	cids := []string{"+31205550000"}
	x, err := service.OpSetExtension.Call(ctx, f.owner, service.SetExtensionRequest{Number: "1003", AllowFrom: &allow, Class: &class, CallerIDs: &cids})
	if err != nil {
		t.Fatal(err)
	}
	if len(x.AllowFrom) != 2 || x.AllowFrom[1] != netip.MustParsePrefix("198.51.100.7/32") || x.Class != "international" || x.CallerIDs[0] != "+31205550000" {
		t.Errorf("result = %+v", x)
	}
	as := f.audit()
	last := as[len(as)-1]
	var before, after map[string]any
	_ = json.Unmarshal([]byte(last.Before), &before)
	_ = json.Unmarshal([]byte(last.After), &after)
	if before["class"] != "" || after["class"] != "international" || before["secret"] != after["secret"] || before["secret"] == "" {
		t.Errorf("before %v / after %v: class must change, the secret's hash must not", before, after)
	}
	if last.PrevHash != as[len(as)-2].Hash {
		t.Error("entries are not chained")
	}
	bad := "gold"
	_, err = service.OpSetExtension.Call(ctx, f.owner, service.SetExtensionRequest{Number: "1003", Class: &bad})
	wantKind(t, err, service.Invalid)
	_, err = service.OpSetExtension.Call(ctx, f.owner, service.SetExtensionRequest{Number: "1003"})
	wantKind(t, err, service.Invalid)
	// Changing the secret changes its hash in the log.
	if _, err := service.OpSetSecret.Call(ctx, f.owner, service.SetSecretRequest{Number: "1003"}); err != nil {
		t.Fatal(err)
	}
	as = f.audit()
	_ = json.Unmarshal([]byte(as[len(as)-1].Before), &before)
	_ = json.Unmarshal([]byte(as[len(as)-1].After), &after)
	if before["secret"] == after["secret"] {
		t.Error("a new secret redacts to the same hash as the old one")
	}
}

func TestBansLocksSuspensions(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	b, err := service.OpAddBan.Call(ctx, f.owner, service.AddBanRequest{Addr: "::ffff:203.0.113.9", For: 2 * time.Hour, Reason: "probing"})
	if err != nil {
		t.Fatal(err)
	}
	if b.Addr != "203.0.113.9" || b.Network || b.Rule != "manual" || b.End.Sub(b.Start) != 2*time.Hour {
		t.Errorf("ban = %+v", b)
	}
	nb, err := service.OpAddBan.Call(ctx, f.owner, service.AddBanRequest{Addr: "198.51.100.77/24"})
	if err != nil {
		t.Fatalf("ban of a network: %v", err)
	}
	if nb.Addr != "198.51.100.0/24" || !nb.Network {
		t.Errorf("network ban = %+v, want the masked network", nb)
	}
	for _, broad := range []string{"0.0.0.0/0", "10.0.0.0/7", "2001:db8::/31"} {
		_, err = service.OpAddBan.Call(ctx, f.owner, service.AddBanRequest{Addr: broad})
		wantKind(t, err, service.Invalid)
	}
	_, err = service.OpAddBan.Call(ctx, f.owner, service.AddBanRequest{Addr: "not-an-address"})
	wantKind(t, err, service.Invalid)
	bans, _ := service.OpListBans.Call(ctx, f.owner, struct{}{})
	if len(bans) != 2 {
		t.Fatalf("bans = %+v", bans)
	}
	if _, err := service.OpRemoveBan.Call(ctx, f.owner, service.AddrRequest{Addr: "198.51.100.0/24"}); err != nil {
		t.Fatalf("lift a network ban: %v", err)
	}
	if _, err := service.OpRemoveBan.Call(ctx, f.owner, service.AddrRequest{Addr: "203.0.113.9"}); err != nil {
		t.Fatal(err)
	}
	_, err = service.OpRemoveBan.Call(ctx, f.owner, service.AddrRequest{Addr: "203.0.113.9"})
	wantKind(t, err, service.NotFound)

	if _, err := service.OpAddExtension.Call(ctx, f.owner, service.AddExtensionRequest{Number: "1001"}); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(15 * time.Minute)
	if err := f.st.SaveLock(ctx, store.Lock{Account: "1001", Until: until, Level: 1, Reason: "5 failures"}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.SaveSuspension(ctx, store.Suspension{Extension: "1001", Reason: "spend", Since: time.Now()}); err != nil {
		t.Fatal(err)
	}
	xs, _ := service.OpListExtensions.Call(ctx, f.owner, service.ListExtensionsRequest{})
	if len(xs) != 1 || xs[0].LockedUntil.IsZero() || xs[0].LockReason != "5 failures" || xs[0].Suspended != "spend" {
		t.Errorf("ext list = %+v, want the lock and suspension shown", xs)
	}
	why, err := service.OpWhy.Call(ctx, f.owner, service.WhyRequest{Addr: "192.0.2.1", Extension: "1001"})
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for _, r := range why.Reasons {
		rules = append(rules, r.Rule)
		if r.Rule == "account_locked" && r.Until.IsZero() {
			t.Error("the lock's end is not shown")
		}
	}
	if why.Live || !strings.Contains(strings.Join(rules, ","), "account_locked") || !strings.Contains(strings.Join(rules, ","), "suspended") {
		t.Errorf("why = %+v", why)
	}
	if _, err := service.OpUnlock.Call(ctx, f.owner, service.ExtensionRequest{Number: "1001"}); err != nil {
		t.Fatal(err)
	}
	if _, err := service.OpLift.Call(ctx, f.owner, service.ExtensionRequest{Number: "1001"}); err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range f.audit() {
		actions = append(actions, a.Action)
	}
	if got := strings.Join(actions, " "); got != "ban.add ban.add ban.remove ban.remove extension.create extension.unlock extension.lift" {
		t.Errorf("audit actions = %s", got)
	}
}

func TestTrunksAndDIDs(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	_, err := service.OpAddTrunk.Call(ctx, f.owner, service.TrunkRequest{Name: "carrier", Host: "sip.carrier.example", Transport: "udp"})
	wantKind(t, err, service.Invalid)
	tr, err := service.OpAddTrunk.Call(ctx, f.owner, service.TrunkRequest{Name: "carrier", Host: "sip.carrier.example",
		Username: "acme", Secret: "carrier-pass", Outbound: true})
	if err != nil {
		t.Fatal(err)
	}
	if !tr.HasSecret || tr.Transport != "tls" || tr.Media != "srtp" || tr.Verify != "chain+name" {
		t.Errorf("trunk = %+v", tr)
	}
	_, err = service.OpAddTrunk.Call(ctx, f.owner, service.TrunkRequest{Name: "carrier", Host: "x", Username: "u", Secret: "s"})
	wantKind(t, err, service.Conflict)
	tr, err = service.OpSetTrunk.Call(ctx, f.owner, service.TrunkRequest{Name: "carrier", Pin: strings.Repeat("ab", 32), Set: []string{"pin"}})
	if err != nil || tr.Verify != "pinned" || tr.Host != "sip.carrier.example" {
		t.Errorf("set pin: %+v, %v", tr, err)
	}
	if _, err := service.OpAddDID.Call(ctx, f.owner, service.DIDRequest{Trunk: "carrier", Number: "+31201234567", Extension: "1001"}); err != nil {
		t.Fatal(err)
	}
	_, err = service.OpRemoveDID.Call(ctx, f.owner, service.DIDRequest{Trunk: "carrier", Number: "+3100"})
	wantKind(t, err, service.NotFound)
	ts, _ := service.OpListTrunks.Call(ctx, f.owner, struct{}{})
	if len(ts) != 1 || ts[0].DIDs["+31201234567"] != "1001" {
		t.Errorf("trunks = %+v", ts)
	}
	for _, a := range f.audit() {
		if strings.Contains(a.Before+a.After, "carrier-pass") {
			t.Error("the trunk secret reached the audit log")
		}
	}
	if _, err := service.OpRemoveTrunk.Call(ctx, f.owner, service.NameRequest{Name: "carrier"}); err != nil {
		t.Fatal(err)
	}
	_, err = service.OpRemoveTrunk.Call(ctx, f.owner, service.NameRequest{Name: "carrier"})
	wantKind(t, err, service.NotFound)
}

func TestImportIsOneTransaction(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	if _, err := service.OpAddExtension.Call(ctx, f.owner, service.AddExtensionRequest{Number: "2"}); err != nil {
		t.Fatal(err)
	}
	res, err := service.OpImport.Call(ctx, f.owner, service.ImportRequest{Entries: []service.ImportEntry{
		{"1", goodSecret}, {"2", goodSecret}, {"3", goodSecret}}})
	if err != nil || res.Created != 2 || res.Updated != 1 {
		t.Fatalf("import = %+v, %v", res, err)
	}
	if f.synced != 2 {
		t.Errorf("Changed called %d times, want 2 (one per transaction)", f.synced)
	}
	_, err = service.OpImport.Call(ctx, f.owner, service.ImportRequest{Entries: []service.ImportEntry{{"4", goodSecret}, {"5", "weak"}}})
	wantKind(t, err, service.Invalid)
	if _, err := f.st.Extension(ctx, "4"); err == nil {
		t.Error("a failed import created part of its entries")
	}
	if n := len(f.audit()); n != 4 {
		t.Errorf("%d audit entries, want 4 (one per extension changed)", n)
	}
}

func TestDispatchByName(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	a := service.Actor{Name: "root", Role: service.RoleOwner, Channel: service.CLI}
	out, err := f.svc.Dispatch(ctx, a, "ext.add", json.RawMessage(`{"number":"1001","name":"A"}`))
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := out.(service.SecretResult); !ok || r.Secret == "" {
		t.Errorf("ext.add by name returned %#v", out)
	}
	_, err = f.svc.Dispatch(ctx, a, "ext.add", json.RawMessage(`{"number":"1002","nmae":"typo"}`))
	wantKind(t, err, service.Invalid)
	_, err = f.svc.Dispatch(ctx, a, "ext.nope", nil)
	wantKind(t, err, service.Invalid)
	for _, o := range service.Ops() {
		if o.Perm == "" || o.Doc == "" {
			t.Errorf("op %s lacks a permission or doc", o.Name)
		}
	}
}

type fakeLive struct {
	calls  []call.Snapshot
	hungUp []string
	bs     []store.Binding
}

func (l *fakeLive) Snapshot() []call.Snapshot { return l.calls }
func (l *fakeLive) Hangup(id, why string) bool {
	l.hungUp = append(l.hungUp, id+": "+why)
	return true
}
func (l *fakeLive) Live(time.Time) []store.Binding  { return l.bs }
func (l *fakeLive) Connected(connID, _ string) bool { return connID == "tls#1" }
func (l *fakeLive) Explain(addr netip.Addr, acct string, _ time.Time) []policy.Reason {
	return []policy.Reason{{Stage: "ratelimit", Rule: "messages", Message: "over budget " + addr.String()}}
}

func TestLiveParts(t *testing.T) {
	l := &fakeLive{
		calls: []call.Snapshot{{ID: "c1", From: "1001", To: "1002", State: "confirmed", CallerLeg: "SRTP AES_CM_128_HMAC_SHA1_80"}},
		bs: []store.Binding{
			{Number: "1001", Contact: "sip:1001@a", Transport: "tls", ConnID: "tls#1", Expires: time.Now().Add(time.Hour)},
			{Number: "1002", Contact: "sip:1002@b", Transport: "tls", ConnID: "tls#2", Expires: time.Now().Add(time.Hour)},
		},
	}
	f := newFixture(t, func(d *service.Deps) { d.Calls, d.Locator, d.Conns, d.Explainer = l, l, l, l })
	ctx := t.Context()
	calls, err := service.OpLiveCalls.Call(ctx, f.owner, struct{}{})
	if err != nil || len(calls) != 1 {
		t.Fatalf("live calls = %+v, %v", calls, err)
	}
	_, err = service.OpHangup.Call(ctx, f.owner, service.CallRequest{ID: "nope"})
	wantKind(t, err, service.NotFound)
	if _, err := service.OpHangup.Call(ctx, f.owner, service.CallRequest{ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	if len(l.hungUp) != 1 || !strings.Contains(l.hungUp[0], "root") {
		t.Errorf("hung up %v", l.hungUp)
	}
	if as := f.audit(); len(as) != 1 || as[0].Action != "call.hangup" {
		t.Errorf("hangup not audited: %+v", as)
	}
	regs, _ := service.OpRegistrations.Call(ctx, f.owner, struct{}{})
	if len(regs) != 2 || regs[0].State != "registered" || regs[1].State != "disconnected" {
		t.Errorf("registrations = %+v, want 1002 disconnected", regs)
	}
	why, _ := service.OpWhy.Call(ctx, f.owner, service.WhyRequest{Addr: "192.0.2.1"})
	if !why.Live || len(why.Reasons) != 1 {
		t.Errorf("why with a live engine = %+v", why)
	}
}

func TestAuditVerifyDetectsTampering(t *testing.T) {
	for _, tc := range []struct {
		name, sql string
		bad       int64
	}{
		{"edit", `UPDATE audit_log SET target = '6666' WHERE seq = 3`, 3},
		{"delete one", `DELETE FROM audit_log WHERE seq = 2`, 2},
		{"reorder", `UPDATE audit_log SET seq = -2 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = -2`, 2},
		{"insert", `INSERT INTO audit_log SELECT 99, time, 'mallory', role, channel, source, action, target, before, after, prev_hash, hash FROM audit_log WHERE seq = 4; UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 3; UPDATE audit_log SET seq = 3 WHERE seq = 99; UPDATE audit_log SET seq = seq - 999 WHERE seq > 1000`, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := t.Context()
			for _, n := range []string{"1", "2", "3", "4", "5"} {
				if _, err := service.OpAddExtension.Call(ctx, f.owner, service.AddExtensionRequest{Number: n}); err != nil {
					t.Fatal(err)
				}
			}
			ok, err := service.OpAuditVerify.Call(ctx, f.owner, service.VerifyRequest{})
			if err != nil || !ok.OK || ok.Entries != 5 {
				t.Fatalf("intact log: %+v, %v", ok, err)
			}
			f.exec(tc.sql)
			res, err := service.OpAuditVerify.Call(ctx, f.owner, service.VerifyRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if res.OK || res.FirstBad != tc.bad {
				t.Errorf("after %s: %+v, want a failure naming entry %d", tc.name, res, tc.bad)
			}
		})
	}
}

func TestAuditCheckpointRevealsDeletedTail(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	for i := range 12 {
		if _, err := service.OpAddExtension.Call(ctx, f.owner, service.AddExtensionRequest{Number: strings.Repeat("1", i+1)}); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := service.OpAuditCheckpoint.Call(ctx, f.owner, struct{}{})
	if err != nil || cp.Entries != 12 || !strings.Contains(cp.Note, "veilig/auditlog/v1") {
		t.Fatalf("checkpoint = %+v, %v", cp, err)
	}
	f.exec(`DELETE FROM audit_log WHERE seq > 2`)
	plain, _ := service.OpAuditVerify.Call(ctx, f.owner, service.VerifyRequest{})
	if !plain.OK {
		t.Errorf("a cleanly cut tail verifies as a chain (%+v); only the checkpoint reveals it", plain)
	}
	res, _ := service.OpAuditVerify.Call(ctx, f.owner, service.VerifyRequest{Checkpoint: cp.Note})
	if res.OK || res.Problem == "" {
		t.Errorf("deleted tail with the checkpoint: %+v, want a failure", res)
	}
	forged := strings.Replace(cp.Note, "\n12\n", "\n2\n", 1)
	res, _ = service.OpAuditVerify.Call(ctx, f.owner, service.VerifyRequest{Checkpoint: forged})
	if res.OK || res.Problem != "checkpoint" {
		t.Errorf("forged checkpoint: %+v, want it refused", res)
	}
}
