package authn

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"strings"
)

// Recovery codes: RecoveryCodeCount codes of 16 base32 characters (80
// random bits each), shown as xxxx-xxxx-xxxx-xxxx. Their entropy is what
// makes a plain SHA-256 a safe stored form: there is nothing to guess.
const (
	RecoveryCodeCount = 10
	recoveryCodeChars = 16
)

var recoveryEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewRecoveryCodes returns fresh codes to show the user once, and their
// hashes (hex SHA-256) to store in their place. Issuing a new set
// replaces the old one entirely.
func NewRecoveryCodes() (codes, hashes []string) {
	for range RecoveryCodeCount {
		raw := make([]byte, recoveryCodeChars*5/8)
		rand.Read(raw)
		s := recoveryEncoding.EncodeToString(raw)
		codes = append(codes, s[0:4]+"-"+s[4:8]+"-"+s[8:12]+"-"+s[12:16])
		hashes = append(hashes, hashRecovery(s))
	}
	return codes, hashes
}

func hashRecovery(normalised string) string {
	h := sha256.Sum256([]byte("veilig/recovery/v1\x00" + normalised))
	return hex.EncodeToString(h[:])
}

// normaliseRecovery accepts what a person types: any case, with or
// without the dashes, with stray spaces.
func normaliseRecovery(code string) (string, bool) {
	s := strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(code))
	if len(s) != recoveryCodeChars {
		return "", false
	}
	if _, err := recoveryEncoding.DecodeString(s); err != nil {
		return "", false
	}
	return s, true
}

// RedeemRecoveryCode checks code against the stored hashes. On a match it
// returns the hashes without the one used, which the caller stores in the
// same transaction that accepts the login, so each code works once. It
// compares against every hash in constant time.
func RedeemRecoveryCode(hashes []string, code string) (remaining []string, ok bool) {
	s, valid := normaliseRecovery(code)
	if !valid {
		return hashes, false
	}
	h := []byte(hashRecovery(s))
	used := -1
	for i, stored := range hashes {
		if subtle.ConstantTimeCompare(h, []byte(stored)) == 1 {
			used = i
		}
	}
	if used < 0 {
		return hashes, false
	}
	remaining = make([]string, 0, len(hashes)-1)
	remaining = append(remaining, hashes[:used]...)
	return append(remaining, hashes[used+1:]...), true
}
