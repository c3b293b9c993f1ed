package ratelimit

import (
	"errors"
	"fmt"
)

// Bucket is one token bucket's shape.
type Bucket struct {
	// Rate is the sustained rate, per second.
	Rate float64
	// Burst is how many may come at once after a quiet spell.
	Burst int
}

func (b Bucket) validate(name string) error {
	if b.Rate <= 0 || b.Burst < 1 {
		return fmt.Errorf("%s: rate and burst must be positive (rate %v, burst %d)", name, b.Rate, b.Burst)
	}
	return nil
}

// Config sets the limits. Unknown sources are those that have never
// authenticated; known ones have, and get room for a whole contact centre
// behind one NAT address.
type Config struct {
	Messages      Bucket // every message from an unknown source
	MessagesKnown Bucket // every message from a known source
	// Transactions and TransactionsKnown bound new transactions (requests
	// outside a dialog) per source.
	Transactions      Bucket
	TransactionsKnown Bucket
	// GlobalUnauthenticated bounds new transactions from all unknown
	// sources together, so that a flood from many addresses cannot take
	// the work that known sources need.
	GlobalUnauthenticated Bucket
	// AccountTransactions bounds new transactions per account and method
	// from one known source (see Guard.AllowAccount).
	AccountTransactions Bucket
	Handshakes          Bucket // TLS handshakes per unknown source
	HandshakesKnown     Bucket // TLS handshakes per known source
	// Conns and ConnsKnown cap concurrent connections per source.
	Conns      int
	ConnsKnown int
	// MaxKeys bounds how many sources each limiter remembers.
	MaxKeys int
}

// Default returns limits sized for a contact centre: a few hundred agents
// behind one NAT address re-registering at once pass as a known source,
// and an unknown one gets enough to register its first device (after which
// it is known).
func Default() Config {
	return Config{
		Messages:              Bucket{Rate: 200, Burst: 400},
		MessagesKnown:         Bucket{Rate: 2000, Burst: 4000},
		Transactions:          Bucket{Rate: 100, Burst: 200},
		TransactionsKnown:     Bucket{Rate: 1000, Burst: 2000},
		GlobalUnauthenticated: Bucket{Rate: 2000, Burst: 4000},
		AccountTransactions:   Bucket{Rate: 50, Burst: 200},
		Handshakes:            Bucket{Rate: 50, Burst: 100},
		HandshakesKnown:       Bucket{Rate: 500, Burst: 1000},
		Conns:                 256,
		ConnsKnown:            5000,
		MaxKeys:               100_000,
	}
}

// Validate rejects limits that cannot work.
func (c Config) Validate() error {
	errs := []error{
		c.Messages.validate("messages"),
		c.MessagesKnown.validate("messages_known"),
		c.Transactions.validate("transactions"),
		c.TransactionsKnown.validate("transactions_known"),
		c.GlobalUnauthenticated.validate("global_unauthenticated"),
		c.AccountTransactions.validate("account_transactions"),
		c.Handshakes.validate("handshakes"),
		c.HandshakesKnown.validate("handshakes_known"),
	}
	if c.Conns < 1 || c.ConnsKnown < 1 {
		errs = append(errs, fmt.Errorf("conns: must be positive (conns %d, conns_known %d)", c.Conns, c.ConnsKnown))
	}
	if c.MaxKeys < 1 {
		errs = append(errs, fmt.Errorf("max_keys: must be positive, got %d", c.MaxKeys))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ratelimit: %w", err)
	}
	return nil
}
