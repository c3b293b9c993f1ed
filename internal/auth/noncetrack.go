package auth

import "sync"

// nonceShard tracks the highest accepted nonce count of the nonces in use
// whose MAC falls in this shard. Entries are kept in a FIFO ring in the
// order they were first used; when the shard is full the front goes first.
//
// Eviction must never make a nonce fresh again, or an attacker could flood
// the table and then replay a captured request. So the shard keeps a
// watermark: the newest issue time of any entry it dropped. An untracked
// nonce issued at or before the watermark might have been dropped and is
// answered stale; only nonces issued after it can start a new entry.
// Entries are first used shortly after issue, so FIFO order is close to
// issue order and the watermark stays close to the truly dropped entries.
type nonceShard struct {
	mu        sync.Mutex
	entries   map[[nonceMACLen]byte]nonceEntry
	ring      [][nonceMACLen]byte // FIFO of keys; len grows up to limit
	head, n   int
	limit     int
	watermark int64 // Unix ns; issue time of the newest dropped entry
}

type nonceEntry struct {
	issued int64  // Unix ns
	nc     uint32 // highest accepted nonce count
}

func (s *nonceShard) check(key [nonceMACLen]byte, issued int64, nc uint32, now, ttl, epoch int64) NonceResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[key]; ok {
		if nc <= e.nc {
			return NonceReplay
		}
		e.nc = nc
		s.entries[key] = e
		return NonceOK
	}
	if issued <= s.watermark || issued < epoch {
		return NonceStale
	}
	s.dropFront(now, ttl)
	s.push(key)
	s.entries[key] = nonceEntry{issued: issued, nc: nc}
	return NonceOK
}

// dropFront removes expired entries from the front of the ring, and the
// oldest live ones while the shard is full.
func (s *nonceShard) dropFront(now, ttl int64) {
	for s.n > 0 {
		k := s.ring[s.head]
		e := s.entries[k]
		if s.n < s.limit && now-e.issued < ttl {
			return
		}
		// Raise the watermark even for expired entries: a caller may pass
		// a slightly earlier now later on, under which e is live again.
		s.watermark = max(s.watermark, e.issued)
		delete(s.entries, k)
		s.head++
		if s.head == len(s.ring) {
			s.head = 0
		}
		s.n--
	}
}

// push appends key to the ring, growing it (up to limit) only when full,
// so memory follows use rather than the configured maximum.
func (s *nonceShard) push(key [nonceMACLen]byte) {
	if s.n == len(s.ring) {
		size := min(s.limit, max(16, 2*len(s.ring)))
		grown := make([][nonceMACLen]byte, size)
		for i := 0; i < s.n; i++ {
			grown[i] = s.ring[(s.head+i)%len(s.ring)]
		}
		s.ring, s.head = grown, 0
	}
	s.ring[(s.head+s.n)%len(s.ring)] = key
	s.n++
}
