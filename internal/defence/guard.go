package defence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/veilig/veilig/internal/config"
	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/policy"
	"github.com/veilig/veilig/internal/policy/ipban"
	"github.com/veilig/veilig/internal/policy/lockout"
	"github.com/veilig/veilig/internal/policy/scanner"
	"github.com/veilig/veilig/internal/sipedge"
	"github.com/veilig/veilig/internal/store"
	"github.com/veilig/veilig/internal/throttle"
)

// Guard adapts the pure policy engine to the SIP edge (it implements
// sipedge.Guard): it asks the engine, counts every refusal, turns
// refusals into throttled events and carries out the engine's actions
// (bans, locks, alerts) off the SIP path, bans and locks of a burst in one
// commit. Changes made elsewhere (the CLI, another node) arrive through
// the change feed (ApplyBans, ApplyLocks).
type Guard struct {
	eng *policy.Engine
	st  Store
	ev  events.Emitter
	dir Directory
	log *slog.Logger

	actions   chan []policy.Action
	decisions *prometheus.CounterVec
	// carrier reports a configured trunk's address: never banned or
	// rate limited, even for trunks added after start.
	carrier func(netip.Addr) bool

	// refusals throttles decision events: one per stage, rule and source
	// a minute.
	refusals *throttle.Throttle[string]

	mu      sync.Mutex
	pending map[string]int // "ban|addr", "lock|account" decided, not yet stored
}

// Store is what the guard persists and re-reads.
type Store interface {
	store.Bans
	store.Locks
	store.GuardSaver
}

// Directory is what the guard asks about accounts.
type Directory interface {
	AllowFrom(number string) []netip.Prefix
}

// Options are everything the guard needs, given at construction.
type Options struct {
	Config    *config.Config
	Store     Store
	Events    events.Emitter
	Directory Directory
	// Carriers are the trunks' networks at start; IsCarrier answers for
	// trunks added later.
	Carriers  []netip.Prefix
	IsCarrier func(netip.Addr) bool
	// Active reports a source that carries authenticated registrations or
	// calls (see policy.Deps.ActiveSource).
	Active func(netip.Addr) bool
	Log    *slog.Logger
}

// PolicyConfig maps the guard section onto the policy engine's defaults.
func PolicyConfig(cfg *config.Config) (policy.Config, error) {
	pc := policy.Default()
	var err error
	if pc.TrustedSources, err = config.Prefixes(cfg.Guard.TrustedSources); err != nil {
		return pc, err
	}
	if pc.AllowSources, err = config.Prefixes(cfg.Guard.AllowSources); err != nil {
		return pc, err
	}
	pc.Scanner.UserAgents = append(pc.Scanner.UserAgents, cfg.Guard.ScannerUserAgents...)
	pc.Scanner.Ignore = append(pc.Scanner.Ignore, cfg.Guard.ScannerIgnore...)
	return pc, pc.Validate()
}

// New builds the guard; call Restore before the edge serves.
func New(o Options) (*Guard, error) {
	pc, err := PolicyConfig(o.Config)
	if err != nil {
		return nil, err
	}
	pc.Carriers = o.Carriers
	eng, err := policy.New(pc, policy.Deps{AccountSources: o.Directory.AllowFrom, ActiveSource: o.Active})
	if err != nil {
		return nil, err
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Guard{
		eng: eng, st: o.Store, ev: o.Events, dir: o.Directory, log: log, carrier: o.IsCarrier,
		actions: make(chan []policy.Action, 4096),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veilig_guard_decisions_total",
			Help: "Requests, connections and datagrams the guard did not simply allow, by stage, rule and verdict.",
		}, []string{"stage", "rule", "verdict"}),
		refusals: throttle.New[string](time.Minute, 0, 100_000),
		pending:  make(map[string]int),
	}, nil
}

// Engine is the policy engine, for explanations (why) and its stats.
func (g *Guard) Engine() *policy.Engine { return g.eng }

// Decisions are the refusal counters, for the metrics registry.
func (g *Guard) Decisions() prometheus.Collector { return g.decisions }

