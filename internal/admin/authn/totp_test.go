package authn

import (
	"bytes"
	"image/png"
	"net/url"
	"strings"
	"testing"
	"time"
)

// RFC 6238 appendix B: the SHA-1 seed "12345678901234567890", whose
// 8-digit codes end in these 6 digits.
const rfcSecret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"

func TestTOTPCodeMatchesRFC6238(t *testing.T) {
	for unix, want := range map[int64]string{
		59:          "287082",
		1111111109:  "081804",
		1111111111:  "050471",
		1234567890:  "005924",
		2000000000:  "279037",
		20000000000: "353130",
	} {
		got, err := TOTPCode(rfcSecret, time.Unix(unix, 0))
		if err != nil || got != want {
			t.Errorf("code at %d = %q, %v; want %q", unix, got, err, want)
		}
	}
}

func TestVerifyTOTPAcceptsSkewOfOneStep(t *testing.T) {
	now := time.Unix(1_780_000_015, 0)
	cur := TOTPStep(now)
	for _, d := range []int64{-1, 0, 1} {
		code, _ := codeAt(rfcSecret, cur+d)
		step, ok := VerifyTOTP(rfcSecret, code, now, 0)
		if !ok || step != cur+d {
			t.Errorf("code of step %+d: step %d ok %v, want %d true", d, step, ok, cur+d)
		}
	}
	for _, d := range []int64{-3, -2, 2, 3} {
		code, _ := codeAt(rfcSecret, cur+d)
		if _, ok := VerifyTOTP(rfcSecret, code, now, 0); ok {
			t.Errorf("code of step %+d accepted", d)
		}
	}
}

func TestVerifyTOTPRefusesReplay(t *testing.T) {
	now := time.Unix(1_780_000_015, 0)
	code, _ := TOTPCode(rfcSecret, now)
	step, ok := VerifyTOTP(rfcSecret, code, now, 0)
	if !ok {
		t.Fatal("fresh code refused")
	}
	// The same code again, within its window (same step and the next).
	for _, later := range []time.Duration{0, 10 * time.Second, 40 * time.Second} {
		if _, ok := VerifyTOTP(rfcSecret, code, now.Add(later), step); ok {
			t.Errorf("replayed code accepted %v later", later)
		}
	}
	// An older code (previous step) after a newer one was used.
	prev, _ := codeAt(rfcSecret, step-1)
	if _, ok := VerifyTOTP(rfcSecret, prev, now, step); ok {
		t.Error("code of an earlier step accepted after a later one")
	}
	// The next step's code is fine.
	next, _ := TOTPCode(rfcSecret, now.Add(TOTPPeriod*time.Second))
	if s, ok := VerifyTOTP(rfcSecret, next, now.Add(TOTPPeriod*time.Second), step); !ok || s != step+1 {
		t.Errorf("next step's code: %d %v", s, ok)
	}
}

func TestVerifyTOTPRejectsJunk(t *testing.T) {
	now := time.Unix(1_780_000_015, 0)
	code, _ := TOTPCode(rfcSecret, now)
	if _, ok := VerifyTOTP(rfcSecret, code[:3]+" "+code[3:], now, 0); !ok {
		t.Error("code with a space in the middle refused")
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef", "12345a", "-12345", code + "0"} {
		if _, ok := VerifyTOTP(rfcSecret, bad, now, 0); ok {
			t.Errorf("accepted %q", bad)
		}
	}
	if _, ok := VerifyTOTP("not base32!", code, now, 0); ok {
		t.Error("accepted with a broken secret")
	}
	other, _ := NewTOTP("Veilig", "anna")
	if _, ok := VerifyTOTP(other.Secret, code, now, 0); ok {
		t.Error("code of another secret accepted")
	}
}

func TestNewTOTPEnrolment(t *testing.T) {
	e, err := NewTOTP("Veilig (pbx.example.net)", "anna@example.net")
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Secret) != 32 { // 20 bytes in base32
		t.Errorf("secret %q: want 32 base32 characters (160 bits)", e.Secret)
	}
	u, err := url.Parse(e.URI)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "otpauth" || u.Host != "totp" || q.Get("secret") != e.Secret || q.Get("issuer") != "Veilig (pbx.example.net)" ||
		q.Get("digits") != "6" || q.Get("period") != "30" || q.Get("algorithm") != "SHA1" {
		t.Errorf("URI %s", e.URI)
	}
	if !strings.Contains(u.Path, "anna@example.net") {
		t.Errorf("URI path %q lacks the account", u.Path)
	}
	// The secret in the URI works with VerifyTOTP.
	now := time.Now()
	code, _ := TOTPCode(e.Secret, now)
	if _, ok := VerifyTOTP(e.Secret, code, now, 0); !ok {
		t.Error("own code refused")
	}
	pngBytes, err := e.QRPNG(256)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(pngBytes))
	if err != nil {
		t.Fatalf("QR PNG does not decode: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 256 || b.Dy() != 256 {
		t.Errorf("QR image %v, want 256x256", b)
	}
	if _, err := e.QRPNG(10); err == nil {
		t.Error("tiny QR size accepted")
	}
	if _, err := NewTOTP("", "anna"); err == nil {
		t.Error("empty issuer accepted")
	}
	e2, _ := NewTOTP("Veilig", "anna")
	if e2.Secret == e.Secret {
		t.Error("two enrolments share a secret")
	}
}
