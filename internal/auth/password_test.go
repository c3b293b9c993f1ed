package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckPasswordAccepts(t *testing.T) {
	for _, s := range []string{
		"Vq7#mZ2!pLx9",
		"kettle-Orbit-57-lantern",
		"Ünïcödé-Päss9",
		"Zebra.Cactus.Violin.42",
		"x" + strings.Repeat("Ab1-", 31) + "xyz", // 128 characters
	} {
		if err := CheckPassword(s); err != nil {
			t.Errorf("CheckPassword(%q) = %v, want nil", s, err)
		}
	}
}

func TestCheckPasswordRefuses(t *testing.T) {
	const common = "secret is a commonly used password; choose another"
	tests := []struct {
		secret string
		want   string // the whole error text
	}{
		{"Ab1!Ab1!A", "secret too short: 9 characters, need at least 12"},
		{"Abcdefghijk1", "secret needs at least one symbol"},
		{"abcdefghij1!", "secret needs at least one upper-case letter"},
		{"ABCDEFGHIJ1!", "secret needs at least one lower-case letter"},
		{"Abcdefghijk!", "secret needs at least one digit"},
		{"abcdefghijklm", "secret needs at least one upper-case letter, one digit and one symbol"},
		{"abcdefghijk1", "secret needs at least one upper-case letter and one symbol"},
		{"abc", "secret too short: 3 characters, need at least 12; secret needs at least one upper-case letter, one digit and one symbol"},
		{"", "secret too short: 0 characters, need at least 12; secret needs at least one upper-case letter, one lower-case letter, one digit and one symbol"},
		{"Äbc1!", "secret too short: 5 characters, need at least 12"}, // counts characters, not bytes
		{strings.Repeat("Ab1!", 32) + "x", "secret too long: 129 characters, at most 128"},
		{"Abcdef 1234!x", "secret must not contain spaces or other white space"},
		{"Abcdef\t1234!x", "secret must not contain spaces or other white space"},
		{"Abcdef\u00a01234!x", "secret must not contain spaces or other white space"},
		{"Abcdef1234!x\n", "secret must not contain spaces or other white space"},
		{"Abcdef\x001234!x", "secret must not contain control or invisible characters"},
		{"Abcdef\x7f1234!x", "secret must not contain control or invisible characters"},
		{"Abcdef\u200b1234!x", "secret must not contain control or invisible characters"},
		{"Abcdef\xff1234!x", "secret is not valid UTF-8"},
		{"Password123!", common},
		{"Welcome2024!", common},
		{"pASSWORD123!", common},
		{"P@ssw0rd2024", common},
		{"Pa$$w0rd1234", common},
		{"!Welcome2024", common},
		{"Summer2025!!", common},
		{"Qwerty123456!", common},
		{"Qwertyuiop1!", common},
		{"1Qaz2wsx3edc!", common},
		{"1qaz@WSX#edc", common},
		{"Aaaaaaaaaaaa1!", common},
		{"Adm1n1234567!", common},
		{"Iloveyou1234!", common},
		{"Letmein12345!", common},
		{"Changeme2024!", common},
		{"Wachtwoord123!", common},
		{"Asterisk2024!", common},
		{"Football1234!", common},
		{"Monkey123456!", common},
	}
	for _, tt := range tests {
		t.Run(tt.secret, func(t *testing.T) {
			err := CheckPassword(tt.secret)
			if err == nil {
				t.Fatal("accepted")
			}
			if err.Error() != tt.want {
				t.Errorf("error %q, want %q", err, tt.want)
			}
			if !errors.Is(err, ErrWeakSecret) {
				t.Error("error does not match ErrWeakSecret")
			}
		})
	}
}

func TestCommonPasswordList(t *testing.T) {
	set := commonPasswords()
	if len(set) < 5000 {
		t.Fatalf("common password list has %d entries, want thousands", len(set))
	}
	for _, w := range []string{"password", "123456", "qwerty", "letmein", "welcome", "iloveyou", "1qaz2wsx", "p@ssw0rd", "wachtwoord", "asterisk"} {
		if _, ok := set[w]; !ok {
			t.Errorf("%q is missing from the common password list", w)
		}
	}
	for w := range set {
		if w != strings.ToLower(w) || strings.ContainsAny(w, " \t\r\n") || strings.HasPrefix(w, "#") {
			t.Errorf("entry %q is not a normalised list entry", w)
		}
	}
}
