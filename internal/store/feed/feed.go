// Package feed delivers the store's change feed to the subsystems that
// mirror stored rows in memory (extensions, bans, locks, suspensions,
// trunks). One poller reads store.ChangeFeed and hands each subscriber the
// keys that changed in its topic; Kick makes it poll at once, so a change
// committed in this process takes effect within microseconds, and the
// periodic poll picks up changes other processes committed (the CLI when
// no server was reachable, another node). A subscriber treats a change as
// "the store is authoritative for this key now" and re-reads the row, so
// delivering a key twice is harmless and nothing depends on ordering
// between topics.
package feed

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/veilig/veilig/internal/store"
)

// All is the key a subscriber receives when it must reload its whole topic:
// the feed lost track (changes it had not read were purged, or the store
// was unreachable for a while).
const All = ""

// Handler receives the distinct keys of one topic that changed, in the
// order they first changed. It runs on the feed's goroutine and must not
// block for long.
type Handler func(ctx context.Context, keys []string)

// Feed polls a store's change feed and fans it out by topic.
type Feed struct {
	src   store.ChangeFeed
	log   *slog.Logger
	every time.Duration

	mu   sync.Mutex
	subs map[string][]Handler
	last int64

	kick chan struct{}
	// started numbers polls as they begin and done is the number of the
	// last one finished; polled is closed and replaced whenever done
	// moves, so Sync can wait for a poll that began after its call.
	started, done int64
	polled        chan struct{}
}

// New makes a feed that starts after the store's newest change: what is
// already stored, subscribers load themselves at start.
func New(ctx context.Context, src store.ChangeFeed, every time.Duration, log *slog.Logger) (*Feed, error) {
	last, err := src.LastChange(ctx)
	if err != nil {
		return nil, err
	}
	if every <= 0 {
		every = time.Second
	}
	return &Feed{src: src, log: log, every: every, subs: map[string][]Handler{}, last: last,
		kick: make(chan struct{}, 1), polled: make(chan struct{})}, nil
}

// Subscribe adds h for topic. Subscribe before Run.
func (f *Feed) Subscribe(topic string, h Handler) {
	f.mu.Lock()
	f.subs[topic] = append(f.subs[topic], h)
	f.mu.Unlock()
}

// Kick asks for a poll now (after this process committed a change).
func (f *Feed) Kick() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Sync kicks the feed and waits until a poll that began after the call
// has delivered, so a caller that just committed a change knows every
// subscriber has applied it. (A poll already running may have read the
// feed before the caller's commit; the kick stays queued for the next.)
func (f *Feed) Sync(ctx context.Context) {
	f.mu.Lock()
	target := f.started + 1
	f.mu.Unlock()
	f.Kick()
	for {
		f.mu.Lock()
		done, ch := f.done, f.polled
		f.mu.Unlock()
		if done >= target {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// Run polls until ctx ends.
func (f *Feed) Run(ctx context.Context) error {
	t := time.NewTicker(f.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-f.kick:
		}
		f.poll(ctx)
	}
}

const batch = 1000

func (f *Feed) poll(ctx context.Context) {
	f.mu.Lock()
	f.started++
	n := f.started
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.done = n
		close(f.polled)
		f.polled = make(chan struct{})
		f.mu.Unlock()
	}()
	for {
		cs, err := f.src.Changes(ctx, f.last, batch)
		if err != nil {
			if ctx.Err() == nil {
				f.log.Warn("change feed unreadable; retrying", "err", err)
			}
			return
		}
		if len(cs) == 0 {
			return
		}
		byTopic := map[string][]string{}
		seen := map[string]bool{}
		if cs[0].Seq > f.last+1 && f.last != 0 {
			// Changes we never read were purged (or a sequence skipped):
			// tell every subscriber to reload.
			f.mu.Lock()
			for topic := range f.subs {
				byTopic[topic] = []string{All}
			}
			f.mu.Unlock()
		}
		for _, c := range cs {
			k := c.Topic + "\x00" + c.Key
			if seen[k] {
				continue
			}
			seen[k] = true
			byTopic[c.Topic] = append(byTopic[c.Topic], c.Key)
		}
		f.last = cs[len(cs)-1].Seq
		f.deliver(ctx, byTopic)
		if len(cs) < batch {
			return
		}
	}
}

func (f *Feed) deliver(ctx context.Context, byTopic map[string][]string) {
	f.mu.Lock()
	subs := make(map[string][]Handler, len(f.subs))
	for t, hs := range f.subs {
		subs[t] = hs
	}
	f.mu.Unlock()
	for topic, keys := range byTopic {
		if len(keys) > 1 && keys[0] == All {
			keys = keys[:1]
		}
		for _, h := range subs[topic] {
			h(ctx, keys)
		}
	}
}
