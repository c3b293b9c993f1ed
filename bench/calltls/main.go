// Command calltls measures call-tls for servers that never dial devices:
// the shared harness's (../shared/bench/peers) caller load, sipp's
// call_uac.xml over one TLS connection through stunnel, against callees
// that each register over their own TLS connection and are called on it.
// The shared harness's own call-tls callee is a sipp UAS behind a TLS
// listener that the server must dial, which Veilig never does; here every
// server reaches every callee the same way, over the connection the callee
// registered on.
//
// Everything else is the harness's: the 1000 subscribers and their
// passwords, the certificate, Kamailio's configuration (from the shared
// templates), the pinning, the rate search and the pass criteria. One run
// measures each server in turn and prints the harness's result line for
// each, then the ratios to the first server.
//
// Usage (from the repository):
//
//	go run ./bench/calltls [-targets kamailio,veilig] [-veilig-bin PATH] [-out DIR]
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/veilig/veilig/internal/testkit/sipua"
)

type options struct {
	targets, veiligBin, harness, out, domain string
	users, seconds, holdMS, start            int
	refine, maxSteps, maxRate                int
	budget                                   time.Duration
	crit                                     criteria
	pin                                      bool
	serverCPUs, loadCPUs                     string
	udpPort, tlsPort, shimPort, uacPort      int
	mediaPort                                int
	buffSize, workers                        int
	kamailio                                 kamailioParams
	sipTimeout                               time.Duration
	sipTrace                                 string
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "calltls:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	var o options
	fs := flag.NewFlagSet("calltls", flag.ExitOnError)
	fs.StringVar(&o.targets, "targets", "kamailio,veilig", "servers measured in turn: kamailio, veilig, or LABEL=/path/to/veilig")
	fs.StringVar(&o.veiligBin, "veilig-bin", "", "veilig binary of the target \"veilig\" (default: go build ./cmd/veilig)")
	fs.StringVar(&o.harness, "harness", "", "the shared harness directory (default: ../shared/bench/peers beside the repository)")
	fs.StringVar(&o.out, "out", "", "results directory (default: out/calltls-<time> in the repository)")
	fs.StringVar(&o.domain, "domain", "bench.test", "SIP domain and digest realm")
	fs.IntVar(&o.users, "users", 1000, "subscribers, each a caller and (on its own connection) a callee")
	fs.IntVar(&o.seconds, "step-seconds", 6, "offered-load duration of one step (>= 3)")
	fs.IntVar(&o.holdMS, "hold-ms", 1000, "call hold time between ACK and BYE")
	fs.IntVar(&o.start, "start", 250, "first offered rate (calls/s)")
	fs.IntVar(&o.refine, "refine", 2, "bisection steps after the first failing rate")
	fs.IntVar(&o.maxSteps, "max-steps", 8, "steps per server at most")
	fs.IntVar(&o.maxRate, "max-rate", 40000, "never offer more calls/s than this")
	fs.DurationVar(&o.budget, "budget", 540*time.Second, "no new step for a server starts after this")
	fs.Float64Var(&o.crit.maxFailPct, "max-fail-pct", 1, "a step fails with this share of calls not completed")
	fs.Float64Var(&o.crit.minAchievedPct, "min-achieved-pct", 95, "a step fails below this share of the offered rate completed in steady state")
	fs.IntVar(&o.crit.slowMS, "slow-ms", 200, "first INVITE to 200 slower than this is slow (5,10,20,50,100,200,500,1000)")
	fs.Float64Var(&o.crit.maxSlowPct, "max-slow-pct", 1, "a step fails with more than this share of slow calls")
	fs.BoolVar(&o.pin, "pin", true, "pin the server and the load generator to different CPUs")
	fs.StringVar(&o.serverCPUs, "server-cpus", "0", "CPUs of the server")
	fs.StringVar(&o.loadCPUs, "load-cpus", "1", "CPUs of sipp, stunnel and this tool (the callees)")
	fs.IntVar(&o.udpPort, "udp-port", 25160, "server UDP port (Kamailio's config listens there too)")
	fs.IntVar(&o.tlsPort, "tls-port", 25161, "server TLS port")
	fs.IntVar(&o.shimPort, "shim-port", 25171, "stunnel: sipp's TCP in, TLS to the server")
	fs.IntVar(&o.uacPort, "uac-port", 25180, "sipp UAC port")
	fs.IntVar(&o.mediaPort, "sipp-media-port", 16000, "sipp -mp (media ports sipp binds; no media flows)")
	fs.IntVar(&o.buffSize, "sipp-buff-size", 4194304, "sipp socket buffers")
	fs.IntVar(&o.workers, "register-workers", 16, "callee registrations in flight at bring-up")
	fs.DurationVar(&o.sipTimeout, "sip-timeout", 5*time.Second, "time limit of each callee REGISTER")
	fs.StringVar(&o.sipTrace, "sip-trace", "", "write every SIP message the callees send and receive to this file (debugging; large)")
	fs.IntVar(&o.kamailio.children, "kamailio-children", 4, "Kamailio children and tcp_children")
	fs.IntVar(&o.kamailio.shmMB, "kamailio-shm-mb", 1024, "Kamailio -m")
	fs.IntVar(&o.kamailio.pkgMB, "kamailio-pkg-mb", 16, "Kamailio -M")
	fs.IntVar(&o.kamailio.udpMaxBuffer, "kamailio-udp-maxbuffer", 4194304, "Kamailio maxbuffer")
	_ = fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.seconds < 3 {
		return errors.New("-step-seconds must be >= 3")
	}
	if !slowBound(o.crit.slowMS) {
		return fmt.Errorf("-slow-ms must be one of %v", repartition)
	}
	if o.users < 2 || o.users > 9999 {
		return fmt.Errorf("-users must be 2-9999, got %d", o.users)
	}
	if o.pin && runtime.NumCPU() < 2 && os.Getenv("CALLTLS_PINNED") == "" {
		o.pin = false
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if o.harness == "" {
		o.harness = filepath.Join(root, "..", "shared", "bench", "peers")
	}
	if _, err := os.Stat(filepath.Join(o.harness, "scenarios", "call_uac.xml")); err != nil {
		return fmt.Errorf("shared harness: %w (set -harness)", err)
	}
	if o.out == "" {
		o.out = filepath.Join(root, "out", "calltls-"+time.Now().Format("20060102-150405"))
	}
	servers, err := parseTargets(o.targets, o.veiligBin)
	if err != nil {
		return err
	}

	if os.Getenv("CALLTLS_PINNED") == "" {
		// Build before pinning, with every core; then re-exec pinned to
		// the load CPUs: a Go process cannot pin threads that exist.
		for _, s := range servers {
			if s.kind == "veilig" && s.bin == "" {
				bin := filepath.Join(o.out, "bin", "veilig")
				if err := goBuild(root, bin); err != nil {
					return err
				}
				args = append(args, "-veilig-bin", bin)
				s.bin = bin
				break
			}
		}
		if !o.pin {
			return measureAll(o, root, servers)
		}
		self, err := os.Executable()
		if err != nil {
			return err
		}
		args = append(args, "-out", o.out)
		cmd := exec.Command("taskset", append([]string{"-c", o.loadCPUs, self}, args...)...)
		cmd.Env = append(os.Environ(), "CALLTLS_PINNED=1")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		// The child handles SIGINT itself and stops what it started.
		signal.Ignore(os.Interrupt)
		return cmd.Run()
	}
	return measureAll(o, root, servers)
}

func slowBound(ms int) bool {
	for _, b := range repartition {
		if b == ms {
			return true
		}
	}
	return false
}

// repoRoot is the module root: the working directory or a parent with
// go.mod and cmd/veilig.
func repoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "cmd", "veilig")); err == nil {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", errors.New("run from the repository (no cmd/veilig in any parent directory)")
		}
		d = p
	}
}

