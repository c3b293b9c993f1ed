package tollfraud

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/events"
)

// monday10 is Monday 2 March 2026, 10:00 in Amsterdam: inside business hours.
var monday10 = time.Date(2026, 3, 2, 10, 0, 0, 0, mustZone("Europe/Amsterdam"))

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// fixture is a Guard with a fake clock.
type fixture struct {
	t   *testing.T
	g   *Guard
	now time.Time
}

func newFixture(t *testing.T, edit func(*Config)) *fixture {
	t.Helper()
	cfg := Default("NL")
	cfg.TimeZone = "Europe/Amsterdam"
	if edit != nil {
		edit(&cfg)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, g: g, now: monday10}
}

func (f *fixture) advance(d time.Duration) { f.now = f.now.Add(d) }

func (f *fixture) dial(ext string, class Class, number string) Decision {
	return f.g.Decide(Request{Extension: ext, Class: class, Dialled: number, Trunk: "carrier"}, f.now)
}

func (f *fixture) mustAllow(ext string, class Class, number string) Decision {
	f.t.Helper()
	d := f.dial(ext, class, number)
	if !d.Allow || d.Call == 0 {
		f.t.Fatalf("%s (%s) dialling %s: refused %d %s (%s)", ext, class, number, d.Code, d.Rule, d.Reason)
	}
	return d
}

func (f *fixture) mustRefuse(ext string, class Class, number string, code int, rule Rule) Decision {
	f.t.Helper()
	d := f.dial(ext, class, number)
	if d.Allow || d.Code != code || d.Rule != rule || d.Call != 0 {
		f.t.Fatalf("%s (%s) dialling %s: got allow=%v %d %s, want %d %s", ext, class, number, d.Allow, d.Code, d.Rule, code, rule)
	}
	if e := find(d.Events, EventRefused); e == nil || e.Fields["rule"] != string(rule) || e.Account != ext {
		f.t.Fatalf("refusal without a %s event naming rule %s: %+v", EventRefused, rule, d.Events)
	}
	return d
}

func find(es []events.Event, typ string) *events.Event {
	for i := range es {
		if es[i].Type == typ {
			return &es[i]
		}
	}
	return nil
}

func types(es []events.Event) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Type)
	}
	return out
}

// The scenario from the issue: an agent with class national, NL default.
func TestIssueScenario(t *testing.T) {
	f := newFixture(t, nil)
	d := f.mustAllow("1001", National, "0612345678")
	if d.Destination.E164 != "+31612345678" || d.Destination.Type != Mobile {
		t.Errorf("destination %+v", d.Destination)
	}
	f.mustRefuse("1001", National, "+49 30 12345678", 403, RuleClassOfService)
	for _, class := range []Class{Internal, National, EU, International} {
		f.mustRefuse("1001", class, "0900 1234567", 403, RulePremiumRate)
		f.mustRefuse("1001", class, "+882 16 1234 5678", 403, RuleSatellite)
		f.mustRefuse("1001", class, "+883 5100 1234 5678", 403, RuleInternationalNetwork)
	}
	e := f.mustAllow("1001", National, "112")
	if e.Rule != RuleEmergency || find(e.Events, EventEmergency) == nil || e.MaxDuration != 0 {
		t.Errorf("112: rule %s, events %v, max %v", e.Rule, types(e.Events), e.MaxDuration)
	}
}

