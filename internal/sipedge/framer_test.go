package sipedge

import (
	"strings"
	"testing"
)

func TestFramerSplitsAndJoins(t *testing.T) {
	m1 := "REGISTER sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n"
	m2 := "MESSAGE sip:x SIP/2.0\r\nl: 5\r\n\r\nhello"
	stream := "\r\n\r\n" + m1 + "\r\n" + m2 + m1
	// Byte by byte: CRLFs that end a header block must never be taken
	// for keep-alives.
	f := framer{max: 65535}
	var got []string
	for i := 0; i < len(stream); i++ {
		f.push([]byte{stream[i]})
		for {
			raw, err := f.next()
			if err != nil {
				t.Fatal(err)
			}
			if raw == nil {
				break
			}
			got = append(got, string(raw))
		}
	}
	want := []string{m1, m2, m1}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestFramerRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"no length":  "OPTIONS sip:x SIP/2.0\r\nVia: a\r\n\r\n",
		"two length": "OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\nl: 0\r\n\r\n",
		"bad length": "OPTIONS sip:x SIP/2.0\r\nContent-Length: -1\r\n\r\n",
		"too large":  "OPTIONS sip:x SIP/2.0\r\nContent-Length: 99999\r\n\r\n",
	} {
		f := framer{max: 1024}
		f.push([]byte(in))
		if raw, err := f.next(); err == nil {
			t.Errorf("%s: got %q, want an error", name, raw)
		}
	}
}
