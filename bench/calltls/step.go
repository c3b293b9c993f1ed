package main

// One load step: a bounded sipp run of the shared harness's call_uac.xml
// through the stunnel shim, and its evaluation with the harness's pass
// criteria (run.sh run_step, ported from its awk).

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// criteria are the harness's pass criteria of one step.
type criteria struct {
	maxFailPct, minAchievedPct float64
	slowMS                     int // one of the repartition bounds
	maxSlowPct                 float64
}

// stepStats is what a step's sipp statistics say.
type stepStats struct {
	rate, count, succ, failed int
	failPct, achieved         float64 // achieved: completions/s in the steady-state window
	elapsed                   float64
	retrans                   int
	p99                       string // "<200" (ms bucket) or ">=1000"
	slowPct                   float64
	pass                      bool
}

var repartition = []int{5, 10, 20, 50, 100, 200, 500, 1000}

// evalStats reads sipp's -trace_stat file (-fd 1: one line a second,
// cumulative counters) and applies the criteria: fewer than maxFailPct of
// count not completed, at least minAchievedPct of rate completed per second
// between ta and tb seconds after sipp started, and at most maxSlowPct of
// calls slower than slowMS from first INVITE to 200.
func evalStats(r io.Reader, rate, count int, ta, tb float64, c criteria) (stepStats, error) {
	s := stepStats{rate: rate, count: count, failPct: 100, slowPct: 100, p99: "-"}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	col := map[string]int{}
	var last []string
	var gotA bool
	var tA, sA, tB, sB float64
	for n := 0; sc.Scan(); n++ {
		f := strings.Split(sc.Text(), ";")
		if n == 0 {
			for i, name := range f {
				col[name] = i
			}
			continue
		}
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(f) {
				return f[i]
			}
			return ""
		}
		t := epoch(get("CurrentTime")) - epoch(get("StartTime"))
		succ, _ := strconv.ParseFloat(get("SuccessfulCall(C)"), 64)
		if !gotA && t >= ta-0.05 {
			gotA, tA, sA = true, t, succ
		}
		if t <= tb+0.05 {
			tB, sB = t, succ
		}
		last, s.elapsed = f, t
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	if last == nil {
		return s, fmt.Errorf("no statistics line")
	}
	num := func(name string) int {
		i, ok := col[name]
		if !ok || i >= len(last) {
			return 0
		}
		v, _ := strconv.Atoi(strings.TrimSpace(last[i]))
		return v
	}
	s.succ, s.failed, s.retrans = num("SuccessfulCall(C)"), num("FailedCall(C)"), num("Retransmissions(C)")
	s.failPct = float64(count-s.succ) * 100 / float64(count)
	switch {
	case gotA && tB > tA+0.5:
		s.achieved = (sB - sA) / (tB - tA)
	case s.elapsed > 0:
		s.achieved = float64(s.succ) / s.elapsed
	}
	var tot, cum int
	v := make([]int, len(repartition))
	for j, b := range repartition {
		v[j] = num("ResponseTimeRepartition1_<" + strconv.Itoa(b))
		tot += v[j]
	}
	tot += num("ResponseTimeRepartition1_>=1000")
	s.p99, s.slowPct = ">=1000", 100
	slow := tot
	for j, b := range repartition {
		cum += v[j]
		if b == c.slowMS {
			slow = tot - cum
		}
		if s.p99 == ">=1000" && tot > 0 && float64(cum) >= 0.99*float64(tot) {
			s.p99 = "<" + strconv.Itoa(b)
		}
	}
	if tot > 0 {
		s.slowPct = float64(slow) * 100 / float64(tot)
	}
	s.pass = s.failPct < c.maxFailPct && s.achieved >= float64(rate)*c.minAchievedPct/100 && s.slowPct <= c.maxSlowPct
	return s, nil
}

// epoch reads sipp's time stamp "date\ttime\tseconds.micros".
func epoch(v string) float64 {
	f := strings.Split(v, "\t")
	if len(f) < 3 {
		return 0
	}
	x, _ := strconv.ParseFloat(strings.TrimSpace(f[2]), 64)
	return x
}

// sippStep is one sipp UAC run's settings.
type sippStep struct {
	scenario, users, target string
	uacPort, mediaPort      int
	holdMS                  int
	seconds                 int
	buffSize                int
	statFile, logFile       string
	errFile                 string
	loadCPUs                string
	pin                     bool
}

