package trunk

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"

	"github.com/veilig/veilig/internal/auth"
)

// challenge is a parsed WWW-/Proxy-Authenticate Digest challenge.
type challenge struct {
	realm, nonce, opaque, algorithm, qop string
}

// parseChallenge reads a Digest challenge from a carrier.
func parseChallenge(v string) (challenge, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(v), "Digest ")
	if !ok {
		return challenge{}, fmt.Errorf("not a Digest challenge: %q", v)
	}
	var c challenge
	for rest != "" {
		rest = strings.TrimLeft(rest, " ,")
		k, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		k = strings.ToLower(strings.TrimSpace(k))
		var val string
		if strings.HasPrefix(after, `"`) {
			end := strings.Index(after[1:], `"`)
			if end < 0 {
				return challenge{}, fmt.Errorf("unterminated quote in challenge")
			}
			val, rest = after[1:1+end], after[2+end:]
		} else {
			val, rest, _ = strings.Cut(after, ",")
			val = strings.TrimSpace(val)
		}
		switch k {
		case "realm":
			c.realm = val
		case "nonce":
			c.nonce = val
		case "opaque":
			c.opaque = val
		case "algorithm":
			c.algorithm = val
		case "qop":
			c.qop = val
		}
	}
	if c.nonce == "" {
		return challenge{}, fmt.Errorf("challenge without nonce")
	}
	return c, nil
}

// authorization answers a challenge (RFC 7616, qop=auth when offered).
func (c challenge) authorization(user, pass, method, uri string) (string, error) {
	alg := auth.MD5
	var h func() hash.Hash = md5.New
	switch strings.ToUpper(c.algorithm) {
	case "", "MD5":
	case "SHA-256":
		alg, h = auth.SHA256, sha256.New
	default:
		return "", fmt.Errorf("unsupported digest algorithm %q", c.algorithm)
	}
	hx := func(s string) string {
		d := h()
		d.Write([]byte(s))
		return hex.EncodeToString(d.Sum(nil))
	}
	ha1 := auth.HA1(alg, user, c.realm, pass)
	ha2 := hx(method + ":" + uri)
	out := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s"`, user, c.realm, c.nonce, uri)
	if c.algorithm != "" {
		out += ", algorithm=" + c.algorithm
	}
	if c.opaque != "" {
		out += fmt.Sprintf(`, opaque="%s"`, c.opaque)
	}
	qopAuth := false
	for _, q := range strings.Split(c.qop, ",") {
		if strings.TrimSpace(q) == "auth" {
			qopAuth = true
		}
	}
	if qopAuth {
		var b [8]byte
		_, _ = rand.Read(b[:])
		cnonce := hex.EncodeToString(b[:])
		resp := hx(ha1 + ":" + c.nonce + ":00000001:" + cnonce + ":auth:" + ha2)
		return out + fmt.Sprintf(`, qop=auth, nc=00000001, cnonce="%s", response="%s"`, cnonce, resp), nil
	}
	return out + fmt.Sprintf(`, response="%s"`, hx(ha1+":"+c.nonce+":"+ha2)), nil
}
