// Package registrar is the location service: it turns authenticated
// REGISTER requests into bindings, answers lookups for the call layer from
// memory and persists bindings by group commit: a REGISTER is answered
// 200 only once the batch holding its binding is committed, so a crash
// never loses a registration the device was told about, and the batch is
// written as soon as it is full or a few milliseconds after its first
// binding, so registrations do not queue behind the disk one by one.
package registrar

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/sipedge"
	"github.com/veilig/veilig/internal/store"
)

// Options configure a Registrar.
type Options struct {
	MinExpires, MaxExpires, DefaultExpires time.Duration
	// MaxContacts bounds the devices one extension may register.
	MaxContacts int
	// ConnectionMaxExpires caps the expiry granted over TLS/TCP to a
	// device without RFC 5626 outbound (0: no cap). Such a device learns
	// that its connection, and with it its reachability, is gone (a
	// server restart) only when it refreshes, so this bounds how long it
	// stays unreachable.
	ConnectionMaxExpires time.Duration
	// FlowTimer is the keep-alive interval an outbound device is told
	// (Flow-Timer); it must be well inside the idle timeout. 0: 30 s.
	FlowTimer time.Duration
	// UserAgent is the Server header of Veilig's answers.
	UserAgent string
	Store     store.Bindings
	Events    events.Emitter
	Logger    *slog.Logger
}

// Registrar holds the bindings.
type Registrar struct {
	o       Options
	seed    maphash.Seed
	shards  [32]shard
	pending chan *write
}

// write is one REGISTER's changes to persist and what to do once they are
// committed (or failed).
type write struct {
	bs   []store.Binding
	conn sipedge.Conn // where done answers, for batching the answers
	done func(err error)
}

// Group commit bounds: a batch is written once it holds maxBatch bindings
// or linger after its first arrived, whichever is first.
const (
	maxBatch = 1024
	linger   = 3 * time.Millisecond
)

type shard struct {
	mu sync.RWMutex
	m  map[string][]store.Binding // extension -> its bindings
	// stored is the expiry last written for each binding (number NUL
	// contact), so refreshes are persisted sparingly.
	stored map[string]time.Time
	// bySource counts the shard's bindings per source address, so that
	// "does this address carry registrations" costs a lookup.
	bySource map[netip.Addr]int
}

// retrack moves the source counts from the bindings a number had (was)
// to those it has now (is). Caller holds mu.
func (s *shard) retrack(was []netip.Addr, is []store.Binding) {
	for _, a := range was {
		if s.bySource[a]--; s.bySource[a] <= 0 {
			delete(s.bySource, a)
		}
	}
	for _, b := range is {
		s.bySource[b.Source.Addr().Unmap()]++
	}
}

func sources(bs []store.Binding) []netip.Addr {
	out := make([]netip.Addr, len(bs))
	for i, b := range bs {
		out[i] = b.Source.Addr().Unmap()
	}
	return out
}

// HasSource reports whether any live binding was registered from addr.
func (r *Registrar) HasSource(addr netip.Addr) bool {
	addr = addr.Unmap()
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.RLock()
		n := s.bySource[addr]
		s.mu.RUnlock()
		if n > 0 {
			return true
		}
	}
	return false
}

// New makes an empty registrar; Load fills it from the store.
func New(o Options) *Registrar {
	if o.UserAgent == "" {
		o.UserAgent = sipedge.DefaultUserAgent
	}
	if o.MaxContacts <= 0 {
		o.MaxContacts = 10
	}
	if o.FlowTimer <= 0 {
		o.FlowTimer = 30 * time.Second
	}
	r := &Registrar{o: o, seed: maphash.MakeSeed(), pending: make(chan *write, 16384)}
	for i := range r.shards {
		r.shards[i].m = make(map[string][]store.Binding)
		r.shards[i].stored = make(map[string]time.Time)
		r.shards[i].bySource = make(map[netip.Addr]int)
	}
	return r
}

func (r *Registrar) shard(number string) *shard {
	return &r.shards[maphash.String(r.seed, number)%uint64(len(r.shards))]
}

