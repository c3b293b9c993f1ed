package test

import (
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// capture is a running tshark writing a pcap file.
type capture struct {
	proc *proc
	path string
}

// startCapture starts tshark on iface with a capture filter and waits
// until it captures. Stop it with stop() (SIGINT finalises the pcap).
func startCapture(t *testing.T, name, iface, filter string) *capture {
	t.Helper()
	requireTools(t, "tshark")
	requireRoot(t, "packet capture")
	path := filepath.Join(artifactDir(t), name+".pcap")
	p := startProc(t, procSpec{
		name:    "tshark-" + name,
		args:    []string{"tshark", "-n", "-i", iface, "-f", filter, "-w", path},
		timeout: 10 * time.Minute,
		stop:    syscall.SIGINT,
	})
	if !p.waitOutput("Capturing on", 20*time.Second) {
		t.Fatalf("tshark did not start capturing on %s:\n%s", iface, p.Output())
	}
	time.Sleep(300 * time.Millisecond) // the line comes just before the capture loop
	return &capture{proc: p, path: path}
}

// stop ends the capture and returns the pcap path.
func (c *capture) stop(t *testing.T) string {
	t.Helper()
	time.Sleep(500 * time.Millisecond) // let the last packets be written
	c.proc.Stop(10 * time.Second)
	return c.path
}

// tsharkFields reads a pcap with tshark and returns the tab-separated
// fields of every packet that matches the display filter.
func tsharkFields(t *testing.T, pcap string, decodeAs []string, display string, fields ...string) [][]string {
	t.Helper()
	args := []string{"-n", "-r", pcap}
	for _, d := range decodeAs {
		args = append(args, "-d", d)
	}
	if display != "" {
		args = append(args, "-Y", display)
	}
	args = append(args, "-T", "fields")
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command("tshark", args...)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.Output(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("tshark -r %s timed out", pcap)
	}
	if err != nil {
		t.Fatalf("tshark -r %s: %v\n%s", pcap, err, out)
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		row := strings.Split(line, "\t")
		for len(row) < len(fields) {
			row = append(row, "")
		}
		rows = append(rows, row)
	}
	return rows
}

// rtpFlow summarises one direction of PCMU media seen on the wire
// (Go port of rtpcheck.py from shared/peers/baresip.md, section 5).
type rtpFlow struct {
	key        string // src -> dst
	packets    int
	payloadLen int
	distinct   int
	entropy    float64 // bits per byte over all payload bytes
	toneHz     int     // strongest frequency when payloads are decoded as mu-law
	toneShare  float64 // its share of the signal energy (1 = pure tone)
	payloads   map[string]bool
}

func (f rtpFlow) String() string {
	return fmt.Sprintf("%s pkts=%d payload=%dB distinct=%d entropy=%.2f tone=%dHz share=%.2f",
		f.key, f.packets, f.payloadLen, f.distinct, f.entropy, f.toneHz, f.toneShare)
}

// rtpFlows decodes UDP on portRange ("lo-hi", may be repeated) as RTP and
// returns one summary per direction of payload type 0 (PCMU).
func rtpFlows(t *testing.T, pcap string, portRanges ...string) []rtpFlow {
	t.Helper()
	var decode []string
	for _, r := range portRanges {
		decode = append(decode, "udp.port=="+r+",rtp")
	}
	rows := tsharkFields(t, pcap, decode, "rtp.p_type == 0",
		"ip.src", "udp.srcport", "ip.dst", "udp.dstport", "rtp.payload")
	payloads := map[string][][]byte{}
	for _, r := range rows {
		key := fmt.Sprintf("%s:%s -> %s:%s", r[0], r[1], r[2], r[3])
		payloads[key] = append(payloads[key], hexBytes(r[4]))
	}
	var flows []rtpFlow
	for key, pays := range payloads {
		flows = append(flows, summariseFlow(key, pays))
	}
	sort.Slice(flows, func(i, j int) bool { return flows[i].key < flows[j].key })
	return flows
}

func hexBytes(s string) []byte {
	s = strings.ReplaceAll(s, ":", "")
	b := make([]byte, len(s)/2)
	for i := range b {
		fmt.Sscanf(s[2*i:2*i+2], "%02x", &b[i])
	}
	return b
}

func summariseFlow(key string, pays [][]byte) rtpFlow {
	f := rtpFlow{key: key, packets: len(pays)}
	if len(pays) == 0 {
		return f
	}
	f.payloadLen = len(pays[0])
	distinct := map[string]bool{}
	var all []byte
	for _, p := range pays {
		distinct[string(p)] = true
		all = append(all, p...)
	}
	f.distinct = len(distinct)
	f.payloads = distinct
	f.entropy = byteEntropy(all)
	// Decode 50 packets from the middle of the call as mu-law.
	from := min(100, len(pays)/3)
	to := min(from+50, len(pays))
	var x []float64
	for _, p := range pays[from:to] {
		for _, b := range p[:min(160, len(p))] {
			x = append(x, float64(ulawDecode(b)))
		}
	}
	f.toneHz, f.toneShare = dominantTone(x, 8000, 50, 4000, 10)
	return f
}

func byteEntropy(b []byte) float64 {
	var counts [256]int
	for _, c := range b {
		counts[c]++
	}
	var h float64
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / float64(len(b))
			h -= p * math.Log2(p)
		}
	}
	return h
}

// ulawDecode decodes one G.711 mu-law byte to linear PCM.
func ulawDecode(b byte) int {
	b = ^b
	v := ((int(b&0x0f) << 3) + 0x84) << ((b >> 4) & 7)
	v -= 0x84
	if b&0x80 != 0 {
		return -v
	}
	return v
}

// dominantTone scans lo..hi Hz in steps with the Goertzel algorithm and
// returns the strongest frequency and its share of the signal energy.
func dominantTone(x []float64, rate, lo, hi, step int) (int, float64) {
	var total float64
	for _, v := range x {
		total += v * v
	}
	if total == 0 || len(x) == 0 {
		return 0, 0
	}
	best, bestPow := 0, 0.0
	for fr := lo; fr < hi; fr += step {
		if p := goertzel(x, float64(fr), float64(rate)); p > bestPow {
			best, bestPow = fr, p
		}
	}
	return best, bestPow / (total * float64(len(x)) / 2)
}

// goertzel returns the power of frequency f in x.
func goertzel(x []float64, f, rate float64) float64 {
	k := 2 * math.Cos(2*math.Pi*f/rate)
	var s1, s2 float64
	for _, v := range x {
		s0 := v + k*s1 - s2
		s2, s1 = s1, s0
	}
	return s1*s1 + s2*s2 - k*s1*s2
}
