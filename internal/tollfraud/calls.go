package tollfraud

import (
	"time"

	"github.com/veilig/veilig/internal/events"
)

// Record is the fraud half of an outbound call record: what was dialled,
// how it was classified and priced, and what the guard decided. CallEnded
// returns one; LearnBaseline reads them back from the store.
type Record struct {
	Call          CallID        `json:"-"`
	Extension     string        `json:"extension"`
	Trunk         string        `json:"trunk"`
	Class         Class         `json:"class"`
	Destination   Destination   `json:"destination"`
	Start         time.Time     `json:"start"`    // admitted
	End           time.Time     `json:"end"`      // ended
	Answered      time.Duration `json:"answered"` // talk time, ending at End
	CostPerMinute float64       `json:"cost_per_minute"`
	EstimatedCost float64       `json:"estimated_cost"`
	Rule          Rule          `json:"rule"`               // RuleAllowed or RuleEmergency
	EndedBy       Rule          `json:"ended_by,omitempty"` // set when the guard asked for the end
}

// End asks the caller to end a running call (BYE on both legs) because a
// limit was reached.
type End struct {
	Call      CallID
	Extension string
	Trunk     string
	Rule      Rule // RuleMaxDuration or RuleDailyBudget
}

// TickResult is what a Tick found.
type TickResult struct {
	End     []End
	Events  []events.Event
	Effects []Effect // for the caller to carry out (suspensions to persist)
}

// CallAnswered records when the far end answered, from which talk time
// and spend are counted. Until it is reported a call is charged from its
// start. Unknown calls are ignored.
func (g *Guard) CallAnswered(id CallID, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.calls[id]; c != nil && c.answered.IsZero() {
		c.answered = now
	}
}

// CallEnded releases an admitted call and books its spend and minutes.
// answered is the talk time as the call layer measured it (zero for a call
// that never connected); it is authoritative over CallAnswered. The second
// result is false for an unknown or already ended call.
func (g *Guard) CallEnded(id CallID, now time.Time, answered time.Duration) (Record, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.calls[id]
	if c == nil {
		return Record{}, false
	}
	delete(g.calls, id)
	lt := g.localTime(now)
	ext, trk := g.party(g.exts, c.ext), g.party(g.trunks, c.trunk)
	for _, p := range [...]*party{ext, trk, &g.total} {
		p.roll(lt)
		p.running = remove(p.running, c)
	}
	if answered < 0 {
		answered = 0
	}
	talkStart := now.Add(-answered)
	r := Record{
		Call: c.id, Extension: c.ext, Trunk: c.trunk, Class: c.class, Destination: c.dest,
		Start: c.start, End: now, Answered: answered, CostPerMinute: c.rate,
		EstimatedCost: c.rate * answered.Minutes(), Rule: RuleAllowed,
	}
	if c.exempt {
		r.Rule, r.EstimatedCost = RuleEmergency, 0
		return r, true
	}
	if c.ending {
		r.EndedBy = c.endRule
	}
	// Spend belongs to the day it happens in: a call across midnight
	// charges today only from midnight.
	today := c.rate * overlap(talkStart, now, lt.dayStart).Minutes()
	ext.spent += today
	trk.spent += today
	mins := overlap(talkStart, now, lt.hourStart).Minutes()
	ext.hourMins += mins
	g.total.hourMins += mins
	return r, true
}

// overlap is the part of [from, to) at or after since.
func overlap(from, to, since time.Time) time.Duration {
	if from.Before(since) {
		from = since
	}
	if !to.After(from) {
		return 0
	}
	return to.Sub(from)
}

func remove(cs []*call, c *call) []*call {
	for i, x := range cs {
		if x == c {
			cs[i] = cs[len(cs)-1]
			cs[len(cs)-1] = nil
			return cs[:len(cs)-1]
		}
	}
	return cs
}

