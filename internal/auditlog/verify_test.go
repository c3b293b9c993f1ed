package auditlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 9, 30, 0, 123456789, time.UTC)

// chain builds a valid log of n entries the way a store would: each one
// through Next with the previous one.
func chain(t *testing.T, n int) []Entry {
	t.Helper()
	var log []Entry
	for i := range n {
		var prev *Entry
		if i > 0 {
			prev = &log[i-1]
		}
		e, err := Next(prev, Entry{
			Time:    t0.Add(time.Duration(i) * time.Minute),
			Actor:   "anna",
			Role:    "admin",
			Channel: ChannelPanel,
			Source:  "127.0.0.2",
			Action:  "extension.set",
			Target:  fmt.Sprintf("10%02d", i),
			Before:  json.RawMessage(fmt.Sprintf(`{"name": "Agent %d", "international": false}`, i)),
			After:   json.RawMessage(fmt.Sprintf(`{"name": "Agent %d", "international": true}`, i)),
		})
		if err != nil {
			t.Fatalf("Next %d: %v", i, err)
		}
		log = append(log, e)
	}
	return log
}

// rechain recomputes PrevHash and Hash from entry i on, as an attacker
// who knows the (public) encoding would after editing entry i.
func rechain(log []Entry, i int) {
	for ; i < len(log); i++ {
		if i > 0 {
			log[i].PrevHash = log[i-1].Hash
		}
		log[i].Hash = log[i].ComputeHash()
	}
}

