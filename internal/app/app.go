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
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/veilig/veilig/internal/accounts"
	"github.com/veilig/veilig/internal/auth"
	"github.com/veilig/veilig/internal/call"
	"github.com/veilig/veilig/internal/config"
	"github.com/veilig/veilig/internal/control"
	"github.com/veilig/veilig/internal/datakey"
	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/media"
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
		Store: db, Events: bus, Logger: log.With("component", "registrar"),
	})
	restored, err := reg.Load(ctx, time.Now())
	if err != nil {
		return err
	}

	trunks := trunk.NewManager(nil, db, key, bus, log.With("component", "trunk"))
	if err := trunks.Load(ctx); err != nil {
		return fmt.Errorf("load trunks: %w", err)
	}
	grd, err := newGuard(cfg, db, bus, dir, trunks.Carriers(), log.With("component", "guard"))
	if err != nil {
		return fmt.Errorf("guard: %w", err)
	}
	grd.carrier = trunks.IsCarrier
	sanityOpts := sanity.DefaultOptions()
	sanityOpts.MaxMessageSize = cfg.SIP.MaxMessageSize

	// Bans and locks in force, and the devices that registered before a
	// restart, are known before the first packet: a reconnect storm after
	// an outage is the agents coming back, not an attack.
	grd.restore(ctx, time.Now())
	reg.Each(func(b store.Binding) { grd.known(b.Source.Addr(), b.Number) })

	var calls *call.Manager
	relay, err := newRelay(cfg, func(ev media.Event) {
		if calls != nil {
			calls.OnMediaEvent(ev)
		}
	}, log.With("component", "media"))
	if err != nil {
		return err
	}
	mux := sipedge.NewMux()
	mux.Handle(sip.REGISTER, reg)
	mux.Fallback(sipedge.HandlerFunc(func(ctx context.Context, r *sipedge.Request) error { return calls.ServeSIP(ctx, r) }))
	authStage := sipedge.AuthGate(sipedge.AuthOptions{
		Realm: cfg.SIP.Domain, AllowMD5: cfg.Auth.AllowMD5, MD5First: cfg.Auth.InsecureMD5First,
		MD5Only: append([]string(nil), cfg.Auth.MD5OnlyUserAgents...),
		Nonces:  nonces, Key: key.Derive("sip-auth"), Accounts: dir, Events: bus,
		Observe: grd.Observe, Gate: grd.Gate,
		Trusted: func(c sipedge.Conn) (string, bool) {
			if t, ok := trunks.FromTrunk(c); ok {
				return "trunk:" + t.Name(), true
			}
			return "", false
		},
	})
	edge, err := sipedge.New(sipedge.Options{
		TLSListen: cfg.SIP.TLSListen, TCPListen: cfg.SIP.TCPListen, UDPListen: cfg.SIP.UDPListen,
		TLSConfig: tm.ServerConfig(), AdvertiseHost: cfg.SIP.AdvertiseHost, UserAgent: cfg.SIP.UserAgent,
		IdleTimeout: cfg.SIP.IdleTimeout, MaxMessageSize: cfg.SIP.MaxMessageSize,
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
	fraud, err := tollfraud.New(fraudConfig(cfg.Fraud))
	if err != nil {
		return fmt.Errorf("fraud guard: %w", err)
	}
	if err := restoreFraud(ctx, fraud, db); err != nil {
		return fmt.Errorf("fraud guard: %w", err)
	}
	fraudBus := fraudEvents{Emitter: bus, st: db, log: log.With("component", "fraud")}
	calls = call.New(call.Options{
		Edge: call.EdgeOf(edge), Directory: dir, Locator: reg, Events: fraudBus, Logger: log.With("component", "call"),
		CallerIDs: dir.CallerIDs,
		Domain:    cfg.SIP.Domain, InsecureSDESOverPlain: cfg.SIP.InsecureSDESOverPlainTransport,
		Relay: relay, Fraud: fraud, Class: dir.Class, Trunks: trunks,
	})
	trunks.SetEdge(edge)

	printBanner(out, cfg, tm, edge, restored)
	bus.Emit(events.New(events.ServerStarted, netipZero, "", "veilig started", "version", Version))

	var wg sync.WaitGroup
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("subsystem stopped", "subsystem", name, "err", err)
				stop()
			}
		}()
	}
	// The bus and registrar outlive the edge so the last events and
	// bindings are written after the listeners close.
	bgCtx, bgCancel := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); _ = bus.Run(bgCtx) }()
	go func() { defer bg.Done(); _ = reg.Run(bgCtx) }()

	bg.Add(1)
	go func() {
		defer bg.Done()
		if err := grd.Run(bgCtx); err != nil {
			log.Error("guard stopped", "err", err)
		}
	}()
	run("media", relay.Run)
	run("trunks", trunks.Run)
	run("fraud", func(ctx context.Context) error {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case now := <-t.C:
				res := fraud.Tick(now)
				for _, e := range res.Events {
					fraudBus.Emit(e)
				}
				for _, end := range res.End {
					calls.EndFraudCall(end.Call, string(end.Rule))
				}
			}
		}
	})
	run("sip", edge.Serve)
	changes.Subscribe(store.TopicExtension, dir.Apply)
	changes.Subscribe(store.TopicBan, grd.ApplyBans)
	changes.Subscribe(store.TopicLock, grd.ApplyLocks)
	changes.Subscribe(store.TopicTrunk, trunks.Apply)
	changes.Subscribe(store.TopicSuspension, applySuspensions(fraud, db, bus, log.With("component", "fraud")))
	run("feed", changes.Run)
	svc := service.New(service.Deps{
		Store: db, Key: key, Config: cfg, Events: bus, Changed: changes.Sync,
		Explainer: grd.eng, Locator: reg, Conns: edge, Calls: calls, Log: log.With("component", "service"),
	})
	run("audit-checkpoints", func(ctx context.Context) error { return svc.RunCheckpoints(ctx, 10*time.Minute) })
	purge := retention.New(db, bus, log.With("component", "retention"), retention.Options{Events: cfg.Events.Retention})
	run("retention", purge.Run)
	run("control", func(ctx context.Context) error {
		return control.Serve(ctx, cfg.ControlSocketPath(), svc, log.With("component", "control"))
	})
	if cfg.Metrics.Listen != "" {
		reg := newRegistry(edge, calls, reg, bus, grd)
		ln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			stop()
			wg.Wait()
			bgCancel()
			bg.Wait()
			return fmt.Errorf("metrics listen %s: %w", cfg.Metrics.Listen, err)
		}
		run("metrics", func(ctx context.Context) error { return serveMetrics(ctx, ln, reg, log) })
		fmt.Fprintf(out, "metrics: http://%s/metrics\n", cfg.Metrics.Listen)
	}
	if cfg.TLS.CertFile != "" {
		run("tls-watch", tm.Watch)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	run("sighup", func(ctx context.Context) error {
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
	fmt.Fprintln(out, "Veilig is ready")
	<-ctx.Done()
	log.Info("shutting down", "reason", context.Cause(ctx))
	wg.Wait()
	bus.Emit(events.New(events.ServerStopped, netipZero, "", "veilig stopped", "version", Version, "reason", stopReason(ctx)))
	bgCancel()
	bg.Wait()
	log.Info("stopped")
	return nil
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

func printBanner(out io.Writer, cfg *config.Config, tm *tlsconf.Manager, edge *sipedge.Edge, restored int) {
	fmt.Fprintf(out, "Veilig %s, SIP domain %s, data in %s\n", Version, cfg.SIP.Domain, cfg.DataDir)
	for _, l := range edge.Listeners() {
		scheme := "sip+" + l.Transport
		fmt.Fprintf(out, "listening: %s %s\n", scheme, l.Addr)
	}
	fmt.Fprintf(out, "TLS certificate fingerprint: %s\n", tm.Fingerprint())
	if ca := tm.CAFile(); ca != "" {
		fmt.Fprintf(out, "CA certificate: %s (give this to softphones to verify Veilig)\n", ca)
	}
	fmt.Fprintf(out, "security events: %s\n", cfg.EventsLogPath())
	if restored > 0 {
		fmt.Fprintf(out, "restored %d registrations\n", restored)
	}
	fmt.Fprintf(out, "Add an extension: veilig ext add 1001 --name \"Agent Anna\" --data-dir %s\n", cfg.DataDir)
}
