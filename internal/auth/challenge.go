package auth

import "strings"

// Challenge renders a WWW-Authenticate or Proxy-Authenticate header value:
//
//	Digest realm="veilig", nonce="...", opaque="...", algorithm=SHA-256, qop="auth"
//
// with ", stale=true" appended when stale is set, which tells the client
// its password was fine and it should retry with the new nonce without
// asking the user (RFC 7616 section 3.3). An empty opaque is left out.
// Offer SHA-256 first when sending several challenges (RFC 8760 section 2.4).
//
// Quotes and backslashes are escaped and control characters dropped, so no
// argument can break the header. It returns "" for an invalid Algorithm.
func Challenge(realm, nonce, opaque string, alg Algorithm, stale bool) string {
	if alg.hexLen() == 0 {
		return ""
	}
	var b strings.Builder
	b.Grow(72 + len(realm) + len(nonce) + len(opaque))
	b.WriteString(`Digest realm=`)
	writeQuoted(&b, realm)
	b.WriteString(`, nonce=`)
	writeQuoted(&b, nonce)
	if opaque != "" {
		b.WriteString(`, opaque=`)
		writeQuoted(&b, opaque)
	}
	b.WriteString(`, algorithm=`)
	b.WriteString(alg.String())
	b.WriteString(`, qop="auth"`)
	if stale {
		b.WriteString(`, stale=true`)
	}
	return b.String()
}

func writeQuoted(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case isCtl(ch) || ch == '\t':
		case ch == '"' || ch == '\\':
			b.WriteByte('\\')
			b.WriteByte(ch)
		default:
			b.WriteByte(ch)
		}
	}
	b.WriteByte('"')
}
