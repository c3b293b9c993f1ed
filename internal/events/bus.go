package events

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/veilig/veilig/internal/store"
)

// Bus queues events and call records and writes them in batches to the
// store and the JSON-lines log: every 100 ms, or at once (with whatever
// is queued before it) for a warning or an alert, since security
// decisions rest on those and a crash must lose as few of them as
// possible.
type Bus struct {
	q       chan item
	urgent  chan struct{}
	st      store.Store
	path    string
	log     *slog.Logger
	dropped atomic.Uint64
	written atomic.Uint64
	flushed chan chan struct{}
}

type item struct {
	ev  *Event
	rec *CallRecord
}

// NewBus makes a bus writing to st and to the log file at path (appended,
// mode 0600). Either may be nil/empty.
func NewBus(st store.Store, path string, queue int, log *slog.Logger) *Bus {
	if queue <= 0 {
		queue = 65536
	}
	return &Bus{q: make(chan item, queue), urgent: make(chan struct{}, 1), st: st, path: path, log: log, flushed: make(chan chan struct{})}
}

// Emit queues e without blocking; a full queue drops it and counts.
func (b *Bus) Emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	select {
	case b.q <- item{ev: &e}:
	default:
		b.dropped.Add(1)
		return
	}
	if e.Severity == Warning || e.Severity == Alert {
		select {
		case b.urgent <- struct{}{}:
		default:
		}
	}
}

// Record queues a call record without blocking.
func (b *Bus) Record(r CallRecord) {
	select {
	case b.q <- item{rec: &r}:
	default:
		b.dropped.Add(1)
	}
}

// Dropped counts events lost to a full queue.
func (b *Bus) Dropped() uint64 { return b.dropped.Load() }

// Flush waits until everything emitted before the call is written.
func (b *Bus) Flush(ctx context.Context) {
	done := make(chan struct{})
	select {
	case b.flushed <- done:
	case <-ctx.Done():
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// Run writes batches until ctx ends, then drains what is queued.
func (b *Bus) Run(ctx context.Context) error {
	var f *os.File
	var w *bufio.Writer
	if b.path != "" {
		var err error
		f, err = os.OpenFile(b.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("events: open log %s: %w", b.path, err)
		}
		defer f.Close()
		w = bufio.NewWriterSize(f, 64<<10)
	}
	var evs []Event
	var recs []CallRecord
	flush := func() {
		if len(evs) == 0 && len(recs) == 0 {
			return
		}
		if w != nil {
			enc := json.NewEncoder(w)
			for i := range evs {
				_ = enc.Encode(&evs[i])
			}
			for i := range recs {
				_ = enc.Encode(struct {
					Type string `json:"type"`
					*CallRecord
				}{"call.record", &recs[i]})
			}
			if err := w.Flush(); err != nil {
				b.log.Error("events: write log", "err", err)
			}
		}
		if b.st != nil {
			wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if len(evs) > 0 {
				if err := b.st.InsertEvents(wctx, toStoreEvents(evs)); err != nil {
					b.log.Error("events: store", "err", err, "count", len(evs))
				}
			}
			if len(recs) > 0 {
				if err := b.st.InsertCallRecords(wctx, toStoreRecords(recs)); err != nil {
					b.log.Error("events: store call records", "err", err, "count", len(recs))
				}
			}
			cancel()
		}
		b.written.Add(uint64(len(evs) + len(recs)))
		evs, recs = evs[:0], recs[:0]
	}
	take := func(it item) {
		if it.ev != nil {
			evs = append(evs, *it.ev)
		} else if it.rec != nil {
			recs = append(recs, *it.rec)
		}
	}
	drain := func() {
		for {
			select {
			case it := <-b.q:
				take(it)
				if len(evs)+len(recs) >= 1000 {
					flush()
				}
			default:
				flush()
				return
			}
		}
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			drain()
			return nil
		case it := <-b.q:
			take(it)
			if len(evs)+len(recs) >= 1000 {
				flush()
			}
		case <-tick.C:
			flush()
		case <-b.urgent:
			drain()
		case done := <-b.flushed:
			drain()
			close(done)
		}
	}
}

func toStoreEvents(evs []Event) []store.Event {
	out := make([]store.Event, len(evs))
	for i, e := range evs {
		out[i] = store.Event{Time: e.Time, Type: e.Type, Severity: string(e.Severity), Source: e.Source, Account: e.Account, Message: e.Message, Fields: e.Fields}
	}
	return out
}

func toStoreRecords(rs []CallRecord) []store.CallRecord {
	out := make([]store.CallRecord, len(rs))
	for i, r := range rs {
		src, _ := netip.ParseAddrPort(r.Source)
		out[i] = store.CallRecord{
			ID: r.ID, From: r.From, To: r.To, Source: src, StartedAt: r.StartedAt, AnsweredAt: r.AnsweredAt,
			EndedAt: r.EndedAt, Disposition: r.Disposition, Cause: r.Cause, CallerMedia: r.CallerMedia,
			CalleeMedia: r.CalleeMedia, MediaInClear: r.MediaInClear,
			E164: r.E164, Country: r.Country, Class: r.Class, EstimatedCost: r.EstimatedCost, Trunk: r.Trunk, Fraud: r.Fraud,
		}
	}
	return out
}

var _ Emitter = (*Bus)(nil)