// Load restores unexpired bindings, so registrations survive a restart.
func (r *Registrar) Load(ctx context.Context, now time.Time) (int, error) {
	bs, err := r.o.Store.LoadBindings(ctx, now)
	if err != nil {
		return 0, fmt.Errorf("registrar: load bindings: %w", err)
	}
	for _, b := range bs {
		s := r.shard(b.Number)
		s.mu.Lock()
		s.m[b.Number] = append(s.m[b.Number], b)
		s.bySource[b.Source.Addr().Unmap()]++
		s.mu.Unlock()
	}
	return len(bs), nil
}

// Lookup returns the extension's live bindings (copies).
func (r *Registrar) Lookup(number string, now time.Time) []store.Binding {
	s := r.shard(number)
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []store.Binding
	for _, b := range s.m[number] {
		if b.Expires.After(now) {
			out = append(out, b)
		}
	}
	return out
}

// Each calls f for every live binding (for seeding state at start).
func (r *Registrar) Each(f func(store.Binding)) {
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.RLock()
		for _, bs := range s.m {
			for _, b := range bs {
				f(b)
			}
		}
		s.mu.RUnlock()
	}
}

// Count reports live bindings.
func (r *Registrar) Count() (n int) {
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.RLock()
		for _, bs := range s.m {
			n += len(bs)
		}
		s.mu.RUnlock()
	}
	return n
}

// persist queues w for the next commit; false means the queue is full
// (the store is far behind) and nothing was queued.
func (r *Registrar) persist(w *write) bool {
	select {
	case r.pending <- w:
		return true
	default:
		return false
	}
}

// Run commits queued bindings in batches, answers their REGISTERs, and
// sweeps expired bindings until ctx ends, then commits what is pending.
func (r *Registrar) Run(ctx context.Context) error {
	var batch []*write
	rows := make([]store.Binding, 0, maxBatch)
	add := func(w *write) {
		batch = append(batch, w)
		rows = append(rows, w.bs...)
	}
	commit := func() {
		if len(batch) == 0 {
			return
		}
		wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := r.o.Store.SaveBindings(wctx, rows)
		cancel()
		if err != nil {
			r.o.Logger.Error("persist bindings", "err", err, "count", len(rows))
			err = fmt.Errorf("registrar: persist %d bindings: %w", len(rows), err)
		}
		conns := make([]sipedge.Conn, 0, len(batch))
		for _, w := range batch {
			if w.conn != nil {
				conns = append(conns, w.conn)
			}
		}
		release := sipedge.Hold(conns...)
		for _, w := range batch {
			w.done(err)
		}
		release()
		clear(batch)
		batch, rows = batch[:0], rows[:0]
	}
	timer := time.NewTimer(linger)
	timer.Stop()
	sweep := time.NewTicker(5 * time.Second)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case w := <-r.pending:
					add(w)
					if len(rows) >= maxBatch {
						commit()
					}
				default:
					commit()
					return nil
				}
			}
		case w := <-r.pending:
			add(w)
			timer.Reset(linger)
		gather:
			for len(rows) < maxBatch {
				select {
				case w := <-r.pending:
					add(w)
				case <-timer.C:
					break gather
				}
			}
			timer.Stop()
			commit()
		case now := <-sweep.C:
			r.expire(now)
		}
	}
}

func (r *Registrar) expire(now time.Time) {
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for n, bs := range s.m {
			keep := bs[:0]
			for _, b := range bs {
				if b.Expires.After(now) {
					keep = append(keep, b)
				} else {
					delete(s.stored, n+"\x00"+b.Contact)
					a := b.Source.Addr().Unmap()
					if s.bySource[a]--; s.bySource[a] <= 0 {
						delete(s.bySource, a)
					}
				}
			}
			if len(keep) == 0 {
				delete(s.m, n)
			} else {
				s.m[n] = keep
			}
		}
		s.mu.Unlock()
	}
}

// Request is an authenticated REGISTER as the registrar needs it: the
// message, the connection it came on (bindings key on it, never on a
// header), the account the auth stage proved, and the transaction that
// answers it.
type Request struct {
	*sip.Request
	Conn    sipedge.Conn
	Account string
	Tx      interface{ Respond(*sip.Response) error }
}

// Peer is the socket address the REGISTER came from.
func (q *Request) Peer() netip.AddrPort { return q.Conn.Peer() }

