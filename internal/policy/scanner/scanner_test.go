package scanner

import (
	"encoding/hex"
	"testing"
)

// createTag mirrors svhelper.py createTag: hex of data, 0x01, decimal
// random.
func createTag(data, rnd string) string { return hex.EncodeToString([]byte(data + "\x01" + rnd)) }

func TestMatch(t *testing.T) {
	m, err := New(Config{Shapes: true, UserAgents: []string{"EvilDialer"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		msg  Message
		want string // "" = no match
	}{
		{"svmap ua", Message{Method: "OPTIONS", UserAgent: "friendly-scanner"}, "ua:friendly-scanner"},
		{"case", Message{UserAgent: "SIPVicious 0.3"}, "ua:sipvicious"},
		{"vax", Message{UserAgent: "VaxSIPUserAgent/3.1"}, "ua:vaxsipuseragent"},
		{"pplsip", Message{UserAgent: "pplsip"}, "ua:pplsip"},
		{"iwar word", Message{UserAgent: "iWar 0.1"}, "ua:iwar"},
		{"smap word", Message{UserAgent: "smap/1.0"}, "ua:smap"},
		{"smap inside a word", Message{UserAgent: "Cosmapp Phone 2"}, ""},
		{"config addition", Message{UserAgent: "evildialer 9"}, "ua:evildialer"},
		// Real devices.
		{"baresip", Message{Method: "REGISTER", UserAgent: "baresip v3.10.1 (x86_64/linux)", FromUser: "1001", ToUser: "1001", FromTag: "d8a3b1c5a0e4f7a2"}, ""},
		{"linphone", Message{UserAgent: "Linphone-Desktop/5.2.6 (belle-sip/5.3.0)", FromTag: "~Fj9aZ3kQ"}, ""},
		{"yealink", Message{UserAgent: "Yealink SIP-T46U 108.86.0.45", FromTag: "1839204716"}, ""},
		{"cisco gateway", Message{Method: "OPTIONS", UserAgent: "Cisco-SIPGateway/IOS-15.x", FromUser: "", ToUser: "", FromHost: "198.51.100.1", RequestURIHost: "203.0.113.5"}, ""},
		{"self call", Message{Method: "INVITE", FromName: "1001", FromUser: "1001", ToUser: "1001", FromHost: "pbx", ToHost: "pbx", RequestURIUser: "1001", FromTag: "a1b2c3d4e5f60718"}, ""},
		{"keepalive from 100", Message{Method: "OPTIONS", FromUser: "100", ToUser: "100", FromHost: "pbx.example", ToHost: "pbx.example", RequestURIHost: "pbx.example"}, ""},
		// Shapes of SIPVicious with its User-Agent changed.
		{"svwar tag", Message{Method: "REGISTER", FromUser: "1003", FromTag: createTag("1003", "2941176417")}, ShapeSipviciousTag},
		{"svmap tag", Message{Method: "OPTIONS", FromTag: createTag("7f0000011388", "812038441")}, ShapeSipviciousTag},
		{"svcrack tag", Message{Method: "REGISTER", FromTag: createTag("1001:secret", "3351")}, ""}, // 4 digits: below the bar
		{"svcrack tag long", Message{Method: "REGISTER", FromTag: createTag("1001:secret", "335101")}, ShapeSipviciousTag},
		{"svcrack first", Message{Method: "REGISTER", FromTag: "3206210844"}, ShapeSipviciousTag},
		{"svmap name", Message{Method: "OPTIONS", FromName: `"sipvicious"`}, ShapeSipviciousName},
		{"default contact", Message{Method: "INVITE", Contact: "<sip:123@1.1.1.1>"}, ShapeSipviciousContact},
		{"python None", Message{Method: "REGISTER", Contact: "None"}, ShapeSipviciousContact},
		{"svmap from", Message{Method: "OPTIONS", FromUser: "100", FromHost: "1.1.1.1"}, ShapeSipviciousContact},
		{"probe 100", Message{Method: "OPTIONS", FromUser: "100", ToUser: "100", FromHost: "198.51.100.9", ToHost: "198.51.100.9", RequestURIHost: "203.0.113.5"}, ShapeProbe100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := m.Match(tt.msg)
			if got != tt.want || ok != (tt.want != "") {
				t.Fatalf("Match = %q, %v; want %q", got, ok, tt.want)
			}
			if ok && IsShape(got) != (got[:6] == "shape:") {
				t.Fatal("IsShape")
			}
		})
	}
}

func TestConfig(t *testing.T) {
	m, err := New(Config{Ignore: []string{"sipsak"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Match(Message{UserAgent: "sipsak 0.9.8"}); ok {
		t.Fatal("ignored fingerprint matched")
	}
	if _, ok := m.Match(Message{FromTag: "3206210844"}); ok {
		t.Fatal("shapes matched while off")
	}
	for _, c := range []Config{{UserAgents: []string{"ab"}}, {Ignore: []string{"zoiper"}}} {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	d := DefaultUserAgents()
	d[0] = "changed"
	if DefaultUserAgents()[0] != "friendly-scanner" {
		t.Fatal("default list is mutable")
	}
}

func BenchmarkMatchMiss(b *testing.B) {
	m, _ := New(Default())
	msg := Message{Method: "REGISTER", UserAgent: "Linphone-Desktop/5.2.6 (belle-sip/5.3.0)", FromUser: "1001", ToUser: "1001", FromTag: "a1b2c3d4e5f60718", Contact: "<sip:1001@10.0.0.5:5061;transport=tls>"}
	b.ReportAllocs()
	for b.Loop() {
		m.Match(msg)
	}
}