func goBuild(root, bin string) error {
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/veilig")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/veilig: %w", err)
	}
	return nil
}

// measureAll makes the material, starts the stunnel shim and measures each
// server in turn.
func measureAll(o options, root string, servers []*server) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	work := filepath.Join(o.out, "work")
	if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	for _, tool := range []string{"sipp", "stunnel", "taskset"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not installed (apt-get install sip-tester stunnel4 util-linux)", tool)
		}
	}
	if o.sipTrace != "" {
		f, err := os.Create(o.sipTrace)
		if err != nil {
			return err
		}
		defer f.Close()
		sipua.SetTrace(f)
	}
	subs := subscribers(o.users)
	if err := writeUsers(work, o.domain, subs); err != nil {
		return err
	}
	cert, key, err := writeCert(work, o.domain)
	if err != nil {
		return err
	}
	e := env{harness: o.harness, work: work, domain: o.domain, udpPort: o.udpPort, tlsPort: o.tlsPort,
		cert: cert, key: key, serverCPUs: o.serverCPUs, pin: o.pin, kamailio: o.kamailio}
	pem, err := os.ReadFile(cert)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tc := &tls.Config{RootCAs: pool, ServerName: o.domain, MinVersion: tls.VersionTLS12}

	envf, err := os.Create(filepath.Join(o.out, "env.txt"))
	if err != nil {
		return err
	}
	writeEnv(io.MultiWriter(envf, os.Stderr), o, servers)
	envf.Close()

	shim, err := startShim(o, work)
	if err != nil {
		return err
	}
	defer shim.stop()

	results, err := os.Create(filepath.Join(o.out, "results.txt"))
	if err != nil {
		return err
	}
	defer results.Close()
	steps, err := os.Create(filepath.Join(o.out, "steps.csv"))
	if err != nil {
		return err
	}
	defer steps.Close()
	fmt.Fprintln(steps, "server;test;rate;sent;ok;failed;fail_pct;throughput;elapsed_s;retrans;p99_ms;slow_pct;server_cpu_pct;uac_cpu_pct;callees_cpu_pct;stunnel_cpu_pct;pass;sipp_rc;callees")

	m := &measurer{o: o, e: e, tc: tc, subs: subs, shimPID: shim.pid, steps: steps,
		sipp: sippStep{scenario: filepath.Join(o.harness, "scenarios", "call_uac.xml"), users: filepath.Join(work, "users.csv"),
			target: "127.0.0.1:" + strconv.Itoa(o.shimPort), uacPort: o.uacPort, mediaPort: o.mediaPort, holdMS: o.holdMS, seconds: o.seconds,
			buffSize: o.buffSize, loadCPUs: o.loadCPUs, pin: o.pin}}
	best := map[string]int{}
	for _, s := range servers {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		line, lo, err := m.measure(ctx, s)
		if err != nil {
			return fmt.Errorf("%s: %w", s.label, err)
		}
		best[s.label] = lo
		fmt.Fprintln(results, line)
		fmt.Println(line)
	}
	if len(servers) > 1 {
		base := servers[0].label
		for _, s := range servers[1:] {
			l := ratioLine(s.label, base, best[s.label], best[base])
			fmt.Fprintln(results, l)
			fmt.Println(l)
		}
	}
	fmt.Fprintf(os.Stderr, "results: %s\n", o.out)
	return nil
}

