package main

import (
	"slices"
	"testing"
)

func TestSearchFollowsTheHarness(t *testing.T) {
	cases := []struct {
		name      string
		p         searchParams
		capacity  int // a step passes when rate <= capacity
		budget    int // steps the budget allows (0: unlimited)
		wantRates []int
		wantLo    int
		wantHi    int
	}{
		{"doubles, then bisects twice", searchParams{250, 40000, 8, 2}, 1100, 0,
			[]int{250, 500, 1000, 2000, 1500, 1300}, 1000, 1300},
		{"bisection finds a pass", searchParams{250, 40000, 8, 2}, 1600, 0,
			[]int{250, 500, 1000, 2000, 1500, 1800}, 1500, 1800},
		{"halves while nothing passes (rates as run.sh rounds them)", searchParams{250, 40000, 8, 2}, 70, 0,
			[]int{250, 130, 65, 97, 81}, 65, 81},
		{"stops at the cap", searchParams{250, 1000, 8, 2}, 5000, 0,
			[]int{250, 500, 1000}, 1000, 0},
		{"stops at max steps", searchParams{250, 40000, 3, 2}, 5000, 0,
			[]int{250, 500, 1000}, 1000, 0},
		{"stops when the budget is spent", searchParams{250, 40000, 8, 2}, 5000, 2,
			[]int{250, 500}, 500, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var rates []int
			lo, hi := search(c.p, func(rate int) (bool, bool) {
				rates = append(rates, rate)
				return rate <= c.capacity, c.budget == 0 || len(rates) < c.budget
			})
			if !slices.Equal(rates, c.wantRates) || lo != c.wantLo || hi != c.wantHi {
				t.Errorf("rates %v lo %d hi %d, want %v lo %d hi %d", rates, lo, hi, c.wantRates, c.wantLo, c.wantHi)
			}
		})
	}
}

func TestRound2(t *testing.T) {
	for in, want := range map[int]int{0: 0, 99: 99, 100: 100, 125: 130, 1150: 1200, 1250: 1300, 1499: 1500, 30000: 30000, 37500: 38000} {
		if got := round2(in); got != want {
			t.Errorf("round2(%d) = %d, want %d", in, got, want)
		}
	}
}