// refused counts a non-allow decision and emits its event, at most one
// per stage, rule and source a minute so a flood is counted, not logged
// packet by packet (the engine's own alerts say that a flood is on).
func (g *Guard) refused(d policy.Decision, src netip.Addr, account string, now time.Time) {
	verdict := verdictName(d.Verdict)
	g.decisions.WithLabelValues(d.Stage, d.Rule, verdict).Inc()
	if ok, _ := g.refusals.Admit(d.Stage, d.Stage+"|"+d.Rule+"|"+src.String(), now); !ok {
		return
	}
	k, ok := events.GuardKind(d.Stage)
	if !ok {
		g.log.Error("guard stage has no event kind", "stage", d.Stage)
		return
	}
	e := events.New(k, netip.AddrPortFrom(src, 0), account, d.Reason,
		"stage", d.Stage, "rule", d.Rule, "verdict", verdict)
	e.Source = src.String()
	g.ev.Emit(e)
}

func verdictName(v policy.Verdict) string {
	switch v {
	case policy.Allow:
		return "allow"
	case policy.Reject:
		return "reject"
	case policy.Challenge:
		return "challenge"
	}
	return "drop"
}

// Admit implements sipedge.Guard.
func (g *Guard) Admit(addr netip.Addr, transport string, newConn bool) bool {
	if g.carrier != nil && g.carrier(addr) {
		return true
	}
	now := time.Now()
	if d := g.eng.CheckSource(addr, now); d.Verdict != policy.Allow {
		g.refused(d, addr, "", now)
		return false
	}
	if newConn {
		if !g.eng.AllowHandshake(addr, now) {
			g.refused(policy.Decision{Verdict: policy.Drop, Stage: "ratelimit", Rule: "handshakes", Reason: "too many TLS handshakes"}, addr, "", now)
			return false
		}
		if !g.eng.ConnOpened(addr, now) {
			g.refused(policy.Decision{Verdict: policy.Drop, Stage: "ratelimit", Rule: "connections", Reason: "too many concurrent connections"}, addr, "", now)
			return false
		}
		return true
	}
	if !g.eng.AllowMessage(addr, now) {
		g.decisions.WithLabelValues("ratelimit", "messages", "drop").Inc()
		return false
	}
	return true
}

// Known implements sipedge.Guard.
func (g *Guard) Known(addr netip.Addr) bool {
	if g.carrier != nil && g.carrier(addr) {
		return true
	}
	return g.eng.AuthenticatedBefore(addr, time.Now())
}

// Connection implements sipedge.Guard: each eviction, refusal or deadline
// is counted and, once per source and minute, an event; evictions and
// refusals also feed the engine's sustained-pressure alert.
func (g *Guard) Connection(ev sipedge.ConnEvent) {
	kind := ev.Kind.String()
	g.decisions.WithLabelValues("connections", kind, "drop").Inc()
	src := ev.Peer.Addr()
	var (
		typ *events.Kind
		msg string
	)
	kv := []string{"open", strconv.Itoa(ev.Open), "limit", strconv.Itoa(ev.Limit), "age", ev.Age.Round(time.Millisecond).String()}
	switch ev.Kind {
	case sipedge.ConnEvicted:
		typ = events.ConnectionEvicted
		msg = fmt.Sprintf("connection from %s that never authenticated closed after %s to admit %s: the connection limit (%d) is reached",
			ev.Peer, ev.Age.Round(time.Second), ev.Newcomer, ev.Limit)
		kv = append(kv, "newcomer", ev.Newcomer.String())
	case sipedge.ConnRefused:
		typ = events.ConnectionRefused
		msg = fmt.Sprintf("connection from %s refused: the connection limit (%d) is reached and every connection held has authenticated", ev.Peer, ev.Limit)
	default:
		typ = events.ConnectionTimeout
		msg = fmt.Sprintf("connection from %s closed after %s: %s", ev.Peer, ev.Age.Round(time.Second), strings.ReplaceAll(kind, "_", " "))
		kv = append(kv, "reason", kind)
	}
	if ev.Kind == sipedge.ConnEvicted || ev.Kind == sipedge.ConnRefused {
		g.apply(g.eng.ConnectionLimit(ev.Kind == sipedge.ConnEvicted, ev.Open, ev.Limit, ev.At))
	}
	if ok, _ := g.refusals.Admit(typ.Name, typ.Name+"|"+src.String(), ev.At); !ok {
		return
	}
	e := events.New(typ, ev.Peer, "", msg, kv...)
	g.ev.Emit(e)
}

// Release implements sipedge.Guard.
func (g *Guard) Release(addr netip.Addr) { g.eng.ConnClosed(addr) }

