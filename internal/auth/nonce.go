package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"
	"time"
)

// Nonce layout: base64url(timestamp || random || mac), no padding.
const (
	nonceTSLen   = 8  // issue time, Unix nanoseconds, big endian
	nonceRandLen = 12 // makes every nonce unique even within one nanosecond
	nonceMACLen  = 16 // HMAC-SHA256 truncated to 128 bits
	nonceBodyLen = nonceTSLen + nonceRandLen
	nonceRawLen  = nonceBodyLen + nonceMACLen
	nonceLen     = nonceRawLen / 3 * 4 // 36 bytes encode to 48 characters

	// maxClockSkew tolerates a nonce stamped slightly after the now that
	// Check is given (callers on several goroutines read the clock at
	// different moments). Anything further in the future means our clock
	// stepped back: we answer stale so the client fetches a new nonce.
	maxClockSkew = 2 * time.Second

	// MinNonceSecretLen is the shortest HMAC key NewNonceManager accepts.
	MinNonceSecretLen = 16
)

// NonceResult is the outcome of NonceManager.Check. The zero value is
// NonceInvalid, so an unset result fails closed.
type NonceResult uint8

const (
	// NonceInvalid: not a nonce we issued to this address (bad format, bad
	// MAC, other source address, nonce count 0). Treat as a failed attempt.
	NonceInvalid NonceResult = iota
	// NonceOK: ours, live, and the nonce count is new. The credentials may
	// now be verified.
	NonceOK
	// NonceStale: ours but expired, or no longer tracked. Challenge again
	// with stale=true; this is not a password failure.
	NonceStale
	// NonceReplay: ours and live, but the nonce count was not above the
	// last one accepted. Reject and count it as an attack signal.
	NonceReplay
)

func (r NonceResult) String() string {
	switch r {
	case NonceInvalid:
		return "invalid"
	case NonceOK:
		return "ok"
	case NonceStale:
		return "stale"
	case NonceReplay:
		return "replay"
	default:
		return fmt.Sprintf("NonceResult(%d)", uint8(r))
	}
}

// NonceManager issues stateless, address-bound nonces and tracks the nonce
// count of each one in use to refuse replays. It is safe for concurrent
// use; tracking is split into shards, each with its own lock, so there is
// no global lock on the REGISTER path. Time is always passed in.
type NonceManager struct {
	ttl    int64        // nanoseconds
	epoch  atomic.Int64 // first now seen; older nonces predate our tracking
	pool   sync.Pool    // *macState
	shards []nonceShard
	mask   uint32
}

// macState is per-call scratch space, pooled so that Issue and Check do
// not allocate: crypto/hmac is reached through an interface, which would
// otherwise move every buffer to the heap.
type macState struct {
	mac hash.Hash
	msg []byte
	raw [nonceRawLen]byte
	enc [nonceLen]byte // base64 form, for both directions
	sum [sha256.Size]byte
}

// NewNonceManager returns a manager whose nonces live for ttl and which
// tracks at most maxTracked nonces in use (about 60 bytes each). When
// tracking is full the oldest entries are dropped and their nonces become
// stale, never fresh. Use a random secret per process or per node: the
// replay tracking is local, so a nonce must not be accepted by a node that
// did not issue it.
func NewNonceManager(secret []byte, ttl time.Duration, maxTracked int) (*NonceManager, error) {
	if len(secret) < MinNonceSecretLen {
		return nil, fmt.Errorf("new nonce manager: secret is %d bytes, need at least %d", len(secret), MinNonceSecretLen)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("new nonce manager: ttl %v is not positive", ttl)
	}
	if maxTracked < 1 {
		return nil, fmt.Errorf("new nonce manager: max tracked %d is not positive", maxTracked)
	}
	key := append([]byte(nil), secret...)
	// Shard count: a power of two up to 64, keeping at least 64 entries
	// per shard so that eviction stays close to global oldest-first.
	nShards := 1
	for nShards < 64 && maxTracked/(nShards*2) >= 64 {
		nShards *= 2
	}
	m := &NonceManager{
		ttl:    int64(ttl),
		shards: make([]nonceShard, nShards),
		mask:   uint32(nShards - 1),
	}
	for i := range m.shards {
		m.shards[i].limit = maxTracked / nShards
		m.shards[i].entries = make(map[[nonceMACLen]byte]nonceEntry)
	}
	m.pool.New = func() any {
		return &macState{mac: hmac.New(sha256.New, key), msg: make([]byte, 0, 128)}
	}
	return m, nil
}

