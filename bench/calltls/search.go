package main

// The rate search of run.sh's measure(): double the offered rate until a
// step fails, then bisect between the best passing and the lowest failing
// rate refine times (halving while none has passed), within maxSteps steps
// and a time budget.

// searchParams bound one rate search.
type searchParams struct {
	start, maxRate, maxSteps, refine int
}

// search runs steps through try (which reports whether the step passed and
// whether the budget allows another) and returns the highest passing rate
// (0: none) and the lowest failing one (0: none).
func search(p searchParams, try func(rate int) (pass, more bool)) (lo, hi int) {
	rate, refine := p.start, p.refine
	for steps := 0; steps < p.maxSteps; {
		steps++
		pass, more := try(rate)
		if pass {
			lo = rate
		} else {
			hi = rate
		}
		if !more {
			break
		}
		if hi == 0 {
			if rate >= p.maxRate {
				break
			}
			rate = min(rate*2, p.maxRate)
			continue
		}
		if lo > 0 {
			if refine <= 0 {
				break
			}
			refine--
		}
		next := round2((lo + hi) / 2)
		if next <= lo || next >= hi {
			break
		}
		rate = next
	}
	return lo, hi
}

// round2 rounds to two significant digits, as run.sh does, so that step
// rates stay readable.
func round2(x int) int {
	if x < 100 {
		return x
	}
	p := 1
	for x/p >= 100 {
		p *= 10
	}
	return int(float64(x)/float64(p)+0.5) * p
}
