package app

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/veilig/veilig/internal/config"
	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/store"
	"github.com/veilig/veilig/internal/tollfraud"
)

// fraudEvents passes events on and persists the guard's suspensions, so
// an extension suspended for fraud stays suspended across a restart until
// an admin lifts it (`veilig ext lift`).
type fraudEvents struct {
	events.Emitter
	st  store.Store
	log *slog.Logger
}

func (f fraudEvents) Emit(e events.Event) {
	f.Emitter.Emit(e)
	if e.Type == tollfraud.EventTripped && e.Fields["action"] == string(tollfraud.Suspend) && e.Account != "" {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := f.st.SaveSuspension(ctx, store.Suspension{Extension: e.Account, Reason: e.Fields["reason"], Since: e.Time}); err != nil {
				f.log.Error("persist suspension", "extension", e.Account, "err", err)
			}
		}()
	}
}

// applySuspensions makes the guard's suspensions of the changed extensions
// match the store (a feed handler): a suspension lifted by an admin ends
// here and says so.
func applySuspensions(g *tollfraud.Guard, st store.Suspensions, ev events.Emitter, log *slog.Logger) func(context.Context, []string) {
	return func(ctx context.Context, keys []string) {
		now := time.Now()
		if len(keys) == 1 && keys[0] == "" {
			keys = keys[:0]
			sus, err := st.ListSuspensions(ctx)
			if err != nil {
				log.Error("reload suspensions", "err", err)
				return
			}
			for _, s := range sus {
				keys = append(keys, s.Extension)
			}
		}
		for _, ext := range keys {
			s, err := st.Suspension(ctx, ext)
			switch {
			case err == nil:
				if _, ok := g.Suspended(ext); !ok {
					g.Suspend(ext, s.Reason, now)
				}
			case errors.Is(err, store.ErrNotFound):
				if _, ok := g.Suspended(ext); ok {
					ev.Emit(g.Lift(ext, now))
				}
			default:
				log.Error("re-read suspension", "extension", ext, "err", err)
			}
		}
	}
}

// restoreFraud replays suspensions and learns the outbound baseline and
// the tenant's known countries from the call records.
func restoreFraud(ctx context.Context, g *tollfraud.Guard, st store.Store) error {
	sus, err := st.ListSuspensions(ctx)
	if err != nil {
		return err
	}
	for _, s := range sus {
		g.Suspend(s.Extension, s.Reason, time.Now())
	}
	recs, err := st.ListCallRecords(ctx, store.RecordFilter{Outbound: true, Limit: 200_000})
	if err != nil {
		return err
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
	g.LearnBaseline(rs)
	return nil
}

// fraudConfig maps the fraud section onto the guard's defaults.
func fraudConfig(f config.Fraud) tollfraud.Config {
	c := tollfraud.Default(f.Country)
	c.TimeZone = f.TimeZone
	c.AllowPrefixes = append(c.AllowPrefixes, f.AllowPrefixes...)
	setInt := func(dst *int, v int) {
		if v != 0 {
			*dst = v
		}
	}
	setInt(&c.Extension.Concurrent, f.ExtensionConcurrent)
	setInt(&c.Extension.PerMinute, f.ExtensionPerMinute)
	setInt(&c.Trunk.Concurrent, f.TrunkConcurrent)
	setInt(&c.Trunk.PerMinute, f.TrunkPerMinute)
	if f.ExtensionMaxDuration != 0 {
		c.Extension.MaxDuration = f.ExtensionMaxDuration
	}
	if f.TrunkMaxDuration != 0 {
		c.Trunk.MaxDuration = f.TrunkMaxDuration
	}
	if f.ExtensionDailyBudget != 0 {
		c.Extension.DailyBudget = f.ExtensionDailyBudget
	}
	if f.TrunkDailyBudget != 0 {
		c.Trunk.DailyBudget = f.TrunkDailyBudget
	}
	if f.RateNational != 0 {
		c.Rates.National = f.RateNational
	}
	if f.RateEU != 0 {
		c.Rates.EU = f.RateEU
	}
	if f.RateDefault != 0 {
		c.Rates.Default = f.RateDefault
	}
	switch f.BusinessHours {
	case "off":
		c.BusinessHours.Enabled = false
	case "alert":
		c.BusinessHours.Action = tollfraud.Alert
	}
	if f.Trip == "alert" {
		c.Trip = tollfraud.Alert
	}
	return c
}
