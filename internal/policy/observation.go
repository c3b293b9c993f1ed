package policy

import "net/netip"

// Observation is something the edge saw, reported to Engine.Observe. The
// set is closed: AuthFailure, AuthSuccess, ScannerSeen. Source is always
// the socket's peer address, never anything a header claims.
type Observation interface{ observation() }

// AuthFailure is a failed digest authentication: wrong response, stale or
// replayed nonce, unknown user, malformed credentials.
type AuthFailure struct {
	Source  netip.Addr
	Account string
	Reason  string
}

// AuthSuccess is a digest authentication that passed.
type AuthSuccess struct {
	Source  netip.Addr
	Account string
}

// ScannerSeen is a request that matched a scanner fingerprint.
type ScannerSeen struct {
	Source      netip.Addr
	Fingerprint string
}

func (AuthFailure) observation() {}
func (AuthSuccess) observation() {}
func (ScannerSeen) observation() {}
