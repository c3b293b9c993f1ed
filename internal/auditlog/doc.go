// Package auditlog is the model of Veilig's tamper-evident audit log: the
// entry, how each entry is chained to the one before it, signed
// checkpoints of the chain's head, and the verifier that finds the first
// entry that was edited, removed, inserted or reordered.
//
// Storage is not here. A store appends by calling Next inside the same
// transaction as the change it records (so a change whose entry cannot be
// written does not happen), and Verify reads the entries back through a
// Source, an iterator in Seq order. The package does no I/O.
//
// # Hash encoding
//
// Entry n's Hash is SHA-256 over this byte string, in this order:
//
//	field("veilig/auditlog/v1")           domain separation and version
//	uint64(Seq)                           8 bytes, big-endian
//	int64(Time in Unix microseconds, UTC) 8 bytes, big-endian, two's complement
//	field(Actor) field(Role) field(Channel) field(Source)
//	field(Action) field(Target)
//	field(Before) field(After)            the JSON bytes exactly as stored
//	PrevHash                              32 bytes
//
// where field(b) is len(b) as a 4-byte big-endian unsigned integer followed
// by the bytes of b. Every variable-length value carries its length, so no
// two different entries have the same encoding (moving a byte from Actor to
// Role changes both lengths). Entry 1's PrevHash is 32 zero bytes. Time is
// hashed at microsecond precision because that is what SQL timestamps keep;
// Next truncates it so the stored value and the hashed value agree.
//
// Before and After are hashed as the exact bytes Next produced (compact
// JSON). A store must keep them byte for byte (TEXT or BLOB, not a JSON
// type that reformats, such as PostgreSQL's jsonb), or every entry will
// fail verification.
//
// # What the chain proves, and what needs a checkpoint
//
// The chain is unkeyed on purpose: anyone with a copy can verify it. It
// proves that the entries form one unbroken sequence, so an edited,
// missing, inserted or reordered entry is found. It cannot show that the
// newest entries were cut off, nor that someone rewrote the whole chain
// from some point on, since both leave a consistent chain. A Checkpoint
// closes that gap: the server signs (count, head hash) with a key derived
// from the data key and ships the signed note elsewhere (events, SIEM).
// Verify given a checkpoint fails when the log is shorter than the
// checkpoint's count or when the entry at that count has another hash.
package auditlog
