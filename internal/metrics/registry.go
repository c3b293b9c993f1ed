package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/veilig/veilig/internal/sipedge"
)

// Sources are what the registry reads at scrape time; each is a small
// view of one subsystem.
type Sources struct {
	Edge interface {
		Stats() (serverTx, clientTx, conns int)
		Admission() sipedge.AdmissionStats
		MetricsSnapshot() map[string]uint64
	}
	Calls         interface{ Active() (calls, dialogs int) }
	Registrations interface{ Count() int }
	Events        interface{ Dropped() uint64 }
	// AlertsSuppressed counts alerts the defences folded into an
	// earlier one of the same window.
	AlertsSuppressed func() uint64
	// Collectors are registered as they are (the guard's decision
	// counters).
	Collectors []prometheus.Collector
}

// NewRegistry exposes the subsystems' counters and gauges.
func NewRegistry(s Sources) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gauge := func(name, help string, f func() float64) {
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	counter := func(name, help string, f func() float64) {
		r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	if c := s.Calls; c != nil {
		gauge("veilig_calls_active", "Calls in progress.", func() float64 { n, _ := c.Active(); return float64(n) })
		gauge("veilig_dialogs_active", "SIP dialogs held by the B2BUA.", func() float64 { _, d := c.Active(); return float64(d) })
	}
	if e := s.Edge; e != nil {
		gauge("veilig_sip_server_transactions", "Live server transactions.", func() float64 { n, _, _ := e.Stats(); return float64(n) })
		gauge("veilig_sip_client_transactions", "Live client transactions.", func() float64 { _, n, _ := e.Stats(); return float64(n) })
		gauge("veilig_sip_connections", "Open TLS/TCP connections.", func() float64 { _, _, n := e.Stats(); return float64(n) })
		gauge("veilig_sip_connection_limit", "TLS/TCP connections the edge holds at most (sip.max_connections or from the open-file limit).", func() float64 { return float64(e.Admission().Limit) })
		gauge("veilig_sip_connections_authenticated", "TLS/TCP connections on which a request has authenticated (never evicted).", func() float64 { return float64(e.Admission().Authenticated) })
		for name := range e.MetricsSnapshot() {
			counter("veilig_sip_"+name+"_total", "SIP edge counter "+name+".", func() float64 { return float64(e.MetricsSnapshot()[name]) })
		}
	}
	if g := s.Registrations; g != nil {
		gauge("veilig_registrations", "Registered contacts.", func() float64 { return float64(g.Count()) })
	}
	if ev := s.Events; ev != nil {
		counter("veilig_events_dropped_total", "Events lost to a full queue.", func() float64 { return float64(ev.Dropped()) })
	}
	if f := s.AlertsSuppressed; f != nil {
		counter("veilig_guard_alerts_suppressed_total", "Alerts folded into an earlier one of the same window.", func() float64 { return float64(f()) })
	}
	r.MustRegister(s.Collectors...)
	return r
}
