package auth

import (
	_ "embed"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Password policy bounds, in characters (runes).
const (
	MinSecretLen = 12
	MaxSecretLen = 128 // bounds hashing work and what a phone can store
)

type policyError string

func (e policyError) Error() string        { return string(e) }
func (e policyError) Is(target error) bool { return target == ErrWeakSecret }

// CheckPassword enforces the policy for chosen SIP secrets and passwords:
// 12 to 128 characters, at least one upper-case letter, lower-case letter,
// digit and symbol, no white space or invisible characters, and not a
// commonly used password. The common check ignores case, leading and
// trailing digits and symbols, and common letter-for-digit swaps, so
// "Password123!", "Welcome2024!" and "P@ssw0rd2024" are all refused.
func CheckPassword(secret string) error {
	if !utf8.ValidString(secret) {
		return policyError("secret is not valid UTF-8")
	}
	n := utf8.RuneCountInString(secret)
	if n > MaxSecretLen {
		return policyError(fmt.Sprintf("secret too long: %d characters, at most %d", n, MaxSecretLen))
	}
	var upper, lower, digit, symbol bool
	for _, r := range secret {
		switch {
		case unicode.IsSpace(r):
			return policyError("secret must not contain spaces or other white space")
		case !unicode.IsPrint(r):
			return policyError("secret must not contain control or invisible characters")
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsLower(r):
			lower = true
		case unicode.IsDigit(r):
			digit = true
		case !unicode.IsLetter(r) && !unicode.IsNumber(r):
			symbol = true
		}
	}

	var problems []string
	if n < MinSecretLen {
		problems = append(problems, fmt.Sprintf("secret too short: %d characters, need at least %d", n, MinSecretLen))
	}
	var missing []string
	for _, c := range []struct {
		ok   bool
		what string
	}{
		{upper, "one upper-case letter"},
		{lower, "one lower-case letter"},
		{digit, "one digit"},
		{symbol, "one symbol"},
	} {
		if !c.ok {
			missing = append(missing, c.what)
		}
	}
	if len(missing) > 0 {
		problems = append(problems, "secret needs at least "+joinAnd(missing))
	}
	if len(problems) > 0 {
		return policyError(strings.Join(problems, "; "))
	}
	if isCommonPassword(secret) {
		return policyError("secret is a commonly used password; choose another")
	}
	return nil
}

// joinAnd renders ["a", "b", "c"] as "a, b and c".
func joinAnd(items []string) string {
	if len(items) == 1 {
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

//go:embed common_passwords.txt
var commonPasswordsText string

// commonPasswords is built on first use, so programs that never check a
// password do not pay for the set (about 13,000 entries).
var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{}, 14000)
	for line := range strings.Lines(commonPasswordsText) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		set[strings.ToLower(line)] = struct{}{}
	}
	return set
})

// Undo common letter-for-digit swaps; "1" and "!" stand for both i and l.
var (
	leetI = strings.NewReplacer("@", "a", "4", "a", "3", "e", "1", "i", "!", "i", "0", "o", "$", "s", "5", "s", "7", "t", "+", "t", "8", "b", "9", "g")
	leetL = strings.NewReplacer("@", "a", "4", "a", "3", "e", "1", "l", "!", "l", "0", "o", "$", "s", "5", "s", "7", "t", "+", "t", "8", "b", "9", "g")
)

func isCommonPassword(secret string) bool {
	set := commonPasswords()
	notLetter := func(r rune) bool { return !unicode.IsLetter(r) }
	lower := strings.ToLower(secret)
	right := strings.TrimRightFunc(lower, notLetter)
	both := strings.TrimLeftFunc(right, notLetter)
	for _, c := range [...]string{lower, right, both} {
		if c == "" {
			continue
		}
		for _, v := range [...]string{c, leetI.Replace(c), leetL.Replace(c)} {
			if _, ok := set[v]; ok {
				return true
			}
		}
	}
	return false
}
