package media

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/srtp/v3"
)

// Suite names an SDES crypto suite (RFC 4568 / RFC 7714) as written in a=crypto.
type Suite string

// The suites Veilig negotiates. Others (F8, NULL, 192/256-bit CM) are refused:
// pion/srtp lacks some, and NULL ciphers would put audio in the clear.
const (
	SuiteAES128SHA1_80 Suite = "AES_CM_128_HMAC_SHA1_80"
	SuiteAES128SHA1_32 Suite = "AES_CM_128_HMAC_SHA1_32"
	SuiteAEADAES128GCM Suite = "AEAD_AES_128_GCM"
	SuiteAEADAES256GCM Suite = "AEAD_AES_256_GCM"
	// SuitePlain marks a leg negotiated as plain RTP (no SRTP at all).
	SuitePlain Suite = "RTP/AVP"
)

// DefaultSuites is the order Veilig offers suites in when it makes an offer.
// GCM first: it is authenticated encryption with a full 128-bit tag and is
// about three times cheaper to relay than AES-CM+HMAC in pion/srtp. Devices
// that do not know it pick the next line.
var DefaultSuites = []Suite{SuiteAEADAES128GCM, SuiteAEADAES256GCM, SuiteAES128SHA1_80, SuiteAES128SHA1_32}

// Errors returned while parsing or installing keys.
var (
	ErrUnsupportedSuite = errors.New("media: unsupported crypto suite")
	ErrBadCrypto        = errors.New("media: malformed a=crypto")
)

func (s Suite) profile() (srtp.ProtectionProfile, int, int, error) {
	switch s {
	case SuiteAES128SHA1_80:
		return srtp.ProtectionProfileAes128CmHmacSha1_80, 16, 14, nil
	case SuiteAES128SHA1_32:
		return srtp.ProtectionProfileAes128CmHmacSha1_32, 16, 14, nil
	case SuiteAEADAES128GCM:
		return srtp.ProtectionProfileAeadAes128Gcm, 16, 12, nil
	case SuiteAEADAES256GCM:
		return srtp.ProtectionProfileAeadAes256Gcm, 32, 12, nil
	}
	return 0, 0, 0, fmt.Errorf("%w: %q", ErrUnsupportedSuite, string(s))
}

// Supported reports whether Veilig can relay this suite.
func (s Suite) Supported() bool {
	_, _, _, err := s.profile()
	return err == nil
}

// Crypto is one SDES key: the tag and suite of an a=crypto line and its
// master key followed by the master salt.
type Crypto struct {
	Tag   int
	Suite Suite
	Key   []byte // master key || master salt
	// MKI, when the line carries "|value:length", is the master key
	// identifier the sender appends to each packet.
	MKI []byte
}

// NewCrypto makes a fresh random key for suite s. Veilig generates its own
// key per leg, so a device never learns the key the other device uses.
func NewCrypto(tag int, s Suite) (Crypto, error) {
	_, kl, sl, err := s.profile()
	if err != nil {
		return Crypto{}, err
	}
	k := make([]byte, kl+sl)
	if _, err := rand.Read(k); err != nil {
		return Crypto{}, fmt.Errorf("media: generating key: %w", err)
	}
	return Crypto{Tag: tag, Suite: s, Key: k}, nil
}

// Inline is the key-params value of the a=crypto line ("inline:..."),
// unpadded base64 as most devices and rtpengine write it.
func (c Crypto) Inline() string {
	// Padded base64 (RFC 4648 section 4): some peers (libre, hence
	// baresip) mis-decode unpadded GCM keys, whose length is not a
	// multiple of three.
	return "inline:" + base64.StdEncoding.EncodeToString(c.Key)
}

// Attr is the value of an a=crypto attribute (without "a=crypto:").
func (c Crypto) Attr() string {
	return strconv.Itoa(c.Tag) + " " + string(c.Suite) + " " + c.Inline()
}

// Equal reports whether two keys are the same key material and suite; a
// re-INVITE repeating the same key must not reset the SRTP state (ROC).
func (c Crypto) Equal(o Crypto) bool {
	return c.Suite == o.Suite && subtle.ConstantTimeCompare(c.Key, o.Key) == 1 &&
		subtle.ConstantTimeCompare(c.MKI, o.MKI) == 1 && len(c.MKI) == len(o.MKI)
}

