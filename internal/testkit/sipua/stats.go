package sipua

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// Stats counts the signalling a set of user agents saw, to show it.
type Stats struct {
	mu sync.Mutex
	m  map[string]int
}

// Add counts one occurrence of k ("rx BYE", "INVITE 407", ...).
func (s *Stats) Add(k string) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[string]int{}
	}
	s.m[k]++
	s.mu.Unlock()
}

// Take returns the counts as "key xN, ..." and resets them.
func (s *Stats) Take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s x%d", k, s.m[k])
	}
	s.m = nil
	return b.String()
}

// The trace, when set, receives every SIP message sent and received.
var (
	traceW  io.Writer
	traceMu sync.Mutex
)

// SetTrace sends every SIP message of every user agent to w (nil: none).
// Set it before dialling.
func SetTrace(w io.Writer) { traceW = w }

func trace(dir, peer string, b []byte) {
	traceMu.Lock()
	fmt.Fprintf(traceW, "--- %s %s %s\n%s\n", time.Now().Format("15:04:05.000000"), dir, peer, b)
	traceMu.Unlock()
}
