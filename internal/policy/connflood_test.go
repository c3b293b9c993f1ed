package policy

import (
	"testing"
	"time"
)

// TestConnectionLimitSustained: evictions at the connection limit raise
// flood.connections only once they have gone on for ConnFloodAfter
// without a pause, and then once per alert window; a pause starts over.
func TestConnectionLimitSustained(t *testing.T) {
	e := newEngine(t, nil)
	alerts := 0
	for i := 0; i <= 12; i++ { // one eviction a second for 12 s
		for _, a := range e.ConnectionLimit(true, 100, 100, t0.Add(time.Duration(i)*time.Second)) {
			if al, ok := a.(Alert); ok && al.Type == AlertFloodConnections {
				alerts++
				if i < 10 {
					t.Fatalf("flood.connections after %ds, want only after 10s", i)
				}
				if al.Fields["evicted"] != "11" {
					t.Errorf("alert fields %v, want evicted=11", al.Fields)
				}
			}
		}
	}
	if alerts != 1 {
		t.Fatalf("%d flood.connections alerts, want 1", alerts)
	}
	// A pause longer than the gap starts a new streak, and within the
	// alert window the dedupe holds it back anyway.
	later := t0.Add(time.Minute)
	if acts := e.ConnectionLimit(false, 100, 100, later); len(acts) != 0 {
		t.Fatalf("after a pause: %v, want nothing", kinds(acts))
	}
	// After the alert window, a new sustained streak alerts again.
	start := t0.Add(time.Hour)
	alerts = 0
	for i := 0; i <= 10; i++ {
		alerts += len(e.ConnectionLimit(false, 100, 100, start.Add(time.Duration(i)*time.Second)))
	}
	if alerts != 1 {
		t.Fatalf("%d alerts for a second sustained streak an hour later, want 1", alerts)
	}
}