// ParseCrypto parses an a=crypto attribute value: "tag suite inline:key[|lifetime][|mki:len] [params]".
// Session parameters that weaken protection (UNENCRYPTED_SRTP and kin) are
// refused; KDR and FEC parameters are refused because pion/srtp lacks them.
func ParseCrypto(v string) (Crypto, error) {
	f := strings.Fields(v)
	if len(f) < 3 {
		return Crypto{}, fmt.Errorf("%w: %d fields", ErrBadCrypto, len(f))
	}
	tag, err := strconv.Atoi(f[0])
	if err != nil || tag < 0 || tag > 999999999 {
		return Crypto{}, fmt.Errorf("%w: tag %q", ErrBadCrypto, f[0])
	}
	s := Suite(f[1])
	_, kl, sl, err := s.profile()
	if err != nil {
		return Crypto{}, err
	}
	if len(f) > 3 {
		return Crypto{}, fmt.Errorf("%w: session parameters %q not supported", ErrBadCrypto, strings.Join(f[3:], " "))
	}
	if strings.Contains(f[2], ";") {
		return Crypto{}, fmt.Errorf("%w: multiple keys not supported", ErrBadCrypto)
	}
	kp, ok := strings.CutPrefix(f[2], "inline:")
	if !ok {
		return Crypto{}, fmt.Errorf("%w: key method", ErrBadCrypto)
	}
	parts := strings.Split(kp, "|")
	key, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(parts[0], "="))
	if err != nil {
		return Crypto{}, fmt.Errorf("%w: key: %v", ErrBadCrypto, err)
	}
	if len(key) != kl+sl {
		return Crypto{}, fmt.Errorf("%w: key is %d bytes, %s needs %d", ErrBadCrypto, len(key), s, kl+sl)
	}
	c := Crypto{Tag: tag, Suite: s, Key: key}
	for _, p := range parts[1:] {
		if mv, ml, isMKI := strings.Cut(p, ":"); isMKI {
			val, err1 := strconv.ParseUint(mv, 10, 64)
			n, err2 := strconv.Atoi(ml)
			if err1 != nil || err2 != nil || n < 1 || n > 8 {
				return Crypto{}, fmt.Errorf("%w: mki %q", ErrBadCrypto, p)
			}
			if n < 8 && val>>(8*n) != 0 {
				return Crypto{}, fmt.Errorf("%w: mki %q does not fit", ErrBadCrypto, p)
			}
			c.MKI = make([]byte, n)
			for i := n - 1; i >= 0; i-- {
				c.MKI[i] = byte(val)
				val >>= 8
			}
			continue
		}
		// Lifetime ("2^31" or a number): pion enforces the RFC 3711 limits itself.
		if _, err := lifetime(p); err != nil {
			return Crypto{}, fmt.Errorf("%w: lifetime %q", ErrBadCrypto, p)
		}
	}
	return c, nil
}

func lifetime(s string) (uint64, error) {
	if e, ok := strings.CutPrefix(s, "2^"); ok {
		n, err := strconv.Atoi(e)
		if err != nil || n < 1 || n > 63 {
			return 0, fmt.Errorf("bad exponent %q", e)
		}
		return 1 << n, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// replayWindow is the SRTP/SRTCP replay window: 128 packets (2.5 s of 20 ms
// audio) tolerates real reordering while refusing every duplicate.
const replayWindow = 128

// check validates c without building a context.
func (c Crypto) check() error {
	_, kl, sl, err := c.Suite.profile()
	if err != nil {
		return err
	}
	if len(c.Key) != kl+sl {
		return fmt.Errorf("%w: key is %d bytes, %s needs %d", ErrBadCrypto, len(c.Key), c.Suite, kl+sl)
	}
	return nil
}

// context builds a pion SRTP context for c with replay protection on.
func (c Crypto) context() (*srtp.Context, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	p, kl, _, _ := c.Suite.profile()
	opts := []srtp.ContextOption{srtp.SRTPReplayProtection(replayWindow), srtp.SRTCPReplayProtection(replayWindow)}
	if len(c.MKI) > 0 {
		opts = append(opts, srtp.MasterKeyIndicator(c.MKI))
	}
	ctx, err := srtp.CreateContext(c.Key[:kl], c.Key[kl:], p, opts...)
	if err != nil {
		return nil, fmt.Errorf("media: srtp context %s: %w", c.Suite, err)
	}
	return ctx, nil
}
