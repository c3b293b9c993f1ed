package events

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Batch is what a sink writes at once: the events and call records that
// queued while its previous write ran.
type Batch struct {
	Events  []Event
	Records []CallRecord
}

// Len counts the items in b.
func (b Batch) Len() int { return len(b.Events) + len(b.Records) }

// Sink is where events go: the store, the JSON-lines file, an alert rule
// engine, a SIEM. Write runs on the sink's own goroutine, so it may block
// on a disk or the network; an error makes the bus retry the batch (with
// backoff, a few times) before counting it lost. The batch's slices are
// reused after Write returns: a sink keeps copies, not the slices.
type Sink interface {
	Name() string
	Write(ctx context.Context, b Batch) error
}

// SinkOptions tune one sink's queue.
type SinkOptions struct {
	// Queue bounds the items waiting for the sink (default 65536).
	Queue int
	// MaxBatch bounds one write (default 1000).
	MaxBatch int
	// Retries of a failed batch before it is dropped (default 3).
	Retries int
	// DropOldest makes a full queue drop its oldest item instead of the
	// new one: right for a SIEM feed, where the newest matter most.
	DropOldest bool
}

// SinkStats is one sink's health.
type SinkStats struct {
	Name        string    `json:"name"`
	Queued      int       `json:"queued"`
	Written     uint64    `json:"written"`
	Dropped     uint64    `json:"dropped"` // lost to a full queue or to failed writes
	Failures    uint64    `json:"failures"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
}

// Bus fans events and call records out to its sinks. Add sinks before Run.
type Bus struct {
	log  *slog.Logger
	subs []*sub
	// uncatalogued counts events whose type is not in the catalogue
	// (only possible when a caller builds an Event by hand).
	uncatalogued atomic.Uint64
	running      atomic.Bool
}

type item struct {
	ev   *Event
	rec  *CallRecord
	mark chan struct{} // Flush marker
}

type sub struct {
	sink Sink
	o    SinkOptions
	q    chan item

	written, dropped, failures atomic.Uint64

	mu          sync.Mutex
	lastErr     string
	lastErrAt   time.Time
	lastSuccess time.Time
}

// NewBus makes a bus with no sinks.
func NewBus(log *slog.Logger) *Bus {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Bus{log: log}
}

// AddSink plugs s in with its own queue.
func (b *Bus) AddSink(s Sink, o SinkOptions) {
	if b.running.Load() {
		panic("events: AddSink after Run")
	}
	if o.Queue <= 0 {
		o.Queue = 65536
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1000
	}
	if o.Retries <= 0 {
		o.Retries = 3
	}
	b.subs = append(b.subs, &sub{sink: s, o: o, q: make(chan item, o.Queue)})
}

// Emit queues e for every sink without blocking.
func (b *Bus) Emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if e.ID == "" {
		e.ID = NewID(e.Time)
	}
	if _, ok := ByName(e.Type); !ok {
		b.uncatalogued.Add(1)
	}
	for _, s := range b.subs {
		s.offer(item{ev: &e})
	}
}

// Record queues a call record for every sink without blocking.
func (b *Bus) Record(r CallRecord) {
	for _, s := range b.subs {
		s.offer(item{rec: &r})
	}
}

func (s *sub) offer(it item) {
	select {
	case s.q <- it:
		return
	default:
	}
	if s.o.DropOldest {
		select {
		case <-s.q:
			s.dropped.Add(1)
		default:
		}
		select {
		case s.q <- it:
			return
		default:
		}
	}
	s.dropped.Add(1)
}

// Flush waits until everything emitted before the call has been written
// (or given up) by every sink, or ctx ends.
func (b *Bus) Flush(ctx context.Context) error {
	var marks []chan struct{}
	for _, s := range b.subs {
		m := make(chan struct{})
		select {
		case s.q <- item{mark: m}:
			marks = append(marks, m)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, m := range marks {
		select {
		case <-m:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// EmitDurable emits e and waits until every sink has written it: for the
// events a security decision rests on, which must not be lost to a crash
// right after the decision took effect.
func (b *Bus) EmitDurable(ctx context.Context, e Event) error {
	b.Emit(e)
	return b.Flush(ctx)
}

// Stats reports each sink's health.
func (b *Bus) Stats() []SinkStats {
	out := make([]SinkStats, 0, len(b.subs))
	for _, s := range b.subs {
		s.mu.Lock()
		out = append(out, SinkStats{
			Name: s.sink.Name(), Queued: len(s.q), Written: s.written.Load(), Dropped: s.dropped.Load(),
			Failures: s.failures.Load(), LastError: s.lastErr, LastErrorAt: s.lastErrAt, LastSuccess: s.lastSuccess,
		})
		s.mu.Unlock()
	}
	return out
}

// Dropped counts items lost by any sink.
func (b *Bus) Dropped() uint64 {
	var n uint64
	for _, s := range b.subs {
		n += s.dropped.Load()
	}
	return n
}

// Uncatalogued counts emitted events whose type the catalogue lacks.
func (b *Bus) Uncatalogued() uint64 { return b.uncatalogued.Load() }

// Run drives every sink until ctx ends, then writes what is queued and
// returns once all sinks are done.
func (b *Bus) Run(ctx context.Context) error {
	b.running.Store(true)
	var wg sync.WaitGroup
	for _, s := range b.subs {
		wg.Go(func() { s.run(ctx, b.log) })
	}
	wg.Wait()
	return nil
}

func (s *sub) run(ctx context.Context, log *slog.Logger) {
	var batch Batch
	var marks []chan struct{}
	// Writes after ctx ends (the final drain) still get time to finish.
	wctx := context.WithoutCancel(ctx)
	take := func(it item) {
		switch {
		case it.ev != nil:
			batch.Events = append(batch.Events, *it.ev)
		case it.rec != nil:
			batch.Records = append(batch.Records, *it.rec)
		case it.mark != nil:
			marks = append(marks, it.mark)
		}
	}
	write := func() {
		if batch.Len() > 0 {
			s.write(wctx, batch, log)
		}
		for _, m := range marks {
			close(m)
		}
		batch.Events, batch.Records, marks = batch.Events[:0], batch.Records[:0], marks[:0]
	}
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case it := <-s.q:
					take(it)
					if batch.Len() >= s.o.MaxBatch {
						write()
					}
				default:
					write()
					return
				}
			}
		case it := <-s.q:
			take(it)
		}
		// Group commit: everything already queued joins this write.
	fill:
		for batch.Len() < s.o.MaxBatch {
			select {
			case it := <-s.q:
				take(it)
			default:
				break fill
			}
		}
		write()
	}
}

// write tries a batch a few times with backoff; a batch that keeps
// failing is dropped so one bad row or a dead receiver cannot stall the
// queue behind it.
func (s *sub) write(ctx context.Context, b Batch, log *slog.Logger) {
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.sink.Write(wctx, b)
		cancel()
		if err == nil {
			s.written.Add(uint64(b.Len()))
			s.mu.Lock()
			s.lastSuccess = time.Now()
			s.mu.Unlock()
			return
		}
		s.failures.Add(1)
		s.mu.Lock()
		s.lastErr, s.lastErrAt = err.Error(), time.Now()
		s.mu.Unlock()
		if attempt >= s.o.Retries || errors.Is(err, ErrPermanent) {
			s.dropped.Add(uint64(b.Len()))
			log.Error("events: sink gave up on a batch", "sink", s.sink.Name(), "items", b.Len(), "err", err)
			return
		}
		log.Warn("events: sink write failed; retrying", "sink", s.sink.Name(), "attempt", attempt+1, "err", err)
		time.Sleep(backoff)
		backoff *= 4
	}
}

// ErrPermanent marks a sink error that retrying cannot fix.
var ErrPermanent = errors.New("permanent sink error")

var _ Emitter = (*Bus)(nil)
