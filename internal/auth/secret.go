package auth

import (
	"crypto/rand"
	"errors"
	"fmt"
)

// Generated secrets: 32 characters from a 60-character alphabet, about 189
// bits. The alphabet leaves out look-alikes (I O l o 0 1), since secrets
// are often typed into phones, and every character that needs quoting in
// a baresip account line, a SIP URI or YAML. The first and last characters
// are letters or digits, so a secret never starts a YAML tag or alias and
// no trailing punctuation is lost when it is copied out of a sentence.
const (
	secretUpper    = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	secretLower    = "abcdefghijkmnpqrstuvwxyz"
	secretDigits   = "23456789"
	secretSymbols  = "-_.+"
	secretAlphabet = secretUpper + secretLower + secretDigits + secretSymbols
	secretLen      = 32
)

// GenerateSecret returns a new random SIP secret that passes CheckPassword.
func GenerateSecret() (string, error) {
	// A draw fails the class rules about one time in seven; 64 failures in
	// a row mean the random source is broken.
	for range 64 {
		s, err := drawSecret()
		if err != nil {
			return "", err
		}
		if CheckPassword(s) == nil && isAlnumASCII(s[0]) && isAlnumASCII(s[len(s)-1]) {
			return s, nil
		}
	}
	return "", errors.New("generate secret: no acceptable secret in 64 draws")
}

// drawSecret picks secretLen characters uniformly by rejection sampling.
func drawSecret() (string, error) {
	const n = len(secretAlphabet)
	const limit = 256 - 256%n // bytes at or above this would bias the draw
	out := make([]byte, 0, secretLen)
	var buf [64]byte
	for len(out) < secretLen {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", fmt.Errorf("generate secret: %w", err) // unreachable since Go 1.24
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < secretLen {
				out = append(out, secretAlphabet[int(b)%n])
			}
		}
	}
	return string(out), nil
}

func isAlnumASCII(ch byte) bool {
	return 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9'
}
