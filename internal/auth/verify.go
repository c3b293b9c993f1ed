package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"strings"
)

// Verify reports whether c.Response is the qop=auth digest response for
// method, given the stored HA1 for c.Algorithm:
//
//	response = KD(HA1, nonce ":" nc ":" cnonce ":" qop ":" H(method ":" uri))
//
// The RFC 2069 form (no qop) and qop=auth-int are refused: we only ever
// offer qop="auth", and the form without qop has no nonce count, so it
// cannot be protected against replay.
//
// Verify checks the arithmetic only. The caller must also check the nonce
// (NonceManager.Check), that c.Realm is ours, that c.Algorithm is one it
// offered, and that c.URI matches the request. The comparison runs in
// constant time; the function allocates nothing for normal-sized input.
func Verify(c Credentials, method string, ha1hex string) bool {
	n := c.Algorithm.hexLen()
	if n == 0 || len(ha1hex) != n || len(c.Response) != n {
		return false
	}
	if !strings.EqualFold(c.QOP, "auth") || c.CNonce == "" || c.Nonce == "" {
		return false
	}
	if _, err := ParseNC(c.NC); err != nil {
		return false
	}

	var buf [512]byte
	b := append(buf[:0], method...)
	b = append(b, ':')
	b = append(b, c.URI...)
	var ha2 [maxHexLen]byte
	h2 := c.Algorithm.sumHex(&ha2, b)

	b = appendLower(buf[:0], ha1hex)
	b = append(b, ':')
	b = append(b, c.Nonce...)
	b = append(b, ':')
	b = append(b, c.NC...)
	b = append(b, ':')
	b = append(b, c.CNonce...)
	b = append(b, ':')
	b = append(b, c.QOP...)
	b = append(b, ':')
	b = append(b, h2...)
	var want [maxHexLen]byte
	w := c.Algorithm.sumHex(&want, b)
	clear(b) // held HA1, which is password-equivalent

	var got [maxHexLen]byte
	g := appendLower(got[:0], c.Response)
	return subtle.ConstantTimeCompare(w, g) == 1
}

// appendLower appends s with ASCII letters lowered; hex digests compare
// case-insensitively because some clients send upper case.
func appendLower(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		dst = append(dst, ch)
	}
	return dst
}

// FakeHA1 returns a stand-in HA1 for a user that does not exist, derived
// with HMAC-SHA256 under key so that it is stable per (algorithm, user,
// realm) and unpredictable without the key. Verifying against it lets an
// unknown user take the same path, time and answer as a wrong password,
// so extensions cannot be enumerated.
//
// The caller must still treat the attempt as failed whatever Verify says:
//
//	ha1, known := lookup(user)
//	if !known {
//		ha1 = auth.FakeHA1(c.Algorithm, c.Username, realm, key)
//	}
//	ok := auth.Verify(c, method, ha1) && known
//
// It returns "" for an invalid Algorithm.
func FakeHA1(alg Algorithm, user, realm string, key []byte) string {
	n := alg.hexLen()
	if n == 0 {
		return ""
	}
	m := hmac.New(sha256.New, key)
	// Length prefixes keep ("a:b", "c") and ("a", "b:c") apart.
	var hdr [1 + 2*binary.MaxVarintLen64]byte
	h := append(hdr[:0], byte(alg))
	h = binary.AppendUvarint(h, uint64(len(user)))
	h = binary.AppendUvarint(h, uint64(len(realm)))
	m.Write(h)
	m.Write([]byte(user))
	m.Write([]byte(realm))
	var sum [sha256.Size]byte
	var out [maxHexLen]byte
	hex.Encode(out[:], m.Sum(sum[:0]))
	return string(out[:n])
}
