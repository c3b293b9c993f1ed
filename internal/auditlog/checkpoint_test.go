package auditlog

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

func TestSignerIsDeterministic(t *testing.T) {
	a, b, c := testSigner(t, 7), testSigner(t, 7), testSigner(t, 8)
	if a.VerifierKey() != b.VerifierKey() {
		t.Errorf("same seed, different keys: %s vs %s", a.VerifierKey(), b.VerifierKey())
	}
	if a.VerifierKey() == c.VerifierKey() {
		t.Errorf("different seeds, same key %s", a.VerifierKey())
	}
	if !strings.HasPrefix(a.VerifierKey(), KeyName+"+") {
		t.Errorf("verifier key %q does not start with the key name", a.VerifierKey())
	}
	if _, err := NewSigner(make([]byte, 31)); err == nil {
		t.Error("31-byte seed accepted")
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	s := testSigner(t, 7)
	cp := Checkpoint{Count: 1234, Hash: Hash{1, 2, 3}, Time: time.Date(2026, 12, 1, 10, 0, 0, 5000, time.UTC)}
	msg, err := s.SignCheckpoint(cp)
	if err != nil {
		t.Fatal(err)
	}
	text := string(msg)
	for _, want := range []string{Origin + "\n1234\n", "time 2026-12-01T10:00:00.000005Z\n", "\n— " + KeyName + " "} {
		if !strings.Contains(text, want) {
			t.Errorf("signed note lacks %q:\n%s", want, text)
		}
	}
	// Anyone with the public key checks it with x/mod's note alone.
	v, err := note.NewVerifier(s.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenCheckpoint(msg, v)
	if err != nil {
		t.Fatalf("OpenCheckpoint: %v", err)
	}
	if got.Count != cp.Count || got.Hash != cp.Hash || !got.Time.Equal(cp.Time) {
		t.Errorf("opened %+v, want %+v", got, cp)
	}
}

func TestOpenCheckpointRejectsForgery(t *testing.T) {
	s := testSigner(t, 7)
	msg, err := s.SignCheckpoint(Checkpoint{Count: 30, Hash: Hash{9}, Time: t0})
	if err != nil {
		t.Fatal(err)
	}
	other := testSigner(t, 8)
	otherMsg, err := other.SignCheckpoint(Checkpoint{Count: 20, Hash: Hash{9}, Time: t0})
	if err != nil {
		t.Fatal(err)
	}
	// A signature line claiming our key's name and hash, with another
	// key's signature bytes.
	sigStart := bytes.LastIndex(msg, []byte("— "))
	otherSig := otherMsg[bytes.LastIndex(otherMsg, []byte(" "))+1:]
	spliced := append(append([]byte{}, msg[:bytes.LastIndex(msg, []byte(" "))+1]...), otherSig...)

	cases := map[string][]byte{
		"count lowered":         bytes.Replace(msg, []byte("\n30\n"), []byte("\n20\n"), 1),
		"signature flipped":     flipInSig(msg, sigStart),
		"other key":             otherMsg,
		"other key's sig":       spliced,
		"unsigned":              msg[:sigStart],
		"empty":                 nil,
		"oversized":             bytes.Repeat([]byte("x"), MaxCheckpointLen+1),
		"signed non-checkpoint": mustSign(t, s, "hello\n"),
	}
	for name, m := range cases {
		if _, err := OpenCheckpoint(m, s.Verifier()); !errors.Is(err, ErrBadCheckpoint) {
			t.Errorf("%s: err = %v, want ErrBadCheckpoint", name, err)
		}
	}
}

func flipInSig(msg []byte, sigStart int) []byte {
	out := bytes.Clone(msg)
	// Change a base64 character well inside the signature.
	i := len(out) - 10
	if out[i] == 'A' {
		out[i] = 'B'
	} else {
		out[i] = 'A'
	}
	_ = sigStart
	return out
}

func mustSign(t *testing.T, s *Signer, text string) []byte {
	t.Helper()
	m, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseCheckpointStrict(t *testing.T) {
	good := Checkpoint{Count: 5, Hash: Hash{1}, Time: t0}.Text()
	if _, err := parseCheckpoint(good); err != nil {
		t.Fatalf("good text: %v", err)
	}
	bad := []string{
		strings.Replace(good, Origin, "veilig/auditlog/v0", 1),
		strings.Replace(good, "\n5\n", "\n05\n", 1),
		strings.Replace(good, "\n5\n", "\n-5\n", 1),
		strings.Replace(good, "\n5\n", "\nfive\n", 1),
		strings.Replace(good, "time ", "when ", 1),
		strings.Replace(good, "time ", "time x", 1),
		good + "extra\n",
		"",
	}
	for _, b := range bad {
		if _, err := parseCheckpoint(b); err == nil {
			t.Errorf("accepted %q", b)
		}
	}
}

func TestForgedCheckpointCannotHideTruncation(t *testing.T) {
	// An attacker who cut the log's tail would like a checkpoint that
	// matches the cut log; without the key, the one they make is refused.
	s := testSigner(t, 7)
	log := chain(t, 30)
	cut := log[:20]
	head, err := Verify(Entries(cut), nil)
	if err != nil {
		t.Fatal(err)
	}
	forger := testSigner(t, 66)
	forged, err := forger.SignCheckpoint(head.Checkpoint(t0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(forged, s.Verifier()); !errors.Is(err, ErrBadCheckpoint) {
		t.Errorf("forged checkpoint: err = %v, want ErrBadCheckpoint", err)
	}
}
