// Package app wires Veilig together: config -> subsystems -> a run group.
// It is the one package that imports everything; nothing imports it but
// the CLI.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veilig/veilig/internal/accounts"
	"github.com/veilig/veilig/internal/auth"
	"github.com/veilig/veilig/internal/call"
	"github.com/veilig/veilig/internal/config"
	"github.com/veilig/veilig/internal/control"
	"github.com/veilig/veilig/internal/datakey"
	"github.com/veilig/veilig/internal/defence"
	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/lifecycle"
	"github.com/veilig/veilig/internal/media"
	"github.com/veilig/veilig/internal/metrics"
	"github.com/veilig/veilig/internal/process"
	"github.com/veilig/veilig/internal/registrar"
	"github.com/veilig/veilig/internal/retention"
	"github.com/veilig/veilig/internal/service"
	"github.com/veilig/veilig/internal/sipedge"
	"github.com/veilig/veilig/internal/sipedge/sanity"
	"github.com/veilig/veilig/internal/store"
	"github.com/veilig/veilig/internal/store/feed"
	"github.com/veilig/veilig/internal/store/sqlite"
	"github.com/veilig/veilig/internal/tlsconf"
	"github.com/veilig/veilig/internal/tollfraud"
	"github.com/veilig/veilig/internal/trunk"
)

// Version is set at build time (-ldflags "-X ...app.Version=...").
var Version = "0.1.0-dev"

// OpenData opens the store and data key of cfg's data directory; it is
// the one place that chooses the store backend. With create it makes the
// directory, database and key on first use (serve); without, they must
// exist (management commands never create a second, empty installation).
func OpenData(ctx context.Context, cfg *config.Config, create bool) (store.Store, *datakey.Key, error) {
	if create {
		if err := ensureDataDir(cfg.DataDir); err != nil {
			return nil, nil, err
		}
	} else if src := DataKeySource(cfg); !src.External() {
		if _, err := os.Stat(src.Path); err != nil {
			return nil, nil, fmt.Errorf("data key %s: %w (a management command never makes a new key; is this the server's data directory?)", src.Path, err)
		}
	}
	key, _, err := LoadDataKey(cfg)
	if err != nil {
		return nil, nil, err
	}
	db, err := sqlite.Open(ctx, cfg.DBPath())
	if err != nil {
		return nil, nil, err
	}
	return db, key, nil
}

func ensureDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("data dir %s is readable by others and cannot be fixed: %w (run chmod 700 %s)", dir, err, dir)
		}
	}
	return nil
}

