package auditlog

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNextFillsChainFields(t *testing.T) {
	first, err := Next(nil, Entry{Time: t0, Actor: "anna", Channel: ChannelCLI, Action: "extension.create", Target: "1001",
		After: json.RawMessage(" {\n \"name\" : \"Anna\" } "), Seq: 99, Hash: Hash{1}})
	if err != nil {
		t.Fatal(err)
	}
	if first.Seq != 1 || !first.PrevHash.IsZero() {
		t.Errorf("first entry: seq %d prev %s, want 1 and zero", first.Seq, first.PrevHash)
	}
	if string(first.After) != `{"name":"Anna"}` {
		t.Errorf("After = %s, want compacted JSON", first.After)
	}
	if first.Time.Location() != time.UTC || first.Time.Nanosecond()%1000 != 0 {
		t.Errorf("Time = %v, want UTC at microsecond precision", first.Time)
	}
	if first.Hash != first.ComputeHash() || first.Hash.IsZero() {
		t.Errorf("Hash not computed")
	}
	second, err := Next(&first, Entry{Time: t0, Actor: "anna", Channel: ChannelCLI, Action: "extension.remove", Target: "1001"})
	if err != nil {
		t.Fatal(err)
	}
	if second.Seq != 2 || second.PrevHash != first.Hash {
		t.Errorf("second entry: seq %d prev %s, want 2 and %s", second.Seq, second.PrevHash, first.Hash)
	}
}

// TestHashEncoding pins the documented encoding by building it by hand,
// so a change to ComputeHash that silently breaks every stored log fails
// here.
func TestHashEncoding(t *testing.T) {
	e := Entry{Seq: 3, Time: time.UnixMicro(1_780_000_000_123_456).UTC(), Actor: "anna", Role: "owner", Channel: ChannelAPI,
		Source: "127.0.0.2", Action: "ban.lift", Target: "127.0.0.9", Before: json.RawMessage(`{"a":1}`), PrevHash: Hash{0xaa, 0xbb}}
	var b []byte
	field := func(s string) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	field("veilig/auditlog/v1")
	b = binary.BigEndian.AppendUint64(b, 3)
	b = binary.BigEndian.AppendUint64(b, 1_780_000_000_123_456)
	for _, s := range []string{"anna", "owner", "api", "127.0.0.2", "ban.lift", "127.0.0.9", `{"a":1}`, ""} {
		field(s)
	}
	b = append(b, e.PrevHash[:]...)
	if want := Hash(sha256.Sum256(b)); e.ComputeHash() != want {
		t.Errorf("ComputeHash = %s, want %s", e.ComputeHash(), want)
	}
}

func TestNextRejectsBadEntries(t *testing.T) {
	good := Entry{Time: t0, Actor: "anna", Channel: ChannelPanel, Action: "trunk.add"}
	cases := map[string]func(e *Entry){
		"no time":       func(e *Entry) { e.Time = time.Time{} },
		"no actor":      func(e *Entry) { e.Actor = "" },
		"no action":     func(e *Entry) { e.Action = "" },
		"bad channel":   func(e *Entry) { e.Channel = "web" },
		"long target":   func(e *Entry) { e.Target = strings.Repeat("x", MaxFieldLen+1) },
		"invalid json":  func(e *Entry) { e.Before = json.RawMessage(`{"a":`) },
		"huge json":     func(e *Entry) { e.After = json.RawMessage(`"` + strings.Repeat("x", MaxJSONLen) + `"`) },
		"trailing json": func(e *Entry) { e.After = json.RawMessage(`{} {}`) },
	}
	for name, mod := range cases {
		e := good
		mod(&e)
		if _, err := Next(nil, e); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("%s: err = %v, want ErrInvalidEntry", name, err)
		}
	}
	if _, err := Next(&Entry{}, good); !errors.Is(err, ErrInvalidEntry) {
		t.Errorf("prev with seq 0: err = %v, want ErrInvalidEntry", err)
	}
	if _, err := Next(nil, good); err != nil {
		t.Errorf("good entry: %v", err)
	}
}

func TestHashTextRoundTrip(t *testing.T) {
	h := Hash(sha256.Sum256([]byte("x")))
	b, _ := json.Marshal(struct{ H Hash }{h})
	var back struct{ H Hash }
	if err := json.Unmarshal(b, &back); err != nil || back.H != h {
		t.Errorf("round trip: %v, %s != %s", err, back.H, h)
	}
	for _, bad := range []string{"", "zz", strings.Repeat("g", 64), h.String()[:62]} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) accepted", bad)
		}
	}
}

func TestEntryJSONRoundTripStillVerifies(t *testing.T) {
	// What a store that keeps entries as JSON documents would do.
	log := chain(t, 5)
	b, err := json.Marshal(log)
	if err != nil {
		t.Fatal(err)
	}
	var back []Entry
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(Entries(back), nil); err != nil {
		t.Errorf("after a JSON round trip: %v", err)
	}
}
