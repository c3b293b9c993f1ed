package tollfraud

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/veilig/veilig/internal/events"
)

var zeroAddr netip.AddrPort

// Rule names the check that decided a call. It is the machine-readable
// half of a Decision and goes into events and call records.
type Rule string

// Rules. RuleAllowed and RuleEmergency admit a call; RuleMaxDuration and
// RuleDailyBudget also name why a running call was ended.
const (
	RuleAllowed              Rule = "allowed"
	RuleEmergency            Rule = "emergency"
	RuleInvalidNumber        Rule = "invalid_number"
	RuleSuspended            Rule = "suspended"
	RulePremiumRate          Rule = "premium_rate"
	RuleBlockedType          Rule = "blocked_type"
	RuleSatellite            Rule = "satellite"
	RuleInternationalNetwork Rule = "international_network"
	RuleHighRisk             Rule = "high_risk_country"
	RuleClassOfService       Rule = "class_of_service"
	RuleBusinessHours        Rule = "business_hours"
	RuleConcurrent           Rule = "concurrent_limit"
	RuleRate                 Rule = "rate_limit"
	RuleDailyBudget          Rule = "daily_budget"
	RuleMaxDuration          Rule = "max_duration"
)

// Request is an outbound call the router wants to send to a trunk.
type Request struct {
	Extension string // the authenticated caller
	Class     Class  // the extension's class of service; empty means DefaultClass
	Dialled   string // the Request-URI user part as dialled
	Trunk     string // the trunk the call would leave on
}

// CallID names an admitted call between Decide and CallEnded. Zero is no call.
type CallID uint64

// Decision is the guard's verdict on a Request.
type Decision struct {
	Allow bool
	// Code is the SIP status to refuse with: 403 for policy, 404 for a
	// number that is not one. Zero when allowed.
	Code int
	// Reason is safe to show the caller (a SIP reason phrase); it never
	// names thresholds or internal state.
	Reason      string
	Rule        Rule
	Destination Destination
	Class       Class // the class applied
	Trunk       string
	// CostPerMinute is the Rates estimate for this destination.
	CostPerMinute float64
	// MaxDuration is how long the call may talk: the smaller of the
	// configured maximum and the time until the tighter of the extension's
	// and the trunk's remaining budget runs out at CostPerMinute. Zero means
	// no limit (emergency calls). The caller ends the call with BYE on both
	// legs when it is reached; Tick is the backstop.
	MaxDuration time.Duration
	// Call is set when Allow: the caller must report CallEnded for it.
	Call CallID
	// Events are to be emitted as they are: the refusal, emergency,
	// new country, out-of-hours and trip alerts.
	Events []events.Event
	// Effects are for the caller to carry out (a suspension to persist).
	Effects []Effect
}

// Guard is the toll-fraud policy of one tenant. It holds the state that
// limits need (running calls, recent starts, spend today, hourly volume,
// suspensions, known countries) in memory; the caller persists what must
// outlive a restart (suspensions, call records) and feeds it back with
// Suspend and LearnBaseline. Time is always passed in, so the Guard is
// deterministic. Safe for concurrent use.
type Guard struct {
	cfg *compiled

	mu       sync.Mutex
	exts     map[string]*party
	trunks   map[string]*party
	calls    map[CallID]*call
	nextID   CallID
	known    map[string]bool // destination countries the tenant has called
	baseline baseline
	total    party    // tenant-wide hourly volume
	effects  []Effect // decided, not yet handed over (takeEffects)
}

// party is the state of one extension or trunk.
type party struct {
	running   []*call
	starts    []time.Time // admissions within the last minute, oldest first
	day       int         // local date the spend belongs to
	spent     float64     // spend of finished calls today
	suspended string      // reason; empty when not suspended
	tripDay   int         // local date of the last spend trip
	hour      int         // local hour the counters below belong to
	hourCalls int
	hourMins  float64 // talk minutes of finished calls inside this hour
	volCalls  bool    // volume alert raised this hour
	volMins   bool
}

type call struct {
	id       CallID
	ext      string
	trunk    string
	class    Class
	dest     Destination
	rate     float64
	start    time.Time
	answered time.Time // zero until CallAnswered
	maxDur   time.Duration
	exempt   bool // emergency: no limits, never ended by the guard
	ending   bool // an End was already returned for it
	endRule  Rule
}

