package auth

import (
	"testing"
	"time"
)

func BenchmarkVerifySHA256(b *testing.B) {
	c := mustParse(b, rfc7616SHA256Header)
	ha1 := HA1(SHA256, "Mufasa", "http-auth@example.org", "Circle of Life")
	b.ReportAllocs()
	for b.Loop() {
		if !Verify(c, "GET", ha1) {
			b.Fatal("verify failed")
		}
	}
}

func BenchmarkVerifyMD5(b *testing.B) {
	c := mustParse(b, sippHeader)
	ha1 := HA1(MD5, "1001", "veilig", "Sipp-Secret-123")
	b.ReportAllocs()
	for b.Loop() {
		if !Verify(c, "REGISTER", ha1) {
			b.Fatal("verify failed")
		}
	}
}

func BenchmarkParseCredentials(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCredentials(rfc7616SHA256Header); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNonceIssueCheck is one challenge/response round: issue a nonce
// and accept its first use, with the tracking table at its limit.
func BenchmarkNonceIssueCheck(b *testing.B) {
	m := newManager(b, 100_000)
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Microsecond)
		n := m.Issue(now, ipA)
		if r := m.Check(n, 1, now, ipA); r != NonceOK {
			b.Fatalf("check: %v", r)
		}
	}
}

func BenchmarkNonceIssueCheckParallel(b *testing.B) {
	m := newManager(b, 100_000)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		now := t0
		for pb.Next() {
			now = now.Add(time.Microsecond)
			n := m.Issue(now, ipA)
			m.Check(n, 1, now, ipA)
		}
	})
}

func BenchmarkFakeHA1(b *testing.B) {
	key := testSecret
	b.ReportAllocs()
	for b.Loop() {
		FakeHA1(SHA256, "1001", "veilig", key)
	}
}
