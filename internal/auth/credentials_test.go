package auth

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const validTail = `realm="veilig", nonce="n", uri="sip:veilig", response="abcdef0123456789abcdef0123456789"`

func TestParseCredentialsValid(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   Credentials
	}{
		{
			name:   "RFC 7616 SHA-256",
			header: rfc7616SHA256Header,
			want: Credentials{
				Username: "Mufasa", Realm: "http-auth@example.org", URI: "/dir/index.html",
				Nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", NC: "00000001",
				CNonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", QOP: "auth",
				Opaque:    "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
				Algorithm: SHA256,
				Response:  "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
			},
		},
		{
			name:   "sipp: no spaces, unquoted qop and nc",
			header: sippHeader,
			want: Credentials{
				Username: "1001", Realm: "veilig", CNonce: "6b8b4567", NC: "00000001", QOP: "auth",
				URI: "sip:127.0.0.1:5070", Nonce: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
				Response: "80f6e098e2ab4f48ef0d79a3171e9c55", Algorithm: MD5, Opaque: "op4que",
			},
		},
		{
			name:   "baresip: no algorithm means MD5",
			header: baresipHeader,
			want: Credentials{
				Username: "1001", Realm: "veilig", Nonce: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
				URI: "sip:127.0.0.1:5070;transport=udp", Response: "31d9187c1bf33cac17a5ce0aa1d8ff1d",
				Opaque: "op4que", CNonce: "7e4ec06941469a67", QOP: "auth", NC: "00000001", Algorithm: MD5,
			},
		},
		{
			name:   "case-insensitive scheme and names, quoted algorithm and qop, tabs and spaces",
			header: "\t digest\tUSERNAME = \"u\" ,Realm=\"r\",NONCE=\"n\", Uri=\"sip:x\", RESPONSE=\"ABCDEF\", Algorithm=\"sha-256\", QOP=\"auth\", NC=0000000A, CNONCE=\"c\" ",
			want: Credentials{
				Username: "u", Realm: "r", Nonce: "n", URI: "sip:x", Response: "ABCDEF",
				Algorithm: SHA256, QOP: "auth", NC: "0000000A", CNonce: "c",
			},
		},
		{
			name:   "escapes in quoted strings",
			header: `Digest username="a\"b\\c", ` + validTail,
			want: Credentials{
				Username: `a"b\c`, Realm: "veilig", Nonce: "n", URI: "sip:veilig",
				Response: "abcdef0123456789abcdef0123456789", Algorithm: MD5,
			},
		},
		{
			name:   "empty list elements and unknown parameters are skipped",
			header: `Digest ,, username="u",, ` + validTail + `, x-vendor=1, other="q" ,`,
			want: Credentials{
				Username: "u", Realm: "veilig", Nonce: "n", URI: "sip:veilig",
				Response: "abcdef0123456789abcdef0123456789", Algorithm: MD5,
			},
		},
		{
			name:   "userhash=false and UTF-8 user",
			header: `Digest username="Jürgen", userhash=false, ` + validTail,
			want: Credentials{
				Username: "Jürgen", Realm: "veilig", Nonce: "n", URI: "sip:veilig",
				Response: "abcdef0123456789abcdef0123456789", Algorithm: MD5,
			},
		},
		{
			name:   "RFC 2069 form parses (Verify refuses it)",
			header: `Digest username="u", ` + validTail,
			want: Credentials{
				Username: "u", Realm: "veilig", Nonce: "n", URI: "sip:veilig",
				Response: "abcdef0123456789abcdef0123456789", Algorithm: MD5,
			},
		},
		{
			name:   "value of exactly 1024 bytes",
			header: `Digest username="` + strings.Repeat("u", 1024) + `", ` + validTail,
			want: Credentials{
				Username: strings.Repeat("u", 1024), Realm: "veilig", Nonce: "n", URI: "sip:veilig",
				Response: "abcdef0123456789abcdef0123456789", Algorithm: MD5,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCredentials(tt.header)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseCredentialsInvalid(t *testing.T) {
	long := strings.Repeat("a", 1025)
	var many strings.Builder
	for i := range 30 {
		fmt.Fprintf(&many, "x%d=1, ", i)
	}
	tests := []struct {
		name   string
		header string
		want   string // substring of the error
	}{
		{"empty", "", "scheme"},
		{"basic scheme", `Basic dXNlcjpwYXNz`, `scheme "Basic"`},
		{"scheme glued to comma", `Digest,username="u", ` + validTail, "space after scheme"},
		{"scheme only", `Digest`, `missing parameter "username"`},
		{"missing username", `Digest ` + validTail, `missing parameter "username"`},
		{"missing realm", `Digest username="u", nonce="n", uri="sip:x", response="00"`, `missing parameter "realm"`},
		{"missing nonce", `Digest username="u", realm="r", uri="sip:x", response="00"`, `missing parameter "nonce"`},
		{"missing uri", `Digest username="u", realm="r", nonce="n", response="00"`, `missing parameter "uri"`},
		{"missing response", `Digest username="u", realm="r", nonce="n", uri="sip:x"`, `missing parameter "response"`},
		{"empty username", `Digest username="", ` + validTail, `empty parameter "username"`},
		{"duplicate username", `Digest username="a", username="b", ` + validTail, `duplicate parameter "username"`},
		{"duplicate differing in case", `Digest username="a", UserName="b", ` + validTail, `duplicate parameter "UserName"`},
		{"duplicate response", `Digest username="a", ` + validTail + `, response="00"`, `duplicate parameter "response"`},
		{"duplicate unknown", `Digest username="a", x=1, X=2, ` + validTail, `duplicate parameter "X"`},
		{"unterminated quote", `Digest ` + validTail + `, username="abc`, "unterminated"},
		{"quote swallows the rest", `Digest username="a, ` + validTail, "expected ','"},
		{"trailing backslash", `Digest ` + validTail + `, username="a\`, "unterminated"},
		{"CR in quoted", "Digest username=\"a\r\nInjected: 1\", " + validTail, "control byte 0x0d"},
		{"NUL in quoted", "Digest username=\"a\x00\", " + validTail, "control byte 0x00"},
		{"escaped control", "Digest username=\"a\\\x01\", " + validTail, "control byte 0x01"},
		{"DEL in escaped quoted", "Digest username=\"\\\\a\x7f\", " + validTail, "control byte 0x7f"},
		{"invalid UTF-8", "Digest username=\"\xff\", " + validTail, "UTF-8"},
		{"value too long", `Digest username="` + long + `", ` + validTail, "longer than 1024"},
		{"escaped value too long", `Digest username="\"` + long + `", ` + validTail, "longer than 1024"},
		{"token too long", `Digest username=` + long + `, ` + validTail, "longer than 1024"},
		{"header too long", `Digest username="u", ` + validTail + `, x="` + strings.Repeat("a", 8200) + `"`, "limit 8192"},
		{"too many parameters", `Digest username="u", ` + validTail + ", " + many.String(), "more than 32"},
		{"name too long", `Digest username="u", ` + validTail + ", " + strings.Repeat("n", 65) + "=1", "name longer"},
		{"no value", `Digest username, ` + validTail, `"username" has no value`},
		{"empty value", `Digest username=, ` + validTail, "unexpected byte"},
		{"value at end", `Digest ` + validTail + `, username=`, "missing value"},
		{"missing comma", `Digest username="u" realm="veilig", nonce="n", uri="sip:x", response="00"`, `expected ',' after parameter "username"`},
		{"garbage name", `Digest ` + validTail + `, ="x"`, "expected parameter name"},
		{"unsupported algorithm", `Digest username="u", algorithm=MD5-sess, ` + validTail, `unsupported digest algorithm "MD5-sess"`},
		{"unknown algorithm", `Digest username="u", algorithm=SHA-512-256, ` + validTail, "unsupported digest algorithm"},
		{"qop without nc", `Digest username="u", qop=auth, cnonce="c", ` + validTail, "qop without nc and cnonce"},
		{"qop without cnonce", `Digest username="u", qop=auth, nc=00000001, ` + validTail, "qop without nc and cnonce"},
		{"short nc", `Digest username="u", qop=auth, nc=1, cnonce="c", ` + validTail, "not 8 hex digits"},
		{"non-hex nc", `Digest username="u", qop=auth, nc=0000000x, cnonce="c", ` + validTail, "not hexadecimal"},
		{"non-hex response", `Digest username="u", realm="r", nonce="n", uri="sip:x", response="zz"`, "not hexadecimal"},
		{"userhash", `Digest username="u", userhash=true, ` + validTail, "userhash"},
		{"username star", `Digest username*=UTF-8''J%C3%BCrgen, realm="veilig", nonce="n", uri="sip:x", response="00"`, "username*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCredentials(tt.header)
			if err == nil {
				t.Fatalf("no error; parsed %+v", got)
			}
			if !errors.Is(err, ErrMalformedCredentials) {
				t.Errorf("error %v does not wrap ErrMalformedCredentials", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if got != (Credentials{}) {
				t.Errorf("error returned with non-zero credentials %+v", got)
			}
		})
	}
}

func TestParseCredentialsErrorsClipInput(t *testing.T) {
	_, err := ParseCredentials(`Basic ` + strings.Repeat("A", 500))
	if err == nil || len(err.Error()) > 120 {
		t.Errorf("error echoes too much input: %v", err)
	}
}

func TestParseCredentialsNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseCredentials(rfc7616SHA256Header) }); n != 0 {
		t.Errorf("ParseCredentials allocates %v times for a header without escapes", n)
	}
}

func TestCredentialsLogValueRedacts(t *testing.T) {
	c := mustParse(t, rfc7616SHA256Header)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("auth", "creds", c)
	out := buf.String()
	for _, secret := range []string{c.Response, c.Nonce, c.CNonce, c.Opaque} {
		if strings.Contains(out, secret) {
			t.Errorf("log line contains %q: %s", secret, out)
		}
	}
	if !strings.Contains(out, "creds.username=Mufasa") || !strings.Contains(out, "creds.algorithm=SHA-256") {
		t.Errorf("log line lacks the useful fields: %s", out)
	}
}
