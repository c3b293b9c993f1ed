// Package throttle is the one mechanism Veilig uses wherever something
// must happen at most so often: alerts, refusal events, success events,
// log lines under a flood. A Throttle admits one occurrence per key and
// window and, optionally, at most a number per class (an event type) and
// window; what it holds back is counted, and the next occurrence it
// admits for a key says how many it stands for. Memory is bounded: the
// least recently seen keys are forgotten first. Time is passed in, so
// behaviour is deterministic in tests, and a refusal for a known key
// costs a map lookup and no allocation, so a flood is cheap to throttle.
package throttle

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Throttle is safe for concurrent use.
type Throttle[K comparable] struct {
	window   time.Duration
	perClass int

	mu      sync.Mutex
	seen    *simplelru.LRU[K, *slot]
	classes map[string]*classWindow

	suppressed atomic.Uint64
}

type slot struct {
	last       time.Time
	suppressed int
}

type classWindow struct {
	start time.Time
	n     int
}

// New makes a throttle admitting one occurrence per key and window, at
// most perClass per class and window (0: no class limit), remembering at
// most maxKeys keys.
func New[K comparable](window time.Duration, perClass, maxKeys int) *Throttle[K] {
	if maxKeys <= 0 {
		maxKeys = 1
	}
	seen, _ := simplelru.NewLRU[K, *slot](maxKeys, nil)
	return &Throttle[K]{window: window, perClass: perClass, seen: seen, classes: make(map[string]*classWindow)}
}

// Admit decides whether the occurrence of key (in class) at now goes
// ahead; suppressed is how many were held back for key since its last
// admitted one.
func (t *Throttle[K]) Admit(class string, key K, now time.Time) (ok bool, suppressed int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, found := t.seen.Get(key)
	if found && now.Sub(s.last) < t.window {
		s.suppressed++
		t.suppressed.Add(1)
		return false, 0
	}
	if !found {
		s = &slot{}
		t.seen.Add(key, s)
	}
	if t.perClass > 0 {
		cw := t.classes[class]
		if cw == nil {
			if len(t.classes) >= 1024 {
				clear(t.classes)
			}
			cw = &classWindow{}
			t.classes[class] = cw
		}
		if now.Sub(cw.start) >= t.window {
			cw.start, cw.n = now, 0
		}
		if cw.n >= t.perClass {
			s.last = now
			s.suppressed++
			t.suppressed.Add(1)
			return false, 0
		}
		cw.n++
	}
	suppressed = s.suppressed
	s.last, s.suppressed = now, 0
	return true, suppressed
}

// Suppressed counts every occurrence held back so far.
func (t *Throttle[K]) Suppressed() uint64 { return t.suppressed.Load() }
