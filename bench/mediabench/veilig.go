package main

// The "veilig" target: the real veilig server, started pinned to the relay
// core, with every call set up over SIP/TLS by user agents of this tool.
// Caller extensions (one TLS connection each, one call being set up at a
// time each) INVITE the callee extension; Veilig anchors the call on its
// relay and INVITEs the callee over the connection it registered on. The
// callee knows which call an INVITE belongs to by its From user: the
// caller's one call in progress.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	"github.com/veilig/veilig/internal/media"
	"github.com/veilig/veilig/internal/testkit/sipua"
)

const (
	benchDomain = "mediabench.veilig.test"
	calleeExt   = "7900"
	veiligLog   = "/tmp/mediabench-veilig.log"
)

type veiligOpts struct {
	bin     string        // the veilig binary
	core    string        // CPU it is pinned to
	ports   string        // media.port_range
	callers int           // caller extensions (= calls set up concurrently)
	rate    float64       // calls set up (and torn down) per second, at most
	timeout time.Duration // per SIP transaction
	keep    bool          // keep the data directory
}

type veiligTarget struct {
	o       veiligOpts
	dir     string
	callee  *sipua.UA
	callers []*sipua.UA
	stats   sipua.Stats

	mu      sync.Mutex
	pending map[string]*pendingCall // by caller extension: its call in setup
	offered string                  // the suites Veilig offered the callee
	picked  string                  // the suite the callee answered with
	failed  bool

	registered       time.Time
	calls            []*sipCall
	setupDur, byeDur time.Duration
}

// pendingCall is a call whose INVITE has not reached the callee yet.
type pendingCall struct {
	portB int
	res   chan calleeLeg
}

type calleeLeg struct {
	leg legSetup
	d   *sipua.Dialog
}

// sipCall is the caller's dialog of one call, and the callee's.
type sipCall struct {
	ua                       *sipua.UA
	callID, from, to, target string
	route                    []string
	cseq                     uint32
	dlg, callee              *sipua.Dialog // the caller's and the callee's side
}

