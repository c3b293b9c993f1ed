//go:build linux

package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Relay.
type Options struct {
	// Address is the local address the relay binds its UDP ports on.
	Address netip.Addr
	// Advertise is the address written into SDP (c=) when it differs from
	// Address, e.g. the public address of a NAT in front of Veilig.
	Advertise string
	// PortMin and PortMax bound the UDP ports used (media.port_range). Ports
	// are handed out in even/odd pairs: the even one carries RTP and muxed
	// RTCP, the odd one is bound only for a device that does not mux.
	PortMin, PortMax int
	// Timeout ends a call when no authenticated packet arrived on either leg
	// for this long (media.timeout). 0 means 60 s; negative disables it.
	Timeout time.Duration
	// Workers is the number of epoll loops; 0 means GOMAXPROCS.
	Workers int
	// NoURing batches with recvmmsg/sendmmsg per socket even where the
	// kernel offers io_uring (which batches across sockets).
	NoURing bool
	// Suites is the order in which Veilig offers SRTP suites; nil means
	// DefaultSuites.
	Suites []Suite
	// Codecs limits the codecs a call may use (names such as "PCMA",
	// case-insensitive; media.codecs); nil allows every codec the devices
	// share. DTMF (telephone-event) and comfort noise always ride along.
	Codecs []string
	// InjectionBurst is how many dropped packets within one second on a leg
	// raise a media.injection event; 0 means 20.
	InjectionBurst int
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// OnEvent receives timeout, injection and latch events. It is called
	// from one dispatcher goroutine, never from the packet path.
	OnEvent func(Event)
}

// EventKind names a media event.
type EventKind string

// Event kinds.
const (
	// EventTimeout: no media for Options.Timeout; the B2BUA should send BYE
	// on both legs.
	EventTimeout EventKind = "media.timeout"
	// EventInjection: a burst of unauthenticated, replayed or foreign
	// packets hit a leg.
	EventInjection EventKind = "media.injection"
	// EventLatch: an authenticated packet moved a leg to a new address.
	EventLatch EventKind = "media.latch"
)

// Event is something the B2BUA or the security log must hear about.
type Event struct {
	Kind   EventKind
	CallID string
	Leg    LegID
	// Source is the offending source (injection) or the new address (latch).
	Source netip.AddrPort
	// Count is the number of packets dropped on the leg so far (injection).
	Count uint64
	Time  time.Time
}

// Errors returned by the relay.
var (
	ErrNoPorts         = errors.New("media: no free ports in range")
	ErrClosed          = errors.New("media: closed")
	ErrPlainNotAllowed = errors.New("media: plain RTP not allowed on this leg")
)

// Relay owns the port range and the worker loops.
type Relay struct {
	opt     Options
	log     *slog.Logger
	v6      bool
	timeout int64 // ns, 0 = off
	burst   uint32

	shards []*shard
	next   atomic.Uint32
	pool   portPool

	events        chan Event
	eventsDropped atomic.Uint64
	sessions      atomic.Int64

	runOnce sync.Once
	closed  atomic.Bool
}

// New validates opt, opens the worker pollers and returns a relay; packets
// are served once Run is called.
func New(opt Options) (*Relay, error) {
	if !opt.Address.IsValid() {
		return nil, errors.New("media: Address is required")
	}
	if opt.Address.IsUnspecified() && opt.Advertise == "" {
		return nil, errors.New("media: Advertise is required when Address is unspecified")
	}
	if opt.PortMin < 1024 || opt.PortMax > 65535 || opt.PortMax-opt.PortMin < 3 {
		return nil, fmt.Errorf("media: bad port range %d-%d", opt.PortMin, opt.PortMax)
	}
	if opt.Timeout == 0 {
		opt.Timeout = 60 * time.Second
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	if opt.Suites == nil {
		opt.Suites = DefaultSuites
	}
	for _, s := range opt.Suites {
		if !s.Supported() {
			return nil, fmt.Errorf("media: Suites: %w: %s", ErrUnsupportedSuite, s)
		}
	}
	if opt.InjectionBurst <= 0 {
		opt.InjectionBurst = 20
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Relay{
		opt:    opt,
		log:    opt.Logger.With("component", "media"),
		v6:     !opt.Address.Unmap().Is4(),
		burst:  uint32(opt.InjectionBurst),
		events: make(chan Event, 4096),
	}
	if opt.Timeout > 0 {
		r.timeout = int64(opt.Timeout)
	}
	r.pool.init(opt.PortMin, opt.PortMax)
	for i := 0; i < opt.Workers; i++ {
		sh, err := newShard(r)
		if err != nil {
			for _, s := range r.shards {
				s.closeFDs()
			}
			return nil, err
		}
		r.shards = append(r.shards, sh)
	}
	return r, nil
}

// AdvertiseAddr is the address to put in SDP c= lines.
func (r *Relay) AdvertiseAddr() string {
	if r.opt.Advertise != "" {
		return r.opt.Advertise
	}
	return r.opt.Address.String()
}

// Run serves packets until ctx ends, then closes every session and socket.
// It may be called once.
func (r *Relay) Run(ctx context.Context) error {
	started := false
	r.runOnce.Do(func() { started = true })
	if !started {
		return errors.New("media: Run called twice")
	}
	var wg sync.WaitGroup
	for _, sh := range r.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sh.loop()
		}()
	}
	dispatchDone := make(chan struct{})
	go r.dispatch(dispatchDone)
	<-ctx.Done()
	r.closed.Store(true)
	for _, sh := range r.shards {
		sh.stop()
	}
	wg.Wait()
	for _, sh := range r.shards {
		sh.closeAll()
	}
	close(r.events)
	<-dispatchDone
	return nil
}

