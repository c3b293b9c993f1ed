package sipedge

import (
	"context"
	"time"
)

// every runs f on a ticker of period d until ctx ends: the periodic chores
// (flushing held messages, sweeping finished transactions) that replace a
// timer per message.
func every(ctx context.Context, d time.Duration, f func(now time.Time)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f(now)
		}
	}
}