func strongSecret() string { return "Mb-" + sipua.RandHex(10) + "-Zq9" }

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startVeilig provisions a data directory, starts `veilig serve` pinned to
// o.core and registers the tool's devices. It returns the target, the
// server's PID and a function that stops exactly that process.
func startVeilig(o veiligOpts) (target, int, func(), error) {
	if o.callers < 1 || o.callers > 99 {
		return nil, 0, nil, fmt.Errorf("-sip-callers must be 1-99, got %d", o.callers)
	}
	dir, err := os.MkdirTemp("", "mediabench-veilig-")
	if err != nil {
		return nil, 0, nil, err
	}
	v := &veiligTarget{o: o, dir: dir, pending: map[string]*pendingCall{}}
	cleanup := func() {
		if !o.keep && !v.failed {
			os.RemoveAll(dir)
		}
	}
	fail := func(err error) (target, int, func(), error) {
		v.failed = true
		cleanup()
		return nil, 0, nil, fmt.Errorf("veilig: %w (data kept in %s)", err, dir)
	}
	sipAddr, err := freeLoopbackAddr()
	if err != nil {
		return fail(err)
	}
	data := filepath.Join(dir, "data")
	cfgPath := filepath.Join(dir, "veilig.yaml")
	// One load source stands in for many devices: trusted, so the
	// per-source rate limits do not throttle it. Calls between
	// extensions pass no toll-fraud limit (those guard outbound calls).
	cfg := fmt.Sprintf(`data_dir: %s
log:
  level: warn
sip:
  domain: %s
  tls_listen: %s
  idle_timeout: 2h
guard:
  trusted_sources: [127.0.0.1/32]
media:
  address: 127.0.0.1
  port_range: %s
  timeout: 1h
`, data, benchDomain, sipAddr, o.ports)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return fail(err)
	}
	secrets := map[string]string{calleeExt: strongSecret()}
	var lines strings.Builder
	lines.WriteString(calleeExt + ":" + secrets[calleeExt] + "\n")
	var callerExts []string
	for i := 1; i <= o.callers; i++ {
		ext := fmt.Sprintf("70%02d", i)
		callerExts = append(callerExts, ext)
		secrets[ext] = strongSecret()
		lines.WriteString(ext + ":" + secrets[ext] + "\n")
	}
	extFile := filepath.Join(dir, "extensions.txt")
	if err := os.WriteFile(extFile, []byte(lines.String()), 0o600); err != nil {
		return fail(err)
	}
	if out, err := exec.Command(o.bin, "ext", "import", "--config", cfgPath, extFile).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("ext import: %v: %s", err, out))
	}

	logf, err := os.Create(veiligLog)
	if err != nil {
		return fail(err)
	}
	cmd := exec.Command("taskset", "-c", o.core, o.bin, "serve", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fail(fmt.Errorf("start: %w", err))
	}
	// taskset execs veilig in place, so the PID is the server's.
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		if v.callee != nil {
			v.callee.Close()
		}
		for _, u := range v.callers {
			u.Close()
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		cleanup()
	}
	failRunning := func(err error) (target, int, func(), error) {
		v.failed = true
		stop()
		return nil, 0, nil, fmt.Errorf("veilig: %w (see %s; data kept in %s)", err, veiligLog, dir)
	}

	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(veiligLog)
		if strings.Contains(string(b), "Veilig is ready") {
			break
		}
		select {
		case <-exited:
			return failRunning(fmt.Errorf("serve exited before it was ready:\n%s", b))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return failRunning(errors.New("serve did not become ready within 20 s"))
		}
	}
	if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); strings.TrimSpace(string(comm)) != "veilig" {
		return failRunning(fmt.Errorf("PID %d is %q, not veilig: its CPU would be measured", pid, strings.TrimSpace(string(comm))))
	}

	// Verify the server against the CA it generated in its data dir.
	pem, err := os.ReadFile(filepath.Join(data, "tls", "ca.crt"))
	if err != nil {
		return failRunning(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return failRunning(errors.New("no certificate in tls/ca.crt"))
	}
	tc := &tls.Config{RootCAs: pool, ServerName: benchDomain, MinVersion: tls.VersionTLS12}
	dial := func(ext string) (*sipua.UA, error) {
		return sipua.Dial(sipua.Config{Addr: sipAddr, TLS: tc, User: ext, Secret: secrets[ext], Domain: benchDomain,
			Agent: "veilig-mediabench", Stats: &v.stats})
	}
	if v.callee, err = dial(calleeExt); err != nil {
		return failRunning(err)
	}
	v.callee.OnInvite = v.onInvite
	v.callee.Start()
	for _, ext := range callerExts {
		u, err := dial(ext)
		if err != nil {
			return failRunning(err)
		}
		u.Start()
		v.callers = append(v.callers, u)
	}
	if err := v.register(); err != nil {
		return failRunning(err)
	}
	fmt.Fprintf(os.Stderr, "veilig: %s serve pid %d on %s (TLS, CA %s), %d caller extensions + callee %s registered\n",
		o.bin, pid, sipAddr, filepath.Join(data, "tls", "ca.crt"), o.callers, calleeExt)
	_ = v.stats.Take()
	return v, pid, stop, nil
}

// register (re-)registers every device of the tool for an hour.
func (v *veiligTarget) register() error {
	for _, u := range append([]*sipua.UA{v.callee}, v.callers...) {
		if err := u.Register(3600, v.o.timeout); err != nil {
			return err
		}
	}
	v.registered = time.Now()
	return nil
}

// onInvite is the callee answering Veilig's INVITE: it picks
// AES_CM_128_HMAC_SHA1_32 from Veilig's offer (leg A uses _80, so the
// relay must decrypt and re-encrypt) with a key of its own.
func (v *veiligTarget) onInvite(u *sipua.UA, m *sipua.Msg) {
	caller := sipua.UserOf(sipua.URIOf(m.Get("from")))
	v.mu.Lock()
	pc := v.pending[caller]
	v.mu.Unlock()
	if pc == nil {
		v.stats.Add("INVITE to callee for no call in setup")
		_ = u.Send(u.Response(m, 480, "Temporarily Unavailable", sipua.RandHex(6), nil, ""))
		return
	}
	dst, offered, err := parseRelaySDP(string(m.Body))
	var pick *media.Crypto
	var suites []string
	for j := range offered {
		suites = append(suites, string(offered[j].Suite))
		if offered[j].Suite == media.SuiteAES128SHA1_32 && pick == nil {
			pick = &offered[j]
		}
	}
	if pick == nil && len(offered) > 0 {
		pick = &offered[0] // noted in the step's output
	}
	if err != nil || pick == nil {
		v.stats.Add("callee refused the offer")
		_ = u.Send(u.Response(m, 488, "Not Acceptable Here", sipua.RandHex(6), nil, ""))
		return
	}
	kb, err := media.NewCrypto(pick.Tag, pick.Suite)
	if err != nil {
		_ = u.Send(u.Response(m, 488, "Not Acceptable Here", sipua.RandHex(6), nil, ""))
		return
	}
	v.mu.Lock()
	v.offered, v.picked = strings.Join(suites, " "), string(pick.Suite)
	v.mu.Unlock()
	sdp := devSDP("B", pc.portB, kb, true)
	tag := sipua.RandHex(6)
	d := sipua.NewDialog(m.Get("call-id"), tag, sdp)
	d.Res200 = u.Response(m, 200, "OK", tag, []string{"Contact: " + u.Contact()}, sdp)
	u.AddDialog(d)
	select {
	case pc.res <- calleeLeg{leg: legSetup{dst: dst, own: kb, relay: *pick}, d: d}:
	default:
	}
	_ = u.Send(d.Res200)
}

