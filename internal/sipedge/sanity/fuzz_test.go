package sanity

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// FuzzCheck feeds arbitrary bytes through sipgo and then the unguarded
// check (Check's recover would hide a panic from the fuzzer). It asserts
// that nothing panics and that an accepted message has exactly one From,
// To, Call-ID and CSeq and at least one Via, as sipgo read it.
func FuzzCheck(f *testing.F) {
	files, _ := filepath.Glob("testdata/torture/*/*.dat")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(register))
	f.Fuzz(func(t *testing.T, raw []byte) {
		msg, ok := parse(raw)
		if !ok {
			return
		}
		r := check(raw, msg, DefaultOptions())
		if !r.OK {
			if r.Code < 400 || r.Code > 599 || r.Reason == "" {
				t.Fatalf("bad refusal %+v", r)
			}
			return
		}
		var via, from, to, cid, cseq int
		for _, h := range msg.(interface{ Headers() []sip.Header }).Headers() {
			switch h.(type) {
			case *sip.ViaHeader:
				via++
			case *sip.FromHeader:
				from++
			case *sip.ToHeader:
				to++
			case *sip.CallIDHeader:
				cid++
			case *sip.CSeqHeader:
				cseq++
			}
		}
		if via < 1 || from != 1 || to != 1 || cid != 1 || cseq != 1 {
			t.Fatalf("accepted with via=%d from=%d to=%d call-id=%d cseq=%d", via, from, to, cid, cseq)
		}
		if req, ok := msg.(*sip.Request); ok && req.MaxForwards() == nil {
			t.Fatalf("accepted request without Max-Forwards")
		}
	})
}

// parse runs sipgo's parser; a panic inside sipgo is sipgo's bug, not the
// subject of this fuzz target, so it only skips the input.
func parse(raw []byte) (msg sip.Message, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	msg, err := sip.NewParser().ParseSIP(raw)
	return msg, err == nil && msg != nil
}
