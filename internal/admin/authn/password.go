package authn

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are the Argon2id cost parameters of a password hash.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over memory
	Threads uint8  // lanes
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes of output
}

// DefaultParams are the second recommended option of RFC 9106 (section
// 4): 64 MiB of memory, 3 passes, 4 lanes, a 16-byte salt and a 32-byte
// hash. One verification takes about 0.35 s on this project's 2-core
// reference machine (BenchmarkPasswordDefault): slow for a guesser with a
// stolen database, fine for a login form that admits 5 tries per account
// per 15 minutes.
var DefaultParams = Params{Memory: 64 * 1024, Time: 3, Threads: 4, SaltLen: 16, KeyLen: 32}

// Bounds on what a stored hash may ask for. A row edited to claim
// m=4 GiB would otherwise make every login attempt allocate it.
const (
	maxMemory  = 1 << 20 // KiB: 1 GiB
	maxTime    = 64
	minSaltLen = 8
	maxSaltLen = 64
	minKeyLen  = 16
	maxKeyLen  = 64
)

// MaxPasswordLen bounds the input, so nobody can make the server hash a
// megabyte per attempt; no human types more.
const MaxPasswordLen = 1024

var (
	// ErrMalformedHash: the stored string is not an Argon2id PHC string
	// within bounds. The stored row is damaged or was tampered with.
	ErrMalformedHash = errors.New("authn: malformed password hash")
	// ErrPasswordTooLong: the password is over MaxPasswordLen bytes.
	ErrPasswordTooLong = fmt.Errorf("authn: password longer than %d bytes", MaxPasswordLen)
)

// Validate rejects parameters outside the bounds a stored hash may have.
func (p Params) Validate() error {
	switch {
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory:
		return fmt.Errorf("authn: argon2id memory %d KiB: want 8*threads..%d", p.Memory, maxMemory)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("authn: argon2id time %d: want 1..%d", p.Time, maxTime)
	case p.Threads < 1:
		return fmt.Errorf("authn: argon2id threads must be at least 1")
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("authn: argon2id salt of %d bytes: want %d..%d", p.SaltLen, minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("authn: argon2id key of %d bytes: want %d..%d", p.KeyLen, minKeyLen, maxKeyLen)
	}
	return nil
}

// Hasher hashes and checks admin passwords with Argon2id, running at most
// a fixed number of hashes at once: each one takes Params.Memory, and a
// burst of login attempts must not exhaust the machine's memory. Callers
// wait for a slot or for their context to end.
type Hasher struct {
	params Params
	slots  chan struct{}
}

// NewHasher returns a Hasher making new hashes with p and running at most
// concurrent hashes at a time.
func NewHasher(p Params, concurrent int) (*Hasher, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if concurrent < 1 {
		return nil, fmt.Errorf("authn: hasher concurrency %d: want at least 1", concurrent)
	}
	return &Hasher{params: p, slots: make(chan struct{}, concurrent)}, nil
}

// Params are the parameters new hashes get.
func (h *Hasher) Params() Params { return h.params }

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("authn: waiting to hash: %w", ctx.Err())
	}
}

func (h *Hasher) release() { <-h.slots }

// Hash returns the PHC string of password under a fresh random salt:
// $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>, salt and
// hash in unpadded standard base64.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if len(password) > MaxPasswordLen {
		return "", ErrPasswordTooLong
	}
	salt := make([]byte, h.params.SaltLen)
	rand.Read(salt)
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	return encodePHC(h.params, salt, derive(h.params, password, salt)), nil
}

// Verify reports whether password matches the stored PHC string,
// comparing in constant time. It uses the parameters stored in the
// string, so hashes made before a parameter change keep working; see
// NeedsRehash. A malformed string is ErrMalformedHash, never a match.
func (h *Hasher) Verify(ctx context.Context, encoded, password string) (bool, error) {
	p, salt, want, err := decodePHC(encoded)
	if err != nil {
		return false, err
	}
	if len(password) > MaxPasswordLen {
		return false, nil
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	got := derive(p, password, salt)
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// VerifyNoUser spends the time of a Verify and always fails, for a login
// naming an account that does not exist: answering at once would tell a
// guesser which names are real.
func (h *Hasher) VerifyNoUser(ctx context.Context, password string) error {
	if err := h.acquire(ctx); err != nil {
		return err
	}
	defer h.release()
	derive(h.params, password, make([]byte, h.params.SaltLen))
	return nil
}

// NeedsRehash reports whether encoded was made with other parameters
// than the Hasher's (or cannot be read), so that after a successful login
// the caller should store a new Hash of the password it just checked.
func (h *Hasher) NeedsRehash(encoded string) bool {
	p, _, _, err := decodePHC(encoded)
	return err != nil || p != h.params
}

func derive(p Params, password string, salt []byte) []byte {
	return argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

var b64 = base64.RawStdEncoding

func encodePHC(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// decodePHC parses exactly the form encodePHC writes: the fields in that
// order, decimal numbers without signs or leading zeros.
func decodePHC(s string) (Params, []byte, []byte, error) {
	bad := func(why string) (Params, []byte, []byte, error) {
		return Params{}, nil, nil, fmt.Errorf("%w: %s", ErrMalformedHash, why)
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return bad("want $argon2id$v=19$m=..,t=..,p=..$salt$hash")
	}
	if parts[1] != "argon2id" {
		return bad(fmt.Sprintf("algorithm %q, want argon2id", parts[1]))
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad(fmt.Sprintf("version %q, want v=%d", parts[2], argon2.Version))
	}
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return bad("want m=..,t=..,p=..")
	}
	var nums [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(kv[i], name)
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil || strconv.FormatUint(n, 10) != v {
			return bad(fmt.Sprintf("parameter %q", kv[i]))
		}
		nums[i] = n
	}
	if nums[2] > 255 {
		return bad("p over 255")
	}
	salt, err1 := b64.Strict().DecodeString(parts[4])
	key, err2 := b64.Strict().DecodeString(parts[5])
	if err1 != nil || err2 != nil {
		return bad("salt or hash is not unpadded base64")
	}
	p := Params{Memory: uint32(nums[0]), Time: uint32(nums[1]), Threads: uint8(nums[2]),
		SaltLen: uint32(len(salt)), KeyLen: uint32(len(key))}
	if err := p.Validate(); err != nil {
		return bad(err.Error())
	}
	return p, salt, key, nil
}