// call sets up one call from caller u: INVITE (answering the 407), ACK of
// the 200, and the callee's side from its INVITE.
func (v *veiligTarget) call(u *sipua.UA, portA, portB int) (*sipCall, [2]legSetup, error) {
	var legs [2]legSetup
	pc := &pendingCall{portB: portB, res: make(chan calleeLeg, 1)}
	v.mu.Lock()
	v.pending[u.User] = pc
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		delete(v.pending, u.User)
		v.mu.Unlock()
	}()
	ka, err := media.NewCrypto(1, media.SuiteAES128SHA1_80)
	if err != nil {
		return nil, legs, err
	}
	c := &sipCall{ua: u, callID: sipua.RandHex(12) + "@mediabench",
		from: "<sip:" + u.User + "@" + benchDomain + ">;tag=" + sipua.RandHex(6),
		to:   "<sip:" + calleeExt + "@" + benchDomain + ">"}
	q := &sipua.Req{Method: "INVITE", RURI: "sip:" + calleeExt + "@" + benchDomain, From: c.from, To: c.to,
		CallID: c.callID, CSeq: 1, Contact: true, Body: devSDP("A", portA, ka, true)}
	res, err := u.TransactAuth(q, v.o.timeout)
	if err != nil {
		return nil, legs, err
	}
	if res.Code != 200 {
		return nil, legs, fmt.Errorf("INVITE %s -> %s answered %q", u.User, calleeExt, res.First)
	}
	c.cseq, c.to, c.target = q.CSeq, res.Get("to"), sipua.URIOf(res.Get("contact"))
	if c.target == "" {
		c.target = q.RURI
	}
	rr := res.All("record-route")
	for i := len(rr) - 1; i >= 0; i-- {
		c.route = append(c.route, rr[i])
	}
	if err := u.SendReq(&sipua.Req{Method: "ACK", RURI: c.target, From: c.from, To: c.to, CallID: c.callID,
		CSeq: c.cseq, Route: c.route}); err != nil {
		return c, legs, err
	}
	// Known to the caller's UA, so that it answers a BYE or re-INVITE
	// from Veilig in this dialog.
	c.dlg = sipua.NewDialog(c.callID, sipua.HeaderParam(c.from, "tag"), q.Body)
	u.AddDialog(c.dlg)
	aDst, back, err := parseRelaySDP(string(res.Body))
	if err != nil {
		return c, legs, err
	}
	if len(back) != 1 || back[0].Suite != ka.Suite {
		return c, legs, fmt.Errorf("answer to the caller: want one %s line:\n%s", ka.Suite, res.Body)
	}
	select {
	case cl := <-pc.res:
		c.callee = cl.d
		legs[1] = cl.leg
	case <-time.After(v.o.timeout):
		return c, legs, errors.New("Veilig answered the caller but the callee never got an INVITE")
	}
	legs[0] = legSetup{dst: aDst, own: ka, relay: back[0]}
	return c, legs, nil
}

