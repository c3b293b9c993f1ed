package auth

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var (
	testSecret = []byte("0123456789abcdef0123456789abcdef")
	t0         = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

const (
	testTTL = 5 * time.Minute
	ipA     = "127.0.0.2"
	ipB     = "127.0.0.3"
)

func newManager(t testing.TB, maxTracked int) *NonceManager {
	t.Helper()
	m, err := NewNonceManager(testSecret, testTTL, maxTracked)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func expect(t *testing.T, m *NonceManager, nonce string, nc uint32, now time.Time, from string, want NonceResult) {
	t.Helper()
	if got := m.Check(nonce, nc, now, from); got != want {
		t.Errorf("Check(nc=%d, at +%v, from %s) = %v, want %v", nc, now.Sub(t0), from, got, want)
	}
}

func TestNewNonceManagerValidates(t *testing.T) {
	for _, tt := range []struct {
		secret []byte
		ttl    time.Duration
		max    int
		want   string
	}{
		{testSecret[:15], time.Minute, 10, "secret is 15 bytes"},
		{nil, time.Minute, 10, "secret is 0 bytes"},
		{testSecret, 0, 10, "ttl"},
		{testSecret, -time.Second, 10, "ttl"},
		{testSecret, time.Minute, 0, "max tracked"},
	} {
		if _, err := NewNonceManager(tt.secret, tt.ttl, tt.max); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewNonceManager(%d-byte secret, %v, %d) error = %v, want %q", len(tt.secret), tt.ttl, tt.max, err, tt.want)
		}
	}
}

func TestNonceFormat(t *testing.T) {
	m := newManager(t, 100)
	a, b := m.Issue(t0, ipA), m.Issue(t0, ipA)
	if a == b {
		t.Error("two nonces issued at the same instant are equal")
	}
	if len(a) != 48 || strings.ContainsAny(a, "+/=\" ") {
		t.Errorf("nonce %q is not 48 base64url characters", a)
	}
}

func TestNonceCountSequence(t *testing.T) {
	m := newManager(t, 100)
	n := m.Issue(t0, ipA)
	now := t0.Add(time.Second)
	expect(t, m, n, 1, now, ipA, NonceOK)
	expect(t, m, n, 1, now, ipA, NonceReplay) // same nc twice
	expect(t, m, n, 2, now, ipA, NonceOK)
	expect(t, m, n, 1, now, ipA, NonceReplay) // lower nc
	expect(t, m, n, 7, now, ipA, NonceOK)     // gaps are allowed
	expect(t, m, n, 7, now, ipA, NonceReplay)
	expect(t, m, n, 0, now, ipA, NonceInvalid)
	expect(t, m, n, 0xffffffff, now, ipA, NonceOK)
	expect(t, m, n, 0xffffffff, now, ipA, NonceReplay)
}

func TestNonceExpiry(t *testing.T) {
	m := newManager(t, 100)
	n := m.Issue(t0, ipA)
	expect(t, m, n, 1, t0.Add(testTTL-time.Nanosecond), ipA, NonceOK)
	expect(t, m, n, 2, t0.Add(testTTL), ipA, NonceStale)
	expect(t, m, n, 3, t0.Add(24*time.Hour), ipA, NonceStale)

	// Never used before it expired: stale as well.
	n2 := m.Issue(t0, ipA)
	expect(t, m, n2, 1, t0.Add(testTTL+time.Second), ipA, NonceStale)
}

func TestNonceFromTheFuture(t *testing.T) {
	m := newManager(t, 100)
	// Goroutines read the clock at slightly different moments.
	expect(t, m, m.Issue(t0.Add(time.Second), ipA), 1, t0, ipA, NonceOK)
	// Our clock stepped back: the client must fetch a new nonce.
	expect(t, m, m.Issue(t0.Add(time.Minute), ipA), 1, t0, ipA, NonceStale)
}

func TestNonceInvalid(t *testing.T) {
	m := newManager(t, 100)
	n := m.Issue(t0, ipA)
	now := t0.Add(time.Second)

	other, err := NewNonceManager([]byte("another secret of 32 bytes......"), testTTL, 100)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"empty":          "",
		"short":          n[:47],
		"long":           n + "A",
		"padding":        n[:46] + "==",
		"standard b64":   n[:47] + "+",
		"newline inside": n[:20] + "\n" + n[21:],
		"quote":          n[:47] + `"`,
		"other secret":   other.Issue(t0, ipA),
	}
	// Changing any one character breaks the MAC.
	for i := range len(n) {
		c := byte('A')
		if n[i] == 'A' {
			c = 'B'
		}
		cases[fmt.Sprintf("char %d changed", i)] = n[:i] + string(c) + n[i+1:]
	}
	for name, bad := range cases {
		if got := m.Check(bad, 1, now, ipA); got != NonceInvalid {
			t.Errorf("%s: Check = %v, want invalid", name, got)
		}
	}
	expect(t, m, n, 1, now, ipA, NonceOK) // none of the above touched the real one
}

