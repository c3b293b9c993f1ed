package defence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/veilig/veilig/internal/config"
	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/store"
	"github.com/veilig/veilig/internal/tollfraud"
)

// Fraud carries out what the toll-fraud guard decides that must outlive
// it: its suspensions are persisted (off the SIP path) and replayed at
// start, and an admin's lift reaches it through the change feed
// (ApplySuspensions). It also runs the guard's periodic check.
type Fraud struct {
	g   *tollfraud.Guard
	st  FraudStore
	ev  events.Emitter
	log *slog.Logger

	effects chan []tollfraud.Effect
}

// FraudStore is what the fraud defence persists and re-reads.
type FraudStore interface {
	store.Suspensions
	ListCallRecords(ctx context.Context, f store.RecordFilter) ([]store.CallRecord, error)
}

// NewFraud builds the toll-fraud guard from its config section.
func NewFraud(cfg config.Fraud, st FraudStore, ev events.Emitter, log *slog.Logger) (*Fraud, error) {
	g, err := tollfraud.New(tollfraud.FromConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("fraud guard: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Fraud{g: g, st: st, ev: ev, log: log, effects: make(chan []tollfraud.Effect, 1024)}, nil
}

// Guard is the toll-fraud guard the B2BUA asks.
func (f *Fraud) Guard() *tollfraud.Guard { return f.g }

// Apply queues the guard's effects; it never blocks the SIP path. A full
// queue (a store that stopped answering for a long time) keeps the
// suspension in memory and says so.
func (f *Fraud) Apply(fx []tollfraud.Effect) {
	if len(fx) == 0 {
		return
	}
	select {
	case f.effects <- fx:
	default:
		f.log.Error("fraud effect queue full; suspensions hold in memory but are not persisted", "effects", len(fx))
	}
}

// persist writes effects even while shutting down: a suspension decided
// must not be lost to the stop that follows it.
func (f *Fraud) persist(ctx context.Context, fx []tollfraud.Effect) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, e := range fx {
		switch e := e.(type) {
		case tollfraud.SuspendExtension:
			if err := f.st.SaveSuspension(ctx, store.Suspension{Extension: e.Extension, Reason: e.Reason, Since: e.At}); err != nil {
				f.log.Error("persist suspension", "extension", e.Extension, "err", err)
			}
		}
	}
}

// Run persists effects and checks running calls and volume every
// interval until ctx ends; end is how a call the guard stops is ended.
// Queued effects are persisted before it returns.
func (f *Fraud) Run(ctx context.Context, interval time.Duration, end func(tollfraud.End)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case fx := <-f.effects:
					f.persist(ctx, fx)
				default:
					return nil
				}
			}
		case fx := <-f.effects:
			f.persist(ctx, fx)
		case now := <-t.C:
			res := f.g.Tick(now)
			for _, e := range res.Events {
				f.ev.Emit(e)
			}
			f.persist(ctx, res.Effects)
			for _, x := range res.End {
				end(x)
			}
		}
	}
}

// ApplySuspensions makes the guard's suspensions of the changed extensions
// match the store (a feed handler): a suspension lifted by an admin ends
// here and says so; one made elsewhere takes effect.
func (f *Fraud) ApplySuspensions(ctx context.Context, keys []string) {
	now := time.Now()
	if len(keys) == 1 && keys[0] == "" {
		keys = keys[:0]
		sus, err := f.st.ListSuspensions(ctx)
		if err != nil {
			f.log.Error("reload suspensions", "err", err)
			return
		}
		for _, s := range sus {
			keys = append(keys, s.Extension)
		}
	}
	for _, ext := range keys {
		s, err := f.st.Suspension(ctx, ext)
		switch {
		case err == nil:
			if _, ok := f.g.Suspended(ext); !ok {
				f.g.Suspend(ext, s.Reason, now)
			}
		case errors.Is(err, store.ErrNotFound):
			if _, ok := f.g.Suspended(ext); ok {
				f.ev.Emit(f.g.Lift(ext, now))
			}
		default:
			f.log.Error("re-read suspension", "extension", ext, "err", err)
		}
	}
}

// Restore replays suspensions and learns the outbound baseline and the
// tenant's known countries from the call records.
func (f *Fraud) Restore(ctx context.Context) error {
	sus, err := f.st.ListSuspensions(ctx)
	if err != nil {
		return fmt.Errorf("restore suspensions: %w", err)
	}
	for _, s := range sus {
		f.g.Suspend(s.Extension, s.Reason, time.Now())
	}
	recs, err := f.st.ListCallRecords(ctx, store.RecordFilter{Outbound: true, Limit: 200_000})
	if err != nil {
		return fmt.Errorf("restore fraud baseline: %w", err)
	}
	var rs []tollfraud.Record
	for _, r := range recs {
		if r.E164 == "" || r.AnsweredAt.IsZero() {
			continue
		}
		rs = append(rs, tollfraud.Record{
			Extension: r.From, Trunk: r.Trunk, Class: tollfraud.Class(r.Class),
			Destination: tollfraud.Destination{E164: r.E164, Country: r.Country},
			Start:       r.StartedAt, End: r.EndedAt, Answered: r.EndedAt.Sub(r.AnsweredAt),
			EstimatedCost: r.EstimatedCost,
		})
	}
	f.g.LearnBaseline(rs)
	return nil
}
