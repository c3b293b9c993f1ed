package authn

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Token prefixes. The prefix says what a leaked string is (secret
// scanners match on it) and keeps a session cookie from being accepted as
// an API token or the other way round.
const (
	PrefixAPIToken = "vga_"
	PrefixSession  = "vgs_"
	PrefixSetup    = "vgu_"
)

// tokenBytes of randomness per token: 256 bits.
const tokenBytes = 32

var tokenEncoding = base64.RawURLEncoding

// tokenBodyLen is the length of the encoded random part.
var tokenBodyLen = tokenEncoding.EncodedLen(tokenBytes)

// TokenHash is the stored form of a token: SHA-256 of the whole token
// string. A token is 256 random bits, so a fast hash suffices, and the
// lookup is by hash: a timing difference in the lookup says nothing about
// the token.
type TokenHash [sha256.Size]byte

// String is the hex form, for storage.
func (h TokenHash) String() string { return hex.EncodeToString(h[:]) }

// ErrMalformedToken: the string is not a token of the expected kind.
var ErrMalformedToken = errors.New("authn: malformed token")

// NewToken returns a fresh token with the given prefix, to show once (or
// set as a cookie), and its hash, to store.
func NewToken(prefix string) (token string, hash TokenHash) {
	raw := make([]byte, tokenBytes)
	rand.Read(raw)
	token = prefix + tokenEncoding.EncodeToString(raw)
	return token, sha256.Sum256([]byte(token))
}

// ParseToken checks that token has the prefix and the form NewToken makes
// and returns its hash, the key to look it up by. The check happens before
// any lookup, so a garbage header costs nothing.
func ParseToken(prefix, token string) (TokenHash, error) {
	body, ok := strings.CutPrefix(token, prefix)
	if !ok {
		return TokenHash{}, fmt.Errorf("%w: want prefix %q", ErrMalformedToken, prefix)
	}
	if len(body) != tokenBodyLen {
		return TokenHash{}, fmt.Errorf("%w: wrong length", ErrMalformedToken)
	}
	if _, err := tokenEncoding.Strict().DecodeString(body); err != nil {
		return TokenHash{}, fmt.Errorf("%w: not base64url", ErrMalformedToken)
	}
	return sha256.Sum256([]byte(token)), nil
}
