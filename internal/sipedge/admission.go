package sipedge

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Admission bounds the stream connections the edge holds, so that
// accepting never runs the process out of file descriptors (which would
// stop new registrations, the metrics listener and the store alike). At
// the limit a newcomer is still let in by evicting the oldest connection
// that has never authenticated: first from sources with no recent
// authentication, then, for a newcomer from a source that has one, from
// such sources too. A connection that has authenticated (it carries a
// registration or a call) is never evicted for a newcomer; when every
// held connection has, the newcomer is refused. So idle or slow
// connections opened by an attacker, from however many addresses, cannot
// keep agents from registering: they only push each other out.
//
// A zero max admits everything (tests and tools).
type Admission struct {
	max int

	mu     sync.Mutex
	n      int
	lists  [numClasses]slotList // oldest first
	authed map[netip.Addr]int   // authenticated connections per source

	evicted, refused atomic.Uint64
}

// Classes of held connections, in eviction order.
const (
	classStranger = iota // never authenticated; its source has not either
	classKnown           // never authenticated; its source has recently
	classAuthed          // a request on it has authenticated
	numClasses
)

// slot is one held connection's place in the admission.
type slot struct {
	adm        *Admission
	nc         net.Conn
	peer       netip.AddrPort
	at         time.Time
	class      int // -1 once released or evicted
	prev, next *slot
}

type slotList struct {
	head, tail *slot
	n          int
}

func (l *slotList) push(s *slot) {
	l.n++
	s.prev, s.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = s
	} else {
		l.head = s
	}
	l.tail = s
}

func (l *slotList) remove(s *slot) {
	l.n--
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		l.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		l.tail = s.prev
	}
	s.prev, s.next = nil, nil
}

// admit takes a place for nc. When the edge is full it evicts (victim,
// to be closed by the caller) or refuses (ok false).
func (a *Admission) admit(nc net.Conn, peer netip.AddrPort, known bool, now time.Time) (s *slot, victim *slot, ok bool) {
	class := classStranger
	if known {
		class = classKnown
	}
	s = &slot{adm: a, nc: nc, peer: peer, at: now, class: class}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.max <= 0 || a.n < a.max {
		a.n++
		a.lists[class].push(s)
		return s, nil, true
	}
	for c := classStranger; c <= class; c++ {
		if v := a.lists[c].head; v != nil {
			a.lists[c].remove(v)
			v.class = -1
			a.lists[class].push(s)
			a.evicted.Add(1)
			return s, v, true
		}
	}
	a.refused.Add(1)
	return nil, nil, false
}

// authenticated moves s to the class that is never evicted.
func (a *Admission) authenticated(s *slot) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.class < 0 || s.class == classAuthed {
		return
	}
	a.lists[s.class].remove(s)
	s.class = classAuthed
	a.lists[classAuthed].push(s)
	if a.authed == nil {
		a.authed = make(map[netip.Addr]int)
	}
	a.authed[s.peer.Addr()]++
}

// NewAdmission makes a table holding at most max stream connections
// (zero: no bound).
func NewAdmission(max int) *Admission { return &Admission{max: max} }

// AuthenticatedFrom reports an authenticated stream connection from addr.
func (a *Admission) AuthenticatedFrom(addr netip.Addr) bool { return a.authenticatedFrom(addr.Unmap()) }

// authenticatedFrom reports an authenticated connection from addr.
func (a *Admission) authenticatedFrom(addr netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.authed[addr] > 0
}

// release gives back the place of a connection that has closed; an
// evicted one gave its place to the newcomer already.
func (a *Admission) release(s *slot) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.class < 0 {
		return
	}
	if s.class == classAuthed {
		if a.authed[s.peer.Addr()]--; a.authed[s.peer.Addr()] <= 0 {
			delete(a.authed, s.peer.Addr())
		}
	}
	a.lists[s.class].remove(s)
	s.class = -1
	a.n--
}

// AdmissionStats describe the connection admission.
type AdmissionStats struct {
	Limit, Open, Authenticated int
	Evicted, Refused           uint64
}

func (a *Admission) stats() AdmissionStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return AdmissionStats{Limit: a.max, Open: a.n, Authenticated: a.lists[classAuthed].n, Evicted: a.evicted.Load(), Refused: a.refused.Load()}
}
