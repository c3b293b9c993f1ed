// Package scanner recognises SIP scanners and crackers by their
// User-Agent or by the shape of their requests. The fingerprints are data:
// a default list plus configuration. A match means drop silently and ban;
// the policy engine decides the ban.
package scanner

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
)

// DefaultUserAgents returns the User-Agent substrings of known scanners,
// matched case-insensitively. Entries of four letters or fewer must stand
// as a word, so "smap" does not match inside another name.
func DefaultUserAgents() []string { return slices.Clone(defaultUserAgents) }

var defaultUserAgents = []string{
	"friendly-scanner", // SIPVicious svmap/svwar/svcrack
	"sipvicious",
	"sipcli",
	"VaxSIPUserAgent",
	"VaxIPUserAgent",
	"pplsip", // sippts
	"sippts",
	"sundayddr",
	"iWar",
	"SIVuS",
	"sipsak",
	"SIPScan",
	"sip-scan",
	"smap",
	"Nmap NSE",
}

// Message is what the edge tells the matcher about a request; all fields
// are as received (header values, URI parts), empty when absent.
type Message struct {
	Method         string
	UserAgent      string
	FromName       string // display name of From
	FromUser       string
	FromHost       string
	FromTag        string
	ToUser         string
	ToHost         string
	RequestURIUser string
	RequestURIHost string
	CallID         string
	Contact        string // the Contact header value
	ViaHost        string
}

// Fingerprint name prefixes: "ua:" for User-Agent matches, "shape:" for
// request shapes. Shape matches are weaker evidence; see IsShape.
const (
	prefixUA    = "ua:"
	prefixShape = "shape:"
)

// Shape fingerprints.
const (
	ShapeSipviciousTag     = prefixShape + "sipvicious-tag"
	ShapeSipviciousName    = prefixShape + "sipvicious-name"
	ShapeSipviciousContact = prefixShape + "sipvicious-contact"
	ShapeProbe100          = prefixShape + "options-100-probe"
)

// IsShape reports whether fingerprint was matched on request shape rather
// than a User-Agent.
func IsShape(fingerprint string) bool { return strings.HasPrefix(fingerprint, prefixShape) }

type uaPattern struct {
	name  string // fingerprint name, "ua:" + lower-case pattern
	lower []byte
	word  bool
}

// maxUA is how much of a User-Agent is examined; scanners put their name
// first, and the bound keeps lower-casing on the stack.
const maxUA = 256

// Matcher matches messages against the fingerprints of one Config. It is
// immutable and safe for concurrent use.
type Matcher struct {
	uas    []uaPattern
	shapes bool
}

// New builds a Matcher.
func New(cfg Config) (*Matcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Matcher{shapes: cfg.Shapes}
	add := func(ua string) {
		lower := strings.ToLower(strings.TrimSpace(ua))
		for _, p := range m.uas {
			if string(p.lower) == lower {
				return
			}
		}
		m.uas = append(m.uas, uaPattern{name: prefixUA + lower, lower: []byte(lower), word: len(lower) <= 4})
	}
	for _, ua := range defaultUserAgents {
		ignored := false
		for _, ig := range cfg.Ignore {
			ignored = ignored || strings.EqualFold(ig, ua)
		}
		if !ignored {
			add(ua)
		}
	}
	for _, ua := range cfg.UserAgents {
		add(ua)
	}
	return m, nil
}

// Match returns the first fingerprint msg matches. It does not allocate.
func (m *Matcher) Match(msg Message) (fingerprint string, ok bool) {
	if msg.UserAgent != "" {
		var buf [maxUA]byte
		ua := buf[:copy(buf[:], msg.UserAgent)]
		for i, c := range ua {
			ua[i] = toLower(c)
		}
		for _, p := range m.uas {
			if contains(ua, p.lower, p.word) {
				return p.name, true
			}
		}
	}
	if !m.shapes {
		return "", false
	}
	switch {
	case sipviciousTag(msg.FromTag):
		return ShapeSipviciousTag, true
	case strings.EqualFold(strings.Trim(msg.FromName, `" `), "sipvicious"):
		return ShapeSipviciousName, true
	case sipviciousContact(msg):
		return ShapeSipviciousContact, true
	case probe100(msg):
		return ShapeProbe100, true
	}
	return "", false
}

// sipviciousTag recognises the From tags SIPVicious makes: hex of
// "<data>\x01<decimal random>" (createTag in svhelper.py), and the fixed
// tag of svcrack's first request. At least five random digits are
// required, so a random hex tag of a real phone matches by chance with a
// probability below 1e-7.
func sipviciousTag(tag string) bool {
	if tag == "3206210844" {
		return true
	}
	if len(tag) < 2*(1+1+5) || len(tag)%2 != 0 {
		return false
	}
	digits := 0
	i := len(tag) - 2
	for ; i >= 0; i -= 2 {
		b, ok := hexByte(tag[i], tag[i+1])
		if !ok {
			return false
		}
		if b >= '0' && b <= '9' {
			digits++
			continue
		}
		if b != 0x01 {
			return false
		}
		break
	}
	if i < 2 || digits < 5 {
		return false
	}
	for j := 0; j < i; j += 2 {
		b, ok := hexByte(tag[j], tag[j+1])
		if !ok || b < 0x20 || b > 0x7e {
			return false
		}
	}
	return true
}

// sipviciousContact recognises SIPVicious' default Contact
// ("sip:123@1.1.1.1", or "None" when Python had no value) and svmap's
// default From ("sip:100@1.1.1.1").
func sipviciousContact(msg Message) bool {
	c := strings.Trim(msg.Contact, "<> ")
	return c == "None" || c == "sip:123@1.1.1.1" || c == "sip:100@1.1.1.1" ||
		(msg.FromUser == "100" && msg.FromHost == "1.1.1.1")
}

// probe100 recognises svmap's OPTIONS probe with any From address: From
// and To both user 100 at the same literal IP that is not the request's
// host, and a Request-URI without user. A phone's keep-alive names the
// server, not itself, in its From host.
func probe100(msg Message) bool {
	if !strings.EqualFold(msg.Method, "OPTIONS") || msg.FromUser != "100" || msg.ToUser != "100" ||
		msg.RequestURIUser != "" || msg.FromHost != msg.ToHost || strings.EqualFold(msg.FromHost, msg.RequestURIHost) {
		return false
	}
	_, err := netip.ParseAddr(strings.Trim(msg.FromHost, "[]"))
	return err == nil
}

func hexByte(a, b byte) (byte, bool) {
	x, ok1 := unhex(a)
	y, ok2 := unhex(b)
	return x<<4 | y, ok1 && ok2
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// contains reports whether s contains pattern; with word set the match
// must not touch a letter or digit on either side.
func contains(s, pattern []byte, word bool) bool {
	for off := 0; ; {
		i := bytes.Index(s[off:], pattern)
		if i < 0 {
			return false
		}
		i += off
		end := i + len(pattern)
		if !word || ((i == 0 || !isAlnum(s[i-1])) && (end == len(s) || !isAlnum(s[end]))) {
			return true
		}
		off = i + 1
	}
}

func toLower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