func TestNonceBoundToAddress(t *testing.T) {
	m := newManager(t, 100)
	n := m.Issue(t0, ipA)
	now := t0.Add(time.Second)
	expect(t, m, n, 1, now, ipB, NonceInvalid)
	expect(t, m, n, 1, now, "", NonceInvalid)
	expect(t, m, n, 1, now, ipA+"0", NonceInvalid)
	expect(t, m, n, 1, now, ipA, NonceOK) // a foreign attempt does not burn the count
	expect(t, m, n, 2, now, ipB, NonceInvalid)
	// Stale is only for our own nonces: an expired nonce from the wrong
	// address is invalid, so stale=true cannot be farmed from elsewhere.
	expect(t, m, n, 3, t0.Add(testTTL+time.Second), ipB, NonceInvalid)
	expect(t, m, n, 3, t0.Add(testTTL+time.Second), ipA, NonceStale)
}

func TestNonceEvictedIsStale(t *testing.T) {
	m := newManager(t, 2) // one shard holding two entries
	n1 := m.Issue(t0, ipA)
	n2 := m.Issue(t0.Add(1*time.Second), ipA)
	n3 := m.Issue(t0.Add(2*time.Second), ipA)
	n4 := m.Issue(t0.Add(3*time.Second), ipA)
	now := t0.Add(10 * time.Second)

	expect(t, m, n1, 1, now, ipA, NonceOK)
	expect(t, m, n2, 1, now, ipA, NonceOK)
	expect(t, m, n3, 1, now, ipA, NonceOK) // evicts n1
	if got := m.Tracked(); got != 2 {
		t.Errorf("Tracked = %d, want 2", got)
	}
	// n1's history is gone: replaying its nc=1, or going on with nc=2,
	// must not be accepted as if it were new.
	expect(t, m, n1, 1, now, ipA, NonceStale)
	expect(t, m, n1, 2, now, ipA, NonceStale)
	// Still tracked ones keep their history.
	expect(t, m, n2, 1, now, ipA, NonceReplay)
	expect(t, m, n3, 2, now, ipA, NonceOK)
	// A nonce issued after everything evicted can still start.
	expect(t, m, n4, 1, now, ipA, NonceOK) // evicts n2
	expect(t, m, n2, 2, now, ipA, NonceStale)
}

func TestNonceFloodNeverReopensReplay(t *testing.T) {
	m := newManager(t, 100)
	now := t0.Add(time.Minute)
	nonces := make([]string, 1000)
	for i := range nonces {
		nonces[i] = m.Issue(t0.Add(time.Duration(i)*time.Millisecond), ipA)
		expect(t, m, nonces[i], 1, now, ipA, NonceOK)
	}
	if got := m.Tracked(); got > 100 {
		t.Errorf("Tracked = %d, above the limit of 100", got)
	}
	for _, n := range nonces {
		if got := m.Check(n, 1, now, ipA); got == NonceOK {
			t.Fatal("a replayed nonce count was accepted after eviction")
		}
	}
}

func TestNonceExpiredEntriesAreDropped(t *testing.T) {
	m := newManager(t, 10)
	for i := range 5 {
		expect(t, m, m.Issue(t0, ipA), 1, t0.Add(time.Duration(i)*time.Second), ipA, NonceOK)
	}
	later := t0.Add(testTTL + time.Minute)
	expect(t, m, m.Issue(later, ipA), 1, later, ipA, NonceOK)
	if got := m.Tracked(); got != 1 {
		t.Errorf("Tracked = %d after the old nonces expired, want 1", got)
	}
}

func TestNonceRestartIsStale(t *testing.T) {
	before := newManager(t, 100)
	n := before.Issue(t0, ipA)
	expect(t, before, n, 1, t0.Add(time.Second), ipA, NonceOK)

	// A new process with the same secret has lost the counts.
	after := newManager(t, 100)
	fresh := after.Issue(t0.Add(2*time.Second), ipA)
	expect(t, after, n, 1, t0.Add(3*time.Second), ipA, NonceStale)
	expect(t, after, n, 2, t0.Add(3*time.Second), ipA, NonceStale)
	expect(t, after, fresh, 1, t0.Add(3*time.Second), ipA, NonceOK)
}

