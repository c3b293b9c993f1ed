// Command mediabench is Veilig's media load tool. It sets up N SRTP-to-SRTP
// bridged calls through a relay and streams 20 ms G.711-sized SRTP packets
// both ways on every leg, measuring loss, one-way latency through the relay
// (p50/p99) and the relay's CPU. It drives the real veilig server over SIP
// (TLS, digest auth; the tool registers caller and callee extensions and
// places the calls) and rtpengine (via ng) the same way: leg A offers
// AES_CM_128_HMAC_SHA1_80, leg B answers with the relay-generated
// AES_CM_128_HMAC_SHA1_32 line, so both relays must decrypt and re-encrypt
// every packet.
//
// Usage:
//
//	mediabench bench [-targets veilig,rtpengine] [-calls 250,500,...] [-seconds 10] [-veilig-bin PATH]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/veilig/veilig/internal/media"
	"github.com/veilig/veilig/internal/testkit/sipua"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "bench" {
		fmt.Fprintln(os.Stderr, "usage: mediabench bench [flags]  (mediabench bench -h for the flags)")
		os.Exit(2)
	}
	if err := benchMain(os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "mediabench:", err)
		os.Exit(1)
	}
}

type rtpeTarget struct {
	ng  *ngClient
	ids []string
}

var noSuites = []string{"no-AEAD_AES_256_GCM", "no-AEAD_AES_128_GCM", "no-AES_256_CM_HMAC_SHA1_80",
	"no-AES_256_CM_HMAC_SHA1_32", "no-AES_192_CM_HMAC_SHA1_80", "no-AES_192_CM_HMAC_SHA1_32",
	"no-F8_128_HMAC_SHA1_80", "no-F8_128_HMAC_SHA1_32", "no-NULL_HMAC_SHA1_80", "no-NULL_HMAC_SHA1_32"}

func (r *rtpeTarget) offer(call, sdp string) (string, error) {
	m, err := r.ng.cmd(map[string]any{"command": "offer", "call-id": call, "from-tag": "A-" + call, "sdp": sdp,
		"transport-protocol": "RTP/SAVP", "ICE": "remove", "DTLS": "off",
		"replace": []string{"origin", "session-connection"}, "rtcp-mux": []string{"demux"}, "SDES": noSuites})
	if err != nil {
		return "", err
	}
	s, _ := m["sdp"].(string)
	return s, nil
}

func (r *rtpeTarget) answer(call, sdp string) (string, error) {
	m, err := r.ng.cmd(map[string]any{"command": "answer", "call-id": call, "from-tag": "A-" + call, "to-tag": "B-" + call,
		"sdp": sdp, "ICE": "remove", "DTLS": "off", "replace": []string{"origin", "session-connection"},
		"rtcp-mux": []string{"demux"}})
	if err != nil {
		return "", err
	}
	s, _ := m["sdp"].(string)
	return s, nil
}

func (r *rtpeTarget) del(call string) error {
	_, err := r.ng.cmd(map[string]any{"command": "delete", "call-id": call, "delete delay": 0})
	return err
}

// setup drives rtpengine's offer/answer for each call in turn: leg A
// offers AES_CM_128_HMAC_SHA1_80, leg B answers rtpengine's _32 line.
func (r *rtpeTarget) setup(n int, ports *[2][numSocks]int, tag string) ([][2]legSetup, error) {
	out := make([][2]legSetup, n)
	r.ids = r.ids[:0]
	for i := range n {
		id := fmt.Sprintf("%s-%d-%d-%d", tag, n, time.Now().UnixNano()%1e9, i)
		ka, _ := media.NewCrypto(1, media.SuiteAES128SHA1_80)
		toB, err := r.offer(id, devSDP("A", ports[0][i%numSocks], ka, false))
		r.ids = append(r.ids, id)
		if err != nil {
			return nil, fmt.Errorf("offer %d: %w", i, err)
		}
		bDst, offered, err := parseRelaySDP(toB)
		if err != nil {
			return nil, err
		}
		var pick *media.Crypto
		for j := range offered {
			if offered[j].Suite == media.SuiteAES128SHA1_32 {
				pick = &offered[j]
			}
		}
		if pick == nil {
			return nil, fmt.Errorf("no _32 line offered to B:\n%s", toB)
		}
		kb, _ := media.NewCrypto(pick.Tag, media.SuiteAES128SHA1_32)
		toA, err := r.answer(id, devSDP("B", ports[1][i%numSocks], kb, false))
		if err != nil {
			return nil, fmt.Errorf("answer %d: %w", i, err)
		}
		aDst, back, err := parseRelaySDP(toA)
		if err != nil || len(back) != 1 {
			return nil, fmt.Errorf("answer to A: %v %d crypto lines", err, len(back))
		}
		out[i] = [2]legSetup{{dst: aDst, own: ka, relay: back[0]}, {dst: bDst, own: kb, relay: *pick}}
	}
	return out, nil
}

func (r *rtpeTarget) teardown() error {
	for _, id := range r.ids {
		_ = r.del(id)
	}
	r.ids = r.ids[:0]
	return nil
}