func TestClassOfServiceMatrix(t *testing.T) {
	numbers := []struct {
		name, number string
		want         map[Class]Rule // missing: allowed
	}{
		{"NL mobile", "0612345678", map[Class]Rule{Internal: RuleClassOfService}},
		{"NL toll-free", "0800 1234567", map[Class]Rule{Internal: RuleClassOfService}},
		{"DE fixed", "+49 30 12345678", map[Class]Rule{Internal: RuleClassOfService, National: RuleClassOfService}},
		{"FR mobile", "+33 6 12 34 56 78", map[Class]Rule{Internal: RuleClassOfService, National: RuleClassOfService}},
		{"UK mobile", "+44 7400 123456", map[Class]Rule{Internal: RuleClassOfService, National: RuleClassOfService, EU: RuleClassOfService}},
		{"US", "+1 212 555 0123", map[Class]Rule{Internal: RuleClassOfService, National: RuleClassOfService, EU: RuleClassOfService}},
		{"Cuba", "+53 5 1234567", map[Class]Rule{Internal: RuleHighRisk, National: RuleHighRisk, EU: RuleHighRisk, International: RuleHighRisk}},
		{"Jamaica", "+1 876 555 0199", map[Class]Rule{Internal: RuleHighRisk, National: RuleHighRisk, EU: RuleHighRisk, International: RuleHighRisk}},
		{"NL premium", "0900 1234567", map[Class]Rule{Internal: RulePremiumRate, National: RulePremiumRate, EU: RulePremiumRate, International: RulePremiumRate}},
		{"Intl premium", "+979 123456789", map[Class]Rule{Internal: RulePremiumRate, National: RulePremiumRate, EU: RulePremiumRate, International: RulePremiumRate}},
		{"Inmarsat", "+870 773 123 456", map[Class]Rule{Internal: RuleSatellite, National: RuleSatellite, EU: RuleSatellite, International: RuleSatellite}},
		{"Emergency", "112", nil},
		{"Garbage", "call me", map[Class]Rule{Internal: RuleInvalidNumber, National: RuleInvalidNumber, EU: RuleInvalidNumber, International: RuleInvalidNumber}},
	}
	for _, n := range numbers {
		for _, class := range []Class{Internal, National, EU, International} {
			f := newFixture(t, nil)
			d := f.dial("1001", class, n.number)
			want, refused := n.want[class]
			if d.Allow == refused || (refused && d.Rule != want) {
				t.Errorf("%s as %s: allow=%v rule=%s, want refused=%v %s", n.name, class, d.Allow, d.Rule, refused, want)
			}
		}
	}
	f := newFixture(t, nil)
	if d := f.dial("1001", "", "+49 30 12345678"); d.Allow || d.Class != National {
		t.Errorf("empty class: %+v, want national", d)
	}
	f.mustRefuse("1001", "gold", "0612345678", 403, RuleClassOfService)
}

func TestAllowPrefix(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.AllowPrefixes = []string{"+88216", "+53"} })
	f.mustAllow("1001", International, "+882 16 1234 5678")
	f.mustRefuse("1001", International, "+882 13 1234 5678", 403, RuleSatellite)
	f.mustAllow("1001", International, "+53 5 1234567")
	f.mustRefuse("1001", National, "+53 5 1234567", 403, RuleClassOfService) // class still applies
	f.mustRefuse("1001", International, "0900 1234567", 403, RulePremiumRate)

	g := newFixture(t, func(c *Config) { c.AllowPrefixes = []string{"+319001234"} })
	g.mustAllow("1001", National, "0900 1234567")
	g.mustRefuse("1001", National, "0900 7654321", 403, RulePremiumRate)
}

func TestBlockedTypesAndHighRiskConfig(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.DefaultCountry = "GB"
		c.BlockedTypes = []NumberType{PremiumRate, Personal}
		c.HighRiskCountries = []string{}
	})
	f.mustRefuse("1001", National, "070 1234 5678", 403, RuleBlockedType)
	f.mustAllow("1001", International, "+53 5 1234567")

	// The tenant's own country is never high risk.
	h := newFixture(t, func(c *Config) { c.DefaultCountry = "JM" })
	h.mustAllow("1001", National, "+1 876 555 0199")
}

func TestConcurrentLimit(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Extension.Concurrent = 2
		c.Trunks = map[string]Limits{"carrier": {Concurrent: 3, PerMinute: Unlimited, MaxDuration: Unlimited, DailyBudget: Unlimited}}
	})
	a := f.mustAllow("1001", National, "0612345678")
	f.mustAllow("1001", National, "0612345679")
	f.mustRefuse("1001", National, "0612345670", 403, RuleConcurrent)
	f.mustAllow("1001", National, "112") // emergency ignores limits
	f.g.CallEnded(a.Call, f.now, 0)
	f.mustAllow("1001", National, "0612345670")
	// The trunk's limit binds across extensions.
	f.mustAllow("1002", National, "0612345671")
	f.mustRefuse("1003", National, "0612345672", 403, RuleConcurrent)
	if _, ok := f.g.CallEnded(a.Call, f.now, 0); ok {
		t.Error("second CallEnded for one call accepted")
	}
}

