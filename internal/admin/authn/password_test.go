package authn

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// cheap keeps the tests fast (the race detector slows Argon2 a lot); the
// defaults get their own test and benchmark.
var cheap = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func newHasher(t *testing.T, p Params) *Hasher {
	t.Helper()
	h, err := NewHasher(p, 2)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestPasswordHashAndVerify(t *testing.T) {
	ctx := context.Background()
	h := newHasher(t, cheap)
	enc, err := h.Hash(ctx, "Correct-Horse-9-Battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("PHC string %q does not state the parameters", enc)
	}
	if ok, err := h.Verify(ctx, enc, "Correct-Horse-9-Battery"); !ok || err != nil {
		t.Errorf("right password: ok=%v err=%v", ok, err)
	}
	for _, wrong := range []string{"correct-horse-9-battery", "Correct-Horse-9-Batter", "", strings.Repeat("x", MaxPasswordLen+1)} {
		if ok, err := h.Verify(ctx, enc, wrong); ok || err != nil {
			t.Errorf("wrong password %.20q: ok=%v err=%v", wrong, ok, err)
		}
	}
	again, _ := h.Hash(ctx, "Correct-Horse-9-Battery")
	if again == enc {
		t.Error("two hashes of one password are equal: salt not random")
	}
	if _, err := h.Hash(ctx, strings.Repeat("x", MaxPasswordLen+1)); !errors.Is(err, ErrPasswordTooLong) {
		t.Errorf("over-long password: %v", err)
	}
}

// TestPasswordKnownAnswer checks a hash made by the reference Argon2
// implementation (Debian's argon2 CLI: echo -n Correct-Horse-9-Battery |
// argon2 veiligsaltveilig -id -t 2 -m 10 -p 2 -l 32 -e), so the PHC
// encoding and the parameters Hasher passes to x/crypto agree with
// what every other Argon2id implementation reads and writes.
func TestPasswordKnownAnswer(t *testing.T) {
	const ref = "$argon2id$v=19$m=1024,t=2,p=2$dmVpbGlnc2FsdHZlaWxpZw$bhi28paJpL4d6Qd2nGrn4MoR4n5WEKukVGrJ5wrHOuY"
	p := Params{Memory: 1024, Time: 2, Threads: 2, SaltLen: 16, KeyLen: 32}
	h := newHasher(t, p)
	if ok, err := h.Verify(context.Background(), ref, "Correct-Horse-9-Battery"); !ok || err != nil {
		t.Errorf("reference hash does not verify: %v %v", ok, err)
	}
	if h.NeedsRehash(ref) {
		t.Error("reference hash with the hasher's own parameters needs rehash")
	}
	if got := encodePHC(p, []byte("veiligsaltveilig"), derive(p, "Correct-Horse-9-Battery", []byte("veiligsaltveilig"))); got != ref {
		t.Errorf("encoding = %s\nreference %s", got, ref)
	}
}

func TestPasswordVerifyRejectsMalformed(t *testing.T) {
	ctx := context.Background()
	h := newHasher(t, cheap)
	good, _ := h.Hash(ctx, "pw")
	parts := strings.Split(good, "$")
	bad := []string{
		"",
		"plaintext",
		strings.Replace(good, "argon2id", "argon2i", 1),
		strings.Replace(good, "v=19", "v=16", 1),
		strings.Replace(good, "m=64", "m=064", 1),
		strings.Replace(good, "m=64", "m=-64", 1),
		strings.Replace(good, "m=64", "m=4194304", 1), // 4 GiB: refused, not allocated
		strings.Replace(good, "t=1", "t=1000", 1),
		strings.Replace(good, "p=1", "p=0", 1),
		strings.Replace(good, "p=1", "p=300", 1),
		strings.Replace(good, "m=64,t=1", "t=1,m=64", 1),
		"$" + strings.Join(parts[1:5], "$") + "$" + parts[5] + "==",
		"$" + strings.Join(parts[1:4], "$") + "$AAAA$" + parts[5], // 3-byte salt
		"$" + strings.Join(parts[1:5], "$") + "$AAAA",             // 3-byte hash
		good + "$extra",
	}
	for _, b := range bad {
		if ok, err := h.Verify(ctx, b, "pw"); ok || !errors.Is(err, ErrMalformedHash) {
			t.Errorf("Verify(%q) = %v, %v; want ErrMalformedHash", b, ok, err)
		}
		if !h.NeedsRehash(b) {
			t.Errorf("NeedsRehash(%q) = false for a malformed hash", b)
		}
	}
}

func TestPasswordNeedsRehash(t *testing.T) {
	ctx := context.Background()
	old := newHasher(t, cheap)
	enc, _ := old.Hash(ctx, "pw")
	if old.NeedsRehash(enc) {
		t.Error("fresh hash needs rehash")
	}
	stronger := cheap
	stronger.Time = 2
	nw := newHasher(t, stronger)
	if !nw.NeedsRehash(enc) {
		t.Error("hash with old parameters does not need rehash")
	}
	// The old hash still verifies with the new hasher: its own
	// parameters are in the string.
	if ok, err := nw.Verify(ctx, enc, "pw"); !ok || err != nil {
		t.Errorf("old hash under new parameters: %v %v", ok, err)
	}
}

func TestPasswordDefaultParams(t *testing.T) {
	if err := DefaultParams.Validate(); err != nil {
		t.Fatal(err)
	}
	if DefaultParams.Memory != 65536 || DefaultParams.Time != 3 || DefaultParams.Threads != 4 {
		t.Errorf("DefaultParams = %+v; the doc comment states m=64 MiB, t=3, p=4", DefaultParams)
	}
	if raceEnabled {
		t.Skip("a 64 MiB Argon2id under the race detector takes too long; BenchmarkPasswordDefault measures it")
	}
	h := newHasher(t, DefaultParams)
	enc, err := h.Hash(context.Background(), "pw")
	if err != nil || !strings.HasPrefix(enc, "$argon2id$v=19$m=65536,t=3,p=4$") {
		t.Fatalf("%q %v", enc, err)
	}
	if ok, _ := h.Verify(context.Background(), enc, "pw"); !ok {
		t.Error("default-params hash does not verify")
	}
}

func TestHasherBoundsConcurrency(t *testing.T) {
	h, err := NewHasher(Params{Memory: 256, Time: 4, Threads: 1, SaltLen: 16, KeyLen: 32}, 2)
	if err != nil {
		t.Fatal(err)
	}
	var running, peak atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := h.acquire(context.Background()); err != nil {
				t.Error(err)
				return
			}
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			derive(h.params, "pw", make([]byte, 16))
			running.Add(-1)
			h.release()
		})
	}
	wg.Wait()
	if peak.Load() > 2 {
		t.Errorf("%d hashes ran at once, limit 2", peak.Load())
	}
	// A full hasher makes a caller with an ended context give up.
	h.slots <- struct{}{}
	h.slots <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := h.Hash(ctx, "pw"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Hash with no free slot: %v, want deadline exceeded", err)
	}
	if err := h.VerifyNoUser(ctx, "pw"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("VerifyNoUser with no free slot: %v", err)
	}
}

func TestNewHasherRejectsBadParams(t *testing.T) {
	for _, p := range []Params{
		{},
		{Memory: 64, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 8},
		{Memory: 2 << 20, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
	} {
		if _, err := NewHasher(p, 1); err == nil {
			t.Errorf("NewHasher(%+v) accepted", p)
		}
	}
	if _, err := NewHasher(cheap, 0); err == nil {
		t.Error("concurrency 0 accepted")
	}
}

func BenchmarkPasswordDefault(b *testing.B) {
	h, err := NewHasher(DefaultParams, 1)
	if err != nil {
		b.Fatal(err)
	}
	enc, _ := h.Hash(context.Background(), "Correct-Horse-9-Battery")
	for b.Loop() {
		h.Verify(context.Background(), enc, "Correct-Horse-9-Battery")
	}
}
