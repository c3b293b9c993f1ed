package auth

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// clip shortens attacker-chosen text before it goes into an error that
// may be logged.
func clip(s string) string {
	const limit = 32
	if len(s) <= limit {
		return s
	}
	for i := limit; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "..."
		}
	}
	return ""
}

// parser walks a header value. It returns substrings of the input, so the
// common case (no escapes) allocates nothing.
type parser struct {
	s string
	i int
}

func (p *parser) skipWS() {
	for p.i < len(p.s) && isWS(p.s[p.i]) {
		p.i++
	}
}

func (p *parser) token() string {
	start := p.i
	for p.i < len(p.s) && isTchar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// value reads a token or a quoted-string (RFC 9110 section 5.6.4).
func (p *parser) value() (string, error) {
	if p.i == len(p.s) {
		return "", errors.New("missing value")
	}
	if p.s[p.i] != '"' {
		t := p.token()
		if t == "" {
			return "", fmt.Errorf("unexpected byte 0x%02x", p.s[p.i])
		}
		return t, nil
	}
	p.i++ // opening quote
	start := p.i
	for p.i < len(p.s) {
		ch := p.s[p.i]
		switch {
		case ch == '"':
			v := p.s[start:p.i]
			p.i++
			return v, nil
		case ch == '\\':
			return p.quotedSlow(start)
		case isCtl(ch):
			return "", fmt.Errorf("control byte 0x%02x in quoted string", ch)
		}
		p.i++
	}
	return "", errors.New("unterminated quoted string")
}

// quotedSlow finishes a quoted string that contains escapes; only this
// path allocates.
func (p *parser) quotedSlow(start int) (string, error) {
	var b strings.Builder
	b.Grow(p.i - start + 16)
	b.WriteString(p.s[start:p.i])
	for p.i < len(p.s) {
		ch := p.s[p.i]
		switch {
		case ch == '"':
			p.i++
			return b.String(), nil
		case ch == '\\':
			if p.i+1 == len(p.s) {
				return "", errors.New("unterminated quoted string")
			}
			next := p.s[p.i+1]
			if isCtl(next) {
				return "", fmt.Errorf("control byte 0x%02x in quoted string", next)
			}
			b.WriteByte(next)
			p.i += 2
			continue
		case isCtl(ch):
			return "", fmt.Errorf("control byte 0x%02x in quoted string", ch)
		}
		if b.Len() > maxValueLen {
			return "", fmt.Errorf("longer than %d bytes", maxValueLen)
		}
		b.WriteByte(ch)
		p.i++
	}
	return "", errors.New("unterminated quoted string")
}

func isWS(ch byte) bool { return ch == ' ' || ch == '\t' }

// isCtl reports control characters other than HTAB, which quoted strings
// may not carry (a CR or LF here would be header injection elsewhere).
func isCtl(ch byte) bool { return (ch < 0x20 && ch != '\t') || ch == 0x7f }

// isTchar reports RFC 9110 token characters.
func isTchar(ch byte) bool { return tchars[ch] }

var tchars = func() (t [256]bool) {
	for ch := range 256 {
		switch {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9':
			t[ch] = true
		}
	}
	for _, ch := range []byte("!#$%&'*+-.^_`|~") {
		t[ch] = true
	}
	return t
}()

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !('0' <= ch && ch <= '9' || 'a' <= ch && ch <= 'f' || 'A' <= ch && ch <= 'F') {
			return false
		}
	}
	return true
}
