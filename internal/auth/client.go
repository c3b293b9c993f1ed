package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Offer is one Digest challenge as a client reads it: Veilig answering a
// carrier that challenges its REGISTER or INVITE, or a load tool answering
// Veilig.
type Offer struct {
	Realm, Nonce, Opaque string
	Algorithm            Algorithm
	// AlgorithmParam is the algorithm parameter as sent ("" when absent,
	// which means MD5); the answer repeats it.
	AlgorithmParam string
	QOPAuth        bool // qop offers "auth"
}

// ParseChallenge reads a WWW-Authenticate or Proxy-Authenticate value.
// Challenges with an algorithm Veilig cannot answer are an error.
func ParseChallenge(value string) (Offer, error) {
	var o Offer
	p := parser{s: value}
	p.skipWS()
	if scheme := p.token(); !strings.EqualFold(scheme, "Digest") {
		return o, fmt.Errorf("challenge scheme %q is not Digest", clip(scheme))
	}
	for {
		for p.skipWS(); p.i < len(p.s) && p.s[p.i] == ','; p.skipWS() {
			p.i++
		}
		if p.i == len(p.s) {
			break
		}
		name := p.token()
		p.skipWS()
		if name == "" || p.i == len(p.s) || p.s[p.i] != '=' {
			return Offer{}, fmt.Errorf("malformed challenge at byte %d", p.i)
		}
		p.i++
		p.skipWS()
		v, err := p.value()
		if err != nil {
			return Offer{}, fmt.Errorf("challenge parameter %q: %w", clip(name), err)
		}
		switch strings.ToLower(name) {
		case "realm":
			o.Realm = v
		case "nonce":
			o.Nonce = v
		case "opaque":
			o.Opaque = v
		case "algorithm":
			o.AlgorithmParam = v
		case "qop":
			for _, q := range strings.Split(v, ",") {
				if strings.TrimSpace(q) == "auth" {
					o.QOPAuth = true
				}
			}
		}
	}
	if o.Nonce == "" {
		return Offer{}, errors.New("challenge without nonce")
	}
	o.Algorithm = MD5
	if o.AlgorithmParam != "" {
		a, err := ParseAlgorithm(o.AlgorithmParam)
		if err != nil {
			return Offer{}, fmt.Errorf("challenge: %w", err)
		}
		o.Algorithm = a
	}
	return o, nil
}

// PickChallenge returns the strongest offer among the challenge header
// values it can answer: SHA-256 before MD5 (RFC 8760 section 2.4).
func PickChallenge(values []string) (Offer, error) {
	var best Offer
	found := false
	var firstErr error
	for _, v := range values {
		o, err := ParseChallenge(v)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if !found || (o.Algorithm == SHA256 && best.Algorithm != SHA256) {
			best, found = o, true
		}
	}
	if !found {
		if firstErr == nil {
			firstErr = errors.New("no challenge")
		}
		return Offer{}, firstErr
	}
	return best, nil
}

// Authorization answers o for user and secret (RFC 7616 section 3.4), with
// qop=auth when it is offered and the RFC 2069 form otherwise. Values are
// quoted as Challenge quotes them, so none can break the header.
func (o Offer) Authorization(user, secret, method, uri string) string {
	ha1 := HA1(o.Algorithm, user, o.Realm, secret)
	var buf [maxHexLen]byte
	ha2 := string(o.Algorithm.sumHex(&buf, []byte(method+":"+uri)))
	var b strings.Builder
	param := func(name, v string) {
		b.WriteString(", " + name + "=")
		writeQuoted(&b, v)
	}
	b.WriteString("Digest username=")
	writeQuoted(&b, user)
	param("realm", o.Realm)
	param("nonce", o.Nonce)
	param("uri", uri)
	if o.AlgorithmParam != "" {
		b.WriteString(", algorithm=" + o.Algorithm.String())
	}
	if o.Opaque != "" {
		param("opaque", o.Opaque)
	}
	if !o.QOPAuth {
		param("response", string(o.Algorithm.sumHex(&buf, []byte(ha1+":"+o.Nonce+":"+ha2))))
		return b.String()
	}
	var c [8]byte
	_, _ = rand.Read(c[:])
	cnonce := hex.EncodeToString(c[:])
	b.WriteString(", qop=auth, nc=00000001")
	param("cnonce", cnonce)
	param("response", string(o.Algorithm.sumHex(&buf, []byte(ha1+":"+o.Nonce+":00000001:"+cnonce+":auth:"+ha2))))
	return b.String()
}