// Tick checks running calls and volume at now; call it every few seconds.
// It returns the calls to end (maximum duration reached, or the
// extension's or trunk's daily budget crossed while they ran) and the
// alerts raised: budget trips and volume anomalies. Each call is returned
// for ending once; emergency calls never are.
func (g *Guard) Tick(now time.Time) TickResult {
	g.mu.Lock()
	defer g.mu.Unlock()
	var res TickResult
	lt := g.localTime(now)
	g.total.roll(lt)
	for _, c := range g.calls {
		if c.exempt || c.ending || c.maxDur <= 0 {
			continue
		}
		if now.Sub(c.billStart()) >= c.maxDur {
			res.End = append(res.End, g.end(c, RuleMaxDuration))
		}
	}
	k := g.cfg
	for name, p := range g.exts {
		p.roll(lt)
		if l := k.extLimits(name); l.DailyBudget >= 0 && len(p.running) > 0 && p.spentNow(now, lt) >= l.DailyBudget {
			res.End = append(res.End, g.endAll(p)...)
			res.Events = append(res.Events, g.tripSpend(p, true, name, "", now, lt)...)
		}
		res.Events = append(res.Events, g.checkMinutes(name, p, now, lt)...)
	}
	for name, p := range g.trunks {
		p.roll(lt)
		if l := k.trunkLimits(name); l.DailyBudget >= 0 && len(p.running) > 0 && p.spentNow(now, lt) >= l.DailyBudget {
			res.End = append(res.End, g.endAll(p)...)
			res.Events = append(res.Events, g.tripSpend(p, false, "", name, now, lt)...)
		}
	}
	res.Events = append(res.Events, g.checkMinutes("", &g.total, now, lt)...)
	res.Effects = g.takeEffects()
	return res
}

func (g *Guard) end(c *call, rule Rule) End {
	c.ending, c.endRule = true, rule
	return End{Call: c.id, Extension: c.ext, Trunk: c.trunk, Rule: rule}
}

func (g *Guard) endAll(p *party) []End {
	var out []End
	for _, c := range p.running {
		if !c.exempt && !c.ending && c.rate > 0 {
			out = append(out, g.end(c, RuleDailyBudget))
		}
	}
	return out
}

// tripSpend raises the budget alert for a party once per local day and,
// for an extension, trips it.
func (g *Guard) tripSpend(p *party, isExt bool, ext, trunk string, now time.Time, lt localTime) []events.Event {
	if p.tripDay == lt.day {
		return nil
	}
	p.tripDay = lt.day
	if !isExt {
		return []events.Event{event(now, events.FraudBudgetReached, "",
			"daily budget of trunk "+trunk+" reached", "trunk", trunk, "spent", ftoa(p.spentNow(now, lt)))}
	}
	return []events.Event{
		event(now, events.FraudBudgetReached, ext, "daily budget of extension "+ext+" reached",
			"spent", ftoa(p.spentNow(now, lt))),
		g.trip(p, ext, "daily budget reached", now),
	}
}

// trip acts on a tripped extension as configured and says so.
func (g *Guard) trip(p *party, ext, why string, now time.Time) events.Event {
	if g.cfg.trip == Suspend && p.suspended == "" {
		p.suspended = why
		g.effects = append(g.effects, SuspendExtension{Extension: ext, Reason: why, At: now})
		return event(now, events.FraudTripped, ext,
			"outbound calling of "+ext+" suspended until an admin lifts it: "+why, "action", string(Suspend), "reason", why)
	}
	return event(now, events.FraudTripped, ext,
		"fraud guard tripped for "+ext+" (alert only): "+why, "action", string(Alert), "reason", why)
}

// Suspend stops ext's outbound calls (emergency calls still go through)
// until Lift. The caller persists suspensions and replays them at start.
func (g *Guard) Suspend(ext, reason string, now time.Time) events.Event {
	g.mu.Lock()
	defer g.mu.Unlock()
	if reason == "" {
		reason = "suspended by admin"
	}
	g.party(g.exts, ext).suspended = reason
	return event(now, events.FraudSuspended, ext, "outbound calling of "+ext+" suspended: "+reason, "reason", reason)
}

// Lift ends a suspension of ext.
func (g *Guard) Lift(ext string, now time.Time) events.Event {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p := g.exts[ext]; p != nil {
		p.suspended = ""
	}
	return event(now, events.FraudLifted, ext, "outbound calling of "+ext+" restored")
}

// Suspended reports whether ext is suspended, and why.
func (g *Guard) Suspended(ext string) (string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p := g.exts[ext]; p != nil && p.suspended != "" {
		return p.suspended, true
	}
	return "", false
}

// Running is the number of admitted calls not yet ended.
func (g *Guard) Running() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}
