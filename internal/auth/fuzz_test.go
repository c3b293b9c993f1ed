package auth

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzParseCredentials(f *testing.F) {
	for _, seed := range []string{
		rfc2617Header, rfc7616SHA256Header, rfc7616MD5Header, sippHeader, baresipHeader,
		`Digest username="a\"b\\c", ` + validTail,
		`Digest ,, username="u",, ` + validTail + `, x="y",`,
		`Digest username="u", algorithm="SHA-256", qop="auth", nc="00000001", cnonce="c", ` + validTail,
		"Digest username=\"a\r\n\", " + validTail,
		`Digest username="\`,
		`Digest username*=UTF-8''x, ` + validTail,
		`Basic dXNlcjpwYXNz`,
		``,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseCredentials(in)
		if err != nil {
			if c != (Credentials{}) {
				t.Fatalf("error %v with non-zero credentials", err)
			}
			return
		}
		for name, v := range map[string]string{
			"username": c.Username, "realm": c.Realm, "nonce": c.Nonce, "uri": c.URI, "response": c.Response,
		} {
			if v == "" {
				t.Fatalf("accepted with empty %s", name)
			}
		}
		for _, v := range []string{c.Username, c.Realm, c.Nonce, c.URI, c.Response, c.QOP, c.NC, c.CNonce, c.Opaque} {
			if len(v) > maxValueLen || !utf8.ValidString(v) || strings.ContainsAny(v, "\x00\r\n\x7f") {
				t.Fatalf("accepted a bad value %q", v)
			}
		}
		if c.Algorithm != MD5 && c.Algorithm != SHA256 {
			t.Fatalf("accepted algorithm %v", c.Algorithm)
		}
		if c.NC != "" {
			if _, err := ParseNC(c.NC); err != nil {
				t.Fatalf("accepted nc %q", c.NC)
			}
		}
		if c.QOP != "" && (c.NC == "" || c.CNonce == "") {
			t.Fatal("accepted qop without nc and cnonce")
		}
		// Nothing accepted may crash Verify, and a random HA1 must not pass.
		if Verify(c, "REGISTER", strings.Repeat("0", c.Algorithm.hexLen())) && c.Response != "" {
			// Possible only if the fuzzer found a preimage: report it.
			t.Logf("verified against an all-zero HA1: %+v", c)
		}

		// Re-rendering the parsed values gives the same credentials.
		var b strings.Builder
		b.WriteString("Digest username=" + quote(c.Username) + ", realm=" + quote(c.Realm) +
			", nonce=" + quote(c.Nonce) + ", uri=" + quote(c.URI) + ", response=" + quote(c.Response) +
			", algorithm=" + c.Algorithm.String())
		if c.QOP != "" {
			b.WriteString(", qop=" + quote(c.QOP) + ", nc=" + c.NC + ", cnonce=" + quote(c.CNonce))
		} else if c.NC != "" || c.CNonce != "" {
			b.WriteString(", nc=" + quote(c.NC) + ", cnonce=" + quote(c.CNonce))
		}
		if c.Opaque != "" {
			b.WriteString(", opaque=" + quote(c.Opaque))
		}
		again, err := ParseCredentials(b.String())
		if err != nil {
			t.Fatalf("re-rendered header %q does not parse: %v", b.String(), err)
		}
		if again != c {
			t.Fatalf("round trip changed the credentials:\n%+v\n%+v", c, again)
		}
	})
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