// Banned implements sipedge.Guard.
func (g *Guard) Banned(addr netip.Addr) bool {
	_, ok := g.eng.IPBan().Banned(addr, time.Now())
	return ok
}

// Request implements sipedge.Guard.
func (g *Guard) Request(r *sipedge.Request, now time.Time) sipedge.Verdict {
	src := r.Peer().Addr()
	if g.carrier != nil && g.carrier(src) {
		return sipedge.Verdict{}
	}
	if to := r.To(); to == nil || !to.Params.Has("tag") {
		known := g.eng.AuthenticatedBefore(src, now)
		if known && r.Method != sip.CANCEL && !g.eng.AllowAccountTransaction(src, claimedAccount(r), string(r.Method), now) {
			g.decisions.WithLabelValues("ratelimit", "account_transactions", "drop").Inc()
			return sipedge.Verdict{Drop: true}
		}
		if r.Method != sip.CANCEL && !g.eng.AllowTransaction(src, now, known) {
			g.decisions.WithLabelValues("ratelimit", "transactions", "drop").Inc()
			return sipedge.Verdict{Drop: true}
		}
	}
	d, acts := g.eng.Scan(scanMessage(r), src, now)
	g.apply(acts)
	if d.Verdict != policy.Allow {
		g.refused(d, src, "", now)
		return sipedge.Verdict{Drop: d.Verdict == policy.Drop, Code: d.Code, Reason: d.Reason}
	}
	return sipedge.Verdict{}
}

// claimedAccount is the account a request says it is from (To for
// REGISTER, From otherwise): unauthenticated, good enough to key a rate
// limit.
func claimedAccount(r *sipedge.Request) string {
	if r.Method == sip.REGISTER {
		if t := r.To(); t != nil {
			return t.Address.User
		}
		return ""
	}
	if f := r.From(); f != nil {
		return f.Address.User
	}
	return ""
}

func scanMessage(r *sipedge.Request) scanner.Message {
	m := scanner.Message{Method: string(r.Method), RequestURIUser: r.Recipient.User, RequestURIHost: r.Recipient.Host}
	if h := r.GetHeader("User-Agent"); h != nil {
		m.UserAgent = h.Value()
	}
	if f := r.From(); f != nil {
		m.FromName, m.FromUser, m.FromHost = f.DisplayName, f.Address.User, f.Address.Host
		m.FromTag, _ = f.Params.Get("tag")
	}
	if t := r.To(); t != nil {
		m.ToUser, m.ToHost = t.Address.User, t.Address.Host
	}
	if c := r.CallID(); c != nil {
		m.CallID = string(*c)
	}
	if c := r.GetHeader("Contact"); c != nil {
		m.Contact = c.Value()
	}
	if v := r.Via(); v != nil {
		m.ViaHost = v.Host
	}
	return m
}

// Gate is the lockout and per-extension allowlist check the auth stage
// runs once it knows the claimed account.
func (g *Guard) Gate(peer netip.AddrPort, user string) (bool, string) {
	now := time.Now()
	src := peer.Addr()
	if d := g.eng.CheckAccount(user, src, now); d.Verdict != policy.Allow {
		g.refused(d, src, user, now)
		// An attempt on a locked account is still a failure: it counts
		// towards the source's ban and the lock's escalation.
		g.apply(g.eng.Observe(policy.AuthFailure{Source: src, Account: user, Reason: "account locked"}, now))
		return false, d.Reason
	}
	d, acts := g.eng.Gate(user, g.dir.AllowFrom(user), src, now)
	g.apply(acts)
	if d.Verdict != policy.Allow {
		g.refused(d, src, user, now)
		return false, d.Reason
	}
	return true, ""
}

// Known records a device that authenticated before (a restored binding),
// so the defences treat its address as a known source.
func (g *Guard) KnownDevice(src netip.Addr, account string) {
	_ = g.eng.Observe(policy.AuthSuccess{Source: src, Account: account}, time.Now())
}

// Observe feeds digest outcomes to the engine.
func (g *Guard) Observe(peer netip.AddrPort, user string, ok bool, reason string) {
	now := time.Now()
	var o policy.Observation
	if ok {
		o = policy.AuthSuccess{Source: peer.Addr(), Account: user}
	} else {
		o = policy.AuthFailure{Source: peer.Addr(), Account: user, Reason: reason}
	}
	g.apply(g.eng.Observe(o, now))
}

