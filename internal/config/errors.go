package config

import (
	"fmt"
	"strings"
)

// Error is one problem with the configuration. Load and Validate return
// one or more of them (joined with errors.Join), so the CLI can report every
// mistake at once and tests can match fields rather than text.
type Error struct {
	Key    string // dotted key such as "sip.min_expires"; "" if none applies
	Source string // file path, environment variable or "override"; "" after merging
	Line   int    // line in Source when Source is a file, else 0
	Msg    string // what is wrong and what is allowed
}

// Error formats the problem as "config: <where>: <key>: <msg>".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	switch {
	case e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.Source, e.Line)
	case e.Source != "" && e.Key == "":
		fmt.Fprintf(&b, "%s: ", e.Source)
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		if e.Line == 0 && e.Source != "" {
			fmt.Fprintf(&b, " (from %s)", e.Source)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// suggest returns the candidate closest to s when it is close enough to be
// a likely typo, so "unknown key" errors can say what was meant.
func suggest(s string, candidates []string) string {
	best, bestDist := "", len(s)/3+2
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