// Serve runs the server until ctx ends (or SIGINT/SIGTERM). Human-facing
// start-up lines go to out; logs go to log.
func Serve(ctx context.Context, cfg *config.Config, out io.Writer, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Getenv("GOGC") == "" {
		// The SIP path allocates per message and holds little live data:
		// collecting less often buys throughput for modest memory.
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// ...but a burst must not leave hundreds of MiB of garbage
		// waiting: near this soft limit the collector works harder.
		debug.SetMemoryLimit(1 << 30)
	}

	files, err := process.RaiseFileLimit()
	if err != nil {
		return err
	}
	maxConns, reserve, err := process.ConnectionLimit(cfg, files)
	if err != nil {
		return err
	}
	log.Info("connection limit", "max_connections", maxConns, "open_file_limit", files, "reserve", reserve)

	// Each weakening setting is said once, where a person starting the
	// server reads (stdout, which journald keeps too).
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(out, "WARNING: %s\n", w)
	}
	db, key, err := OpenData(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer db.Close()

	tm, err := tlsconf.New(tlsconf.Options{
		CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile, Dir: cfg.TLSDir(),
		Domain: cfg.SIP.Domain, Hosts: listenHosts(cfg), MinVersion: cfg.TLS.MinTLSVersion(),
	}, log)
	if err != nil {
		return err
	}

	bus := events.NewBus(log.With("component", "events"))
	bus.AddSink(events.StoreSink{St: db}, events.SinkOptions{})
	eventLog, err := events.OpenFileSink(cfg.EventsLogPath())
	if err != nil {
		return err
	}
	defer eventLog.Close()
	bus.AddSink(eventLog, events.SinkOptions{})
	changes, err := feed.New(ctx, db, time.Second, log.With("component", "feed"))
	if err != nil {
		return fmt.Errorf("change feed: %w", err)
	}
	dir, err := accounts.Load(ctx, db, key, cfg.SIP.Domain, log.With("component", "accounts"))
	if err != nil {
		return err
	}
	nonces, err := auth.NewNonceManager(key.Derive("sip-nonce"), cfg.Auth.NonceTTL, 1<<20)
	if err != nil {
		return err
	}
	reg := registrar.New(registrar.Options{
		MinExpires: cfg.SIP.MinExpires, MaxExpires: cfg.SIP.MaxExpires, DefaultExpires: cfg.SIP.DefaultExpires,
		ConnectionMaxExpires: cfg.SIP.ConnectionMaxExpires, FlowTimer: min(30*time.Second, cfg.SIP.IdleTimeout/2),
		UserAgent: cfg.SIP.UserAgent, Store: db, Events: bus, Logger: log.With("component", "registrar"),
	})
	restored, err := reg.Load(ctx, time.Now())
	if err != nil {
		return err
	}

	carriers, err := trunk.Load(ctx, db, key, log.With("component", "trunk"))
	if err != nil {
		return fmt.Errorf("load trunks: %w", err)
	}
	// A source with live registrations or an authenticated connection
	// carries agents: failures there lock accounts, never the address.
	conns := sipedge.NewAdmission(maxConns)
	active := func(a netip.Addr) bool { return reg.HasSource(a) || conns.AuthenticatedFrom(a) }
	grd, err := defence.New(defence.Options{Config: cfg, Store: db, Events: bus, Directory: dir,
		Carriers: carriers.Carriers(), IsCarrier: carriers.IsCarrier, Active: active, Log: log.With("component", "guard")})
	if err != nil {
		return fmt.Errorf("guard: %w", err)
	}
	sanityOpts := sanity.DefaultOptions()
	sanityOpts.MaxMessageSize = cfg.SIP.MaxMessageSize

	// Bans and locks in force, and the devices that registered before a
	// restart, are known before the first packet: a reconnect storm after
	// an outage is the agents coming back, not an attack.
	grd.Restore(ctx, time.Now())
	reg.Each(func(b store.Binding) { grd.KnownDevice(b.Source.Addr(), b.Number) })

	// Media events (timeouts, injection) reach the B2BUA through a queue:
	// the relay exists before the calls it serves.
	mediaEvents := make(chan media.Event, 4096)
	relay, relayAt, err := newRelay(cfg, func(ev media.Event) {
		select {
		case mediaEvents <- ev:
		default:
			log.Error("media event queue full; event dropped", "call", ev.CallID, "kind", ev.Kind)
		}
	}, log.With("component", "media"))
	if err != nil {
		return err
	}
	mux := sipedge.NewMux()
	mux.Handle(sip.REGISTER, reg)
	authStage := sipedge.AuthGate(sipedge.AuthOptions{
		Realm: cfg.SIP.Domain, AllowMD5: cfg.Auth.AllowMD5, MD5First: cfg.Auth.InsecureMD5First,
		MD5Only: append([]string(nil), cfg.Auth.MD5OnlyUserAgents...),
		Nonces:  nonces, Key: key.Derive("sip-auth"), Accounts: dir, Events: bus,
		Observe: grd.Observe, Gate: grd.Gate, LocalHosts: localHosts(cfg),
		InsecureURIWithoutUser: cfg.Auth.InsecureDigestURIWithoutUser,
		Trusted: func(c sipedge.Conn) (string, bool) {
			if t, ok := carriers.FromTrunk(c); ok {
				return "trunk:" + t.Name(), true
			}
			return "", false
		},
	})
	edge, err := sipedge.New(sipedge.Options{
		TLSListen: cfg.SIP.TLSListen, TCPListen: cfg.SIP.TCPListen, UDPListen: cfg.SIP.UDPListen,
		TLSConfig: tm.ServerConfig(), AdvertiseHost: cfg.SIP.AdvertiseHost, UserAgent: cfg.SIP.UserAgent,
		IdleTimeout: cfg.SIP.IdleTimeout, MaxMessageSize: cfg.SIP.MaxMessageSize,
		MessageTimeout: cfg.SIP.MessageTimeout, AuthTimeout: cfg.SIP.AuthTimeout, Admission: conns,
		UDPWorkers: cfg.SIP.UDPWorkerCount(), UDPReadBuffer: cfg.SIP.UDPReadBuffer,
		Handler: mux, Auth: authStage, Logger: log.With("component", "sip"), Guard: grd,
		Sanity: func(raw []byte, r *sip.Request) (int, string, bool) {
			res := sanity.Check(raw, r, sanityOpts)
			if res.OK {
				return 0, "", false
			}
			return res.Code, res.Reason, res.Drop
		},
	})
	if err != nil {
		return err
	}
	fraud, err := defence.NewFraud(cfg.Fraud, db, bus, log.With("component", "fraud"))
	if err != nil {
		return err
	}
	if err := fraud.Restore(ctx); err != nil {
		return err
	}
	trunks := trunk.NewManager(carriers, edge, bus, log.With("component", "trunk"))
	calls := call.New(call.Options{
		Edge: call.EdgeOf(edge), Directory: dir, Locator: reg, Events: bus, Logger: log.With("component", "call"),
		CallerIDs: dir.CallerIDs,
		Domain:    cfg.SIP.Domain, InsecureSDESOverPlain: cfg.SIP.InsecureSDESOverPlainTransport,
		Relay: relay, Fraud: fraud.Guard(), FraudEffects: fraud, Class: dir.Class, Trunks: trunks,
	})

	// Everything else reaches the B2BUA; the edge serves only once Serve
	// runs, after this.
	mux.Fallback(calls)

	svc := service.New(service.Deps{
		Store: db, Key: key, Config: cfg, Events: bus, Changed: changes.Sync,
		Explainer: grd.Engine(), Locator: reg, Conns: edge, Calls: calls, Log: log.With("component", "service"),
	})
	changes.Subscribe(store.TopicExtension, dir.Apply)
	changes.Subscribe(store.TopicBan, grd.ApplyBans)
	changes.Subscribe(store.TopicLock, grd.ApplyLocks)
	changes.Subscribe(store.TopicTrunk, carriers.Apply)
	changes.Subscribe(store.TopicSuspension, fraud.ApplySuspensions)
	purge := retention.New(db, bus, log.With("component", "retention"), retention.Options{Events: cfg.Events.Retention})

	var metricsLn net.Listener
	if cfg.Metrics.Listen != "" {
		if metricsLn, err = net.Listen("tcp", cfg.Metrics.Listen); err != nil {
			return fmt.Errorf("metrics listen %s: %w", cfg.Metrics.Listen, err)
		}
	}

	// Actors in dependency order; they stop in the reverse order, so the
	// edge stops accepting first and the bus writes the last events.
	g := lifecycle.New(log, 10*time.Second)
	g.Go("events", bus.Run)
	g.Go("announce", func(stopping context.Context) error {
		bus.Emit(events.New(events.ServerStarted, netipZero, "", "veilig started", "version", Version))
		<-stopping.Done()
		reason := stopReason(ctx)
		if err := g.Err(); err != nil {
			reason = err.Error()
		}
		bus.Emit(events.New(events.ServerStopped, netipZero, "", "veilig stopped", "version", Version, "reason", reason))
		return nil
	})
	g.Go("registrar", reg.Run)
	g.Go("guard", grd.Run)
	g.Go("fraud", func(ctx context.Context) error {
		return fraud.Run(ctx, 2*time.Second, func(end tollfraud.End) { calls.EndFraudCall(end.Call, string(end.Rule)) })
	})
	g.Go("media", relay.Run)
	g.Go("media-events", func(ctx context.Context) error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case ev := <-mediaEvents:
				calls.OnMediaEvent(ev)
			}
		}
	})
	g.Go("trunks", trunks.Run)
	g.Go("memory", func(ctx context.Context) error { return process.ReturnMemory(ctx, log.With("component", "memory")) })
	g.Go("feed", changes.Run)
	g.Go("audit-checkpoints", func(ctx context.Context) error { return svc.RunCheckpoints(ctx, 10*time.Minute) })
	g.Go("retention", purge.Run)
	g.Go("control", func(ctx context.Context) error {
		return control.Serve(ctx, cfg.ControlSocketPath(), svc, log.With("component", "control"))
	})
	if metricsLn != nil {
		reg := metrics.NewRegistry(metrics.Sources{Edge: edge, Calls: calls, Registrations: reg, Events: bus,
			AlertsSuppressed: func() uint64 { return grd.Engine().Stats().AlertsSuppressed }, Collectors: []prometheus.Collector{grd.Decisions()}})
		checks := []metrics.Check{
			{Name: "store", Fn: func(ctx context.Context) error { _, err := db.LastChange(ctx); return err }},
			{Name: "sip_listeners", Fn: func(context.Context) error {
				if !edge.Serving() {
					return errors.New("a SIP listener is not accepting")
				}
				return nil
			}},
		}
		h := metrics.Handler(reg, checks)
		g.Go("metrics", func(ctx context.Context) error { return metrics.Serve(ctx, metricsLn, h, log) })
	}
	if cfg.TLS.CertFile != "" {
		g.Go("tls-watch", tm.Watch)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	g.Go("sighup", func(ctx context.Context) error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-hup:
				if err := tm.Reload(); err != nil {
					log.Error("tls reload failed; keeping the current certificate", "err", err)
					continue
				}
				log.Info("tls certificate reloaded", "fingerprint", tm.Fingerprint())
				bus.Emit(events.New(events.TLSReloaded, netipZero, "", "tls certificate reloaded", "fingerprint", tm.Fingerprint()))
			}
		}
	})
	g.Go("sip", edge.Serve)

	printBanner(out, cfg, tm, edge, relayAt, restored)
	fmt.Fprintf(out, "connections: up to %d TLS/TCP (open-file limit %d)\n", maxConns, files)
	if metricsLn != nil {
		fmt.Fprintf(out, "metrics: http://%s/metrics (health: /healthz, /readyz)\n", cfg.Metrics.Listen)
	}
	fmt.Fprintln(out, "Veilig is ready")
	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", context.Cause(ctx))
	case <-g.Failed():
		log.Error("shutting down", "reason", g.Err())
	}
	g.Stop()
	log.Info("stopped")
	return g.Err()
}

