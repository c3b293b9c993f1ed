// Package registrar is the location service: it turns authenticated
// REGISTER requests into bindings, answers lookups for the call layer from
// memory and persists bindings in batches, so no registration waits on a
// disk write.
package registrar

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
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
	Store       store.Store
	Events      events.Emitter
	Logger      *slog.Logger
}

// Registrar holds the bindings.
type Registrar struct {
	o       Options
	seed    maphash.Seed
	shards  [32]shard
	pending chan store.Binding
}

type shard struct {
	mu sync.RWMutex
	m  map[string][]store.Binding // extension -> its bindings
	// stored is the expiry last written for each binding (number NUL
	// contact), so refreshes are persisted sparingly.
	stored map[string]time.Time
}

// New makes an empty registrar; Load fills it from the store.
func New(o Options) *Registrar {
	if o.MaxContacts <= 0 {
		o.MaxContacts = 10
	}
	r := &Registrar{o: o, seed: maphash.MakeSeed(), pending: make(chan store.Binding, 65536)}
	for i := range r.shards {
		r.shards[i].m = make(map[string][]store.Binding)
		r.shards[i].stored = make(map[string]time.Time)
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

func (r *Registrar) persist(b store.Binding) {
	select {
	case r.pending <- b:
	default:
		r.o.Logger.Warn("binding persistence queue full; binding kept in memory only", "extension", b.Number)
	}
}

// Run persists bindings in batches and sweeps expired ones until ctx ends,
// then writes what is pending.
func (r *Registrar) Run(ctx context.Context) error {
	batch := make([]store.Binding, 0, 1024)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := r.o.Store.SaveBindings(wctx, batch); err != nil {
			r.o.Logger.Error("persist bindings", "err", err, "count", len(batch))
		}
		cancel()
		batch = batch[:0]
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	sweep := time.NewTicker(5 * time.Second)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case b := <-r.pending:
					batch = append(batch, b)
				default:
					flush()
					return nil
				}
			}
		case b := <-r.pending:
			batch = append(batch, b)
			if len(batch) >= 1024 {
				flush()
			}
		case <-tick.C:
			flush()
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

// ServeSIP handles an authenticated REGISTER (RFC 3261 10.3).
func (r *Registrar) ServeSIP(ctx context.Context, req *sipedge.Request) error {
	number := req.Account
	now := time.Now()
	contacts := req.GetHeaders("Contact")
	defExp := r.o.DefaultExpires
	if h := req.GetHeader("Expires"); h != nil {
		if v, err := strconv.ParseUint(h.Value(), 10, 32); err == nil {
			defExp = time.Duration(v) * time.Second
		} else {
			return req.Respond(400, "Bad Expires")
		}
	}
	callID := string(*req.CallID())
	cseq := req.CSeq().SeqNo
	type change struct {
		contact string
		expires time.Duration
	}
	var changes []change
	wildcard := false
	for _, h := range contacts {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			return req.Respond(400, "Bad Contact")
		}
		if c.Address.Wildcard {
			wildcard = true
			continue
		}
		exp := defExp
		if v, ok := c.Params.Get("expires"); ok {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return req.Respond(400, "Bad Contact expires")
			}
			exp = time.Duration(n) * time.Second
		}
		if c.Address.Host == "" {
			return req.Respond(400, "Bad Contact")
		}
		changes = append(changes, change{contact: c.Address.String(), expires: exp})
	}
	if wildcard && (len(contacts) != 1 || defExp != 0) {
		return req.Respond(400, "Wildcard Contact needs Expires: 0 and no other Contact")
	}

	s := r.shard(number)
	s.mu.Lock()
	bs := s.m[number]
	var added, removed []store.Binding
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
			s.mu.Unlock()
			return req.Respond(500, "Out of Order Request")
		}
		if ch.expires == 0 {
			if idx >= 0 {
				removed = append(removed, bs[idx])
				bs = append(bs[:idx], bs[idx+1:]...)
				delete(s.stored, number+"\x00"+ch.contact)
			}
			continue
		}
		exp := clamp(ch.expires, r.o.MinExpires, r.o.MaxExpires)
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
				s.mu.Unlock()
				return req.Respond(403, "Too Many Registered Devices")
			}
			bs = append(bs, b)
			added = append(added, b)
			s.stored[number+"\x00"+ch.contact] = b.Expires
		}
		r.persist(b)
	}
	if len(bs) == 0 {
		delete(s.m, number)
	} else {
		s.m[number] = bs
	}
	current := append([]store.Binding(nil), bs...)
	s.mu.Unlock()

	for _, b := range removed {
		b.Expires = time.Time{}
		r.persist(b)
		r.o.Events.Emit(events.New(events.Unregister, req.Peer(), number, "device unregistered", "contact", b.Contact))
	}
	for _, b := range added {
		r.o.Events.Emit(events.New(events.Register, req.Peer(), number, "device registered",
			"contact", b.Contact, "transport", b.Transport, "user_agent", b.UserAgent))
	}

	res := req.Response(200, "OK")
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
	return req.Tx.Respond(res)
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
