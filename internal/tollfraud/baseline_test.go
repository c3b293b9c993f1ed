package tollfraud

import (
	"fmt"
	"testing"
	"time"
)

// history is four weeks of records for ext: five three-minute calls every
// Monday between 10:00 and 11:00.
func history(ext string) []Record {
	var rs []Record
	for w := 1; w <= 4; w++ {
		for i := range 5 {
			start := monday10.AddDate(0, 0, -7*w).Add(time.Duration(i) * 10 * time.Minute)
			rs = append(rs, Record{Extension: ext, Destination: Destination{Country: "NL"},
				Start: start, End: start.Add(3 * time.Minute), Answered: 3 * time.Minute, Rule: RuleAllowed})
		}
	}
	return rs
}

func anomalyFixture(t *testing.T) *fixture {
	return newFixture(t, func(c *Config) {
		c.Extension = Limits{Concurrent: 3, PerMinute: Unlimited, MaxDuration: 4 * time.Hour, DailyBudget: Unlimited}
		c.Trunk = c.Extension
		c.Trunk.Concurrent = Unlimited
		c.Anomaly = Anomaly{Factor: 3, ExtensionCalls: 10, ExtensionMinutes: 30, TotalCalls: 25, TotalMinutes: 1000}
	})
}

func TestLearnBaseline(t *testing.T) {
	f := anomalyFixture(t)
	f.g.LearnBaseline(history("1001"))
	w := f.g.baseline.ext["1001"]
	h := int(time.Monday)*24 + 10
	if w == nil || w.calls[h] != 5 || w.mins[h] != 15 || w.calls[h+1] != 0 {
		t.Fatalf("baseline Monday 10h: %+v", w)
	}
	if f.g.baseline.total.calls[h] != 5 {
		t.Errorf("total %v", f.g.baseline.total.calls[h])
	}
}

func TestVolumeAnomalyCalls(t *testing.T) {
	f := anomalyFixture(t)
	f.g.LearnBaseline(history("1001"))
	// Baseline 5 calls in this hour, factor 3: the 16th call alerts.
	for i := range 16 {
		d := f.mustAllow("1001", National, fmt.Sprintf("06123456%02d", i))
		f.g.CallEnded(d.Call, f.now, 30*time.Second)
		e := find(d.Events, EventVolume)
		if (e != nil) != (i == 15) {
			t.Fatalf("call %d: events %v", i+1, types(d.Events))
		}
		if e != nil && (e.Fields["metric"] != "calls" || find(d.Events, EventTripped) == nil) {
			t.Errorf("alert %+v, events %v", e, types(d.Events))
		}
		f.advance(time.Minute)
	}
	f.mustRefuse("1001", National, "0612345678", 403, RuleSuspended)
}

func TestVolumeAnomalyFloor(t *testing.T) {
	f := anomalyFixture(t)
	f.g.LearnBaseline(history("1001"))
	// 03:00 has no baseline: the floor of 10 calls decides.
	f.now = monday10.Add(-7 * time.Hour)
	for i := range 10 {
		d := f.mustAllow("1002", National, fmt.Sprintf("06123456%02d", i))
		f.g.CallEnded(d.Call, f.now, 0)
		if got := find(d.Events, EventVolume) != nil; got != (i == 9) {
			t.Fatalf("call %d: events %v", i+1, types(d.Events))
		}
	}
	// A new hour starts a new count.
	f.g.Lift("1002", f.now)
	f.advance(time.Hour)
	if d := f.mustAllow("1002", National, "0612345678"); find(d.Events, EventVolume) != nil {
		t.Error("alert carried into the next hour")
	}
}

func TestVolumeAnomalyMinutes(t *testing.T) {
	f := anomalyFixture(t)
	f.g.LearnBaseline(history("1001"))
	// Baseline 15 minutes in this hour, factor 3: over 45 alerts, counting
	// the running call as it goes.
	d := f.mustAllow("1001", National, "0612345678")
	f.g.CallAnswered(d.Call, f.now)
	f.advance(45 * time.Minute)
	if res := f.g.Tick(f.now); len(res.Events) != 0 {
		t.Fatalf("at 45 min: %v", types(res.Events))
	}
	f.advance(time.Minute)
	res := f.g.Tick(f.now)
	if e := find(res.Events, EventVolume); e == nil || e.Fields["metric"] != "minutes" || find(res.Events, EventTripped) == nil {
		t.Fatalf("at 46 min: %+v", res.Events)
	}
	if res := f.g.Tick(f.now.Add(time.Second)); len(res.Events) != 0 {
		t.Errorf("alert repeated: %v", types(res.Events))
	}
	if len(res.End) != 0 {
		t.Errorf("a volume trip ended a running call: %+v", res.End)
	}
}

func TestVolumeAnomalyTotal(t *testing.T) {
	f := anomalyFixture(t)
	f.g.LearnBaseline(history("1001"))
	// No single extension reaches its floor, the tenant does: 25 calls.
	var alerts int
	for i := range 25 {
		d := f.mustAllow(fmt.Sprintf("20%02d", i%5), National, fmt.Sprintf("06123456%02d", i))
		f.g.CallEnded(d.Call, f.now, 0)
		if e := find(d.Events, EventVolume); e != nil {
			alerts++
			if i != 24 || e.Account != "" || find(d.Events, EventTripped) != nil {
				t.Errorf("call %d: %+v", i+1, d.Events)
			}
		}
	}
	if alerts != 1 {
		t.Errorf("%d tenant alerts, want 1", alerts)
	}
}