// New returns a Guard for cfg, or the list of what is wrong with cfg.
func New(cfg Config) (*Guard, error) {
	k, err := compile(&cfg)
	if err != nil {
		return nil, err
	}
	return &Guard{
		cfg:    k,
		exts:   make(map[string]*party),
		trunks: make(map[string]*party),
		calls:  make(map[CallID]*call),
		known:  map[string]bool{k.country: true},
	}, nil
}

// Decide rules on an outbound call at time now. An allowed call is
// admitted at once (it counts against concurrency, rate and budget from
// here), so two INVITEs racing cannot both take the last slot; the caller
// must report CallEnded for Decision.Call however the call ends.
//
// The order of the checks is the order of their certainty: emergency calls
// first and always; then suspension; then destinations refused for every
// class; then class of service and business hours; then the limits.
func (g *Guard) Decide(req Request, now time.Time) Decision {
	d := g.decide(req, now)
	g.mu.Lock()
	d.Effects = g.takeEffects()
	g.mu.Unlock()
	return d
}

func (g *Guard) decide(req Request, now time.Time) Decision {
	k := g.cfg
	class := req.Class
	if class == "" {
		class = DefaultClass
	}
	d := Decision{Class: class, Trunk: req.Trunk}
	dest, err := Classify(req.Dialled, k.country)
	if err != nil {
		return g.refuse(d, now, req, 404, RuleInvalidNumber, "Not a valid phone number")
	}
	d.Destination = dest

	g.mu.Lock()
	defer g.mu.Unlock()
	lt := g.localTime(now)
	ext := g.party(g.exts, req.Extension)
	trk := g.party(g.trunks, req.Trunk)
	ext.roll(lt)
	trk.roll(lt)
	g.total.roll(lt)

	if dest.Special == Emergency {
		d.Allow, d.Rule, d.Reason = true, RuleEmergency, "Emergency call"
		d.Events = append(d.Events, event(now, events.FraudEmergency, req.Extension,
			"emergency call from "+req.Extension+" to "+dest.E164, destFields(dest, req.Trunk)...))
		d.Call = g.admit(req, class, dest, 0, 0, now, true, ext, trk)
		return d
	}
	if ext.suspended != "" {
		return g.refuse(d, now, req, 403, RuleSuspended, "Outbound calling suspended")
	}
	if rule, reason := k.blockedDest(dest); rule != "" {
		return g.refuse(d, now, req, 403, rule, reason)
	}
	if !allows(class, dest) {
		reason := "Destination not allowed for class " + string(class)
		if !class.valid() {
			reason = "Unknown class of service"
		}
		return g.refuse(d, now, req, 403, RuleClassOfService, reason)
	}
	if !dest.National && k.hoursOn && !k.open(lt) {
		if k.hoursAct == Refuse {
			return g.refuse(d, now, req, 403, RuleBusinessHours, "International calls not allowed outside business hours")
		}
		d.Events = append(d.Events, event(now, events.FraudOutOfHours, req.Extension,
			"international call outside business hours from "+req.Extension, destFields(dest, req.Trunk)...))
	}

	el, tl := k.extLimits(req.Extension), k.trunkLimits(req.Trunk)
	if full(ext, el) || full(trk, tl) {
		return g.refuse(d, now, req, 403, RuleConcurrent, "Too many calls in progress")
	}
	if ext.rateFull(el, now) || trk.rateFull(tl, now) {
		return g.refuse(d, now, req, 403, RuleRate, "Too many calls per minute")
	}
	rate := k.rate(dest)
	d.CostPerMinute = rate
	maxDur := el.MaxDuration
	if maxDur < 0 || (tl.MaxDuration > 0 && tl.MaxDuration < maxDur) {
		maxDur = tl.MaxDuration
	}
	for _, p := range [...]struct {
		p     *party
		l     Limits
		isExt bool
	}{{ext, el, true}, {trk, tl, false}} {
		if p.l.DailyBudget < 0 || rate == 0 {
			continue
		}
		left := p.l.DailyBudget - p.p.spentNow(now, lt)
		if left < rate { // not even one minute left
			d = g.refuse(d, now, req, 403, RuleDailyBudget, "Daily call budget reached")
			d.Events = append(d.Events, g.tripSpend(p.p, p.isExt, req.Extension, req.Trunk, now, lt)...)
			return d
		}
		if until := time.Duration(left / rate * float64(time.Minute)); maxDur < 0 || until < maxDur {
			maxDur = until
		}
	}
	if maxDur < 0 {
		maxDur = 0
	}
	d.Allow, d.Rule, d.Reason, d.MaxDuration = true, RuleAllowed, "Allowed", maxDur
	d.Call = g.admit(req, class, dest, rate, maxDur, now, false, ext, trk)
	if key := countryKey(dest); !g.known[key] {
		g.known[key] = true
		d.Events = append(d.Events, event(now, events.FraudNewCountry, req.Extension,
			"first call from this tenant to "+key, destFields(dest, req.Trunk)...))
	}
	d.Events = append(d.Events, g.checkCalls(req.Extension, ext, now, lt)...)
	return d
}

