package lifecycle

import (
	"context"
	"time"
)

// Every runs f on a ticker of period d until ctx ends, and returns nil
// then: the shape of every periodic chore (sweeps, polls, checks), so a
// chore is one function and its period, and it stops with its actor.
func Every(ctx context.Context, d time.Duration, f func(now time.Time)) error {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			f(now)
		}
	}
}
