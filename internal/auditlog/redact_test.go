package auditlog

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
)

var redactKey = []byte("0123456789abcdef0123456789abcdef")

func hmacOf(key []byte, jsonValue string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(jsonValue))
	return RedactedPrefix + hex.EncodeToString(m.Sum(nil))
}

type extension struct {
	Number    string   `json:"number"`
	Name      string   `json:"name"`
	Secret    string   `json:"secret"`
	HA1       []byte   `json:"ha1,omitempty"`
	Voicemail string   `json:"vm_pin" audit:"secret"`
	TokenID   string   `json:"token_id"`
	KeyFile   string   `json:"key_file"`
	Devices   []device `json:"devices"`
	Changed   string   `json:"password_changed_at" audit:"plain"`
	Internal  string   `json:"-" audit:"secret"`
}

type device struct {
	Address  string `json:"address"`
	Password string `json:"password"`
}

func TestRedactReplacesSecrets(t *testing.T) {
	ext := extension{Number: "1001", Name: "Anna", Secret: "s3cret-Value!", HA1: []byte{1, 2}, Voicemail: "4321",
		TokenID: "tok_1", KeyFile: "/etc/veilig/key.pem", Changed: "2026-12-01",
		Devices: []device{{Address: "127.0.0.2", Password: "hunter2hunter2"}}}
	raw, err := Redact(redactKey, ext)
	if err != nil {
		t.Fatal(err)
	}
	for _, leaked := range []string{"s3cret-Value!", "4321", "hunter2hunter2", `"AQI="`} {
		if strings.Contains(string(raw), leaked) {
			t.Errorf("redacted output contains secret %q: %s", leaked, raw)
		}
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	wants := map[string]any{
		"number":              "1001",
		"name":                "Anna",
		"secret":              hmacOf(redactKey, `"s3cret-Value!"`),
		"ha1":                 hmacOf(redactKey, `"AQI="`),
		"vm_pin":              hmacOf(redactKey, `"4321"`),
		"token_id":            "tok_1",
		"key_file":            "/etc/veilig/key.pem",
		"password_changed_at": "2026-12-01",
	}
	for k, want := range wants {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	dev := got["devices"].([]any)[0].(map[string]any)
	if dev["address"] != "127.0.0.2" || dev["password"] != hmacOf(redactKey, `"hunter2hunter2"`) {
		t.Errorf("nested device = %v", dev)
	}
}

func TestRedactShowsChangeWithoutValue(t *testing.T) {
	before, _ := Redact(redactKey, map[string]string{"sip_secret": "old-secret-1"})
	same, _ := Redact(redactKey, map[string]string{"sip_secret": "old-secret-1"})
	after, _ := Redact(redactKey, map[string]string{"sip_secret": "new-secret-2"})
	if string(before) != string(same) {
		t.Errorf("same secret, different redactions: %s vs %s", before, same)
	}
	if string(before) == string(after) {
		t.Errorf("changed secret, same redaction %s", before)
	}
	otherKey, _ := Redact([]byte("another key, 16+ bytes"), map[string]string{"sip_secret": "old-secret-1"})
	if string(otherKey) == string(before) {
		t.Error("redaction does not depend on the key")
	}
}

func TestRedactRawJSONAndEdgeCases(t *testing.T) {
	raw, err := Redact(redactKey, json.RawMessage(`{"Client-Secret": {"a": [1, 2]}, "API.Token": null, "n": 12345678901234567890, "list": [{"passphrase": 7}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got["Client-Secret"] != hmacOf(redactKey, `{"a":[1,2]}`) {
		t.Errorf("object-valued secret = %v", got["Client-Secret"])
	}
	if got["API.Token"] != nil {
		t.Errorf("null secret = %v, want null kept", got["API.Token"])
	}
	if !strings.Contains(string(raw), "12345678901234567890") {
		t.Errorf("large number not kept exactly: %s", raw)
	}
	if strings.Contains(string(raw), `"passphrase":7`) {
		t.Errorf("secret in array not redacted: %s", raw)
	}
	if _, err := Redact([]byte("short"), 1); err == nil {
		t.Error("short key accepted")
	}
	if _, err := Redact(redactKey, func() {}); err == nil {
		t.Error("unmarshalable value accepted")
	}
	if raw, err := Redact(redactKey, nil); err != nil || string(raw) != "null" {
		t.Errorf("nil = %s, %v", raw, err)
	}
}

func TestRedactOutputIsValidEntryJSON(t *testing.T) {
	after, err := Redact(redactKey, extension{Number: "1001", Secret: "x"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := Next(nil, Entry{Time: t0, Actor: "anna", Channel: ChannelAPI, Action: "extension.create", Target: "1001", After: after})
	if err != nil {
		t.Fatal(err)
	}
	if string(e.After) != string(after) {
		t.Errorf("Next changed redacted JSON (it is already compact): %s vs %s", e.After, after)
	}
}
