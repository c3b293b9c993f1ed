package call

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/pion/sdp/v3"
)

// suiteKeyLen is the inline key+salt length (bytes) each acceptable SDES
// suite must carry (RFC 4568, RFC 6188, RFC 7714).
var suiteKeyLen = map[string]int{
	"AES_CM_128_HMAC_SHA1_80": 30,
	"AES_CM_128_HMAC_SHA1_32": 30,
	"AES_256_CM_HMAC_SHA1_80": 46,
	"AES_256_CM_HMAC_SHA1_32": 46,
	"AEAD_AES_128_GCM":        28,
	"AEAD_AES_256_GCM":        44,
}

// insecureParams are SDES session parameters that switch protection off.
var insecureParams = []string{"UNENCRYPTED_SRTP", "UNENCRYPTED_SRTCP", "UNAUTHENTICATED_SRTP"}

// ErrNotSecure is the class of every media policy refusal.
var ErrNotSecure = errors.New("media not encrypted")

// Media summarises an accepted SDP body.
type Media struct {
	// Suite is the SDES suite of the first active stream ("" when no
	// stream is active, e.g. every port 0).
	Suite  string
	Active int
	// HasKeys reports inline key material, which must not cross an
	// unencrypted signalling hop.
	HasKeys bool
}

// Protection is how the call record describes this media.
func (m Media) Protection() string {
	if m.Suite == "" {
		return "none (no active media)"
	}
	return "SRTP " + m.Suite
}

// CheckSRTP enforces Veilig's media rule on an SDP offer or answer: every
// active stream is RTP/SAVP or RTP/SAVPF with at least one acceptable
// a=crypto (an answer: exactly one). Anything else is refused, so no path
// ever carries plain RTP to a device.
func CheckSRTP(body []byte, answer bool) (Media, error) {
	var s sdp.SessionDescription
	if err := s.UnmarshalString(string(body)); err != nil {
		return Media{}, fmt.Errorf("%w: malformed SDP: %v", ErrNotSecure, err)
	}
	var m Media
	for i, md := range s.MediaDescriptions {
		if md.MediaName.Port.Value == 0 {
			continue // a rejected or disabled stream carries nothing
		}
		proto := strings.Join(md.MediaName.Protos, "/")
		if proto != "RTP/SAVP" && proto != "RTP/SAVPF" {
			return Media{}, fmt.Errorf("%w: stream %d (%s) uses %s, need RTP/SAVP or RTP/SAVPF", ErrNotSecure, i+1, md.MediaName.Media, proto)
		}
		suite, n, err := cryptoLines(md)
		if err != nil {
			return Media{}, fmt.Errorf("%w: stream %d: %v", ErrNotSecure, i+1, err)
		}
		if answer && n != 1 {
			return Media{}, fmt.Errorf("%w: stream %d: answer must choose exactly one a=crypto, has %d", ErrNotSecure, i+1, n)
		}
		m.Active++
		m.HasKeys = true
		if m.Suite == "" {
			m.Suite = suite
		}
	}
	return m, nil
}

// cryptoLines validates a stream's a=crypto lines and returns the first
// acceptable suite and how many acceptable lines there are. An
// unacceptable line is skipped in an offer (the peer may choose another)
// but any line that disables protection refuses the stream.
func cryptoLines(md *sdp.MediaDescription) (first string, n int, err error) {
	for _, a := range md.Attributes {
		if a.Key != "crypto" {
			continue
		}
		f := strings.Fields(a.Value)
		if len(f) < 3 {
			return "", 0, fmt.Errorf("malformed a=crypto %q", a.Value)
		}
		for _, p := range f[3:] {
			for _, bad := range insecureParams {
				if strings.EqualFold(p, bad) {
					return "", 0, fmt.Errorf("a=crypto disables protection with %s", bad)
				}
			}
		}
		want, ok := suiteKeyLen[f[1]]
		if !ok {
			continue
		}
		if !validKeyParams(f[2], want) {
			return "", 0, fmt.Errorf("a=crypto %s has a malformed key", f[1])
		}
		if first == "" {
			first = f[1]
		}
		n++
	}
	if n == 0 {
		return "", 0, errors.New("no acceptable a=crypto suite")
	}
	return first, n, nil
}

// validKeyParams checks "inline:<base64 key||salt>[|lifetime][|MKI:len]"
// (several key params may be joined with ';').
func validKeyParams(s string, want int) bool {
	for _, kp := range strings.Split(s, ";") {
		v, ok := strings.CutPrefix(kp, "inline:")
		if !ok {
			return false
		}
		key, _, _ := strings.Cut(v, "|")
		raw, err := base64.StdEncoding.DecodeString(key)
		if err != nil {
			raw, err = base64.RawStdEncoding.DecodeString(key)
		}
		if err != nil || len(raw) != want {
			return false
		}
	}
	return true
}