func stopReason(ctx context.Context) string {
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err.Error()
	}
	return "signal"
}

func listenHosts(cfg *config.Config) []string {
	var hosts []string
	for _, a := range []string{cfg.SIP.TLSListen, cfg.SIP.TCPListen, cfg.SIP.UDPListen} {
		if a == "" {
			continue
		}
		if h, _, err := net.SplitHostPort(a); err == nil {
			hosts = append(hosts, h)
		}
	}
	if cfg.SIP.AdvertiseHost != "" {
		hosts = append(hosts, cfg.SIP.AdvertiseHost)
	}
	return hosts
}

// localHosts are the names and addresses requests may use for this server
// (the digest uri check treats them as one host): the domain, advertised
// host and listen hosts and, for a wildcard listener, every interface
// address.
func localHosts(cfg *config.Config) []string {
	hosts := append([]string{cfg.SIP.Domain}, listenHosts(cfg)...)
	for _, h := range hosts {
		if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
			if addrs, err := net.InterfaceAddrs(); err == nil {
				for _, a := range addrs {
					if n, ok := a.(*net.IPNet); ok {
						hosts = append(hosts, n.IP.String())
					}
				}
			}
			break
		}
	}
	return hosts
}

func printBanner(out io.Writer, cfg *config.Config, tm *tlsconf.Manager, edge *sipedge.Edge, relayAt string, restored int) {
	fmt.Fprintf(out, "Veilig %s, SIP domain %s, data in %s\n", Version, cfg.SIP.Domain, cfg.DataDir)
	for _, l := range edge.Listeners() {
		scheme := "sip+" + l.Transport
		where := ""
		if l.Addr.Addr().IsUnspecified() {
			where = " (every interface, IPv4 and IPv6; set sip." + l.Transport + "_listen to 127.0.0.1:PORT to keep a trial on this machine)"
		}
		fmt.Fprintf(out, "listening: %s %s%s\n", scheme, l.Addr, where)
	}
	fmt.Fprintf(out, "media: %s (media.advertise sets the address phones send media to, e.g. the public one behind NAT)\n", relayAt)
	fmt.Fprintf(out, "TLS certificate fingerprint: %s\n", tm.Fingerprint())
	if ca := tm.CAFile(); ca != "" {
		fmt.Fprintf(out, "CA certificate: %s (give this to softphones to verify Veilig)\n", ca)
	}
	fmt.Fprintf(out, "security events: %s\n", cfg.EventsLogPath())
	if restored > 0 {
		fmt.Fprintf(out, "restored %d registrations\n", restored)
	}
	fmt.Fprintf(out, "Add an extension: %s ext add 1001 --name \"Agent Anna\" --data-dir %s\n", selfName(), cfg.DataDir)
}

// selfName is how the person who started the server runs this binary
// again: the path they used (./bin/veilig from a checkout), or veilig when
// it came from the PATH.
func selfName() string {
	if len(os.Args) > 0 && strings.ContainsRune(os.Args[0], '/') {
		return os.Args[0]
	}
	return "veilig"
}
