//go:build race

package media

// raceEnabled: the race detector instruments memory and changes what
// allocates, so allocation assertions are skipped under it.
const raceEnabled = true
