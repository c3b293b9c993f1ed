package auth

import (
	"strings"
	"testing"
)

// One-line forms of the Authorization headers in the RFC examples.
const (
	rfc2617Header = `Digest username="Mufasa", realm="testrealm@host.com", ` +
		`nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, ` +
		`nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", ` +
		`opaque="5ccc069c403ebaf9f0171e9517f40e41"`
	rfc7616Common = `Digest username="Mufasa", realm="http-auth@example.org", ` +
		`uri="/dir/index.html", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", ` +
		`nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, ` +
		`opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`
	rfc7616SHA256Header = rfc7616Common + `, algorithm=SHA-256, ` +
		`response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"`
	rfc7616MD5Header = rfc7616Common + `, algorithm=MD5, response="8ca523f5e9506fed4657c9700eebdbec"`

	// Captured on loopback from the Debian builds of sipp 3.6.1 and
	// baresip 1.0.0 answering a 401 from a test responder.
	sippHeader = `Digest username="1001",realm="veilig",cnonce="6b8b4567",nc=00000001,qop=auth,` +
		`uri="sip:127.0.0.1:5070",nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",` +
		`response="80f6e098e2ab4f48ef0d79a3171e9c55",algorithm=MD5,opaque="op4que"`
	baresipHeader = `Digest username="1001", realm="veilig", ` +
		`nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ` +
		`uri="sip:127.0.0.1:5070;transport=udp", response="31d9187c1bf33cac17a5ce0aa1d8ff1d", ` +
		`opaque="op4que", cnonce="7e4ec06941469a67", qop=auth, nc=00000001`
)

func mustParse(t testing.TB, h string) Credentials {
	t.Helper()
	c, err := ParseCredentials(h)
	if err != nil {
		t.Fatalf("ParseCredentials(%q): %v", h, err)
	}
	return c
}

func TestHA1(t *testing.T) {
	// RFC 2617 section 3.5 gives no HA1; this is MD5("Mufasa:testrealm@host.com:Circle Of Life").
	if got, want := HA1(MD5, "Mufasa", "testrealm@host.com", "Circle Of Life"), "939e7578ed9e3c518a452acee763bce9"; got != want {
		t.Errorf("HA1 MD5 = %s, want %s", got, want)
	}
	if got := HA1(SHA256, "u", "r", "p"); len(got) != 64 || strings.ToLower(got) != got {
		t.Errorf("HA1 SHA256 = %q, want 64 lowercase hex", got)
	}
	if got := HA1(0, "u", "r", "p"); got != "" {
		t.Errorf("HA1 with invalid algorithm = %q, want empty", got)
	}
	long := strings.Repeat("x", 1000) // past the stack buffer
	if HA1(SHA256, long, long, long) == HA1(SHA256, long, long, long+"y") {
		t.Error("HA1 ignores the end of a long secret")
	}
}