func (g *Guard) apply(acts []policy.Action) {
	if len(acts) == 0 {
		return
	}
	g.pend(acts)
	select {
	case g.actions <- acts:
	default:
		g.settle(acts)
		g.log.Error("guard action queue full; bans and alerts are applied in memory but not persisted", "actions", len(acts))
	}
}

// Run persists actions, raises their events and collects the engine's
// deferred alerts until ctx ends. Bans and unlocks made elsewhere arrive
// through the change feed (ApplyBans, ApplyLocks).
func (g *Guard) Run(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case acts := <-g.actions:
					g.persist(ctx, acts)
				default:
					return nil
				}
			}
		case acts := <-g.actions:
			// Group commit: whatever else is queued goes in the same
			// transaction.
			for more := true; more && len(acts) < 4096; {
				select {
				case a := <-g.actions:
					acts = append(acts, a...)
				default:
					more = false
				}
			}
			g.persist(ctx, acts)
		case <-tick.C:
			g.persist(ctx, g.eng.Drain())
		}
	}
}

// persist commits the bans and locks among acts in one transaction, then
// emits the alerts, so an alert about a ban follows the ban's commit.
func (g *Guard) persist(ctx context.Context, acts []policy.Action) {
	// Decided bans and locks are written even while shutting down.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	now := time.Now()
	defer g.settle(acts)
	var bans []store.Ban
	var locks []store.Lock
	var alerts []policy.Alert
	for _, a := range acts {
		switch a := a.(type) {
		case policy.BanSource:
			b, ok := g.eng.IPBan().Banned(a.Addr, now)
			if !ok {
				b = ipban.Ban{Addr: a.Addr, Rule: a.Rule, Reason: a.Reason, Cause: a.Cause, Start: now, End: a.Until}
			}
			bans = append(bans, store.Ban{Addr: b.Addr, Rule: b.Rule, Reason: b.Reason, Cause: b.Cause, Start: b.Start, End: b.End, Level: b.Level})
		case policy.LockAccount:
			locks = append(locks, store.Lock{Account: a.Account, Source: a.Source, Until: a.Until, Level: a.Level, Reason: a.Reason})
		case policy.Alert:
			alerts = append(alerts, a)
		}
	}
	if err := g.st.SaveGuard(ctx, bans, locks); err != nil {
		g.log.Error("persist bans and locks; they hold in memory", "bans", len(bans), "locks", len(locks), "err", err)
	}
	for _, a := range alerts {
		e := events.Event{Type: a.Type, Severity: events.Alert, Source: a.Source, Account: a.Account, Message: a.Message, Fields: a.Fields}
		if k, ok := events.ByName(a.Type); ok {
			e.Severity = k.Severity
		}
		g.ev.Emit(e)
	}
}

// lockKey names a lock among those restored: the account, and the source of a
// source lock.
func lockKey(account string, src netip.Addr) string {
	if !src.IsValid() {
		return account
	}
	return account + "|" + src.String()
}

// pend notes the bans and locks of acts as decided but not yet stored, so
// a change-feed delivery for the same key before they are written does not
// take them for lifted; settle forgets them once written.
func (g *Guard) pend(acts []policy.Action) { g.pendingDelta(acts, 1) }

func (g *Guard) settle(acts []policy.Action) { g.pendingDelta(acts, -1) }

func (g *Guard) pendingDelta(acts []policy.Action, d int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, a := range acts {
		var k string
		switch a := a.(type) {
		case policy.BanSource:
			k = "ban|" + a.Addr.String()
		case policy.LockAccount:
			k = "lock|" + a.Account
		default:
			continue
		}
		if g.pending[k] += d; g.pending[k] <= 0 {
			delete(g.pending, k)
		}
	}
}

func (g *Guard) isPending(k string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pending[k] > 0
}

