// Package retention is the background job that enforces how long Veilig
// keeps what it stores: events past their retention, bans and locks that
// have ended, and change-feed rows nobody needs any more. It deletes in
// bounded batches with a pause between them, so the store keeps serving
// registrations and calls during a purge of millions of rows, and each
// purge that deleted something is an event.
package retention

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"time"

	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/store"
)

// Options configure the job. A zero retention keeps that kind forever.
type Options struct {
	Events      time.Duration
	CallRecords time.Duration
	// Changes is how long change-feed rows are kept for processes that
	// were away (default one day).
	Changes time.Duration
	Every   time.Duration // between runs (default 10 minutes)
	Batch   int           // rows per statement (default 5000)
	Pause   time.Duration // between batches (default 20 ms)
	Now     func() time.Time
}

// Job purges on a schedule.
type Job struct {
	st  store.Purger
	ev  events.Emitter
	log *slog.Logger
	o   Options
}

// New makes a job.
func New(st store.Purger, ev events.Emitter, log *slog.Logger, o Options) *Job {
	if o.Every <= 0 {
		o.Every = 10 * time.Minute
	}
	if o.Batch <= 0 {
		o.Batch = 5000
	}
	if o.Pause <= 0 {
		o.Pause = 20 * time.Millisecond
	}
	if o.Changes <= 0 {
		o.Changes = 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Job{st: st, ev: ev, log: log, o: o}
}

// Run purges once soon after start and then every Options.Every.
func (j *Job) Run(ctx context.Context) error {
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := j.Once(ctx); err != nil && ctx.Err() == nil {
			j.log.Error("retention purge", "err", err)
		}
		t.Reset(j.o.Every)
	}
}

// Once runs every purge to completion (or ctx's end) and reports rows
// deleted per kind.
func (j *Job) Once(ctx context.Context) error {
	now := j.o.Now()
	type kind struct {
		name   string
		before time.Time
		purge  func(context.Context, time.Time, int) (int, error)
	}
	kinds := []kind{
		{"bans_locks", now, j.st.PurgeExpired},
		{"changes", now.Add(-j.o.Changes), j.st.PurgeChanges},
	}
	if j.o.Events > 0 {
		kinds = append(kinds, kind{"events", now.Add(-j.o.Events), j.st.PurgeEvents})
	}
	if j.o.CallRecords > 0 {
		kinds = append(kinds, kind{"call_records", now.Add(-j.o.CallRecords), j.st.PurgeCallRecords})
	}
	for _, k := range kinds {
		total := 0
		for {
			n, err := k.purge(ctx, k.before, j.o.Batch)
			total += n
			if err != nil {
				return fmt.Errorf("purge %s: %w", k.name, err)
			}
			if n < j.o.Batch {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(j.o.Pause):
			}
		}
		if total > 0 {
			j.ev.Emit(events.New(events.RetentionPurged, netip.AddrPort{}, "",
				fmt.Sprintf("retention: deleted %d %s older than %s", total, k.name, k.before.UTC().Format(time.RFC3339)),
				"kind", k.name, "count", strconv.Itoa(total), "before", k.before.UTC().Format(time.RFC3339)))
		}
	}
	return nil
}
