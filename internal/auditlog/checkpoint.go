package auditlog

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Origin is the first line of every checkpoint's text: it says what the
// note is about, so a signature over some other note made with the same
// key can never pass for a checkpoint.
const Origin = "veilig/auditlog/v1"

// KeyName is the signer name in the note's signature line.
const KeyName = "veilig-auditlog"

// SeedSize is the length of the seed NewSigner takes.
const SeedSize = ed25519.SeedSize

// Checkpoint is a signed statement that the log had Count entries and
// that the last of them had Hash, at Time. Kept somewhere the log's
// writer cannot reach, it makes a deleted tail or a rewritten log
// detectable.
//
// Its text, the body of a signed note (golang.org/x/mod/sumdb/note), is
// the transparency-log checkpoint form with one extension line:
//
//	veilig/auditlog/v1
//	<count, decimal>
//	<head hash, standard base64>
//	time <UTC, RFC 3339 with microseconds>
type Checkpoint struct {
	Count uint64
	Hash  Hash
	Time  time.Time
}

// Text is the note body described on Checkpoint.
func (c Checkpoint) Text() string {
	return fmt.Sprintf("%s\n%d\n%s\ntime %s\n", Origin, c.Count,
		base64.StdEncoding.EncodeToString(c.Hash[:]),
		c.Time.UTC().Format(timeFormat))
}

const timeFormat = "2006-01-02T15:04:05.000000Z"

// ErrBadCheckpoint is the kind of every error OpenCheckpoint returns: a
// signature that is missing, by another key or not valid, or a body that
// is not a checkpoint.
var ErrBadCheckpoint = errors.New("auditlog: bad checkpoint")

// Signer signs checkpoints with an Ed25519 key derived from a seed, so
// the server needs to keep no extra key: the caller passes a seed derived
// from the data key (datakey.Key.Derive), and the same data key always
// yields the same signer. It implements note.Signer.
type Signer struct {
	priv ed25519.PrivateKey
	v    note.Verifier
	vkey string
}

var _ note.Signer = (*Signer)(nil)

// NewSigner makes the signer for a 32-byte seed.
func NewSigner(seed []byte) (*Signer, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("auditlog: signer seed is %d bytes, want %d", len(seed), SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	vkey, err := note.NewEd25519VerifierKey(KeyName, priv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("auditlog: verifier key: %w", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("auditlog: verifier key: %w", err)
	}
	return &Signer{priv: priv, v: v, vkey: vkey}, nil
}

// Name implements note.Signer.
func (s *Signer) Name() string { return KeyName }

// KeyHash implements note.Signer.
func (s *Signer) KeyHash() uint32 { return s.v.KeyHash() }

// Sign implements note.Signer: it signs msg as is. Use SignCheckpoint.
func (s *Signer) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.priv, msg), nil }

// VerifierKey is the public key in note's encoded form
// ("veilig-auditlog+<hash>+<key>"), safe to print and to hand to whoever
// keeps checkpoints, so they can check them with note.NewVerifier.
func (s *Signer) VerifierKey() string { return s.vkey }

// Verifier is the note.Verifier for this signer's public key.
func (s *Signer) Verifier() note.Verifier { return s.v }

// SignCheckpoint returns cp as a signed note, the bytes to emit and keep.
func (s *Signer) SignCheckpoint(cp Checkpoint) ([]byte, error) {
	msg, err := note.Sign(&note.Note{Text: cp.Text()}, s)
	if err != nil {
		return nil, fmt.Errorf("auditlog: sign checkpoint %d: %w", cp.Count, err)
	}
	return msg, nil
}

// MaxCheckpointLen bounds what OpenCheckpoint reads: a checkpoint is a
// few hundred bytes, and a file named on the command line may be anything.
const MaxCheckpointLen = 16 << 10

// OpenCheckpoint checks that signed is a note signed by v and returns the
// checkpoint it holds. Any failure is ErrBadCheckpoint.
func OpenCheckpoint(signed []byte, v note.Verifier) (*Checkpoint, error) {
	if len(signed) > MaxCheckpointLen {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrBadCheckpoint, len(signed), MaxCheckpointLen)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &invalid):
			return nil, fmt.Errorf("%w: signature does not verify (forged or altered)", ErrBadCheckpoint)
		case errors.As(err, &unverified):
			return nil, fmt.Errorf("%w: not signed by %s", ErrBadCheckpoint, v.Name())
		default:
			return nil, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
		}
	}
	cp, err := parseCheckpoint(n.Text)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
	}
	return cp, nil
}

func parseCheckpoint(text string) (*Checkpoint, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 4 {
		return nil, fmt.Errorf("want 4 lines, got %d", len(lines))
	}
	if lines[0] != Origin {
		return nil, fmt.Errorf("origin %q, want %q", lines[0], Origin)
	}
	count, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(count, 10) != lines[1] {
		return nil, fmt.Errorf("count %q is not a decimal number", lines[1])
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != HashSize {
		return nil, fmt.Errorf("head hash %q is not %d bytes of base64", lines[2], HashSize)
	}
	ts, ok := strings.CutPrefix(lines[3], "time ")
	if !ok {
		return nil, fmt.Errorf("line 4 %q: want \"time <RFC 3339>\"", lines[3])
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return nil, fmt.Errorf("time %q: %v", ts, err)
	}
	cp := &Checkpoint{Count: count, Time: t.UTC()}
	copy(cp.Hash[:], raw)
	return cp, nil
}

// Checkpoint returns the head as a checkpoint taken at t, ready to sign.
func (h Head) Checkpoint(t time.Time) Checkpoint {
	return Checkpoint{Count: h.Count, Hash: h.Hash, Time: t.UTC().Truncate(time.Microsecond)}
}