func TestRateLimit(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Extension.PerMinute = 3; c.Extension.Concurrent = Unlimited })
	for i := range 3 {
		d := f.mustAllow("1001", National, fmt.Sprintf("061234567%d", i))
		f.g.CallEnded(d.Call, f.now, 0)
		f.advance(10 * time.Second)
	}
	f.mustRefuse("1001", National, "0612345679", 403, RuleRate)
	f.mustAllow("1002", National, "0612345679") // per extension
	f.advance(31 * time.Second)                 // the first start is now over a minute old
	f.mustAllow("1001", National, "0612345679")
	f.mustRefuse("1001", National, "0612345679", 403, RuleRate)
}

func TestBudgetRefusalAndTrip(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Extension.DailyBudget = 1.00
		c.Rates.Countries = map[string]float64{"DE": 0.50}
		c.BusinessHours.Enabled = false
	})
	d := f.mustAllow("1001", International, "+49 30 12345678")
	if d.CostPerMinute != 0.50 || d.MaxDuration != 2*time.Minute {
		t.Fatalf("cost %v max %v, want 0.50 and 2m", d.CostPerMinute, d.MaxDuration)
	}
	f.advance(90 * time.Second)
	r, _ := f.g.CallEnded(d.Call, f.now, time.Minute)
	if r.EstimatedCost != 0.50 || r.Destination.Country != "DE" || r.Trunk != "carrier" || r.Rule != RuleAllowed || r.Class != International {
		t.Errorf("record %+v", r)
	}
	d = f.mustAllow("1001", International, "+49 30 12345678")
	if d.MaxDuration != time.Minute {
		t.Errorf("max %v, want the one minute of budget left", d.MaxDuration)
	}
	f.advance(time.Minute)
	f.g.CallEnded(d.Call, f.now, 50*time.Second)
	// 0.08 left: not a minute's worth.
	d = f.mustRefuse("1001", International, "+49 30 12345678", 403, RuleDailyBudget)
	if find(d.Events, EventBudgetReached) == nil || find(d.Events, EventTripped) == nil {
		t.Errorf("events %v", types(d.Events))
	}
	if len(d.Effects) != 1 || d.Effects[0] != (SuspendExtension{Extension: "1001", Reason: "daily budget reached", At: f.now}) {
		t.Errorf("effects %+v, want the one suspension to persist", d.Effects)
	}
	if r := f.mustRefuse("1001", National, "0612345678", 403, RuleSuspended); len(r.Effects) != 0 {
		t.Errorf("a refusal of a suspended extension repeats effects: %+v", r.Effects)
	}
	f.mustAllow("1001", National, "112")
	f.mustAllow("1002", International, "+49 30 12345678")

	// Lifted, the extension still has no budget for DE until midnight, but
	// toll-free costs nothing.
	f.g.Lift("1001", f.now)
	f.mustAllow("1001", National, "0800 1234567")
	f.mustRefuse("1001", International, "+49 30 12345678", 403, RuleDailyBudget)
	f.now = time.Date(2026, 3, 3, 0, 0, 1, 0, f.now.Location())
	f.mustAllow("1001", International, "+49 30 12345678")
}

