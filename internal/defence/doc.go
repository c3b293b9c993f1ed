// Package defence carries out what the pure decision cores decide: the
// edge guard (policy engine: bans, lockouts, rate limits, scanner drop) and
// the toll-fraud guard's suspensions. Each keeps its state in memory for
// the SIP path, persists what must outlive a restart as typed actions
// (never by reading event fields), restores it at start, and follows
// changes made elsewhere through the store's change feed.
package defence
