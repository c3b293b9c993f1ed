package ratelimit

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// Limiter is a keyed token bucket for policing per-address outliers,
// after tailscale's util/limiter. Memory is bounded by an LRU of recently
// seen keys: forgetting a key hands it a full bucket next time, which gives
// an attacker nothing a fresh address would not.
//
// The zero value rejects every key, so a limiter that was never configured
// fails closed. Set the fields before first use and do not change them
// afterwards. A Limiter is safe for concurrent use.
type Limiter[K comparable] struct {
	// Rate is the refill rate, in tokens per second.
	Rate float64
	// Burst is the bucket size: how many events a quiet key may send at once.
	Burst int
	// Size is how many keys are remembered.
	Size int

	mu  sync.Mutex
	lru *simplelru.LRU[K, *rate.Limiter]
}

// Allow spends one token of key's bucket at now and reports whether there
// was one. Time comes in as an argument so that tests never sleep.
func (l *Limiter[K]) Allow(key K, now time.Time) bool {
	if l.Rate <= 0 || l.Burst <= 0 || l.Size <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lru == nil {
		l.lru, _ = simplelru.NewLRU[K, *rate.Limiter](l.Size, nil)
	}
	b, ok := l.lru.Get(key)
	if !ok {
		b = rate.NewLimiter(rate.Limit(l.Rate), l.Burst)
		l.lru.Add(key, b)
	}
	return b.AllowN(now, 1)
}

// Tokens reports the tokens key has at now without spending one or
// refreshing its place in the LRU; seen is false for a key not remembered
// (which would get a full bucket).
func (l *Limiter[K]) Tokens(key K, now time.Time) (tokens float64, seen bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lru == nil {
		return 0, false
	}
	b, ok := l.lru.Peek(key)
	if !ok {
		return 0, false
	}
	return b.TokensAt(now), true
}

// Len reports how many keys the limiter remembers.
func (l *Limiter[K]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lru == nil {
		return 0
	}
	return l.lru.Len()
}

// Counter counts concurrent holders (open connections) per key. Keys at
// zero are forgotten, so memory follows what is really open; Size caps the
// number of keys with something open and, like a zero value, refuses when
// reached. A Counter is safe for concurrent use.
type Counter[K comparable] struct {
	// Size is how many distinct keys may hold something at once.
	Size int

	mu sync.Mutex
	m  map[K]int
}

// Acquire takes one slot for key if it holds fewer than max.
func (c *Counter[K]) Acquire(key K, max int) bool {
	if max <= 0 || c.Size <= 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[K]int)
	}
	n, ok := c.m[key]
	if !ok && len(c.m) >= c.Size {
		return false
	}
	if n >= max {
		return false
	}
	c.m[key] = n + 1
	return true
}

// Release gives back a slot taken by Acquire; releasing a key that holds
// nothing does nothing.
func (c *Counter[K]) Release(key K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch n := c.m[key]; {
	case n > 1:
		c.m[key] = n - 1
	case n == 1:
		delete(c.m, key)
	}
}

// Count reports how many slots key holds.
func (c *Counter[K]) Count(key K) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}
