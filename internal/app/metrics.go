package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/veilig/veilig/internal/call"
	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/registrar"
	"github.com/veilig/veilig/internal/sipedge"
)

// newRegistry exposes the subsystems' own counters and gauges; values are
// read at scrape time, so nothing is added to the SIP path.
func newRegistry(edge *sipedge.Edge, calls *call.Manager, reg *registrar.Registrar, bus *events.Bus, grd *guard) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gauge := func(name, help string, f func() float64) {
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	counter := func(name, help string, f func() float64) {
		r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	gauge("veilig_calls_active", "Calls in progress.", func() float64 { c, _ := calls.Active(); return float64(c) })
	gauge("veilig_dialogs_active", "SIP dialogs held by the B2BUA.", func() float64 { _, d := calls.Active(); return float64(d) })
	gauge("veilig_sip_server_transactions", "Live server transactions.", func() float64 { s, _, _ := edge.Stats(); return float64(s) })
	gauge("veilig_sip_client_transactions", "Live client transactions.", func() float64 { _, c, _ := edge.Stats(); return float64(c) })
	gauge("veilig_sip_connections", "Open TLS/TCP connections.", func() float64 { _, _, n := edge.Stats(); return float64(n) })
	gauge("veilig_sip_connection_limit", "TLS/TCP connections the edge holds at most (sip.max_connections or from the open-file limit).", func() float64 { return float64(edge.Admission().Limit) })
	gauge("veilig_sip_connections_authenticated", "TLS/TCP connections on which a request has authenticated (never evicted).", func() float64 { return float64(edge.Admission().Authenticated) })
	gauge("veilig_registrations", "Registered contacts.", func() float64 { return float64(reg.Count()) })
	counter("veilig_events_dropped_total", "Events lost to a full queue.", func() float64 { return float64(bus.Dropped()) })
	r.MustRegister(grd.decisions)
	counter("veilig_guard_alerts_suppressed_total", "Alerts folded into an earlier one of the same window.", func() float64 { return float64(grd.eng.Stats().AlertsSuppressed) })
	for name := range edge.MetricsSnapshot() {
		counter("veilig_sip_"+name+"_total", "SIP edge counter "+name+".", func() float64 { return float64(edge.MetricsSnapshot()[name]) })
	}
	return r
}

// serveMetrics runs GET /metrics on ln until ctx ends.
func serveMetrics(ctx context.Context, ln net.Listener, reg *prometheus.Registry, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("metrics listening", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