func TestNonceShardsSpreadAndBound(t *testing.T) {
	const max = 64 * 64 * 2
	m := newManager(t, max)
	if len(m.shards) != 64 {
		t.Fatalf("%d shards, want 64", len(m.shards))
	}
	for i := range max / 2 {
		n := m.Issue(t0.Add(time.Duration(i)), ipA)
		expect(t, m, n, 1, t0.Add(time.Second), ipA, NonceOK)
	}
	if got := m.Tracked(); got != max/2 {
		t.Errorf("Tracked = %d, want %d", got, max/2)
	}
	for i := range 4 * max {
		m.Check(m.Issue(t0.Add(time.Duration(max+i)), ipA), 1, t0.Add(time.Second), ipA)
	}
	if got := m.Tracked(); got > max {
		t.Errorf("Tracked = %d, above the limit of %d", got, max)
	}
}

func TestNonceConcurrentSameCount(t *testing.T) {
	m := newManager(t, 1000)
	n := m.Issue(t0, ipA)
	var ok, replay atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			switch m.Check(n, 5, t0.Add(time.Second), ipA) {
			case NonceOK:
				ok.Add(1)
			case NonceReplay:
				replay.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || replay.Load() != 15 {
		t.Errorf("%d OK and %d replay, want exactly one OK", ok.Load(), replay.Load())
	}
}

func TestNonceConcurrent(t *testing.T) {
	const goroutines, rounds = 8, 500
	m := newManager(t, 200) // small, so eviction runs concurrently too
	var (
		wg           sync.WaitGroup
		clock        atomic.Int64
		fresh, wrong atomic.Int32
	)
	for g := range goroutines {
		wg.Go(func() {
			from := fmt.Sprintf("127.0.0.%d", g+2)
			for range rounds {
				now := t0.Add(time.Duration(clock.Add(1)) * time.Millisecond)
				n := m.Issue(now, from)
				// Under eviction pressure a nonce may turn stale at any
				// point, but a replay must never be accepted.
				switch m.Check(n, 1, now, from) {
				case NonceOK:
					fresh.Add(1)
				case NonceStale:
				default:
					wrong.Add(1)
				}
				if r := m.Check(n, 1, now, from); r != NonceReplay && r != NonceStale {
					wrong.Add(1)
				}
				if m.Check(n, 2, now, ipB+"x") != NonceInvalid {
					wrong.Add(1)
				}
				_ = m.Tracked()
			}
		})
	}
	wg.Wait()
	if wrong.Load() != 0 {
		t.Errorf("%d checks gave a wrong result", wrong.Load())
	}
	if f := fresh.Load(); f < goroutines*rounds*9/10 {
		t.Errorf("only %d of %d fresh nonces were accepted", f, goroutines*rounds)
	}
}

func TestNonceAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	m := newManager(t, 100)
	n := m.Issue(t0, ipA)
	m.Check(n, 1, t0, ipA)
	if a := testing.AllocsPerRun(100, func() { m.Check(n, 1, t0, ipA) }); a != 0 {
		t.Errorf("Check allocates %v times", a)
	}
	if a := testing.AllocsPerRun(100, func() { m.Issue(t0, ipA) }); a > 1 {
		t.Errorf("Issue allocates %v times, want only the returned string", a)
	}
}

func TestParseNC(t *testing.T) {
	for in, want := range map[string]uint32{
		"00000001": 1, "0000000a": 10, "0000000A": 10, "ffffffff": 0xffffffff, "00000000": 0, "12345678": 0x12345678,
	} {
		if got, err := ParseNC(in); err != nil || got != want {
			t.Errorf("ParseNC(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1", "0000001", "000000001", "0000000g", "+0000001", " 0000001", "0x000001"} {
		if _, err := ParseNC(in); err == nil {
			t.Errorf("ParseNC(%q) succeeded", in)
		}
	}
}

func TestNonceResultString(t *testing.T) {
	for r, want := range map[NonceResult]string{
		NonceInvalid: "invalid", NonceOK: "ok", NonceStale: "stale", NonceReplay: "replay", 9: "NonceResult(9)",
	} {
		if r.String() != want {
			t.Errorf("%d.String() = %q, want %q", r, r.String(), want)
		}
	}
	var zero NonceResult
	if zero != NonceInvalid {
		t.Error("the zero NonceResult is not NonceInvalid")
	}
}