// ServeSIP handles a REGISTER the edge's chain passed on.
func (r *Registrar) ServeSIP(ctx context.Context, req *sipedge.Request) error {
	if req.Tx == nil {
		return errors.New("registrar: REGISTER without a server transaction")
	}
	return r.Register(ctx, &Request{Request: req.Request, Conn: req.Conn, Account: req.Account, Tx: req.Tx})
}

// response builds an answer to q with Veilig's Server header.
func (r *Registrar) response(q *Request, code int, reason string, hdrs ...sip.Header) *sip.Response {
	res := sip.NewResponseFromRequest(q.Request, code, reason, nil)
	res.AppendHeader(sip.NewHeader("Server", r.o.UserAgent))
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	return res
}

func (r *Registrar) respond(q *Request, code int, reason string, hdrs ...sip.Header) error {
	return q.Tx.Respond(r.response(q, code, reason, hdrs...))
}

// Register handles an authenticated REGISTER (RFC 3261 10.3).
func (r *Registrar) Register(ctx context.Context, req *Request) error {
	number := req.Account
	now := time.Now()
	contacts := req.GetHeaders("Contact")
	defExp := r.o.DefaultExpires
	if h := req.GetHeader("Expires"); h != nil {
		if v, err := strconv.ParseUint(h.Value(), 10, 32); err == nil {
			defExp = time.Duration(v) * time.Second
		} else {
			return r.respond(req, 400, "Bad Expires")
		}
	}
	callID := string(*req.CallID())
	cseq := req.CSeq().SeqNo
	type change struct {
		contact string
		expires time.Duration
	}
	// RFC 5626 outbound: a device on a connection that registers a flow
	// (reg-id, and says it supports outbound) keeps the flow alive with
	// keep-alives at Flow-Timer and registers again as soon as the
	// connection fails, so it may keep its long expiry. Any other device
	// on a connection is given at most ConnectionMaxExpires.
	outbound := req.Conn.Reliable() && supports(req.Request, "outbound")
	var changes []change
	wildcard := false
	for _, h := range contacts {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			return r.respond(req, 400, "Bad Contact")
		}
		if c.Address.Wildcard {
			wildcard = true
			continue
		}
		exp := defExp
		if v, ok := c.Params.Get("expires"); ok {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return r.respond(req, 400, "Bad Contact expires")
			}
			exp = time.Duration(n) * time.Second
		}
		if c.Address.Host == "" {
			return r.respond(req, 400, "Bad Contact")
		}
		if !c.Params.Has("reg-id") {
			outbound = false
		}
		changes = append(changes, change{contact: c.Address.String(), expires: exp})
	}
	maxExp := r.o.MaxExpires
	if req.Conn.Reliable() && !outbound && r.o.ConnectionMaxExpires > 0 {
		maxExp = max(min(maxExp, r.o.ConnectionMaxExpires), r.o.MinExpires)
	}
	if wildcard && (len(contacts) != 1 || defExp != 0) {
		return r.respond(req, 400, "Wildcard Contact needs Expires: 0 and no other Contact")
	}

	s := r.shard(number)
	s.mu.Lock()
	bs := s.m[number]
	was := sources(bs)
	unlock := func() { s.retrack(was, s.m[number]); s.mu.Unlock() }
	var added, removed, writes []store.Binding
	if wildcard {
		removed = append(removed, bs...)
		for _, b := range bs {
			delete(s.stored, number+"\x00"+b.Contact)
		}
		bs = nil
	}
	for _, ch := range changes {
		idx := -1
		for i := range bs {
			if bs[i].Contact == ch.contact {
				idx = i
				break
			}
		}
		if idx >= 0 && bs[idx].CallID == callID && cseq <= bs[idx].CSeq {
			unlock()
			return r.respond(req, 500, "Out of Order Request")
		}
		if ch.expires == 0 {
			if idx >= 0 {
				removed = append(removed, bs[idx])
				bs = append(bs[:idx], bs[idx+1:]...)
				delete(s.stored, number+"\x00"+ch.contact)
			}
			continue
		}
		exp := clamp(ch.expires, r.o.MinExpires, maxExp)
		b := store.Binding{
			Number: number, Contact: ch.contact, Source: req.Peer(), Transport: req.Conn.Transport(),
			ConnID: req.Conn.ID(), CallID: callID, CSeq: cseq, UserAgent: userAgent(req.Request),
			Expires: now.Add(exp), UpdatedAt: now,
		}
		if idx >= 0 {
			old := bs[idx]
			fresh := old.Source != b.Source || old.ConnID != b.ConnID
			bs[idx] = b
			if fresh {
				added = append(added, b)
			}
			// A plain refresh is written only once the stored expiry
			// has used up half of its interval: a restart then loses
			// at most half a refresh, and a busy registrar does not
			// rewrite every row on every REGISTER.
			key := number + "\x00" + ch.contact
			if !fresh && s.stored[key].Sub(now) > exp/2 {
				continue
			}
			s.stored[key] = b.Expires
		} else {
			if len(bs) >= r.o.MaxContacts {
				unlock()
				return r.respond(req, 403, "Too Many Registered Devices")
			}
			bs = append(bs, b)
			added = append(added, b)
			s.stored[number+"\x00"+ch.contact] = b.Expires
		}
		writes = append(writes, b)
	}
	if len(bs) == 0 {
		delete(s.m, number)
	} else {
		s.m[number] = bs
	}
	current := append([]store.Binding(nil), bs...)
	unlock()

	for _, b := range removed {
		b.Expires = time.Time{}
		writes = append(writes, b)
	}

	res := r.response(req, 200, "OK")
	for _, b := range current {
		var u sip.Uri
		if err := sip.ParseUri(b.Contact, &u); err != nil {
			continue
		}
		ch := &sip.ContactHeader{Address: u, Params: sip.NewParams()}
		ch.Params.Add("expires", strconv.Itoa(int(b.Expires.Sub(now).Round(time.Second)/time.Second)))
		res.AppendHeader(ch)
	}
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format(http1123)))
	if outbound && len(changes) > 0 {
		res.AppendHeader(sip.NewHeader("Require", "outbound"))
		res.AppendHeader(sip.NewHeader("Flow-Timer", strconv.Itoa(int(r.o.FlowTimer/time.Second))))
	}
	announce := func() {
		for _, b := range removed {
			r.o.Events.Emit(events.New(events.Unregister, req.Peer(), number, "device unregistered", "contact", b.Contact))
		}
		for _, b := range added {
			r.o.Events.Emit(events.New(events.Register, req.Peer(), number, "device registered",
				"contact", b.Contact, "transport", b.Transport, "user_agent", b.UserAgent))
		}
	}
	if len(writes) == 0 {
		// A refresh the store need not hear of yet: what it holds
		// already outlives a restart.
		announce()
		return req.Tx.Respond(res)
	}
	tx := req.Tx
	queued := r.persist(&write{bs: writes, conn: req.Conn, done: func(err error) {
		if err != nil {
			_ = tx.Respond(r.response(req, 500, "Server Internal Error"))
			return
		}
		announce()
		_ = tx.Respond(res)
	}})
	if !queued {
		r.o.Logger.Warn("binding persistence queue full; REGISTER refused for now", "extension", number)
		return r.respond(req, 503, "Service Unavailable", sip.NewHeader("Retry-After", "5"))
	}
	return nil
}

const http1123 = "Mon, 02 Jan 2006 15:04:05 GMT"

func clamp(d, lo, hi time.Duration) time.Duration {
	if d < lo {
		return lo
	}
	if d > hi {
		return hi
	}
	return d
}

// supports reports an option tag in the request's Supported or Require
// headers.
func supports(r *sip.Request, tag string) bool {
	for _, name := range []string{"Supported", "k", "Require"} {
		for _, h := range r.GetHeaders(name) {
			for _, t := range strings.Split(h.Value(), ",") {
				if strings.EqualFold(strings.TrimSpace(t), tag) {
					return true
				}
			}
		}
	}
	return false
}

func userAgent(r *sip.Request) string {
	if h := r.GetHeader("User-Agent"); h != nil {
		v := h.Value()
		if len(v) > 128 {
			v = v[:128]
		}
		return v
	}
	return ""
}

// Live returns every binding that has not expired at now (copies), for
// the management view of registrations.
func (r *Registrar) Live(now time.Time) []store.Binding {
	var out []store.Binding
	r.Each(func(b store.Binding) {
		if b.Expires.After(now) {
			out = append(out, b)
		}
	})
	return out
}
