package tollfraud

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/veilig/veilig/internal/config"
)

// Class is an extension's class of service: how far it may call.
type Class string

// Classes of service, each including the ones before it.
const (
	Internal      Class = "internal"      // no outside calls (emergency numbers only)
	National      Class = "national"      // the tenant's own country
	EU            Class = "eu"            // national plus the EU
	International Class = "international" // anywhere not refused by the guard's lists
)

// DefaultClass applies when a request names no class: national, because
// international calling must be switched on, never off.
const DefaultClass = National

// Action says what the guard does when a rule fires that can either act or
// only warn.
type Action string

// Actions.
const (
	Refuse  Action = "refuse"  // refuse the call (business hours)
	Suspend Action = "suspend" // suspend the extension's outbound calling (trips)
	Alert   Action = "alert"   // let it through and raise an alert
)

// Unlimited switches a limit off. Zero is not "no limit": Validate refuses
// it, so a forgotten field cannot open a hole.
const Unlimited = -1

// Limits bound the outbound calling of one extension or one trunk. Every
// field must be positive or Unlimited.
type Limits struct {
	Concurrent  int           // calls up at once
	PerMinute   int           // new calls admitted in any 60 s
	MaxDuration time.Duration // talk time before the call is ended
	DailyBudget float64       // estimated spend per local day, in Rates.Currency
}

// Rates is the per-minute price table used to estimate spend. It is an
// estimate for budgets, not billing: the lookup takes the first of
// CountryTypes["DE/mobile"], Types["toll_free"], Countries["DE"], then
// National, EU or Default by the destination's class.
type Rates struct {
	Currency     string // a label only
	National     float64
	EU           float64
	Default      float64
	Types        map[NumberType]float64 // types priced alike everywhere (toll_free: 0)
	Countries    map[string]float64     // ISO 3166-1 -> rate
	CountryTypes map[string]float64     // "DE/mobile" -> rate
}

// BusinessHours limits international calling to the tenant's opening
// hours, when most account takeovers are noticed quickly.
type BusinessHours struct {
	Enabled bool
	Windows []Window // local time in Config.TimeZone
	Action  Action   // Refuse or Alert outside the windows
}

// Window is an opening period on some weekdays, "08:00" to "18:00"
// (End may be "24:00"; Start must be before End).
type Window struct {
	Days  []time.Weekday
	Start string
	End   string
}

// Anomaly configures volume alerts: an hour is anomalous when its count is
// at least the floor and more than Factor times the learned baseline for
// that hour of the week. The floors keep quiet hours (baseline near zero)
// from alerting on a handful of calls.
type Anomaly struct {
	Factor           float64
	ExtensionCalls   int
	ExtensionMinutes float64
	TotalCalls       int
	TotalMinutes     float64
}

// Config is the tenant's toll-fraud policy. Start from Default.
type Config struct {
	// DefaultCountry (ISO 3166-1) interprets national formats and defines
	// "national". Required.
	DefaultCountry string
	// TimeZone (IANA) sets local midnight for budgets, business hours and
	// the hour of the week for baselines. Empty means UTC.
	TimeZone string
	// AllowPrefixes are E.164 prefixes ("+88216", "+5355") that lift the
	// premium-rate, blocked-type, satellite, international-network and
	// high-risk blocks. Each must contain a whole country code, so no entry
	// can open several countries at once. Class of service still applies.
	AllowPrefixes []string
	// HighRiskCountries are refused for every class. Nil means
	// DefaultHighRisk(); an empty list means none.
	HighRiskCountries []string
	// BlockedTypes are refused for every class. Nil means premium_rate only;
	// personal and shared_cost are candidates where they are abused (UK 070).
	BlockedTypes []NumberType

	Extension  Limits            // every extension
	Extensions map[string]Limits // replaces Extension for one extension
	Trunk      Limits            // every trunk
	Trunks     map[string]Limits // replaces Trunk for one trunk

	Rates         Rates
	BusinessHours BusinessHours
	Anomaly       Anomaly
	// Trip is what happens when an extension trips on volume or spend:
	// Suspend (until an admin lifts it) or Alert only.
	Trip Action
}

// Default returns the secure defaults for a tenant in country (ISO
// 3166-1): the fraud section's defaults (config.Default, where the limits
// and rates are written once) applied to the guard.
func Default(country string) Config {
	f := config.Default().Fraud
	f.Country = country
	return FromConfig(f)
}

