package auth

import "testing"

func TestChallenge(t *testing.T) {
	tests := []struct {
		name                 string
		realm, nonce, opaque string
		alg                  Algorithm
		stale                bool
		want                 string
	}{
		{"SHA-256", "veilig", "abc", "op", SHA256, false,
			`Digest realm="veilig", nonce="abc", opaque="op", algorithm=SHA-256, qop="auth"`},
		{"MD5 stale", "veilig", "abc", "op", MD5, true,
			`Digest realm="veilig", nonce="abc", opaque="op", algorithm=MD5, qop="auth", stale=true`},
		{"no opaque", "veilig", "abc", "", SHA256, false,
			`Digest realm="veilig", nonce="abc", algorithm=SHA-256, qop="auth"`},
		{"escapes and drops control characters", "a\"b\\c\r\nX-Injected: 1", "n\x00", "o\t", SHA256, false,
			`Digest realm="a\"b\\cX-Injected: 1", nonce="n", opaque="o", algorithm=SHA-256, qop="auth"`},
		{"invalid algorithm", "veilig", "abc", "op", 0, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Challenge(tt.realm, tt.nonce, tt.opaque, tt.alg, tt.stale); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
