package tollfraud

import "time"

// Effect is a decision of the guard that someone outside it carries out:
// the guard holds its state in memory only, so what must outlive a
// restart leaves it as an effect, never as an event field to sniff.
type Effect interface{ fraudEffect() }

// SuspendExtension says the guard suspended an extension's outbound
// calling when it tripped; it stays suspended, across restarts too, until
// an admin lifts it, so the caller persists it (and replays it with
// Suspend at start).
type SuspendExtension struct {
	Extension string
	Reason    string
	At        time.Time
}

func (SuspendExtension) fraudEffect() {}

// takeEffects hands over the effects decided since the last call; g.mu
// is held.
func (g *Guard) takeEffects() []Effect {
	fx := g.effects
	g.effects = nil
	return fx
}
