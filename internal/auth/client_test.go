package auth

import (
	"strings"
	"testing"
)

// What the client side answers, the server side verifies: both algorithms,
// with and without qop, with escapes and stray commas in the challenge.
func TestClientAnswerVerifies(t *testing.T) {
	for _, ch := range []string{
		`Digest realm="veilig.test", nonce="n1", algorithm=SHA-256, qop="auth", opaque="op"`,
		`Digest realm="veilig.test",nonce="n2",algorithm=MD5,qop="auth,auth-int"`,
		`digest  realm="vei\"lig.test", , nonce="n3", qop="auth"`,
	} {
		o, err := ParseChallenge(ch)
		if err != nil {
			t.Fatalf("%s: %v", ch, err)
		}
		v := o.Authorization("1001", "S3cret!pass", "REGISTER", "sip:veilig.test")
		c, err := ParseCredentials(v)
		if err != nil {
			t.Fatalf("%s: answer %q: %v", ch, v, err)
		}
		if c.Realm != o.Realm || c.Nonce != o.Nonce || c.Opaque != o.Opaque || c.Algorithm != o.Algorithm {
			t.Fatalf("%s: answer %+v does not echo the challenge", ch, c)
		}
		if !Verify(c, "REGISTER", HA1(o.Algorithm, "1001", o.Realm, "S3cret!pass")) {
			t.Fatalf("%s: answer %q does not verify", ch, v)
		}
		if Verify(c, "REGISTER", HA1(o.Algorithm, "1001", o.Realm, "wrong")) {
			t.Fatalf("%s: answer verifies with the wrong secret", ch)
		}
	}
}

func TestPickChallengePrefersSHA256(t *testing.T) {
	o, err := PickChallenge([]string{
		`Digest realm="r", nonce="a", algorithm=MD5, qop="auth"`,
		`Digest realm="r", nonce="b", algorithm=SHA-512-256, qop="auth"`,
		`Digest realm="r", nonce="c", algorithm=SHA-256, qop="auth"`,
	})
	if err != nil || o.Algorithm != SHA256 || o.Nonce != "c" {
		t.Fatalf("picked %+v, %v; want the SHA-256 offer", o, err)
	}
	for _, bad := range [][]string{
		nil,
		{`Basic realm="r"`},
		{`Digest realm="r", algorithm=SHA-512-256, nonce="x"`},
		{`Digest realm="r"`},
		{`Digest realm="r, nonce="x"`},
	} {
		if o, err := PickChallenge(bad); err == nil {
			t.Errorf("%q: picked %+v, want an error", strings.Join(bad, " | "), o)
		}
	}
}
