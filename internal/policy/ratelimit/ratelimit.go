// Package ratelimit holds the per-source token buckets and connection caps
// of the SIP edge, and the global cap on unauthenticated work. It decides;
// the edge drops. Time is passed in, memory is bounded, and a zero Guard
// (or a zero Limiter inside it) refuses everything.
package ratelimit

import (
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Kind names a limit, for counters, alerts and explanations.
type Kind int

// The limits a Guard enforces.
const (
	Messages Kind = iota
	Transactions
	GlobalUnauthenticated
	Handshakes
	Conns
	AccountTransactions
	numKinds
)

var kindNames = [numKinds]string{"messages", "transactions", "global_unauthenticated", "handshakes", "conns", "account_transactions"}

func (k Kind) String() string {
	if k < 0 || k >= numKinds {
		return "unknown"
	}
	return kindNames[k]
}

// Guard applies the limits of one Config. Known says whether a source has
// authenticated before; the caller knows that, the Guard only applies the
// matching limit.
type Guard struct {
	cfg     Config
	msgs    [2]Limiter[netip.Addr] // [unknown, known]
	txs     [2]Limiter[netip.Addr]
	hs      [2]Limiter[netip.Addr]
	global  *rate.Limiter
	acct    Limiter[AccountKey]
	conns   Counter[netip.Addr]
	dropped [numKinds]atomic.Uint64
}

// New builds a Guard from a validated Config.
func New(cfg Config) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Guard{cfg: cfg}
	set := func(l *[2]Limiter[netip.Addr], unknown, known Bucket) {
		l[0].Rate, l[0].Burst, l[0].Size = unknown.Rate, unknown.Burst, cfg.MaxKeys
		l[1].Rate, l[1].Burst, l[1].Size = known.Rate, known.Burst, cfg.MaxKeys
	}
	set(&g.msgs, cfg.Messages, cfg.MessagesKnown)
	set(&g.txs, cfg.Transactions, cfg.TransactionsKnown)
	set(&g.hs, cfg.Handshakes, cfg.HandshakesKnown)
	g.global = rate.NewLimiter(rate.Limit(cfg.GlobalUnauthenticated.Rate), cfg.GlobalUnauthenticated.Burst)
	g.acct.Rate, g.acct.Burst, g.acct.Size = cfg.AccountTransactions.Rate, cfg.AccountTransactions.Burst, cfg.MaxKeys
	g.conns.Size = cfg.MaxKeys
	return g, nil
}

func idx(known bool) int {
	if known {
		return 1
	}
	return 0
}

func (g *Guard) count(ok bool, k Kind) bool {
	if !ok {
		g.dropped[k].Add(1)
	}
	return ok
}

// AllowMessage spends one message token of src.
func (g *Guard) AllowMessage(src netip.Addr, known bool, now time.Time) bool {
	return g.count(g.msgs[idx(known)].Allow(src, now), Messages)
}

// AllowTransaction spends one new-transaction token of src and, for an
// unknown source, one of the global unauthenticated bucket. It returns the
// limit that refused, meaningful only when ok is false.
func (g *Guard) AllowTransaction(src netip.Addr, known bool, now time.Time) (ok bool, refused Kind) {
	if !g.txs[idx(known)].Allow(src, now) {
		g.dropped[Transactions].Add(1)
		return false, Transactions
	}
	if !known && (g.global == nil || !g.global.AllowN(now, 1)) {
		g.dropped[GlobalUnauthenticated].Add(1)
		return false, GlobalUnauthenticated
	}
	return true, 0
}

// AccountKey names the per-account bucket of one source: the account a
// request claims and its method.
type AccountKey struct {
	Source  netip.Addr
	Account string
	Method  string
}

// AllowAccount spends one new-transaction token of the account and method
// at src. A known source's flood is cut per account and method, so one
// looping or hostile device behind an office NAT does not use up the
// source's budget that the other agents there need.
func (g *Guard) AllowAccount(src netip.Addr, account, method string, now time.Time) bool {
	return g.count(g.acct.Allow(AccountKey{Source: src, Account: account, Method: method}, now), AccountTransactions)
}

// AllowHandshake spends one TLS handshake token of src.
func (g *Guard) AllowHandshake(src netip.Addr, known bool, now time.Time) bool {
	return g.count(g.hs[idx(known)].Allow(src, now), Handshakes)
}

// ConnOpened takes a connection slot for src; false means close it.
func (g *Guard) ConnOpened(src netip.Addr, known bool) bool {
	max := g.cfg.Conns
	if known {
		max = g.cfg.ConnsKnown
	}
	return g.count(g.conns.Acquire(src, max), Conns)
}

// ConnClosed gives back a slot taken by a successful ConnOpened.
func (g *Guard) ConnClosed(src netip.Addr) { g.conns.Release(src) }

// Stats counts what the limits refused, by Kind, since start.
type Stats struct {
	Dropped [numKinds]uint64
}

// Get returns the count for one kind.
func (s Stats) Get(k Kind) uint64 {
	if k < 0 || k >= numKinds {
		return 0
	}
	return s.Dropped[k]
}

// Stats returns the refusal counters.
func (g *Guard) Stats() Stats {
	var s Stats
	for i := range g.dropped {
		s.Dropped[i] = g.dropped[i].Load()
	}
	return s
}

// Limited describes one limit that src has currently exhausted.
type Limited struct {
	Kind Kind
	// Refill is how long until one token is back.
	Refill time.Duration
	// Open and Max describe the connection cap (Kind Conns only).
	Open, Max int
}

// State reports the limits src has exhausted at now, for explanations.
// It spends nothing.
func (g *Guard) State(src netip.Addr, known bool, now time.Time) []Limited {
	var out []Limited
	i := idx(known)
	check := func(k Kind, l *Limiter[netip.Addr]) {
		if t, seen := l.Tokens(src, now); seen && t < 1 {
			out = append(out, Limited{Kind: k, Refill: time.Duration((1 - t) / l.Rate * float64(time.Second))})
		}
	}
	check(Messages, &g.msgs[i])
	check(Transactions, &g.txs[i])
	check(Handshakes, &g.hs[i])
	if !known && g.global != nil {
		if t := g.global.TokensAt(now); t < 1 {
			out = append(out, Limited{Kind: GlobalUnauthenticated, Refill: time.Duration((1 - t) / g.cfg.GlobalUnauthenticated.Rate * float64(time.Second))})
		}
	}
	max := g.cfg.Conns
	if known {
		max = g.cfg.ConnsKnown
	}
	if n := g.conns.Count(src); n >= max {
		out = append(out, Limited{Kind: Conns, Open: n, Max: max})
	}
	return out
}
