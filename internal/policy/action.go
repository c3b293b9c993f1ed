package policy

import (
	"net/netip"
	"time"
)

// Action is something the edge must do because of an observation: ban a
// source, lock an account (both to apply and persist), or raise an alert.
// The set is closed: BanSource, LockAccount, Alert.
type Action interface{ action() }

// BanSource bans Addr until Until. Cause lists the events behind it.
type BanSource struct {
	Addr   netip.Addr
	Until  time.Time
	Rule   string
	Reason string
	Cause  []string
}

// LockAccount locks Account against unknown sources until Until or, with
// Source set, for that source alone.
type LockAccount struct {
	Account string
	Source  netip.Addr
	Until   time.Time
	Level   int
	Reason  string
}

// Alert is a deduplicated security alert: one per (Type, Source, Account)
// and alert window, however many times its cause repeats.
type Alert struct {
	Type    string
	Source  string
	Account string
	Message string
	Fields  map[string]string
}

// Alert types.
const (
	AlertBruteforce    = "auth.bruteforce"
	AlertBanAdded      = "ban.added"
	AlertAccountLocked = "account.locked"
	AlertScanner       = "scanner.detected"
	AlertFlood         = "flood.detected"
	// AlertFloodConnections: the edge's connection limit stayed under
	// pressure (evicting or refusing) for Config.ConnFloodAfter.
	AlertFloodConnections = "flood.connections"
)

func (BanSource) action()   {}
func (LockAccount) action() {}
func (Alert) action()       {}
