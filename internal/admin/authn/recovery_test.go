package authn

import (
	"regexp"
	"strings"
	"testing"
)

func TestRecoveryCodesEachWorkOnce(t *testing.T) {
	codes, hashes := NewRecoveryCodes()
	if len(codes) != RecoveryCodeCount || len(hashes) != RecoveryCodeCount {
		t.Fatalf("%d codes, %d hashes; want %d", len(codes), len(hashes), RecoveryCodeCount)
	}
	form := regexp.MustCompile(`^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$`)
	seen := map[string]bool{}
	for i, c := range codes {
		if !form.MatchString(c) {
			t.Errorf("code %q not of the form xxxx-xxxx-xxxx-xxxx", c)
		}
		if seen[c] {
			t.Errorf("duplicate code %q", c)
		}
		seen[c] = true
		if strings.Contains(hashes[i], strings.ReplaceAll(c, "-", "")) {
			t.Errorf("stored form contains the code")
		}
	}
	stored := hashes
	for i, c := range codes {
		typed := c
		if i%2 == 1 { // as a person types it
			typed = " " + strings.ToUpper(strings.ReplaceAll(c, "-", "")) + " "
		}
		var ok bool
		remaining, ok := RedeemRecoveryCode(stored, typed)
		if !ok {
			t.Fatalf("code %d (%q) refused", i, typed)
		}
		if len(remaining) != len(stored)-1 {
			t.Fatalf("after redeeming, %d left, want %d", len(remaining), len(stored)-1)
		}
		if _, again := RedeemRecoveryCode(remaining, c); again {
			t.Fatalf("code %d worked twice", i)
		}
		stored = remaining
	}
	if len(stored) != 0 {
		t.Errorf("%d hashes left after all codes used", len(stored))
	}
}

func TestRecoveryCodeRejectsJunk(t *testing.T) {
	codes, hashes := NewRecoveryCodes()
	other, _ := NewRecoveryCodes()
	for _, bad := range []string{"", "aaaa-bbbb", codes[0] + "a", "1111-1111-1111-1111", other[0], hashes[0]} {
		if rem, ok := RedeemRecoveryCode(hashes, bad); ok || len(rem) != len(hashes) {
			t.Errorf("%q: ok=%v, %d left", bad, ok, len(rem))
		}
	}
	// The caller's slice is not modified by a redemption.
	before := append([]string(nil), hashes...)
	RedeemRecoveryCode(hashes, codes[3])
	for i := range hashes {
		if hashes[i] != before[i] {
			t.Fatal("RedeemRecoveryCode modified its input")
		}
	}
}