func (r *Relay) dispatch(done chan struct{}) {
	defer close(done)
	for e := range r.events {
		lvl := slog.LevelInfo
		if e.Kind == EventInjection {
			lvl = slog.LevelWarn
		}
		r.log.Log(context.Background(), lvl, "media event", "kind", string(e.Kind), "call", e.CallID,
			"leg", e.Leg.String(), "source", e.Source.String(), "count", e.Count)
		if r.opt.OnEvent != nil {
			r.opt.OnEvent(e)
		}
	}
}

// emit queues e for the dispatcher without ever blocking the packet path.
func (r *Relay) emit(e Event) {
	if r.closed.Load() {
		return
	}
	e.Time = time.Now()
	select {
	case r.events <- e:
	default:
		r.eventsDropped.Add(1)
	}
}

// RelayStats is a snapshot of relay-wide counters.
type RelayStats struct {
	Sessions      int
	Workers       int
	FreePortPairs int
	EventsDropped uint64
}

// Stats reports relay-wide counters.
func (r *Relay) Stats() RelayStats {
	return RelayStats{
		Sessions:      int(r.sessions.Load()),
		Workers:       len(r.shards),
		FreePortPairs: r.pool.free(),
		EventsDropped: r.eventsDropped.Load(),
	}
}

// NewSession allocates two legs (one even/odd port pair each, RTP socket
// bound) for a call. The session is served by one worker for its whole life.
func (r *Relay) NewSession(callID string) (*Session, error) {
	if r.closed.Load() {
		return nil, ErrClosed
	}
	sh := r.shards[int(r.next.Add(1))%len(r.shards)]
	s := &Session{r: r, sh: sh, callID: callID, created: time.Now()}
	s.legs = [2]*Leg{{sess: s, id: LegA}, {sess: s, id: LegB}}
	s.legs[0].peer, s.legs[1].peer = s.legs[1], s.legs[0]
	for i, l := range s.legs {
		port, fd, err := r.bindPair()
		if err != nil {
			sh.mu.Lock()
			for _, l2 := range s.legs[:i] {
				sh.unregisterLeg(l2)
			}
			sh.mu.Unlock()
			return nil, fmt.Errorf("media: session %s leg %s: %w", callID, l.id, err)
		}
		l.port = port
		sh.mu.Lock()
		l.rtp, err = sh.register(fd, l, false)
		sh.mu.Unlock()
		if err != nil {
			closeFD(fd)
			r.pool.put(port)
			sh.mu.Lock()
			for _, l2 := range s.legs[:i] {
				sh.unregisterLeg(l2)
			}
			sh.mu.Unlock()
			return nil, fmt.Errorf("media: session %s: %w", callID, err)
		}
	}
	sh.mu.Lock()
	if sh.sessions == nil {
		sh.sessions = make(map[*Session]struct{})
	}
	sh.sessions[s] = struct{}{}
	s.last = sh.now()
	sh.mu.Unlock()
	r.sessions.Add(1)
	return s, nil
}

// bindPair takes a port pair from the pool and binds its even port,
// skipping pairs some other program holds.
func (r *Relay) bindPair() (int, int, error) {
	for range 64 {
		port, ok := r.pool.get()
		if !ok {
			return 0, 0, ErrNoPorts
		}
		fd, err := openUDP(r.opt.Address, port, r.v6)
		if err == nil {
			return port, fd, nil
		}
		r.log.Debug("media port busy", "port", port, "err", err)
		r.pool.putLater(port)
	}
	return 0, 0, ErrNoPorts
}

// portPool hands out even base ports at random, so that an attacker cannot
// predict the next call's ports.
type portPool struct {
	mu    sync.Mutex
	avail []int
	busy  []int // ports another program held; retried after the pool drains
}

func (p *portPool) init(lo, hi int) {
	if lo%2 == 1 {
		lo++
	}
	for port := lo; port+1 <= hi; port += 2 {
		p.avail = append(p.avail, port)
	}
}

func (p *portPool) get() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.avail) == 0 {
		p.avail, p.busy = p.busy, p.avail[:0]
		if len(p.avail) == 0 {
			return 0, false
		}
	}
	i := rand.IntN(len(p.avail))
	port := p.avail[i]
	p.avail[i] = p.avail[len(p.avail)-1]
	p.avail = p.avail[:len(p.avail)-1]
	return port, true
}

func (p *portPool) put(port int) {
	p.mu.Lock()
	p.avail = append(p.avail, port)
	p.mu.Unlock()
}

func (p *portPool) putLater(port int) {
	p.mu.Lock()
	p.busy = append(p.busy, port)
	p.mu.Unlock()
}

func (p *portPool) free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.avail) + len(p.busy)
}
