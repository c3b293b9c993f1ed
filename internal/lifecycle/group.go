// Package lifecycle runs the server's subsystems as named actors and stops
// them in order.
//
// Actors are added in dependency order (the event bus before those that
// emit, the SIP edge last) and stopped in the reverse order, each only
// after every actor added after it has returned: the edge stops accepting
// first, calls and defences wind down next, and the bus writes the last
// events after everything that could emit one has stopped.
package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Group is a set of running actors. The zero value is not usable; use New.
type Group struct {
	log     *slog.Logger
	timeout time.Duration

	mu     sync.Mutex
	actors []*actor
	failed chan struct{}
	once   sync.Once
	cause  error
}

type actor struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
}

// New makes a group; timeout bounds how long Stop waits for one actor
// before it goes on to the next (and says so).
func New(log *slog.Logger, timeout time.Duration) *Group {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Group{log: log, timeout: timeout, failed: make(chan struct{})}
}

// Go starts run as the actor name. Its context ends when Stop reaches it.
// An actor that returns an error other than its context's ends the whole
// server: Failed is closed and Err names it.
func (g *Group) Go(name string, run func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	a := &actor{name: name, cancel: cancel, done: make(chan struct{})}
	g.mu.Lock()
	g.actors = append(g.actors, a)
	g.mu.Unlock()
	go func() {
		defer close(a.done)
		err := run(ctx)
		if err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
			g.log.Error("subsystem stopped", "subsystem", name, "err", err)
			g.fail(errors.New(name + ": " + err.Error()))
		}
	}()
}

func (g *Group) fail(err error) {
	g.once.Do(func() {
		g.cause = err
		close(g.failed)
	})
}

// Failed is closed when an actor has failed.
func (g *Group) Failed() <-chan struct{} { return g.failed }

// Err is the first actor failure, or nil.
func (g *Group) Err() error {
	select {
	case <-g.failed:
		return g.cause
	default:
		return nil
	}
}

// Stop ends the actors, the last added first, each before the next.
func (g *Group) Stop() {
	g.mu.Lock()
	actors := append([]*actor(nil), g.actors...)
	g.mu.Unlock()
	for i := len(actors) - 1; i >= 0; i-- {
		a := actors[i]
		a.cancel()
		select {
		case <-a.done:
		case <-time.After(g.timeout):
			g.log.Error("subsystem did not stop in time; going on", "subsystem", a.name, "timeout", g.timeout)
		}
	}
}
