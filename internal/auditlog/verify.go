package auditlog

import (
	"errors"
	"fmt"
	"iter"
)

// Source yields the stored entries in ascending Seq order (ORDER BY seq),
// or an error when the store cannot read them; Verify stops at the first
// error. It is what Verify needs of a store and nothing more.
type Source = iter.Seq2[Entry, error]

// Entries adapts a slice to a Source, for tests and for logs read whole.
func Entries(es []Entry) Source {
	return func(yield func(Entry, error) bool) {
		for _, e := range es {
			if !yield(e, nil) {
				return
			}
		}
	}
}

// The kinds of tampering Verify reports; test with errors.Is.
var (
	// ErrEdited: an entry's content does not match its own hash.
	ErrEdited = errors.New("entry edited")
	// ErrBrokenChain: an entry's PrevHash is not the hash of the entry
	// before it, so an entry was inserted or removed there, or the one
	// before was rewritten with its hash recomputed.
	ErrBrokenChain = errors.New("chain broken")
	// ErrSequence: the entries do not count 1, 2, 3...: one is missing,
	// duplicated or out of order.
	ErrSequence = errors.New("sequence broken")
	// ErrTruncated: the log ends before the checkpoint's count, so its
	// newest entries were deleted.
	ErrTruncated = errors.New("log truncated")
	// ErrCheckpointMismatch: the entry at the checkpoint's count has
	// another hash than the one signed, so the log was rewritten.
	ErrCheckpointMismatch = errors.New("log differs from checkpoint")
	// ErrRead: the Source failed; nothing is known about the rest.
	ErrRead = errors.New("cannot read log")
)

// VerifyError names the first bad entry and what is wrong with it.
type VerifyError struct {
	Seq    uint64 // the first entry found bad (for ErrTruncated, the first one missing)
	Kind   error  // one of the Err* kinds above
	Detail string // what was found, for a person
	Err    error  // the Source's error, for ErrRead
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("auditlog: entry %d: %v: %s", e.Seq, e.Kind, e.Detail)
}

// Unwrap exposes the kind and, for ErrRead, the Source's error.
func (e *VerifyError) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

// Head is the state of a verified log: how many entries it has and the
// hash of the last one (zero for an empty log). A signed Checkpoint is a
// Head with a time.
type Head struct {
	Count uint64
	Hash  Hash
}

// Verify reads the whole log from src and checks every entry: its Seq is
// the next one, its PrevHash is the previous entry's hash, and its Hash is
// its content's hash. Given a checkpoint (already opened with
// OpenCheckpoint, so its signature is good), it also checks that the log
// reaches the checkpoint's count and that the entry there has the signed
// hash; without one, a deleted tail cannot be seen. It returns the head
// of the log, or a *VerifyError naming the first bad entry.
func Verify(src Source, cp *Checkpoint) (Head, error) {
	var (
		head    Head
		prev    Hash
		checked bool
	)
	for e, err := range src {
		want := head.Count + 1
		if err != nil {
			return head, &VerifyError{Seq: want, Kind: ErrRead, Detail: "reading the log failed", Err: err}
		}
		switch {
		case e.Seq > want:
			return head, &VerifyError{Seq: want, Kind: ErrSequence,
				Detail: fmt.Sprintf("missing: the entry after %d is %d", head.Count, e.Seq)}
		case e.Seq < want:
			return head, &VerifyError{Seq: e.Seq, Kind: ErrSequence,
				Detail: fmt.Sprintf("out of place: found after entry %d (duplicated, inserted or reordered)", head.Count)}
		}
		if e.PrevHash != prev {
			return head, &VerifyError{Seq: e.Seq, Kind: ErrBrokenChain,
				Detail: fmt.Sprintf("prev_hash %s is not the hash of entry %d (%s): an entry was inserted or removed before it, or entry %d was rewritten",
					short(e.PrevHash), head.Count, short(prev), head.Count)}
		}
		if got := e.ComputeHash(); got != e.Hash {
			return head, &VerifyError{Seq: e.Seq, Kind: ErrEdited,
				Detail: fmt.Sprintf("content hashes to %s, stored hash is %s", short(got), short(e.Hash))}
		}
		head = Head{Count: e.Seq, Hash: e.Hash}
		prev = e.Hash
		if cp != nil && e.Seq == cp.Count {
			checked = true
			if e.Hash != cp.Hash {
				return head, &VerifyError{Seq: e.Seq, Kind: ErrCheckpointMismatch,
					Detail: fmt.Sprintf("hash %s, checkpoint of %s signed %s: the log was rewritten up to here",
						short(e.Hash), cp.Time.Format("2006-01-02 15:04:05Z07:00"), short(cp.Hash))}
			}
		}
	}
	if cp != nil && !checked {
		if cp.Count == 0 {
			if !cp.Hash.IsZero() {
				return head, &VerifyError{Seq: 0, Kind: ErrCheckpointMismatch, Detail: "checkpoint of an empty log carries a non-zero hash"}
			}
			return head, nil
		}
		return head, &VerifyError{Seq: head.Count + 1, Kind: ErrTruncated,
			Detail: fmt.Sprintf("the log ends at entry %d but a checkpoint of %s counts %d: entries %d to %d were deleted",
				head.Count, cp.Time.Format("2006-01-02 15:04:05Z07:00"), cp.Count, head.Count+1, cp.Count)}
	}
	return head, nil
}

func short(h Hash) string { return h.String()[:16] }