func TestVerifyVectors(t *testing.T) {
	tests := []struct {
		name, header, secret, method string
		alg                          Algorithm
	}{
		{"RFC 2617 3.5 MD5", rfc2617Header, "Circle Of Life", "GET", MD5},
		{"RFC 7616 3.9.1 MD5", rfc7616MD5Header, "Circle of Life", "GET", MD5},
		{"RFC 7616 3.9.1 SHA-256", rfc7616SHA256Header, "Circle of Life", "GET", SHA256},
		{"sipp 3.6.1", sippHeader, "Sipp-Secret-123", "REGISTER", MD5},
		{"baresip 1.0.0", baresipHeader, "Baresip-Secret-123", "REGISTER", MD5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, tt.header)
			if c.Algorithm != tt.alg {
				t.Fatalf("algorithm = %v, want %v", c.Algorithm, tt.alg)
			}
			ha1 := HA1(c.Algorithm, c.Username, c.Realm, tt.secret)
			if !Verify(c, tt.method, ha1) {
				t.Fatal("Verify = false for the correct secret")
			}
			if !Verify(c, tt.method, strings.ToUpper(ha1)) {
				t.Error("Verify = false for an upper-case HA1")
			}
			up := c
			up.Response = strings.ToUpper(c.Response)
			if !Verify(up, tt.method, ha1) {
				t.Error("Verify = false for an upper-case response")
			}
			if Verify(c, tt.method, HA1(c.Algorithm, c.Username, c.Realm, tt.secret+"x")) {
				t.Error("Verify = true for a wrong secret")
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	base := mustParse(t, rfc7616SHA256Header)
	ha1 := HA1(SHA256, "Mufasa", "http-auth@example.org", "Circle of Life")
	if !Verify(base, "GET", ha1) {
		t.Fatal("base case does not verify")
	}
	tests := []struct {
		name   string
		mutate func(*Credentials)
		method string
		ha1    string
	}{
		{"RFC 2069 form without qop", func(c *Credentials) { c.QOP = "" }, "GET", ha1},
		{"qop auth-int", func(c *Credentials) { c.QOP = "auth-int" }, "GET", ha1},
		{"other method", func(*Credentials) {}, "POST", ha1},
		{"other uri", func(c *Credentials) { c.URI = "/dir/other.html" }, "GET", ha1},
		{"other nonce", func(c *Credentials) { c.Nonce += "x" }, "GET", ha1},
		{"other nc", func(c *Credentials) { c.NC = "00000002" }, "GET", ha1},
		{"other cnonce", func(c *Credentials) { c.CNonce += "x" }, "GET", ha1},
		{"missing nc", func(c *Credentials) { c.NC = "" }, "GET", ha1},
		{"bad nc", func(c *Credentials) { c.NC = "0000000g" }, "GET", ha1},
		{"missing cnonce", func(c *Credentials) { c.CNonce = "" }, "GET", ha1},
		{"truncated response", func(c *Credentials) { c.Response = c.Response[:32] }, "GET", ha1},
		{"flipped response", func(c *Credentials) { c.Response = "0" + c.Response[1:] }, "GET", ha1},
		{"MD5 claimed for SHA-256 HA1", func(c *Credentials) { c.Algorithm = MD5 }, "GET", ha1},
		{"invalid algorithm", func(c *Credentials) { c.Algorithm = 0 }, "GET", ha1},
		{"short HA1", func(*Credentials) {}, "GET", ha1[:32]},
		{"empty HA1", func(*Credentials) {}, "GET", ""},
		{"zero value", func(c *Credentials) { *c = Credentials{} }, "GET", ha1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mutate(&c)
			if Verify(c, tt.method, tt.ha1) {
				t.Error("Verify = true")
			}
		})
	}
}

func TestVerifyDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	c := mustParse(t, rfc7616SHA256Header)
	ha1 := HA1(SHA256, "Mufasa", "http-auth@example.org", "Circle of Life")
	if n := testing.AllocsPerRun(100, func() { Verify(c, "GET", ha1) }); n != 0 {
		t.Errorf("Verify allocates %v times per call", n)
	}
}

func TestFakeHA1(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	a := FakeHA1(SHA256, "1001", "veilig", key)
	if len(a) != 64 {
		t.Fatalf("SHA-256 fake HA1 has length %d", len(a))
	}
	if m := FakeHA1(MD5, "1001", "veilig", key); len(m) != 32 || m == a[:32] {
		t.Errorf("MD5 fake HA1 = %q, want 32 hex digits independent of SHA-256", m)
	}
	if FakeHA1(SHA256, "1001", "veilig", key) != a {
		t.Error("fake HA1 is not deterministic")
	}
	for name, other := range map[string]string{
		"user":  FakeHA1(SHA256, "1002", "veilig", key),
		"realm": FakeHA1(SHA256, "1001", "other", key),
		"key":   FakeHA1(SHA256, "1001", "veilig", []byte("another key of thirty-two bytes!")),
		"split": FakeHA1(SHA256, "1001veilig", "", key),
	} {
		if other == a {
			t.Errorf("fake HA1 does not depend on %s", name)
		}
	}
	if FakeHA1(SHA256, "a:b", "c", key) == FakeHA1(SHA256, "a", "b:c", key) {
		t.Error("fake HA1 confuses user/realm boundaries")
	}
	if FakeHA1(0, "u", "r", key) != "" {
		t.Error("fake HA1 for invalid algorithm is not empty")
	}
	// An unknown user goes through Verify like a known one and fails.
	c := mustParse(t, rfc7616SHA256Header)
	if Verify(c, "GET", FakeHA1(c.Algorithm, c.Username, c.Realm, key)) {
		t.Error("Verify accepted a response against a fake HA1")
	}
}

func TestAlgorithm(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Algorithm
	}{{"MD5", MD5}, {"md5", MD5}, {"SHA-256", SHA256}, {"sha-256", SHA256}} {
		got, err := ParseAlgorithm(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseAlgorithm(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "MD5-sess", "SHA-256-sess", "SHA-512-256", "SHA256", "AKAv1-MD5"} {
		if _, err := ParseAlgorithm(in); err == nil {
			t.Errorf("ParseAlgorithm(%q) succeeded", in)
		}
	}
	if MD5.String() != "MD5" || SHA256.String() != "SHA-256" || Algorithm(9).String() != "Algorithm(9)" {
		t.Error("Algorithm.String gives the wrong names")
	}
}