func (r *rtpeTarget) note() string { return "" }

// procStat returns the fields of /proc/PID/stat (0: this process) after the
// command name, so field N of proc(5) is f[N-3]; nil if unreadable.
func procStat(pid int) []string {
	p := "self"
	if pid > 0 {
		p = strconv.Itoa(pid)
	}
	b, err := os.ReadFile("/proc/" + p + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return nil
	}
	return f
}

// procCPU returns utime+stime of pid (0: this process) in seconds.
func procCPU(pid int) float64 {
	f := procStat(pid)
	if f == nil {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100 // USER_HZ is 100 on Linux
}

// procFaults returns the minor and major page faults of pid so far.
func procFaults(pid int) (minor, major int64) {
	f := procStat(pid)
	if f == nil {
		return 0, 0
	}
	minor, _ = strconv.ParseInt(f[7], 10, 64)
	major, _ = strconv.ParseInt(f[9], 10, 64)
	return minor, major
}

func procRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

func benchMain(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	targets := fs.String("targets", "veilig,rtpengine", "relays to measure")
	callsF := fs.String("calls", "250,500,1000,1500,2000,2500", "call counts to try, ascending")
	seconds := fs.Int("seconds", 10, "streaming time per step, after the warm-up")
	slots := fs.Int("slots", 20, "ticks per 20 ms packet interval over which the calls are spread (20: 1 ms ticks)")
	warmup := fs.Duration("warmup", time.Second, "streaming before latency is measured (loss counts from the start)")
	relayCore := fs.String("relay-core", "0", "CPU the relay is pinned to")
	loadCore := fs.String("load-core", "1", "CPU this load tool is pinned to")
	rtpeThreads := fs.Int("rtpengine-threads", 1, "rtpengine --num-threads")
	keepGoing := fs.Bool("keep-going", false, "continue past the first failing step")
	vo := veiligOpts{}
	fs.StringVar(&vo.bin, "veilig-bin", "", "veilig binary to run (default: go build ./cmd/veilig into a temp dir)")
	fs.StringVar(&vo.ports, "veilig-ports", "12000-21999", "veilig media.port_range")
	fs.IntVar(&vo.callers, "sip-callers", 8, "caller extensions, one TLS connection each: calls set up concurrently")
	fs.Float64Var(&vo.rate, "setup-rate", 200, "calls set up (and torn down) per second through veilig, at most")
	fs.DurationVar(&vo.timeout, "sip-timeout", 5*time.Second, "time limit of each SIP transaction")
	fs.StringVar(&seriesFile, "series", "", "write the worst latency per 10 ms of each step to FILE.<relay>-<calls> (ms, by send time)")
	traceFile := fs.String("sip-trace", "", "write every SIP message of the veilig target to this file (received ones with normalised header names)")
	fs.BoolVar(&vo.keep, "keep-data", false, "keep veilig's temporary data dir (it is always kept after a failure)")
	_ = fs.Parse(args)

	if os.Getenv("MEDIABENCH_PINNED") == "" {
		if vo.bin == "" && slices.Contains(strings.Split(*targets, ","), "veilig") {
			// Build before pinning, with every core.
			tmp, err := os.MkdirTemp("", "mediabench-bin-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			bin := filepath.Join(tmp, "veilig")
			build := exec.Command("go", "build", "-o", bin, "github.com/veilig/veilig/cmd/veilig")
			build.Stdout, build.Stderr = os.Stderr, os.Stderr
			if err := build.Run(); err != nil {
				return fmt.Errorf("go build ./cmd/veilig (run from the repository, or pass -veilig-bin): %w", err)
			}
			args = append(args, "-veilig-bin", bin)
		}
		// Re-exec pinned to the load core: a Go process cannot pin all
		// of its threads after they exist.
		self, err := os.Executable()
		if err != nil {
			return err
		}
		cmd := exec.Command("taskset", append([]string{"-c", *loadCore, self, "bench"}, args...)...)
		cmd.Env = append(os.Environ(), "MEDIABENCH_PINNED=1")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		return cmd.Run()
	}
	if vo.bin != "" {
		abs, err := filepath.Abs(vo.bin)
		if err != nil {
			return err
		}
		vo.bin = abs
	}
	vo.core = *relayCore
	if *traceFile != "" {
		f, err := os.Create(*traceFile)
		if err != nil {
			return err
		}
		defer f.Close()
		sipua.SetTrace(f)
	}
	if vo.rate <= 0 {
		return fmt.Errorf("-setup-rate must be positive")
	}
	var calls []int
	for _, s := range strings.Split(*callsF, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("-calls: %w", err)
		}
		calls = append(calls, n)
	}
	fmt.Printf("host: %d CPUs online, relay pinned to CPU %s, load tool to CPU %s, %d s per step\n",
		numCPU(), *relayCore, *loadCore, *seconds)
	fmt.Println("| relay | calls | pkts/s in | loss % | p50 ms | p99 ms | relay CPU % | RSS MB | load CPU % | verified | pass |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	// Steps alternate between the relays (N for each, then the next N),
	// each on a freshly started relay: this machine's speed drifts over
	// minutes, and interleaving exposes both relays to the same drift.
	best, failed := map[string]int{}, map[string]bool{}
	names := strings.Split(*targets, ",")
	for _, n := range calls {
		for _, name := range names {
			if failed[name] && !*keepGoing {
				continue
			}
			if err := benchStep(name, n, *relayCore, *rtpeThreads, vo, func(t target, pid int) (stepResult, error) {
				return runStep(t, n, *slots, time.Duration(*seconds)*time.Second, *warmup, pid, name)
			}, func(r stepResult) {
				pass := r.Loss() < 0.001 && r.P99 < 5*time.Millisecond && r.VerifyBad == 0 && r.VerifyOK > 0
				// Each call sends 50 packets/s on each of its two legs.
				fmt.Printf("| %s | %d | %d | %.3f | %.2f | %.2f | %.1f | %.1f | %.1f | %d/%d | %v |\n",
					name, n, n*100, 100*r.Loss(), ms(r.P50), ms(r.P99),
					100*r.RelayCPU, float64(r.RelayRSSKB)/1024, 100*r.LoadCPU, r.VerifyOK, r.VerifyOK+r.VerifyBad, pass)
				fmt.Fprintf(os.Stderr, "%s N=%d: relay page faults in the window: %d minor, %d major\n", name, n, r.MinFaults, r.MajFaults)
				if r.LateTicks > 0 || r.SendErrs > 0 {
					fmt.Printf("|   | note: load tool late ticks=%d send errors=%d |\n", r.LateTicks, r.SendErrs)
				}
				if r.TeardownErr != nil {
					fmt.Printf("|   | note: %v |\n", r.TeardownErr)
				}
				// The sustained figure is the largest N below which no
				// step failed: a pass above a failure is luck, not
				// capacity.
				if pass && !failed[name] {
					best[name] = n
				} else if !pass {
					failed[name] = true
				}
			}); err != nil {
				return err
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	fmt.Println()
	for k, v := range best {
		fmt.Printf("max calls sustained (every step up to it: <0.1%% loss, p99 < 5 ms): %s = %d\n", k, v)
	}
	if best["rtpengine"] > 0 && best["veilig"] > 0 {
		fmt.Printf("ratio veilig/rtpengine = %.2f (lower bound: limited by the largest step tried)\n",
			float64(best["veilig"])/float64(best["rtpengine"]))
	}
	return nil
}

// benchStep starts a fresh relay, so no step inherits the last one's work
// (Veilig's lingering transactions, its garbage), runs one step on it,
// reports it and stops the relay.
func benchStep(name string, n int, core string, rtpeThreads int, vo veiligOpts,
	run func(target, int) (stepResult, error), report func(stepResult)) error {
	t, pid, stop, err := startTarget(name, core, rtpeThreads, vo)
	if err != nil {
		return err
	}
	defer stop()
	r, err := run(t, pid)
	if note := t.note(); note != "" {
		fmt.Fprintf(os.Stderr, "%s N=%d: %s\n", name, n, note)
	}
	if err != nil {
		return fmt.Errorf("%s N=%d: %w", name, n, err)
	}
	report(r)
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func numCPU() int {
	b, _ := os.ReadFile("/sys/devices/system/cpu/online")
	s := strings.TrimSpace(string(b))
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		a, _ := strconv.Atoi(lo)
		z, _ := strconv.Atoi(hi)
		return z - a + 1
	}
	return 1
}

// startTarget starts the relay process pinned to core and returns a driver,
// its PID and a stop function that ends exactly that process.
func startTarget(name, core string, rtpeThreads int, vo veiligOpts) (target, int, func(), error) {
	var cmd *exec.Cmd
	switch name {
	case "veilig":
		return startVeilig(vo)
	case "rtpengine":
		cmd = exec.Command("taskset", "-c", core, "rtpengine", "--config-file=none", "--table=-1",
			"--interface=127.0.0.1", "--listen-ng=127.0.0.1:22222", "--port-min=22000", "--port-max=31999",
			"--delete-delay=0", "--foreground", "--log-stderr", "--log-level=3",
			"--num-threads="+strconv.Itoa(rtpeThreads), "--timeout=600")
	default:
		return nil, 0, nil, fmt.Errorf("unknown target %q", name)
	}
	logf, err := os.Create(fmt.Sprintf("/tmp/mediabench-%s.log", name))
	if err != nil {
		return nil, 0, nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, 0, nil, fmt.Errorf("start %s: %w", name, err)
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
	}
	// taskset execs the relay in place, so the PID is the relay's.
	pid := cmd.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		ng, err := dialNG("127.0.0.1:22222")
		if err != nil {
			continue
		}
		if _, err := ng.cmd(map[string]any{"command": "ping"}); err == nil {
			return &rtpeTarget{ng: ng}, pid, stop, nil
		}
	}
	stop()
	return nil, 0, nil, fmt.Errorf("%s did not become ready (see /tmp/mediabench-%s.log)", name, name)
}
