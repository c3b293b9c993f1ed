package authn

import (
	"testing"
	"time"
)

// FuzzParseStored feeds damaged stored values (a hash row, a token, a
// recovery code, a TOTP code) to the parsers: none may panic, and a
// parsed hash must encode back to the same string.
func FuzzParseStored(f *testing.F) {
	f.Add("$argon2id$v=19$m=1024,t=2,p=2$dmVpbGlnc2FsdHZlaWxpZw$bhi28paJpL4d6Qd2nGrn4MoR4n5WEKukVGrJ5wrHOuY")
	f.Add("$argon2id$v=19$m=,t=2,p=2$$")
	f.Add("vga_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("abcd-efgh-ijkl-mnop")
	f.Add("123456")
	f.Fuzz(func(t *testing.T, s string) {
		if p, salt, key, err := decodePHC(s); err == nil {
			if got := encodePHC(p, salt, key); got != s {
				t.Errorf("decode/encode of %q gave %q", s, got)
			}
		}
		ParseToken(PrefixAPIToken, s)
		RedeemRecoveryCode([]string{hashRecovery("abcdefghijklmnop")}, s)
		VerifyTOTP(rfcSecret, s, time.Unix(1_780_000_000, 0), 0)
	})
}