func (g *Guard) refuse(d Decision, now time.Time, req Request, code int, rule Rule, reason string) Decision {
	d.Allow, d.Code, d.Rule, d.Reason = false, code, rule, reason
	f := []string{"rule", string(rule), "dialled", req.Dialled, "class", string(d.Class)}
	f = append(f, destFields(d.Destination, req.Trunk)...)
	d.Events = append(d.Events, event(now, events.FraudRefused, req.Extension,
		fmt.Sprintf("outbound call from %s refused: %s", req.Extension, reason), f...))
	return d
}

func (g *Guard) admit(req Request, class Class, dest Destination, rate float64, maxDur time.Duration,
	now time.Time, exempt bool, ext, trk *party) CallID {
	g.nextID++
	c := &call{id: g.nextID, ext: req.Extension, trunk: req.Trunk, class: class, dest: dest,
		rate: rate, start: now, maxDur: maxDur, exempt: exempt}
	g.calls[c.id] = c
	ext.running = append(ext.running, c)
	trk.running = append(trk.running, c)
	if !exempt {
		ext.started(now, g.cfg.extLimits(req.Extension))
		trk.started(now, g.cfg.trunkLimits(req.Trunk))
		ext.hourCalls++
		g.total.hourCalls++
	}
	return c.id
}

// blockedDest applies the destinations refused for every class, unless an
// allow prefix covers the number.
func (k *compiled) blockedDest(d Destination) (Rule, string) {
	var rule Rule
	var reason string
	switch {
	case d.Special == Satellite:
		rule, reason = RuleSatellite, "Satellite destinations not allowed"
	case d.Special == InternationalNetwork:
		rule, reason = RuleInternationalNetwork, "International network destinations not allowed"
	case d.Type == PremiumRate && k.blocked[PremiumRate]:
		rule, reason = RulePremiumRate, "Premium-rate numbers not allowed"
	case k.blocked[d.Type]:
		rule, reason = RuleBlockedType, "Numbers of this type not allowed"
	case k.highRisk[d.Country] && d.Country != k.country:
		rule, reason = RuleHighRisk, "High-risk destination not allowed"
	default:
		return "", ""
	}
	for _, p := range k.allow {
		if strings.HasPrefix(d.E164, p) {
			return "", ""
		}
	}
	return rule, reason
}

func (c Class) valid() bool {
	return c == Internal || c == National || c == EU || c == International
}

// allows applies the class of service. Unknown classes allow nothing.
func allows(c Class, d Destination) bool {
	switch c {
	case National:
		return d.National
	case EU:
		return d.National || d.EU
	case International:
		return true
	}
	return false
}

func full(p *party, l Limits) bool {
	return l.Concurrent >= 0 && countLimited(p.running) >= l.Concurrent
}

func countLimited(cs []*call) int {
	n := 0
	for _, c := range cs {
		if !c.exempt {
			n++
		}
	}
	return n
}

// started notes an admission for the rate limit, keeping no more than the
// limit needs.
func (p *party) started(now time.Time, l Limits) {
	if l.PerMinute < 0 {
		return
	}
	if len(p.starts) >= l.PerMinute {
		p.starts = append(p.starts[:0], p.starts[len(p.starts)-l.PerMinute+1:]...)
	}
	p.starts = append(p.starts, now)
}

