package auth

import (
	"strings"
	"testing"
)

func TestGenerateSecret(t *testing.T) {
	const n = 2000
	seen := make(map[string]bool, n)
	counts := make(map[rune]int)
	for range n {
		s, err := GenerateSecret()
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 32 {
			t.Fatalf("secret %q has length %d", s, len(s))
		}
		if err := CheckPassword(s); err != nil {
			t.Fatalf("generated secret %q fails the policy: %v", s, err)
		}
		if !isAlnumASCII(s[0]) || !isAlnumASCII(s[len(s)-1]) {
			t.Errorf("secret %q starts or ends with a symbol", s)
		}
		if strings.ContainsAny(s, ";\"'\\<>, :@=#&$!*%?/[]{}|`IOlo01") {
			t.Fatalf("secret %q contains a character that breaks accounts or YAML, or a look-alike", s)
		}
		if seen[s] {
			t.Fatalf("secret %q generated twice", s)
		}
		seen[s] = true
		for _, r := range s {
			counts[r]++
		}
	}
	// 64,000 draws over 60 characters: about 1,070 each. A character far
	// off that means the sampling is biased or the alphabet is wrong.
	if len(counts) != len(secretAlphabet) {
		t.Errorf("%d distinct characters used, want %d", len(counts), len(secretAlphabet))
	}
	for r, c := range counts {
		if c < 700 || c > 1500 {
			t.Errorf("character %q drawn %d times, expected about 1070", r, c)
		}
	}
}
