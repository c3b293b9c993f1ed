package tollfraud

import (
	"fmt"
	"time"

	"github.com/veilig/veilig/internal/events"
)

const hoursPerWeek = 7 * 24

// weekStats holds average outbound calls and talk minutes per hour of the
// week (Sunday 00:00 is hour 0, local time).
type weekStats struct {
	calls [hoursPerWeek]float64
	mins  [hoursPerWeek]float64
}

type baseline struct {
	ext   map[string]*weekStats
	total weekStats
}

// LearnBaseline replaces the volume baseline with one learned from past
// call records, and adds their destination countries to the ones the
// tenant is known to call (so those raise no new-country alert). Each
// record counts as a call in the hour of the week it started and as talk
// minutes in the hours its talk time (ending at End) covered; averages are
// over every occurrence of that hour in the span the records cover, so a
// quiet week counts as quiet. Records the guard refused are skipped.
// Call it at start with a few weeks of records, and again from time to
// time.
func (g *Guard) LearnBaseline(records []Record) {
	loc := g.cfg.loc
	b := baseline{ext: make(map[string]*weekStats)}
	known := make(map[string]bool)
	var first, last time.Time
	for i := range records {
		r := &records[i]
		if r.Rule != "" && r.Rule != RuleAllowed {
			continue
		}
		end := r.End
		if end.IsZero() {
			end = r.Start.Add(r.Answered)
		}
		if first.IsZero() || r.Start.Before(first) {
			first = r.Start
		}
		if end.After(last) {
			last = end
		}
		w := b.ext[r.Extension]
		if w == nil {
			w = new(weekStats)
			b.ext[r.Extension] = w
		}
		h := hourOfWeek(r.Start, loc)
		w.calls[h]++
		b.total.calls[h]++
		for cur := end.Add(-r.Answered); cur.Before(end); {
			hs := hourStart(cur, loc)
			next := hs.Add(time.Hour)
			if next.After(end) {
				next = end
			}
			m := next.Sub(cur).Minutes()
			h := hourOfWeek(cur, loc)
			w.mins[h] += m
			b.total.mins[h] += m
			cur = next
		}
		if r.Destination.Country != "" {
			known[countryKey(r.Destination)] = true
		}
	}
	var seen [hoursPerWeek]float64
	if !first.IsZero() {
		for t := first.Truncate(time.Hour); !t.After(last); t = t.Add(time.Hour) {
			seen[hourOfWeek(t, loc)]++
		}
	}
	avg := func(w *weekStats) {
		for h := range hoursPerWeek {
			if seen[h] > 0 {
				w.calls[h] /= seen[h]
				w.mins[h] /= seen[h]
			}
		}
	}
	for _, w := range b.ext {
		avg(w)
	}
	avg(&b.total)

	g.mu.Lock()
	defer g.mu.Unlock()
	g.baseline = b
	for c := range known {
		g.known[c] = true
	}
}

func hourOfWeek(t time.Time, loc *time.Location) int {
	t = t.In(loc)
	return int(t.Weekday())*24 + t.Hour()
}

func hourStart(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	y, m, d := t.Date()
	return time.Date(y, m, d, t.Hour(), 0, 0, 0, loc)
}

// stats returns the baseline of ext, or of the tenant when total.
func (g *Guard) stats(ext string, total bool) *weekStats {
	if total {
		return &g.baseline.total
	}
	if w := g.baseline.ext[ext]; w != nil {
		return w
	}
	return new(weekStats)
}

// anomalous: at least the floor and more than factor times the baseline.
func (k *compiled) anomalous(v, floor, base float64) bool {
	return v >= floor && v > k.anomaly.Factor*base
}

// checkCalls is run on each admission: the hour's call count of ext and
// of the tenant against their baselines, alerting at once.
func (g *Guard) checkCalls(ext string, p *party, now time.Time, lt localTime) []events.Event {
	a := g.cfg.anomaly
	var out []events.Event
	if !p.volCalls && g.cfg.anomalous(float64(p.hourCalls), float64(a.ExtensionCalls), g.stats(ext, false).calls[lt.hourOfWk]) {
		p.volCalls = true
		out = append(out, g.volume(ext, "calls", float64(p.hourCalls), g.stats(ext, false).calls[lt.hourOfWk], now))
		out = append(out, g.trip(p, ext, "volume anomaly (calls)", now))
	}
	t := &g.total
	if !t.volCalls && g.cfg.anomalous(float64(t.hourCalls), float64(a.TotalCalls), g.stats("", true).calls[lt.hourOfWk]) {
		t.volCalls = true
		out = append(out, g.volume("", "calls", float64(t.hourCalls), g.stats("", true).calls[lt.hourOfWk], now))
	}
	return out
}

// checkMinutes is run on Tick: talk minutes in this hour, finished and
// running, of ext (or of the tenant when ext is "" and p is the total).
func (g *Guard) checkMinutes(ext string, p *party, now time.Time, lt localTime) []events.Event {
	total := p == &g.total
	mins := p.hourMins
	add := func(c *call) {
		if !c.exempt {
			mins += overlap(c.billStart(), now, lt.hourStart).Minutes()
		}
	}
	if total {
		for _, c := range g.calls {
			add(c)
		}
	} else {
		for _, c := range p.running {
			add(c)
		}
	}
	floor := g.cfg.anomaly.ExtensionMinutes
	if total {
		floor = g.cfg.anomaly.TotalMinutes
	}
	base := g.stats(ext, total).mins[lt.hourOfWk]
	if p.volMins || !g.cfg.anomalous(mins, floor, base) {
		return nil
	}
	p.volMins = true
	out := []events.Event{g.volume(ext, "minutes", mins, base, now)}
	if !total {
		out = append(out, g.trip(p, ext, "volume anomaly (minutes)", now))
	}
	return out
}

func (g *Guard) volume(ext, what string, v, base float64, now time.Time) events.Event {
	who := "extension " + ext
	if ext == "" {
		who = "the tenant"
	}
	return event(now, events.FraudVolume, ext,
		fmt.Sprintf("outbound %s of %s this hour: %.0f, baseline %.1f", what, who, v, base),
		"metric", what, "value", ftoa(v), "baseline", ftoa(base))
}