func TestBudgetCrossedInCall(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Extension.DailyBudget = 2.00
		c.Extension.Concurrent = 3
		c.Rates.Countries = map[string]float64{"DE": 0.50}
	})
	a := f.mustAllow("1001", International, "+49 30 12345678")
	f.advance(5 * time.Second)
	f.g.CallAnswered(a.Call, f.now)
	b := f.mustAllow("1001", International, "+49 30 12345679")
	f.g.CallAnswered(b.Call, f.now)
	f.advance(time.Minute)
	if res := f.g.Tick(f.now); len(res.End) != 0 || len(res.Events) != 0 {
		t.Fatalf("early tick: %+v", res)
	}
	f.advance(time.Minute) // 2 calls x 2 min x 0.50 = 2.00
	res := f.g.Tick(f.now)
	if len(res.End) != 2 || res.End[0].Rule != RuleDailyBudget {
		t.Fatalf("ends %+v", res.End)
	}
	if !slices.Contains(types(res.Events), EventTripped) {
		t.Errorf("events %v", types(res.Events))
	}
	if _, ok := f.g.Suspended("1001"); !ok {
		t.Error("not suspended after crossing the budget")
	}
	if len(res.Effects) != 1 || res.Effects[0].(SuspendExtension).Extension != "1001" {
		t.Errorf("tick effects %+v, want 1001's suspension", res.Effects)
	}
	if again := f.g.Tick(f.now.Add(time.Second)); len(again.End) != 0 || len(again.Events) != 0 {
		t.Errorf("repeated: %+v", again)
	}
	r, _ := f.g.CallEnded(a.Call, f.now, 2*time.Minute)
	if r.EndedBy != RuleDailyBudget || r.EstimatedCost != 1.00 {
		t.Errorf("record %+v", r)
	}
}

func TestTripAlertOnly(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Trip = Alert; c.Extension.DailyBudget = 0.10 })
	d := f.mustRefuse("1001", International, "+49 30 12345678", 403, RuleDailyBudget)
	if e := find(d.Events, EventTripped); e == nil || e.Fields["action"] != "alert" {
		t.Errorf("events %+v", d.Events)
	}
	f.mustAllow("1001", National, "0612345678")
}

func TestMaxDuration(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Extension.MaxDuration = 30 * time.Minute
		c.Trunk.MaxDuration = 20 * time.Minute
		c.Extension.DailyBudget = Unlimited
		c.Trunk.DailyBudget = Unlimited
	})
	d := f.mustAllow("1001", National, "0612345678")
	if d.MaxDuration != 20*time.Minute {
		t.Errorf("max %v, want the trunk's 20m", d.MaxDuration)
	}
	e := f.mustAllow("1001", National, "112")
	f.advance(10 * time.Second)
	f.g.CallAnswered(d.Call, f.now)
	f.g.CallAnswered(e.Call, f.now)
	f.advance(20*time.Minute - time.Second)
	if res := f.g.Tick(f.now); len(res.End) != 0 {
		t.Fatalf("ended early: %+v", res.End)
	}
	f.advance(time.Second)
	res := f.g.Tick(f.now.Add(time.Hour)) // long past: still only the ordinary call
	if len(res.End) != 1 || res.End[0].Call != d.Call || res.End[0].Rule != RuleMaxDuration {
		t.Fatalf("ends %+v", res.End)
	}
}

func TestBusinessHours(t *testing.T) {
	saturday := time.Date(2026, 3, 7, 11, 0, 0, 0, monday10.Location())
	f := newFixture(t, nil)
	f.now = saturday
	f.mustRefuse("1001", International, "+49 30 12345678", 403, RuleBusinessHours)
	f.mustAllow("1001", International, "0612345678") // national calls are not limited
	f.now = monday10.Add(8 * time.Hour)              // 18:00: closed
	f.mustRefuse("1001", International, "+49 30 12345678", 403, RuleBusinessHours)
	f.now = monday10.Add(-2 * time.Hour) // 08:00: open
	f.mustAllow("1001", International, "+49 30 12345678")

	a := newFixture(t, func(c *Config) { c.BusinessHours.Action = Alert })
	a.now = saturday
	d := a.mustAllow("1001", International, "+49 30 12345678")
	if find(d.Events, EventOutOfHours) == nil {
		t.Errorf("events %v", types(d.Events))
	}
}

