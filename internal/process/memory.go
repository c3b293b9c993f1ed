package process

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/veilig/veilig/internal/lifecycle"
)

// Returning memory after a flood. The collector runs rarely here (GOGC
// 400 buys throughput), and with no allocation after a burst it does not
// run at all for minutes: the burst's garbage and the freed stacks and
// buffers of its connections stay resident, so a flood would leave the
// server at its peak RSS. Every memoryCheck this looks at what the heap
// holds beyond its live data; when that is large and the last interval
// allocated less than it (the load is over), it collects and hands the
// free memory back to the operating system at once. Under load nothing
// happens: the memory is about to be used again.
const (
	memoryCheck = 10 * time.Second
	memoryIdle  = 64 << 20 // idle heap worth returning, and allocation that counts as load
)

var memorySamples = []metrics.Sample{
	{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/memory/classes/heap/free:bytes"},
	{Name: "/memory/classes/heap/unused:bytes"},
	{Name: "/gc/heap/live:bytes"},
	{Name: "/gc/heap/allocs:bytes"},
}

func readMemory() (held, live, allocs uint64) {
	s := append([]metrics.Sample(nil), memorySamples...)
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() == metrics.KindUint64 {
			return s[i].Value.Uint64()
		}
		return 0
	}
	return v(0) + v(1) + v(2), v(3), v(4)
}

// ReturnMemory runs the check until ctx ends.
func ReturnMemory(ctx context.Context, log *slog.Logger) error {
	_, _, prev := readMemory()
	return lifecycle.Every(ctx, memoryCheck, func(time.Time) {
		held, live, allocs := readMemory()
		recent := allocs - prev
		prev = allocs
		if held < live+memoryIdle || recent >= memoryIdle {
			return
		}
		start := time.Now()
		debug.FreeOSMemory()
		after, liveAfter, _ := readMemory()
		log.Info("returned idle memory to the operating system", "held_mib", held>>20, "held_after_mib", after>>20,
			"live_mib", liveAfter>>20, "took", time.Since(start).Round(time.Microsecond))
		_, _, prev = readMemory()
	})
}