// rateFull drops admissions older than a minute and reports whether
// another would exceed the limit.
func (p *party) rateFull(l Limits, now time.Time) bool {
	cut := 0
	for cut < len(p.starts) && !p.starts[cut].After(now.Add(-time.Minute)) {
		cut++
	}
	if cut > 0 {
		p.starts = append(p.starts[:0], p.starts[cut:]...)
	}
	return l.PerMinute >= 0 && len(p.starts) >= l.PerMinute
}

// spentNow is today's spend including the running calls so far.
func (p *party) spentNow(now time.Time, lt localTime) float64 {
	s := p.spent
	for _, c := range p.running {
		s += c.costSince(lt.dayStart, now)
	}
	return s
}

// costSince estimates the cost of c's talk time after from, up to now.
// Before CallAnswered is reported the call is charged from its start:
// better to overestimate than to let an unreported answer run free.
func (c *call) costSince(from, now time.Time) float64 {
	b := c.billStart()
	if b.Before(from) {
		b = from
	}
	if c.exempt || !now.After(b) {
		return 0
	}
	return c.rate * now.Sub(b).Minutes()
}

func (c *call) billStart() time.Time {
	if !c.answered.IsZero() {
		return c.answered
	}
	return c.start
}

// rate looks up the per-minute estimate for d.
func (k *compiled) rate(d Destination) float64 {
	r := &k.rates
	if v, ok := r.CountryTypes[d.Country+"/"+string(d.Type)]; ok {
		return v
	}
	if v, ok := r.Types[d.Type]; ok {
		return v
	}
	if v, ok := r.Countries[d.Country]; ok {
		return v
	}
	switch {
	case d.National:
		return r.National
	case d.EU:
		return r.EU
	}
	return r.Default
}

func (k *compiled) extLimits(ext string) Limits {
	if l, ok := k.exts[ext]; ok {
		return l
	}
	return k.ext
}

func (k *compiled) trunkLimits(t string) Limits {
	if l, ok := k.trunks[t]; ok {
		return l
	}
	return k.trunk
}

func (k *compiled) open(lt localTime) bool {
	for _, s := range k.hours[lt.weekday] {
		if lt.minute >= s.from && lt.minute < s.to {
			return true
		}
	}
	return false
}

// countryKey names a destination country for new-country alerts; the
// non-geographic ranges are told apart by country code.
func countryKey(d Destination) string {
	if d.Country == NonGeographic {
		return fmt.Sprintf("+%d", d.CountryCode)
	}
	return d.Country
}

func (g *Guard) party(m map[string]*party, name string) *party {
	p := m[name]
	if p == nil {
		p = &party{}
		m[name] = p
	}
	return p
}

// localTime is now in the tenant's zone, reduced to what the rules use.
type localTime struct {
	day       int // yyyymmdd
	hour      int // day*100 + hour: identifies the local hour
	weekday   time.Weekday
	minute    int // minutes since local midnight
	hourOfWk  int // weekday*24 + hour
	dayStart  time.Time
	hourStart time.Time
}

func (g *Guard) localTime(now time.Time) localTime {
	t := now.In(g.cfg.loc)
	y, m, dd := t.Date()
	h, mi, _ := t.Clock()
	day := y*10000 + int(m)*100 + dd
	return localTime{
		day: day, hour: day*100 + h, weekday: t.Weekday(), minute: h*60 + mi,
		hourOfWk:  int(t.Weekday())*24 + h,
		dayStart:  time.Date(y, m, dd, 0, 0, 0, 0, g.cfg.loc),
		hourStart: time.Date(y, m, dd, h, 0, 0, 0, g.cfg.loc),
	}
}

// roll resets the daily and hourly counters when the local day or hour
// has moved on.
func (p *party) roll(lt localTime) {
	if p.day != lt.day {
		p.day, p.spent = lt.day, 0
	}
	if p.hour != lt.hour {
		p.hour, p.hourCalls, p.hourMins, p.volCalls, p.volMins = lt.hour, 0, 0, false, false
	}
}