func testSigner(t *testing.T, fill byte) *Signer {
	t.Helper()
	s, err := NewSigner(bytes.Repeat([]byte{fill}, SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signedCheckpoint takes a checkpoint of log and round-trips it through
// the signed-note form, as `auditlog verify --checkpoint FILE` would.
func signedCheckpoint(t *testing.T, s *Signer, log []Entry) *Checkpoint {
	t.Helper()
	head, err := Verify(Entries(log), nil)
	if err != nil {
		t.Fatalf("verify before checkpoint: %v", err)
	}
	msg, err := s.SignCheckpoint(head.Checkpoint(t0.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := OpenCheckpoint(msg, s.Verifier())
	if err != nil {
		t.Fatalf("OpenCheckpoint: %v", err)
	}
	return cp
}

func wantVerifyError(t *testing.T, err error, kind error, seq uint64) {
	t.Helper()
	var ve *VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("Verify error = %v, want a *VerifyError of kind %v", err, kind)
	}
	if !errors.Is(err, kind) {
		t.Errorf("Verify error kind = %v, want %v (%v)", ve.Kind, kind, err)
	}
	if ve.Seq != seq {
		t.Errorf("Verify names entry %d, want %d (%v)", ve.Seq, seq, err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("entry %d:", seq)) {
		t.Errorf("message %q does not name entry %d", err, seq)
	}
}

func TestVerifyIntactLog(t *testing.T) {
	log := chain(t, 25)
	head, err := Verify(Entries(log), nil)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if head.Count != 25 || head.Hash != log[24].Hash {
		t.Errorf("head = %d %s, want 25 %s", head.Count, head.Hash, log[24].Hash)
	}
	cp := signedCheckpoint(t, testSigner(t, 7), log)
	if _, err := Verify(Entries(log), cp); err != nil {
		t.Errorf("Verify with its own checkpoint: %v", err)
	}
	// A log that grew after the checkpoint still verifies against it.
	grown := append(slices.Clone(log), chain(t, 0)...)
	e, err := Next(&grown[len(grown)-1], Entry{Time: t0.Add(2 * time.Hour), Actor: "system", Channel: ChannelSystem, Action: "ban.expire"})
	if err != nil {
		t.Fatal(err)
	}
	grown = append(grown, e)
	if head, err := Verify(Entries(grown), cp); err != nil || head.Count != 26 {
		t.Errorf("grown log against older checkpoint: head %d, err %v", head.Count, err)
	}
	if _, err := Verify(Entries(nil), nil); err != nil {
		t.Errorf("empty log: %v", err)
	}
}

func TestVerifyDetectsEditedField(t *testing.T) {
	edits := map[string]func(e *Entry){
		"actor":    func(e *Entry) { e.Actor = "mallory" },
		"role":     func(e *Entry) { e.Role = "owner" },
		"channel":  func(e *Entry) { e.Channel = ChannelCLI },
		"source":   func(e *Entry) { e.Source = "127.0.0.66" },
		"action":   func(e *Entry) { e.Action = "extension.get" },
		"target":   func(e *Entry) { e.Target = "9999" },
		"before":   func(e *Entry) { e.Before = json.RawMessage(`{"name":"Agent 7","international":true}`) },
		"after":    func(e *Entry) { e.After = nil },
		"time":     func(e *Entry) { e.Time = e.Time.Add(time.Microsecond) },
		"hash":     func(e *Entry) { e.Hash[0] ^= 1 },
		"shift":    func(e *Entry) { e.Actor, e.Role = "annaa", "dmin" }, // same bytes, moved across a field boundary
		"reformat": func(e *Entry) { e.After = json.RawMessage(`{"name": "Agent 7", "international": true}`) },
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			log := chain(t, 12)
			edit(&log[7])
			_, err := Verify(Entries(log), nil)
			wantVerifyError(t, err, ErrEdited, 8)
		})
	}
}

func TestVerifyDetectsEditWithRecomputedChain(t *testing.T) {
	// Whoever can write the store can also recompute every hash after
	// an edit. The chain alone then looks fine; a checkpoint taken
	// before the edit does not.
	s := testSigner(t, 7)
	log := chain(t, 20)
	cp := signedCheckpoint(t, s, log)
	log[4].Target = "rewritten"
	rechain(log, 4)
	if _, err := Verify(Entries(log), nil); err != nil {
		t.Fatalf("recomputed chain without checkpoint: %v (the chain alone cannot see this)", err)
	}
	_, err := Verify(Entries(log), cp)
	wantVerifyError(t, err, ErrCheckpointMismatch, 20)
}

func TestVerifyDetectsRecomputedHashOfOneEntry(t *testing.T) {
	log := chain(t, 10)
	log[3].Target = "rewritten"
	log[3].Hash = log[3].ComputeHash()
	_, err := Verify(Entries(log), nil)
	wantVerifyError(t, err, ErrBrokenChain, 5)
}

func TestVerifyDetectsDeletedEntry(t *testing.T) {
	log := chain(t, 10)
	log = slices.Delete(log, 5, 6) // entry 6
	_, err := Verify(Entries(log), nil)
	wantVerifyError(t, err, ErrSequence, 6)

	// Renumbering the later entries to close the gap breaks the chain.
	log = chain(t, 10)
	log = slices.Delete(log, 5, 6)
	for i := 5; i < len(log); i++ {
		log[i].Seq--
	}
	_, err = Verify(Entries(log), nil)
	wantVerifyError(t, err, ErrBrokenChain, 6)

	// Deleting the first entry.
	log = chain(t, 10)[1:]
	_, err = Verify(Entries(log), nil)
	wantVerifyError(t, err, ErrSequence, 1)
}

func TestVerifyDeletedTailNeedsCheckpoint(t *testing.T) {
	s := testSigner(t, 7)
	log := chain(t, 30)
	cp := signedCheckpoint(t, s, log)
	cut := log[:20]

	head, err := Verify(Entries(cut), nil)
	if err != nil {
		t.Fatalf("without a checkpoint a cut tail is a valid shorter log, got %v", err)
	}
	if head.Count != 20 {
		t.Errorf("head.Count = %d, want 20", head.Count)
	}

	_, err = Verify(Entries(cut), cp)
	wantVerifyError(t, err, ErrTruncated, 21)
	if !strings.Contains(err.Error(), "entries 21 to 30 were deleted") {
		t.Errorf("message %q does not say which entries are gone", err)
	}

	// Everything deleted.
	_, err = Verify(Entries(nil), cp)
	wantVerifyError(t, err, ErrTruncated, 1)
}

func TestVerifyDetectsReorder(t *testing.T) {
	// Rows read back in the order they were stored, two of them swapped.
	log := chain(t, 10)
	log[3], log[4] = log[4], log[3]
	_, err := Verify(Entries(log), nil)
	wantVerifyError(t, err, ErrSequence, 4)

	// Swapping their seq numbers too, so ORDER BY seq yields the swap.
	log = chain(t, 10)
	log[3], log[4] = log[4], log[3]
	log[3].Seq, log[4].Seq = 4, 5
	_, err = Verify(Entries(log), nil)
	wantVerifyError(t, err, ErrBrokenChain, 4)
}

func TestVerifyDetectsInsertedEntry(t *testing.T) {
	forged := func(prev *Entry) Entry {
		e, err := Next(prev, Entry{Time: prev.Time.Add(time.Second), Actor: "mallory", Role: "owner", Channel: ChannelAPI, Action: "admin.add", Target: "mallory"})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// A well-formed entry chained on entry 5, slotted in before entry 6
	// with the later entries renumbered.
	log := chain(t, 10)
	ins := forged(&log[4])
	log = slices.Insert(log, 5, ins)
	for i := 6; i < len(log); i++ {
		log[i].Seq++
	}
	_, err := Verify(Entries(log), nil)
	wantVerifyError(t, err, ErrBrokenChain, 7)

	// The same without renumbering: two entries claim seq 6.
	log = chain(t, 10)
	log = slices.Insert(log, 5, forged(&log[4]))
	_, err = Verify(Entries(log), nil)
	wantVerifyError(t, err, ErrSequence, 6)

	// Appended at the end: the chain is fine, which is why appending
	// goes through the store's transaction, and the entry is a visible
	// entry like any other.
	log = chain(t, 10)
	log = append(log, forged(&log[9]))
	if head, err := Verify(Entries(log), nil); err != nil || head.Count != 11 {
		t.Errorf("appended entry: head %d, err %v", head.Count, err)
	}
}

func TestVerifyReportsSourceError(t *testing.T) {
	log := chain(t, 5)
	boom := errors.New("disk I/O error")
	src := func(yield func(Entry, error) bool) {
		for _, e := range log[:3] {
			if !yield(e, nil) {
				return
			}
		}
		yield(Entry{}, boom)
	}
	_, err := Verify(src, nil)
	wantVerifyError(t, err, ErrRead, 4)
	if !errors.Is(err, boom) {
		t.Errorf("error %v does not wrap the source's error", err)
	}
}

func TestVerifyStopsAtFirstBadEntry(t *testing.T) {
	log := chain(t, 10)
	log[2].Actor = "x"
	log[6].Actor = "y"
	read := 0
	src := func(yield func(Entry, error) bool) {
		for _, e := range log {
			read++
			if !yield(e, nil) {
				return
			}
		}
	}
	_, err := Verify(src, nil)
	wantVerifyError(t, err, ErrEdited, 3)
	if read != 3 {
		t.Errorf("read %d entries, want Verify to stop after the first bad one (3)", read)
	}
}
