package auth

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Algorithm is a digest hash algorithm. The zero value is invalid on
// purpose, so a Credentials value that was never parsed cannot verify.
type Algorithm uint8

const (
	// MD5 is RFC 2617 digest. Kept only because many deployed phones know
	// nothing else; policy decides whether it is offered.
	MD5 Algorithm = iota + 1
	// SHA256 is RFC 7616/8760 digest, the one Veilig prefers.
	SHA256
)

// String returns the name used on the wire in the algorithm parameter.
func (a Algorithm) String() string {
	switch a {
	case MD5:
		return "MD5"
	case SHA256:
		return "SHA-256"
	default:
		return fmt.Sprintf("Algorithm(%d)", uint8(a))
	}
}

// ParseAlgorithm reads a wire name case-insensitively. Session variants
// ("-sess") are refused: they buy nothing for SIP and complicate HA1 storage.
func ParseAlgorithm(s string) (Algorithm, error) {
	switch {
	case strings.EqualFold(s, "MD5"):
		return MD5, nil
	case strings.EqualFold(s, "SHA-256"):
		return SHA256, nil
	default:
		return 0, fmt.Errorf("unsupported digest algorithm %q", clip(s))
	}
}

// hexLen is the length of a lowercase hex digest, 0 for an invalid Algorithm.
func (a Algorithm) hexLen() int {
	switch a {
	case MD5:
		return 2 * md5.Size
	case SHA256:
		return 2 * sha256.Size
	default:
		return 0
	}
}

// maxHexLen bounds the stack buffers used for hex digests.
const maxHexLen = 2 * sha256.Size

// sumHex hashes data with a and writes the lowercase hex digest into dst,
// returning the written prefix. It works on caller-owned buffers so the
// verification path does not allocate.
func (a Algorithm) sumHex(dst *[maxHexLen]byte, data []byte) []byte {
	switch a {
	case MD5:
		sum := md5.Sum(data)
		hex.Encode(dst[:], sum[:])
		return dst[:2*md5.Size]
	case SHA256:
		sum := sha256.Sum256(data)
		hex.Encode(dst[:], sum[:])
		return dst[:2*sha256.Size]
	default:
		return nil
	}
}

// HA1 returns H(user:realm:secret) in lowercase hex, the value to store
// instead of the secret. It returns "" for an invalid Algorithm.
func HA1(alg Algorithm, user, realm, secret string) string {
	if alg.hexLen() == 0 {
		return ""
	}
	var stack [256]byte
	b := append(stack[:0], user...)
	b = append(b, ':')
	b = append(b, realm...)
	b = append(b, ':')
	b = append(b, secret...)
	var out [maxHexLen]byte
	h := alg.sumHex(&out, b)
	clear(b) // the buffer held the secret
	return string(h)
}
