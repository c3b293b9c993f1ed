package tollfraud

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkDecide measures the decision on an outbound INVITE, reporting
// the 99th percentile as p99-ns (the budget is 50 µs). The mix is
// what a contact centre dials: mostly distinct national numbers (so no
// cache could help), some EU and international, and a few refusals; every
// admitted call ends, so the state stays the size of a busy tenant.
func BenchmarkDecide(b *testing.B) {
	cfg := Default("NL")
	cfg.TimeZone = "Europe/Amsterdam"
	cfg.Extension = Limits{Concurrent: 4, PerMinute: Unlimited, MaxDuration: time.Hour, DailyBudget: Unlimited}
	cfg.Trunk = Limits{Concurrent: Unlimited, PerMinute: Unlimited, MaxDuration: Unlimited, DailyBudget: 1e9}
	g, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	formats := []struct {
		format string
		class  Class
	}{
		{"0612%06d", National}, {"020 7%06d", National}, {"0655%06d", National}, {"010 4%06d", National},
		{"+49 30 1%07d", EU}, {"+33 6 12%06d", EU}, {"+44 7400 1%05d", International}, {"+1 212 555 %04d", International},
		{"0900 12%05d", National}, {"+882 16 1%07d", International},
	}
	reqs := make([]Request, b.N) // built first, so the harness's garbage is not timed
	for i := range reqs {
		f := formats[i%len(formats)]
		reqs[i] = Request{Extension: fmt.Sprintf("1%03d", i%500), Class: f.class, Dialled: fmt.Sprintf(f.format, i%10000), Trunk: "carrier"}
	}
	durs := make([]time.Duration, 0, b.N)
	cpus := make([]time.Duration, 0, b.N)
	runtime.LockOSThread() // so the thread CPU clock is this goroutine's
	defer runtime.UnlockOSThread()
	now := monday10
	var calls []CallID
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := reqs[i]
		now = now.Add(time.Millisecond)
		cpu0 := threadCPU()
		start := time.Now()
		d := g.Decide(req, now)
		durs = append(durs, time.Since(start))
		cpus = append(cpus, threadCPU()-cpu0)
		if d.Allow {
			calls = append(calls, d.Call)
		}
		if len(calls) > 200 { // ~200 calls up at once
			g.CallEnded(calls[0], now, time.Minute)
			calls = calls[1:]
		}
	}
	b.StopTimer()
	slices.Sort(durs)
	b.ReportMetric(float64(durs[len(durs)*99/100].Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(durs[len(durs)/2].Nanoseconds()), "p50-ns")
	// The CPU time of the deciding thread leaves out time the thread spent
	// descheduled, which on a shared machine dominates the wall-clock tail.
	slices.Sort(cpus)
	b.ReportMetric(float64(cpus[len(cpus)*99/100].Nanoseconds()), "p99-cpu-ns")
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

func BenchmarkClassify(b *testing.B) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := Classify("+49 30 12345678", "NL"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTick(b *testing.B) {
	cfg := Default("NL")
	cfg.Extension = Limits{Concurrent: 4, PerMinute: Unlimited, MaxDuration: time.Hour, DailyBudget: 1000}
	cfg.Trunk = Limits{Concurrent: Unlimited, PerMinute: Unlimited, MaxDuration: Unlimited, DailyBudget: 1e9}
	g, _ := New(cfg)
	for i := range 500 {
		g.Decide(Request{Extension: fmt.Sprintf("1%03d", i), Class: National, Dialled: fmt.Sprintf("0612%06d", i), Trunk: "carrier"}, monday10)
	}
	if n := g.Running(); n != 500 {
		b.Fatalf("%d calls running, want 500", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		g.Tick(monday10.Add(time.Second))
	}
}
