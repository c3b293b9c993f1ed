// Package tollfraud is the toll-fraud guard: the pure decision core that
// every outbound call to a trunk passes before it is sent.
//
// A hijacked extension or trunk is worth money to an attacker only if it
// can place calls to numbers that pay them (international revenue share
// fraud): premium-rate ranges, satellite and international-network
// ranges, and high-cost countries, in volume, at night. The guard answers
// each of those with one rule: it classifies the dialled number
// (Classify, with github.com/nyaruka/phonenumbers), refuses destinations
// no class of service may reach unless an exact prefix is allowed, applies
// the extension's class of service and the tenant's business hours, and
// bounds concurrent calls, call rate, call length and daily spend per
// extension and per trunk. Volume against a learned per-hour-of-week
// baseline and first calls to a new country raise alerts; crossing a
// budget or the volume baseline trips the extension (suspended until an
// admin lifts it, or alert only).
//
// Like the rest of policy, the package does no I/O and reads no clock:
// the caller passes now into Decide, CallAnswered, CallEnded and Tick,
// emits the events it gets back, sends the BYEs it is asked to, and
// persists records and suspensions. Tests drive it with a fake clock.
//
// The caller's side of the contract:
//   - Route Decision.Destination.E164, never the raw dialled string, so
//     that what was checked is what is dialled.
//   - Decide admits an allowed call at once; report CallEnded for every
//     Decision.Call, whether or not it connected, or it keeps counting.
//   - End the call at Decision.MaxDuration (when non-zero), and call Tick
//     every few seconds for the ends and alerts that depend on other calls.
//   - Replay suspensions with Suspend and a few weeks of records with
//     LearnBaseline after a restart.
package tollfraud
