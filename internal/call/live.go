package call

import (
	"slices"
	"strings"
	"time"
)

// Snapshot is one call in progress as management sees it.
type Snapshot struct {
	ID       string    `json:"id"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Source   string    `json:"source,omitempty"`
	State    string    `json:"state"` // ringing, answered, confirmed
	Started  time.Time `json:"started"`
	Answered time.Time `json:"answered,omitzero"`
	// CallerLeg and CalleeLeg say how each leg's media is protected
	// (as the call record will).
	CallerLeg string `json:"caller_leg"`
	CalleeLeg string `json:"callee_leg,omitempty"`
	Trunk     string `json:"trunk,omitempty"`
	// DurationSeconds is the talk time of an answered call, the ringing
	// time of one not yet answered, when the snapshot was taken.
	DurationSeconds int64 `json:"duration_seconds"`
}

// Snapshot lists the calls in progress, oldest first.
func (m *Manager) Snapshot() []Snapshot {
	m.mu.Lock()
	calls := make([]*Call, 0, len(m.calls))
	for c := range m.calls {
		calls = append(calls, c)
	}
	m.mu.Unlock()
	out := make([]Snapshot, 0, len(calls))
	for _, c := range calls {
		c.mu.Lock()
		if c.state == stEnded {
			c.mu.Unlock()
			continue
		}
		s := Snapshot{ID: c.id, From: c.caller, To: c.callee, State: [...]string{"ringing", "answered", "confirmed", "ended"}[c.state],
			Started: c.started.UTC(), Answered: c.answered.UTC(), Trunk: c.fromTrunk}
		if c.answered.IsZero() {
			s.Answered = time.Time{}
			s.DurationSeconds = int64(time.Since(c.started) / time.Second)
		} else {
			s.DurationSeconds = int64(time.Since(c.answered) / time.Second)
		}
		if c.source.IsValid() {
			s.Source = c.source.String()
		}
		if c.a != nil {
			s.CallerLeg = c.a.media.Protection()
		}
		if c.b != nil {
			s.CalleeLeg = c.b.media.Protection()
		}
		if c.fraud != nil && c.fraud.trunk != nil && s.Trunk == "" {
			s.Trunk = c.fraud.trunk.Name()
		}
		c.mu.Unlock()
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Snapshot) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Hangup ends the call with the given ID (BYE on both legs, or a failure
// answer while it rings); false when no such call is in progress.
func (m *Manager) Hangup(id, why string) bool {
	c := m.callByID(id)
	if c == nil {
		return false
	}
	c.hangup(why)
	return true
}
