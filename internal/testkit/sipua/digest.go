package sipua

import (
	"crypto/md5" //nolint:gosec // RFC 2617 digest, as the peers under test speak it
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// Challenge is one parsed Digest challenge (WWW- or Proxy-Authenticate),
// or the parameters of a Digest credential. It is written apart from the
// product's digest code on purpose: a test that checks Veilig's digest with
// Veilig's own client would pass whatever both got wrong.
type Challenge struct {
	Params map[string]string // lower-case names, values unquoted
}

// Algorithm is the challenge's algorithm, MD5 when it names none.
func (c Challenge) Algorithm() string {
	if a := c.Params["algorithm"]; a != "" {
		return a
	}
	return "MD5"
}

// ParseChallenge parses `Digest k=v, k="v", ...`.
func ParseChallenge(h string) (Challenge, bool) {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Digest") {
		return Challenge{}, false
	}
	params := map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; {
		key, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		key = strings.ToLower(strings.TrimSpace(key))
		after = strings.TrimSpace(after)
		var val string
		if strings.HasPrefix(after, `"`) {
			end := strings.Index(after[1:], `"`)
			if end < 0 {
				break
			}
			val, after = after[1:end+1], after[end+2:]
		} else {
			val, after, _ = strings.Cut(after, ",")
			after = "," + after
		}
		params[key] = strings.TrimSpace(val)
		_, after, _ = strings.Cut(after, ",")
		rest = strings.TrimSpace(after)
	}
	return Challenge{Params: params}, true
}

// PickChallenge returns the Digest challenge with algorithm alg ("SHA-256"
// or "MD5") among the header values.
func PickChallenge(values []string, alg string) (Challenge, bool) {
	for _, h := range values {
		if c, ok := ParseChallenge(h); ok && strings.EqualFold(c.Algorithm(), alg) {
			return c, true
		}
	}
	return Challenge{}, false
}

// Hash is the challenge algorithm's hash function.
func (c Challenge) Hash() func() hash.Hash {
	if strings.EqualFold(c.Algorithm(), "SHA-256") {
		return sha256.New
	}
	return md5.New
}

// HashHex hashes s with the challenge's algorithm, in hex.
func (c Challenge) HashHex(s string) string {
	d := c.Hash()()
	d.Write([]byte(s))
	return hex.EncodeToString(d.Sum(nil))
}

// Authorization builds the credentials answering c (RFC 7616 3.4; qop=auth
// when offered, the RFC 2069 form otherwise).
func (c Challenge) Authorization(user, pass, method, uri string) string {
	realm, nonce := c.Params["realm"], c.Params["nonce"]
	ha1 := c.HashHex(user + ":" + realm + ":" + pass)
	ha2 := c.HashHex(method + ":" + uri)
	out := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", algorithm=%s`,
		user, realm, nonce, uri, c.Algorithm())
	if strings.Contains(c.Params["qop"], "auth") {
		cnonce, nc := RandHex(8), "00000001"
		resp := c.HashHex(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":auth:" + ha2)
		out += fmt.Sprintf(`, qop=auth, nc=%s, cnonce="%s", response="%s"`, nc, cnonce, resp)
	} else {
		out += fmt.Sprintf(`, response="%s"`, c.HashHex(ha1+":"+nonce+":"+ha2))
	}
	if op, ok := c.Params["opaque"]; ok {
		out += fmt.Sprintf(`, opaque="%s"`, op)
	}
	return out
}
