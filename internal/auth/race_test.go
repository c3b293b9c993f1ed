//go:build race

package auth

// raceEnabled skips allocation counts: under the race detector sync.Pool
// drops items at random, so pooled buffers are reallocated.
const raceEnabled = true