func ratioLine(label, base string, v, b int) string {
	if v == 0 || b == 0 {
		return fmt.Sprintf("ratio %s/%s call tls: not measured (%d and %d calls/s)", label, base, v, b)
	}
	return fmt.Sprintf("ratio %s/%s call tls: %.2f (%d / %d calls/s)", label, base, float64(v)/float64(b), v, b)
}

func writeEnv(w io.Writer, o options, servers []*server) {
	fmt.Fprintf(w, "date: %s\n", time.Now().Format(time.RFC3339))
	un, _ := exec.Command("uname", "-srm").Output()
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	online, _ := os.ReadFile("/sys/devices/system/cpu/online")
	fmt.Fprintf(w, "host: %s, CPUs %s online: %s\n", strings.TrimSpace(string(un)), strings.TrimSpace(string(online)), model)
	for _, s := range servers {
		fmt.Fprintf(w, "server %s: %s\n", s.label, version(s))
	}
	sv, _ := exec.Command("sipp", "-v").CombinedOutput()
	for _, l := range strings.Split(string(sv), "\n") {
		if strings.Contains(l, "SIPp") {
			fmt.Fprintf(w, "sipp: %s\n", strings.TrimSpace(l))
			break
		}
	}
	fmt.Fprintf(w, "pinning: %v server CPUs=%s load-generator CPUs=%s (sipp, stunnel, callees)\n", o.pin, o.serverCPUs, o.loadCPUs)
	fmt.Fprintf(w, "params: users=%d step=%ds hold=%dms pass: fail<%g%% steady-throughput>=%g%% of offered, slower-than-%dms<=%g%%\n",
		o.users, o.seconds, o.holdMS, o.crit.maxFailPct, o.crit.minAchievedPct, o.crit.slowMS, o.crit.maxSlowPct)
	fmt.Fprintf(w, "load: sipp %s over one TLS connection (stunnel); %d callees, each registered over its own TLS connection and called on it\n",
		filepath.Join(o.harness, "scenarios", "call_uac.xml"), o.users)
}

func version(s *server) string {
	var out []byte
	if s.kind == "kamailio" {
		out, _ = exec.Command("kamailio", "-v").Output()
	} else {
		out, _ = exec.Command(s.bin, "version").CombinedOutput()
		if len(out) == 0 {
			return s.bin
		}
		return s.bin + " (" + strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]) + ")"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}