func TestNewCountryOnce(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Extension.Concurrent = Unlimited; c.Extension.PerMinute = Unlimited })
	f.g.LearnBaseline([]Record{{Extension: "1001", Destination: Destination{Country: "BE"}, Start: monday10.Add(-48 * time.Hour)}})
	if d := f.mustAllow("1001", National, "0612345678"); find(d.Events, EventNewCountry) != nil {
		t.Error("new-country alert for the home country")
	}
	if d := f.mustAllow("1001", International, "+32 2 555 12 12"); find(d.Events, EventNewCountry) != nil {
		t.Error("new-country alert for a country in the records")
	}
	d := f.mustAllow("1001", International, "+49 30 12345678")
	if e := find(d.Events, EventNewCountry); e == nil || e.Fields["country"] != "DE" {
		t.Errorf("events %+v", d.Events)
	}
	if d := f.mustAllow("1002", International, "+49 89 1234567"); find(d.Events, EventNewCountry) != nil {
		t.Error("second alert for DE")
	}
}

func TestSuspendLift(t *testing.T) {
	f := newFixture(t, nil)
	if e := f.g.Suspend("1001", "", f.now); e.Type != EventSuspended {
		t.Errorf("event %+v", e)
	}
	if why, ok := f.g.Suspended("1001"); !ok || why == "" {
		t.Error("not suspended")
	}
	f.mustRefuse("1001", National, "0612345678", 403, RuleSuspended)
	f.mustAllow("1001", National, "112")
	f.mustAllow("1002", National, "0612345678")
	if e := f.g.Lift("1001", f.now); e.Type != EventLifted {
		t.Errorf("event %+v", e)
	}
	f.mustAllow("1001", National, "0612345678")
}

func TestValidate(t *testing.T) {
	bad := map[string]func(*Config){
		"default_country": func(c *Config) { c.DefaultCountry = "XX" },
		"time_zone":       func(c *Config) { c.TimeZone = "Mars/Olympus" },
		"allow_prefixes":  func(c *Config) { c.AllowPrefixes = []string{"+8"} },
		"high_risk":       func(c *Config) { c.HighRiskCountries = []string{"XX"} },
		"blocked_types":   func(c *Config) { c.BlockedTypes = []NumberType{"scam"} },
		"concurrent":      func(c *Config) { c.Extension.Concurrent = 0 },
		"daily_budget": func(c *Config) {
			c.Trunks = map[string]Limits{"x": {Concurrent: 1, PerMinute: 1, MaxDuration: time.Minute}}
		},
		"rates":   func(c *Config) { c.Rates.CountryTypes = map[string]float64{"DE-mobile": 1} },
		"windows": func(c *Config) { c.BusinessHours.Windows[0].End = "07:00" },
		"action":  func(c *Config) { c.BusinessHours.Action = Suspend },
		"anomaly": func(c *Config) { c.Anomaly.Factor = 1 },
		"trip":    func(c *Config) { c.Trip = "" },
	}
	for name, edit := range bad {
		cfg := Default("NL")
		edit(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(Config{}); err == nil {
		t.Error("zero Config accepted")
	}
	cfg := Default("NL")
	cfg.AllowPrefixes = []string{"+882", "+1876"}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
}

// Decide, CallEnded and Tick from many goroutines (run with -race).
func TestConcurrentUse(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Extension = Limits{Concurrent: 5, PerMinute: Unlimited, MaxDuration: time.Hour, DailyBudget: Unlimited}
	})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			ext := fmt.Sprintf("10%02d", w)
			for i := range 200 {
				now := monday10.Add(time.Duration(i) * time.Second)
				d := f.g.Decide(Request{Extension: ext, Class: International, Dialled: fmt.Sprintf("+4930%08d", i), Trunk: "carrier"}, now)
				if i%10 == 0 {
					f.g.Tick(now)
				}
				if d.Allow {
					f.g.CallEnded(d.Call, now, time.Second)
				}
			}
		})
	}
	wg.Wait()
	if n := f.g.Running(); n != 0 {
		t.Errorf("%d calls still running", n)
	}
}

func TestReasonsAreSafe(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Extension.DailyBudget = 0.01 })
	d := f.dial("1001", International, "+49 30 12345678")
	if strings.ContainsAny(d.Reason, "0123456789") {
		t.Errorf("reason %q shows a threshold", d.Reason)
	}
}
