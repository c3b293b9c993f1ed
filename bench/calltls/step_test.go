package main

import (
	"os"
	"testing"
)

// The expected figures are what run.sh's awk prints for the same file
// (rate;count;ok;failed;fail_pct;throughput;elapsed;retrans;...;p99;slow_pct;...;pass):
//
//	100;600;600;0;0.00;100.1;7.02;0;0;<10;0.00;...;1   (slow-ms 200)
//	200;1200;600;0;50.00;100.1;7.02;0;0;<10;0.33;...;0 (slow-ms 10)
//
// and for slow-1300.stat.csv (Kamailio at 1300 calls/s, failing on the
// latency share and on throughput):
//
//	1300;7800;7800;0;0.00;985.7;7.50;0;0;>=1000;31.99;...;0
func TestEvalStatsFailingStep(t *testing.T) {
	f, err := os.Open("testdata/slow-1300.stat.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := evalStats(f, 1300, 7800, 2, 6.5, criteria{1, 95, 200, 1})
	if err != nil {
		t.Fatal(err)
	}
	if s.succ != 7800 || round(s.failPct, 2) != 0 || round(s.achieved, 1) != 985.7 || round(s.elapsed, 2) != 7.5 ||
		s.p99 != ">=1000" || round(s.slowPct, 2) != 31.99 || s.pass {
		t.Errorf("got %+v, want ok 7800, fail 0%%, throughput 985.7/s, elapsed 7.50, p99 >=1000, slow 31.99%%, no pass", s)
	}
}

func TestEvalStatsMatchesHarness(t *testing.T) {
	cases := []struct {
		name        string
		rate, count int
		crit        criteria
		wantFail    float64
		wantSlow    float64
		wantPass    bool
	}{
		{"passes", 100, 600, criteria{1, 95, 200, 1}, 0, 0, true},
		{"half not sent, slow at 10 ms", 200, 1200, criteria{1, 95, 10, 1}, 50, 0.33, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := os.Open("testdata/pass-100.stat.csv")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			s, err := evalStats(f, c.rate, c.count, 2, 6.5, c.crit)
			if err != nil {
				t.Fatal(err)
			}
			if s.succ != 600 || s.failed != 0 || s.retrans != 0 {
				t.Errorf("ok/failed/retrans = %d/%d/%d, want 600/0/0", s.succ, s.failed, s.retrans)
			}
			if got := round(s.achieved, 1); got != 100.1 {
				t.Errorf("throughput %.1f, want 100.1", s.achieved)
			}
			if got := round(s.elapsed, 2); got != 7.02 {
				t.Errorf("elapsed %.2f, want 7.02", s.elapsed)
			}
			if s.p99 != "<10" {
				t.Errorf("p99 %q, want <10", s.p99)
			}
			if round(s.failPct, 2) != c.wantFail || round(s.slowPct, 2) != c.wantSlow || s.pass != c.wantPass {
				t.Errorf("fail %.2f%% slow %.2f%% pass %v, want %.2f%% %.2f%% %v",
					s.failPct, s.slowPct, s.pass, c.wantFail, c.wantSlow, c.wantPass)
			}
		})
	}
}

func TestEvalStatsEmptyFileIsAnError(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := evalStats(f, 100, 600, 2, 6.5, criteria{1, 95, 200, 1}); err == nil {
		t.Fatal("no error for a file without statistics")
	}
}

func round(x float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if x < 0 {
		return -float64(int64(-x*p+0.5)) / p
	}
	return float64(int64(x*p+0.5)) / p
}
