package sipedge

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/tlsconf"
)

// TestIdleConnectionMemory: an idle TLS connection costs the edge little
// (no read, write or framing buffer beyond one small read buffer), so a
// flood of idle connections cannot take the server's memory before its
// connection limit. The clients run in a child process (this test binary
// again), so only the server's memory is measured.
func TestIdleConnectionMemory(t *testing.T) {
	if addr := os.Getenv("VEILIG_IDLE_CLIENTS"); addr != "" {
		idleClients(addr)
		return
	}
	if testing.Short() || raceEnabled {
		t.Skip("opens 1000 TLS connections; measures memory (not under -race)")
	}
	tm, err := tlsconf.New(tlsconf.Options{Dir: t.TempDir(), Domain: "127.0.0.1", Hosts: []string{"127.0.0.1"}, MinVersion: tls.VersionTLS12}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{TLSListen: "127.0.0.1:0", TLSConfig: tm.ServerConfig(),
		Handler: HandlerFunc(func(ctx context.Context, r *Request) error { return r.Respond(200, "OK") })})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = e.Serve(ctx) }()

	const n = 1000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleConnectionMemory$")
	cmd.Env = append(os.Environ(), "VEILIG_IDLE_CLIENTS="+e.Listeners()[0].Addr.String(), "VEILIG_IDLE_N="+strconv.Itoa(n))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin, _ = os.Open(os.DevNull)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(out)
	ready := false
	for sc.Scan() {
		if sc.Text() == "ready" {
			ready = true
			break
		}
	}
	if !ready {
		t.Fatal("client process did not open its connections")
	}
	for i := 0; i < 100 && e.conns.len() < n; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if got := e.conns.len(); got < n {
		t.Fatalf("%d connections open, want %d", got, n)
	}
	time.Sleep(200 * time.Millisecond)
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := (int64(after.HeapInuse) - int64(before.HeapInuse)) / n
	stack := (int64(after.StackInuse) - int64(before.StackInuse)) / n
	t.Logf("per idle TLS connection: heap %d B, goroutine stack %d B", heap, stack)
	// With a 16 KiB read buffer and an 8 KiB write buffer per connection
	// this was 34 KiB of heap and 8 KiB of stack.
	if heap+stack > 24<<10 {
		t.Errorf("an idle TLS connection costs %d B (heap %d, stack %d), want at most 24 KiB", heap+stack, heap, stack)
	}
}

// idleClients opens VEILIG_IDLE_N TLS connections to addr, says "ready"
// and holds them until stdin closes or a minute passes.
func idleClients(addr string) {
	n, _ := strconv.Atoi(os.Getenv("VEILIG_IDLE_N"))
	var conns []net.Conn
	for i := 0; i < n; i++ {
		src := fmt.Sprintf("127.3.%d.%d", i/200, i%200+1)
		d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test client
		if err != nil {
			fmt.Println("dial:", err)
			os.Exit(1)
		}
		conns = append(conns, c)
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
}
