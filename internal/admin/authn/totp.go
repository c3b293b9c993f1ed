package authn

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters: what every authenticator app supports (RFC 6238's
// defaults). Apps ignore other values in the URI often enough that
// changing them would lock people out.
const (
	TOTPPeriod     = 30 // seconds per step
	TOTPDigits     = 6
	TOTPSecretSize = 20 // bytes, 160 bits (RFC 4226 section 4)
	// TOTPSkew is how many steps either side of now a code may be from,
	// for a phone whose clock is a little off.
	TOTPSkew = 1
)

// TOTPEnrolment is a new TOTP secret on its way to an authenticator app.
// Secret goes to storage (sealed with the data key: it is a shared
// secret, not a hash) only after the user has confirmed it with a code.
type TOTPEnrolment struct {
	Secret string // base32, no padding
	URI    string // otpauth://totp/...: what the QR code holds
	key    *otp.Key
}

// NewTOTP makes a fresh secret for account at issuer (the name the app
// shows, such as "Veilig (pbx.example.net)").
func NewTOTP(issuer, account string) (*TOTPEnrolment, error) {
	k, err := totp.Generate(totp.GenerateOpts{
		Issuer:      issuer,
		AccountName: account,
		Period:      TOTPPeriod,
		SecretSize:  TOTPSecretSize,
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return nil, fmt.Errorf("authn: new TOTP secret for %q: %w", account, err)
	}
	return &TOTPEnrolment{Secret: k.Secret(), URI: k.URL(), key: k}, nil
}

// QRPNG renders the URI as a QR code, a size by size PNG, for the
// enrolment page.
func (e *TOTPEnrolment) QRPNG(size int) ([]byte, error) {
	if size < 64 || size > 1024 {
		return nil, fmt.Errorf("authn: QR size %d: want 64..1024", size)
	}
	img, err := e.key.Image(size, size)
	if err != nil {
		return nil, fmt.Errorf("authn: QR code: %w", err)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return nil, fmt.Errorf("authn: QR code: %w", err)
	}
	return b.Bytes(), nil
}

// TOTPStep is the time step t falls in.
func TOTPStep(t time.Time) int64 { return t.Unix() / TOTPPeriod }

// TOTPCode is the code for secret at time t. The server needs it only in
// tests; a browser test uses it to play the authenticator app.
func TOTPCode(secret string, t time.Time) (string, error) {
	return codeAt(secret, TOTPStep(t))
}

func codeAt(secret string, step int64) (string, error) {
	if step < 0 {
		return "", fmt.Errorf("authn: TOTP step %d before 1970", step)
	}
	c, err := hotp.GenerateCodeCustom(secret, uint64(step), hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return "", fmt.Errorf("authn: TOTP code: %w", err)
	}
	return c, nil
}

// VerifyTOTP checks code against secret at now, allowing TOTPSkew steps
// either way, and refuses any step at or before lastStep: the library
// keeps no state, so without this a code seen over someone's shoulder
// would work again for up to a minute and a half. On success it returns
// the step the code belongs to; the caller stores it as the new lastStep
// in the same transaction that accepts the login (0 when none yet).
// Spaces in the code are ignored; anything but 6 digits fails.
func VerifyTOTP(secret, code string, now time.Time, lastStep int64) (step int64, ok bool) {
	code = strings.ReplaceAll(code, " ", "")
	if len(code) != TOTPDigits || strings.Trim(code, "0123456789") != "" {
		return 0, false
	}
	cur := TOTPStep(now)
	matched := int64(-1)
	for s := cur - TOTPSkew; s <= cur+TOTPSkew; s++ {
		want, err := codeAt(secret, s)
		if err != nil {
			return 0, false
		}
		// Check every step (no early return) so timing does not say
		// which step matched; a later step wins if two codes collide.
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && s > lastStep {
			matched = s
		}
	}
	if matched < 0 {
		return 0, false
	}
	return matched, true
}
