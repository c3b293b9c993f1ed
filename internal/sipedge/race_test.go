//go:build race

package sipedge

// raceEnabled skips memory measurements: the race detector grows stacks
// and shadows the heap.
const raceEnabled = true
