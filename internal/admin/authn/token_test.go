package authn

import (
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
)

func TestTokenRoundTrip(t *testing.T) {
	tok, h := NewToken(PrefixAPIToken)
	if !strings.HasPrefix(tok, "vga_") || len(tok) != 4+43 {
		t.Errorf("token %q: want vga_ and 43 base64url characters (256 bits)", tok)
	}
	got, err := ParseToken(PrefixAPIToken, tok)
	if err != nil || got != h {
		t.Errorf("ParseToken = %s, %v; want %s", got, err, h)
	}
	if h != TokenHash(sha256.Sum256([]byte(tok))) {
		t.Error("stored hash is not SHA-256 of the token")
	}
	if strings.Contains(h.String(), tok[4:]) || len(h.String()) != 64 {
		t.Errorf("hash string %q", h)
	}
	tok2, h2 := NewToken(PrefixAPIToken)
	if tok2 == tok || h2 == h {
		t.Error("two tokens alike")
	}
}

func TestParseTokenRejects(t *testing.T) {
	api, _ := NewToken(PrefixAPIToken)
	sess, _ := NewToken(PrefixSession)
	for _, bad := range []string{
		"", "vga_", sess, // a session cookie is not an API token
		api[:len(api)-1], api + "A", strings.Replace(api, api[10:11], "+", 1),
		"Bearer " + api, strings.ToUpper(api[:4]) + api[4:],
	} {
		if _, err := ParseToken(PrefixAPIToken, bad); !errors.Is(err, ErrMalformedToken) {
			t.Errorf("ParseToken(%q) = %v, want ErrMalformedToken", bad, err)
		}
	}
}
