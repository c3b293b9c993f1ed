// Package auth is the SIP digest authentication core and the password
// policy: parsing Digest credentials, computing and checking responses
// (RFC 7616/8760 SHA-256, RFC 2617 MD5, qop=auth only), rendering
// challenges, issuing and checking nonces, and checking and generating
// secrets. It does no I/O and imports no SIP stack, so every decision can
// be tested with fixed inputs and fixed times.
//
// A request is authenticated in this order:
//
//	c, err := auth.ParseCredentials(hdr)            // malformed: 400 or drop
//	nc, _ := auth.ParseNC(c.NC)
//	switch nonces.Check(c.Nonce, nc, now, srcIP) {   // before any lookup
//	case auth.NonceStale:                            // challenge, stale=true
//	case auth.NonceOK:
//		ha1, known := lookup(c.Username, c.Algorithm)
//		if !known {
//			ha1 = auth.FakeHA1(c.Algorithm, c.Username, realm, key)
//		}
//		ok := auth.Verify(c, method, ha1) && known
//	default:                                         // invalid or replay: fail
//	}
//
// # Why nonces are bound to the source address
//
// A nonce is base64url(time || random || HMAC(secret, time || random ||
// address)). Nothing is stored when it is issued, so an unauthenticated
// flood of REGISTERs costs no memory. Mixing the client's address into the
// MAC means a nonce (and any response computed with it) captured on one
// network path is useless from another address: replaying a sniffed
// REGISTER from elsewhere fails even inside the nonce's lifetime. Bind to
// the transport peer's IP, never to anything a SIP header claims, and not
// to the port, which NAT and new TCP connections change.
//
// # Why unknown users get a fake HA1
//
// Answering an unknown user differently from a wrong password, in status,
// headers or time, tells an attacker which extensions exist (what
// SIPVicious's svwar looks for). FakeHA1 gives every unknown user a stable
// HA1 derived with HMAC from a server key, so the unknown case runs the
// same hash and comparison as the known one and fails the same way.
//
// # Why a nonce that is not tracked is stale, never fresh
//
// Replay protection needs the highest nonce count seen for each nonce in
// use, and that table must be bounded. If dropping an entry let the nonce
// start over, an attacker could fill the table with its own nonces and
// then replay a captured request. So each shard remembers the issue time
// of the newest entry it ever dropped, and the manager the time it was
// first used (a restart with the same secret forgets all counts). An
// untracked nonce issued at or before those times is answered stale:
// the client re-challenges with stale=true and retries transparently,
// which costs one round trip and never opens a replay.
package auth