// FromConfig is the guard's policy for the config file's fraud section:
// its limits, rates and switches, with the lists and windows that the
// file does not carry.
func FromConfig(f config.Fraud) Config {
	c := Config{
		DefaultCountry:    f.Country,
		TimeZone:          f.TimeZone,
		AllowPrefixes:     append([]string(nil), f.AllowPrefixes...),
		HighRiskCountries: DefaultHighRisk(),
		BlockedTypes:      []NumberType{PremiumRate},
		Extension:         Limits{Concurrent: f.ExtensionConcurrent, PerMinute: f.ExtensionPerMinute, MaxDuration: f.ExtensionMaxDuration, DailyBudget: f.ExtensionDailyBudget},
		Trunk:             Limits{Concurrent: f.TrunkConcurrent, PerMinute: f.TrunkPerMinute, MaxDuration: f.TrunkMaxDuration, DailyBudget: f.TrunkDailyBudget},
		Rates: Rates{
			Currency: "EUR",
			National: f.RateNational,
			EU:       f.RateEU,
			Default:  f.RateDefault,
			Types:    map[NumberType]float64{TollFree: 0},
		},
		BusinessHours: BusinessHours{
			Enabled: true,
			Windows: []Window{{
				Days:  []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday},
				Start: "08:00", End: "18:00",
			}},
			Action: Refuse,
		},
		Anomaly: Anomaly{Factor: 3, ExtensionCalls: 20, ExtensionMinutes: 90, TotalCalls: 200, TotalMinutes: 1500},
		Trip:    Suspend,
	}
	switch f.BusinessHours {
	case "off":
		c.BusinessHours.Enabled = false
	case "alert":
		c.BusinessHours.Action = Alert
	}
	if f.Trip == "alert" {
		c.Trip = Alert
	}
	return c
}

// Validate reports every impossible or unsafe setting at once.
func (c *Config) Validate() error {
	_, err := compile(c)
	return err
}

// compiled is the validated, preprocessed form of Config the hot path uses.
type compiled struct {
	country  string
	loc      *time.Location
	allow    []string
	highRisk map[string]bool
	blocked  map[NumberType]bool
	ext      Limits
	exts     map[string]Limits
	trunk    Limits
	trunks   map[string]Limits
	rates    Rates
	hoursOn  bool
	hours    [7][]span // minutes since local midnight, per weekday
	hoursAct Action
	anomaly  Anomaly
	trip     Action
}

type span struct{ from, to int }

