package auth

import (
	"fmt"
	"log/slog"
	"strings"
	"unicode/utf8"
)

// Limits on what ParseCredentials accepts. The header comes from anyone who
// can reach the listener, so every dimension is capped before any work that
// grows with it.
const (
	maxCredentialsLen = 8192 // whole header value
	maxValueLen       = 1024 // one parameter value, after unescaping
	maxNameLen        = 64   // one parameter name
	maxParams         = 32   // parameters in one header
)

var _ slog.LogValuer = Credentials{}

// Credentials are the parameters of a Digest Authorization or
// Proxy-Authorization header value. Strings are as sent (quotes removed,
// escapes undone); Verify hashes them verbatim, as the client did.
type Credentials struct {
	Username  string
	Realm     string
	Nonce     string
	URI       string
	Response  string
	Algorithm Algorithm // MD5 when the client sent none (RFC 2617)
	QOP       string    // "" for the RFC 2069 form, which Verify refuses
	NC        string    // 8 hex digits as sent; see ParseNC
	CNonce    string
	Opaque    string
}

// LogValue keeps the response, nonces and opaque out of logs: together
// with a captured challenge they allow offline password guessing.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("username", c.Username),
		slog.String("realm", c.Realm),
		slog.String("uri", c.URI),
		slog.String("algorithm", c.Algorithm.String()),
		slog.String("qop", c.QOP),
		slog.String("nc", c.NC),
	)
}

// Bits for the parameters Credentials holds, to find duplicates without
// allocating.
const (
	pUsername = 1 << iota
	pRealm
	pNonce
	pURI
	pResponse
	pAlgorithm
	pQOP
	pNC
	pCNonce
	pOpaque
	pUserhash
	pUsernameStar
)

// paramBit returns the bit of a known parameter name, matched
// case-insensitively, or 0 for an unknown one.
func paramBit(name string) uint16 {
	var buf [len("algorithm")]byte
	if len(name) > len(buf) {
		return 0
	}
	for i := 0; i < len(name); i++ {
		ch := name[i]
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		buf[i] = ch
	}
	switch string(buf[:len(name)]) {
	case "username":
		return pUsername
	case "realm":
		return pRealm
	case "nonce":
		return pNonce
	case "uri":
		return pURI
	case "response":
		return pResponse
	case "algorithm":
		return pAlgorithm
	case "qop":
		return pQOP
	case "nc":
		return pNC
	case "cnonce":
		return pCNonce
	case "opaque":
		return pOpaque
	case "userhash":
		return pUserhash
	case "username*":
		return pUsernameStar
	}
	return 0
}

// ParseCredentials parses a Digest credentials header value such as
// `Digest username="1001", realm="veilig", nonce="...", uri="sip:x",
// response="...", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="..."`.
//
// It follows the auth-param grammar of RFC 7235 and accepts either a token
// or a quoted-string for every parameter, since clients differ on which
// they quote. Duplicate parameters, missing mandatory ones, values over
// 1024 bytes, control characters and invalid UTF-8 are errors. Unknown
// parameters are skipped. It does not check the response; see Verify.
func ParseCredentials(value string) (Credentials, error) {
	c, err := parseCredentials(value)
	if err != nil {
		return Credentials{}, err // never half-filled credentials
	}
	return c, nil
}

func parseCredentials(value string) (Credentials, error) {
	var c Credentials
	if len(value) > maxCredentialsLen {
		return c, malformed("header is %d bytes, limit %d", len(value), maxCredentialsLen)
	}
	if !utf8.ValidString(value) {
		return c, malformed("header is not valid UTF-8")
	}
	p := parser{s: value}
	p.skipWS()
	scheme := p.token()
	if !strings.EqualFold(scheme, "Digest") {
		return c, malformed("scheme %q is not Digest", clip(scheme))
	}
	if p.i < len(p.s) && !isWS(p.s[p.i]) {
		return c, malformed("expected space after scheme")
	}

	var (
		seen     uint16
		unknown  [maxParams]string
		nUnknown int
		nParams  int
		alg      string
	)
	for {
		// The list grammar allows empty elements, so skip stray commas.
		for p.skipWS(); p.i < len(p.s) && p.s[p.i] == ','; p.skipWS() {
			p.i++
		}
		if p.i == len(p.s) {
			break
		}
		if nParams++; nParams > maxParams {
			return c, malformed("more than %d parameters", maxParams)
		}
		name := p.token()
		if name == "" {
			return c, malformed("expected parameter name at byte %d", p.i)
		}
		if len(name) > maxNameLen {
			return c, malformed("parameter name longer than %d bytes", maxNameLen)
		}
		p.skipWS()
		if p.i == len(p.s) || p.s[p.i] != '=' {
			return c, malformed("parameter %q has no value", clip(name))
		}
		p.i++
		p.skipWS()
		val, err := p.value()
		if err != nil {
			return c, malformed("parameter %q: %v", clip(name), err)
		}
		if len(val) > maxValueLen {
			return c, malformed("parameter %q is longer than %d bytes", clip(name), maxValueLen)
		}

		bit := paramBit(name)
		if bit == 0 {
			for _, u := range unknown[:nUnknown] {
				if strings.EqualFold(u, name) {
					return c, malformed("duplicate parameter %q", clip(name))
				}
			}
			unknown[nUnknown] = name
			nUnknown++
		} else {
			if seen&bit != 0 {
				return c, malformed("duplicate parameter %q", clip(name))
			}
			seen |= bit
		}
		switch bit {
		case pUsername:
			c.Username = val
		case pRealm:
			c.Realm = val
		case pNonce:
			c.Nonce = val
		case pURI:
			c.URI = val
		case pResponse:
			c.Response = val
		case pAlgorithm:
			alg = val
		case pQOP:
			c.QOP = val
		case pNC:
			c.NC = val
		case pCNonce:
			c.CNonce = val
		case pOpaque:
			c.Opaque = val
		case pUserhash:
			// We never offer userhash, so a hashed username cannot be
			// looked up; refuse it rather than treat the hash as a name.
			if !strings.EqualFold(val, "false") {
				return c, malformed("userhash is not supported")
			}
		case pUsernameStar:
			return c, malformed("username* is not supported")
		}

		p.skipWS()
		if p.i < len(p.s) && p.s[p.i] != ',' {
			return c, malformed("expected ',' after parameter %q", clip(name))
		}
	}

	return c, c.finish(seen, alg)
}

// finish checks the parsed parameters as a whole.
func (c *Credentials) finish(seen uint16, alg string) error {
	for _, m := range [...]struct {
		bit  uint16
		name string
		val  string
	}{
		{pUsername, "username", c.Username},
		{pRealm, "realm", c.Realm},
		{pNonce, "nonce", c.Nonce},
		{pURI, "uri", c.URI},
		{pResponse, "response", c.Response},
	} {
		if seen&m.bit == 0 {
			return malformed("missing parameter %q", m.name)
		}
		if m.val == "" {
			return malformed("empty parameter %q", m.name)
		}
	}
	c.Algorithm = MD5
	if seen&pAlgorithm != 0 {
		a, err := ParseAlgorithm(alg)
		if err != nil {
			return malformed("%v", err)
		}
		c.Algorithm = a
	}
	if !isHex(c.Response) {
		return malformed("response is not hexadecimal")
	}
	if c.QOP != "" {
		if c.NC == "" || c.CNonce == "" {
			return malformed("qop without nc and cnonce")
		}
	}
	if c.NC != "" {
		if _, err := ParseNC(c.NC); err != nil {
			return malformed("%v", err)
		}
	}
	return nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedCredentials, fmt.Sprintf(format, args...))
}