// argv is run.sh's sipp command line of a call step over TLS (-t t1: one
// connection through the shim).
func (p sippStep) argv(rate int) []string {
	count := rate * p.seconds
	limit := p.seconds + p.holdMS/1000 + 20
	a := []string{"sipp", p.target, "-t", "t1", "-sf", p.scenario, "-inf", p.users, "-i", "127.0.0.1",
		"-p", strconv.Itoa(p.uacPort), "-mp", strconv.Itoa(p.mediaPort), "-buff_size", strconv.Itoa(p.buffSize),
		"-key", "via_proto", "TLS", "-key", "contact_hostport", "127.0.0.1:" + strconv.Itoa(p.uacPort),
		"-key", "contact_params", ";transport=tls", "-d", strconv.Itoa(p.holdMS),
		"-m", strconv.Itoa(count), "-r", strconv.Itoa(rate), "-recv_timeout", "5000", "-timeout", strconv.Itoa(limit),
		"-nostdin", "-trace_stat", "-stf", p.statFile, "-fd", "1", "-trace_err", "-error_file", p.errFile}
	if p.pin {
		a = append([]string{"taskset", "-c", p.loadCPUs}, a...)
	}
	return a
}

// cpuSample is the CPU ticks of the processes measured in a step.
type cpuSample struct{ server, uac, callees, shim int64 }

// stepResult is one step: sipp's figures and the CPU % (100 = one core) of
// each process in the steady-state window.
type stepResult struct {
	stepStats
	cpu     [4]float64 // server, sipp UAC, callees (this tool), stunnel
	sippRC  int
	crashed bool
	callees string // the callees' counters
}

// runStep runs sipp at rate for p.seconds and measures the server, sipp,
// this tool (the callees) and stunnel between hold+1 s and
// hold+seconds-0.5 s, as run.sh does.
func runStep(ctx context.Context, p sippStep, rate int, srvPID, shimPID int, c criteria) (stepResult, error) {
	var r stepResult
	_ = os.Remove(p.statFile)
	logf, err := os.Create(p.logFile)
	if err != nil {
		return r, err
	}
	defer logf.Close()
	hold := float64(p.holdMS) / 1000
	ta, tb := hold+1, hold+float64(p.seconds)-0.5
	limit := time.Duration(p.seconds+p.holdMS/1000+20+10) * time.Second
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	argv := p.argv(rate)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	s0 := time.Now()
	if err := cmd.Start(); err != nil {
		return r, fmt.Errorf("start sipp: %w", err)
	}
	uac := cmd.Process.Pid
	sample := func() cpuSample {
		return cpuSample{treeTicks(srvPID), treeTicks(uac), ownTicks(), treeTicks(shimPID)}
	}
	sleepUntil(s0.Add(secs(ta)))
	sa, c0 := time.Now(), sample()
	sleepUntil(s0.Add(secs(tb)))
	sb, c1 := time.Now(), sample()
	if err := cmd.Wait(); err != nil {
		r.sippRC = -1
		if ee, ok := err.(*exec.ExitError); ok {
			r.sippRC = ee.ExitCode()
		}
	}
	win := sb.Sub(sa).Seconds()
	if win <= 0 {
		win = 1
	}
	pct := func(a, b int64) float64 {
		if b < a {
			return 0
		}
		return float64(b-a) * 100 / clkTck / win
	}
	r.cpu = [4]float64{pct(c0.server, c1.server), pct(c0.uac, c1.uac), pct(c0.callees, c1.callees), pct(c0.shim, c1.shim)}
	count := rate * p.seconds
	f, err := os.Open(p.statFile)
	if err == nil {
		r.stepStats, err = evalStats(f, rate, count, ta, tb, c)
		f.Close()
	}
	if err != nil {
		r.stepStats = stepStats{rate: rate, count: count, failPct: 100, slowPct: 100, p99: "-"}
	}
	return r, nil
}

// ownTicks is this process's own CPU ticks (the callees; its children,
// sipp, stunnel and the server, are counted apart).
func ownTicks() int64 {
	f := procStat(os.Getpid())
	if f == nil {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

// clkTck is USER_HZ, 100 on Linux.
const clkTck = 100

func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

func sleepUntil(t time.Time) {
	if d := time.Until(t); d > 0 {
		time.Sleep(d)
	}
}