// Issue returns a new nonce bound to boundTo (the client's source IP,
// without port: ports change under NAT and between TCP connections).
func (m *NonceManager) Issue(now time.Time, boundTo string) string {
	m.noteEpoch(now)
	st := m.pool.Get().(*macState)
	defer m.put(st)
	binary.BigEndian.PutUint64(st.raw[:nonceTSLen], uint64(now.UnixNano()))
	// crypto/rand.Read never fails; it crashes the process instead.
	_, _ = rand.Read(st.raw[nonceTSLen:nonceBodyLen])
	copy(st.raw[nonceBodyLen:], st.compute(boundTo))
	base64.RawURLEncoding.Encode(st.enc[:], st.raw[:])
	return string(st.enc[:])
}

// Check validates nonce for a request from boundTo with nonce count nc
// (see ParseNC) and, when it is OK, records nc so that it cannot be used
// again. Call it before Verify; only NonceOK allows verification.
func (m *NonceManager) Check(nonce string, nc uint32, now time.Time, boundTo string) NonceResult {
	m.noteEpoch(now)
	if len(nonce) != nonceLen {
		return NonceInvalid
	}
	st := m.pool.Get().(*macState)
	defer m.put(st)
	copy(st.enc[:], nonce)
	n, err := base64.RawURLEncoding.Decode(st.raw[:], st.enc[:])
	if err != nil || n != nonceRawLen {
		return NonceInvalid
	}
	if !hmac.Equal(st.raw[nonceBodyLen:], st.compute(boundTo)) {
		return NonceInvalid
	}
	if nc == 0 {
		return NonceInvalid
	}
	ts := int64(binary.BigEndian.Uint64(st.raw[:nonceTSLen]))
	nowNS := now.UnixNano()
	if age := nowNS - ts; age >= m.ttl || age < -int64(maxClockSkew) {
		return NonceStale
	}
	var key [nonceMACLen]byte
	copy(key[:], st.raw[nonceBodyLen:])
	sh := &m.shards[binary.LittleEndian.Uint32(key[:4])&m.mask]
	return sh.check(key, ts, nc, nowNS, m.ttl, m.epoch.Load())
}

// Tracked returns how many nonces are tracked, for metrics.
func (m *NonceManager) Tracked() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += len(sh.entries)
		sh.mu.Unlock()
	}
	return n
}

// noteEpoch records the first time the manager is used. A nonce stamped
// earlier was issued before this manager existed (a restart with the same
// secret): its nonce count history is unknown, so it is stale, not fresh.
func (m *NonceManager) noteEpoch(now time.Time) {
	if m.epoch.Load() == 0 {
		m.epoch.CompareAndSwap(0, now.UnixNano())
	}
}

func (m *NonceManager) put(st *macState) {
	if cap(st.msg) > 1024 { // do not keep a buffer grown by a huge boundTo
		st.msg = make([]byte, 0, 128)
	}
	m.pool.Put(st)
}

// compute returns the truncated MAC of st.raw's body and boundTo.
func (st *macState) compute(boundTo string) []byte {
	st.msg = append(append(st.msg[:0], st.raw[:nonceBodyLen]...), boundTo...)
	st.mac.Reset()
	st.mac.Write(st.msg)
	return st.mac.Sum(st.sum[:0])[:nonceMACLen]
}

// ParseNC parses a nonce count: exactly 8 hexadecimal digits (RFC 7616).
func ParseNC(s string) (uint32, error) {
	if len(s) != 8 {
		return 0, fmt.Errorf("nonce count %q is not 8 hex digits", clip(s))
	}
	var v uint32
	for i := 0; i < len(s); i++ {
		ch := s[i]
		var d byte
		switch {
		case '0' <= ch && ch <= '9':
			d = ch - '0'
		case 'a' <= ch && ch <= 'f':
			d = ch - 'a' + 10
		case 'A' <= ch && ch <= 'F':
			d = ch - 'A' + 10
		default:
			return 0, fmt.Errorf("nonce count %q is not hexadecimal", s)
		}
		v = v<<4 | uint32(d)
	}
	return v, nil
}