// Restore loads every ban and lock in force (at start, and when the
// change feed asks for a full reload).
func (g *Guard) Restore(ctx context.Context, now time.Time) {
	bans, err := g.st.ListBans(ctx, now)
	if err != nil {
		g.log.Error("load bans", "err", err)
		return
	}
	inStore := make(map[netip.Addr]bool, len(bans))
	netsInStore := map[netip.Prefix]bool{}
	restore := make([]ipban.Ban, 0, len(bans))
	for _, b := range bans {
		if b.Net.IsValid() {
			netsInStore[b.Net] = true
		} else {
			inStore[b.Addr] = true
		}
		restore = append(restore, fromStoreBan(b))
	}
	for _, b := range g.eng.IPBan().Bans(now) {
		switch {
		case b.Net.IsValid():
			if !netsInStore[b.Net] {
				g.eng.UnbanNet(b.Net, now)
			}
		case !inStore[b.Addr] && !g.isPending("ban|"+b.Addr.String()):
			g.eng.Unban(b.Addr, now)
		}
	}
	g.eng.IPBan().Restore(restore)

	locks, err := g.st.ListLocks(ctx, now)
	if err != nil {
		g.log.Error("load locks", "err", err)
		return
	}
	lockedInStore := make(map[string]bool, len(locks))
	rl := make([]lockout.Lock, 0, len(locks))
	for _, l := range locks {
		lockedInStore[lockKey(l.Account, l.Source)] = true
		rl = append(rl, lockout.Lock{Account: l.Account, Source: l.Source, Until: l.Until, Level: l.Level, Reason: l.Reason})
	}
	for _, l := range g.eng.Lockout().Locks(now) {
		k := lockKey(l.Account, l.Source)
		if !lockedInStore[k] && !g.isPending("lock|"+l.Account) {
			// Lifted by another process (veilig ext unlock lifts the
			// account's lock and its source locks at once).
			g.eng.Unlock(l.Account, now)
		}
	}
	g.eng.Lockout().Restore(rl)
}

func fromStoreBan(b store.Ban) ipban.Ban {
	return ipban.Ban{Addr: b.Addr, Net: b.Net, Rule: b.Rule, Reason: b.Reason, Cause: b.Cause, Start: b.Start, End: b.End, Level: b.Level}
}

// ApplyBans makes the engine's bans for the changed addresses match the
// store (a feed handler): a ban stored elsewhere takes effect, one lifted
// elsewhere is lifted here.
func (g *Guard) ApplyBans(ctx context.Context, keys []string) {
	now := time.Now()
	for _, k := range keys {
		if k == "" {
			g.Restore(ctx, now)
			return
		}
		if p, err := netip.ParsePrefix(k); err == nil {
			g.applyNetBan(ctx, p, now)
			continue
		}
		addr, err := netip.ParseAddr(k)
		if err != nil {
			continue
		}
		b, err := g.st.Ban(ctx, addr, now)
		switch {
		case err == nil:
			g.eng.IPBan().Restore([]ipban.Ban{fromStoreBan(b)})
		case errors.Is(err, store.ErrNotFound):
			if !g.isPending("ban|" + addr.String()) {
				g.eng.Unban(addr, now)
			}
		default:
			g.log.Error("re-read ban", "addr", k, "err", err)
		}
	}
}

// ApplyLocks does for account locks what ApplyBans does for bans; an
// account's change covers its account-wide lock and its source locks.
func (g *Guard) ApplyLocks(ctx context.Context, keys []string) {
	now := time.Now()
	if slices.Contains(keys, "") {
		g.Restore(ctx, now)
		return
	}
	all, err := g.st.ListLocks(ctx, now)
	if err != nil {
		g.log.Error("re-read locks", "accounts", keys, "err", err)
		return
	}
	for _, k := range keys {
		var rl []lockout.Lock
		for _, l := range all {
			if l.Account == k {
				rl = append(rl, lockout.Lock{Account: l.Account, Source: l.Source, Until: l.Until, Level: l.Level, Reason: l.Reason})
			}
		}
		if len(rl) == 0 {
			if !g.isPending("lock|" + k) {
				g.eng.Unlock(k, now)
			}
			continue
		}
		g.eng.Lockout().Restore(rl)
	}
}

// applyNetBan makes the engine's ban of network p match the store.
func (g *Guard) applyNetBan(ctx context.Context, p netip.Prefix, now time.Time) {
	b, err := g.st.NetBan(ctx, p, now)
	switch {
	case err == nil:
		g.eng.IPBan().Restore([]ipban.Ban{fromStoreBan(b)})
	case errors.Is(err, store.ErrNotFound):
		g.eng.UnbanNet(p, now)
	default:
		g.log.Error("re-read network ban", "net", p, "err", err)
	}
}