func compile(c *Config) (*compiled, error) {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	k := &compiled{
		country: strings.ToUpper(c.DefaultCountry),
		rates:   c.Rates,
		anomaly: c.Anomaly,
		trip:    c.Trip,
		ext:     c.Extension,
		trunk:   c.Trunk,
	}
	if phonenumbers.GetCountryCodeForRegion(k.country) == 0 {
		bad("default_country %q is not a known ISO 3166-1 region", c.DefaultCountry)
	}
	k.loc = time.UTC
	if c.TimeZone != "" {
		loc, err := time.LoadLocation(c.TimeZone)
		if err != nil {
			bad("time_zone %q: %v", c.TimeZone, err)
		} else {
			k.loc = loc
		}
	}
	for _, p := range c.AllowPrefixes {
		if err := checkPrefix(p); err != nil {
			bad("allow_prefixes %q: %v", p, err)
		}
		k.allow = append(k.allow, p)
	}
	hr := c.HighRiskCountries
	if hr == nil {
		hr = DefaultHighRisk()
	}
	k.highRisk = make(map[string]bool, len(hr))
	for _, r := range hr {
		r = strings.ToUpper(r)
		if phonenumbers.GetCountryCodeForRegion(r) == 0 {
			bad("high_risk_countries: %q is not a known ISO 3166-1 region", r)
		}
		k.highRisk[r] = true
	}
	bt := c.BlockedTypes
	if bt == nil {
		bt = []NumberType{PremiumRate}
	}
	k.blocked = make(map[NumberType]bool, len(bt))
	for _, t := range bt {
		if !t.valid() {
			bad("blocked_types: unknown type %q", t)
		}
		k.blocked[t] = true
	}
	checkLimits := func(name string, l Limits) {
		if l.Concurrent == 0 || l.Concurrent < Unlimited {
			bad("%s.concurrent must be positive or %d (unlimited)", name, Unlimited)
		}
		if l.PerMinute == 0 || l.PerMinute < Unlimited {
			bad("%s.per_minute must be positive or %d (unlimited)", name, Unlimited)
		}
		if l.MaxDuration == 0 || (l.MaxDuration < 0 && l.MaxDuration != Unlimited) {
			bad("%s.max_duration must be positive or %d (unlimited)", name, Unlimited)
		}
		if l.DailyBudget == 0 || (l.DailyBudget < 0 && l.DailyBudget != Unlimited) {
			bad("%s.daily_budget must be positive or %d (unlimited)", name, Unlimited)
		}
	}
	checkLimits("extension", c.Extension)
	checkLimits("trunk", c.Trunk)
	k.exts = make(map[string]Limits, len(c.Extensions))
	for name, l := range c.Extensions {
		checkLimits("extensions."+name, l)
		k.exts[name] = l
	}
	k.trunks = make(map[string]Limits, len(c.Trunks))
	for name, l := range c.Trunks {
		checkLimits("trunks."+name, l)
		k.trunks[name] = l
	}
	r := c.Rates
	if r.National < 0 || r.EU < 0 || r.Default < 0 {
		bad("rates must not be negative")
	}
	for t, v := range r.Types {
		if !t.valid() || v < 0 {
			bad("rates.types[%q]: unknown type or negative rate", t)
		}
	}
	for cc, v := range r.Countries {
		if phonenumbers.GetCountryCodeForRegion(cc) == 0 || v < 0 {
			bad("rates.countries[%q]: unknown region or negative rate", cc)
		}
	}
	for key, v := range r.CountryTypes {
		cc, t, ok := strings.Cut(key, "/")
		if !ok || phonenumbers.GetCountryCodeForRegion(cc) == 0 || !NumberType(t).valid() || v < 0 {
			bad("rates.country_types[%q]: want \"CC/type\" and a non-negative rate", key)
		}
	}
	bh := c.BusinessHours
	k.hoursOn = bh.Enabled
	k.hoursAct = bh.Action
	if bh.Enabled {
		if bh.Action != Refuse && bh.Action != Alert {
			bad("business_hours.action must be %q or %q", Refuse, Alert)
		}
		for i, w := range bh.Windows {
			from, err1 := clock(w.Start)
			to, err2 := clock(w.End)
			if err := errors.Join(err1, err2); err != nil || from >= to {
				bad("business_hours.windows[%d]: want start < end as HH:MM", i)
				continue
			}
			for _, d := range w.Days {
				if d < time.Sunday || d > time.Saturday {
					bad("business_hours.windows[%d]: bad weekday %d", i, d)
					continue
				}
				k.hours[d] = append(k.hours[d], span{from, to})
			}
		}
	}
	a := c.Anomaly
	if a.Factor <= 1 || a.ExtensionCalls < 1 || a.ExtensionMinutes < 1 || a.TotalCalls < 1 || a.TotalMinutes < 1 {
		bad("anomaly: factor must be above 1 and every floor at least 1")
	}
	if c.Trip != Suspend && c.Trip != Alert {
		bad("trip must be %q or %q", Suspend, Alert)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("tollfraud: config: %w", err)
	}
	return k, nil
}

// checkPrefix accepts "+" and digits that start with a whole country code.
func checkPrefix(p string) error {
	if len(p) < 2 || p[0] != '+' {
		return errors.New("want + and digits")
	}
	for _, c := range p[1:] {
		if c < '0' || c > '9' {
			return errors.New("want + and digits")
		}
	}
	for n := 1; n <= 3 && n < len(p); n++ {
		cc, _ := strconv.Atoi(p[1 : 1+n])
		if phonenumbers.GetRegionCodeForCountryCode(cc) != "ZZ" {
			return nil
		}
	}
	return errors.New("does not start with a whole country code")
}

// clock parses "HH:MM" (00:00 to 24:00) into minutes since midnight.
func clock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(m) != 2 || hh < 0 || mm < 0 || mm > 59 || hh*60+mm > 24*60 {
		return 0, fmt.Errorf("bad time %q", s)
	}
	return hh*60 + mm, nil
}
