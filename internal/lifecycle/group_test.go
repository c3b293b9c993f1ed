package lifecycle

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestStopInReverseOrder: each actor is stopped only after every actor
// added after it has returned.
func TestStopInReverseOrder(t *testing.T) {
	g := New(nil, time.Second)
	var mu sync.Mutex
	var stopped []string
	for _, name := range []string{"bus", "registrar", "calls", "edge"} {
		g.Go(name, func(ctx context.Context) error {
			<-ctx.Done()
			time.Sleep(5 * time.Millisecond) // a slow stop must still be waited for
			mu.Lock()
			stopped = append(stopped, name)
			mu.Unlock()
			return ctx.Err()
		})
	}
	g.Stop()
	if want := []string{"edge", "calls", "registrar", "bus"}; !slices.Equal(stopped, want) {
		t.Fatalf("stopped %v, want %v", stopped, want)
	}
	if g.Err() != nil {
		t.Fatalf("Err = %v after a clean stop", g.Err())
	}
}

// TestFailureEndsTheServer: an actor that fails closes Failed and names
// itself; one that returns nil early does not.
func TestFailureEndsTheServer(t *testing.T) {
	g := New(nil, time.Second)
	g.Go("done-early", func(context.Context) error { return nil })
	g.Go("metrics", func(context.Context) error { return errors.New("listen: address in use") })
	select {
	case <-g.Failed():
	case <-time.After(2 * time.Second):
		t.Fatal("Failed not closed")
	}
	if err := g.Err(); err == nil || err.Error() != "metrics: listen: address in use" {
		t.Fatalf("Err = %v", err)
	}
	g.Stop()
}

// TestStuckActorBounded: Stop goes on after the timeout.
func TestStuckActorBounded(t *testing.T) {
	g := New(nil, 50*time.Millisecond)
	release := make(chan struct{})
	g.Go("stuck", func(context.Context) error { <-release; return nil })
	start := time.Now()
	g.Stop()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Stop waited %v for a stuck actor", d)
	}
	close(release)
}