// each runs f for calls 0..n-1 on one goroutine per caller connection, at
// most o.rate calls a second, until f fails or ctx ends.
func (v *veiligTarget) each(ctx context.Context, n int, f func(u *sipua.UA, i int) error) []string {
	lim := rate.NewLimiter(rate.Limit(v.o.rate), 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	go func() {
		defer close(next)
		for i := range n {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	for _, u := range v.callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if lim.Wait(ctx) != nil {
					return
				}
				if err := f(u, i); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("call %d: %v", i, err))
					mu.Unlock()
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	return errs
}

func (v *veiligTarget) setup(n int, ports *[2][numSocks]int, _ string) ([][2]legSetup, error) {
	out := make([][2]legSetup, n)
	v.calls = make([]*sipCall, n)
	if time.Since(v.registered) > 30*time.Minute {
		if err := v.register(); err != nil {
			v.failed = true
			return nil, err
		}
	}
	budget := time.Duration(float64(n)/v.o.rate*float64(time.Second)) + 30*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	start := time.Now()
	errs := v.each(ctx, n, func(u *sipua.UA, i int) error {
		c, legs, err := v.call(u, ports[0][i%numSocks], ports[1][i%numSocks])
		v.calls[i] = c
		out[i] = legs
		return err
	})
	v.setupDur = time.Since(start)
	if len(errs) == 0 {
		for i, c := range v.calls {
			if c == nil || c.callee == nil {
				errs = append(errs, fmt.Sprintf("call %d not set up within %s", i, budget))
				break
			}
		}
	}
	if len(errs) == 0 {
		// Veilig's ACK to the callee completes each call.
		t := time.NewTimer(v.o.timeout)
		defer t.Stop()
		for i, c := range v.calls {
			select {
			case <-c.callee.Acked:
			case <-t.C:
				errs = append(errs, fmt.Sprintf("call %d: the callee's 200 was never acknowledged", i))
			}
			if len(errs) > 0 {
				break
			}
		}
	}
	if len(errs) > 0 {
		v.failed = true
		return nil, fmt.Errorf("SIP setup: %s (%d failed; server log %s, events %s)", errs[0], len(errs),
			veiligLog, filepath.Join(v.dir, "data", "events.jsonl"))
	}
	return out, nil
}

// teardown sends BYE from the caller for every call set up, and checks that
// Veilig passed each on to the callee.
func (v *veiligTarget) teardown() error {
	calls := v.calls
	v.calls = nil
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(),
		time.Duration(float64(len(calls))/v.o.rate*float64(time.Second))+30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var errs []string
	// Unlike setup, a failed BYE does not stop the others.
	_ = v.each(ctx, len(calls), func(_ *sipua.UA, i int) error {
		c := calls[i]
		if c == nil || c.dlg == nil {
			return nil
		}
		u := c.ua
		defer u.DropDialog(c.callID)
		var err error
		select {
		case <-c.dlg.Ended:
			err = errors.New("Veilig had already ended the call (BYE to the caller)")
		default:
			c.cseq++
			var res *sipua.Msg
			res, err = u.Transact(&sipua.Req{Method: "BYE", RURI: c.target, From: c.from, To: c.to, CallID: c.callID,
				CSeq: c.cseq, Route: c.route}, v.o.timeout)
			if err == nil && res.Code != 200 {
				err = fmt.Errorf("BYE answered %q", res.First)
			}
		}
		if err != nil {
			mu.Lock()
			errs = append(errs, fmt.Sprintf("call %d: %v", i, err))
			mu.Unlock()
		}
		return nil
	})
	deadline := time.After(v.o.timeout)
	missing := 0
	for _, c := range calls {
		if c == nil || c.callee == nil {
			continue
		}
		select {
		case <-c.callee.Ended:
		case <-deadline:
			missing++
		}
		v.callee.DropDialog(c.callee.CallID)
	}
	if missing > 0 {
		errs = append(errs, fmt.Sprintf("%d calls: the callee got no BYE", missing))
	}
	v.byeDur = time.Since(start)
	if len(errs) > 0 {
		v.failed = true
		return fmt.Errorf("teardown: %s (%d problems)", errs[0], len(errs))
	}
	return nil
}

func (v *veiligTarget) note() string {
	v.mu.Lock()
	offered, picked := v.offered, v.picked
	v.mu.Unlock()
	s := fmt.Sprintf("SIP/TLS via veilig: setup %.2f s, teardown %.2f s; offered to callee: %s; callee answered %s",
		v.setupDur.Seconds(), v.byeDur.Seconds(), offered, picked)
	if picked != "" && picked != string(media.SuiteAES128SHA1_32) {
		s += " (NO AES_CM_128_HMAC_SHA1_32 OFFERED)"
	}
	return s + "; messages: " + v.stats.Take()
}
