package auditlog

import (
	"bytes"
	"testing"
)

// FuzzOpenCheckpoint: a checkpoint file is input from outside (the
// --checkpoint flag). Nothing may panic, and whatever opens must be
// exactly what the signer would have signed.
func FuzzOpenCheckpoint(f *testing.F) {
	s, err := NewSigner(bytes.Repeat([]byte{7}, SeedSize))
	if err != nil {
		f.Fatal(err)
	}
	good, err := s.SignCheckpoint(Checkpoint{Count: 3, Hash: Hash{1}, Time: t0})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(Origin + "\n1\nAAAA\ntime x\n\n— veilig-auditlog AAAA\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		cp, err := OpenCheckpoint(msg, s.Verifier())
		if err != nil {
			return
		}
		resigned, err := s.SignCheckpoint(*cp)
		if err != nil || !bytes.Equal(resigned, msg) {
			t.Errorf("opened %+v from %q, which re-signs as %q", cp, msg, resigned)
		}
	})
}
