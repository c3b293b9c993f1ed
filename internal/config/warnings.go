package config

import (
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"time"
)

// insecureWhy explains each insecure_ key in a warning. A key missing here
// still gets a warning, with a generic reason, so a new insecure_ key can
// never be switched on silently.
var insecureWhy = map[string]string{
	"tls.insecure_legacy_versions":           "TLS 1.0/1.1 may be negotiated, which are broken",
	"auth.insecure_md5_first":                "the MD5 digest challenge is offered before SHA-256, so most clients pick MD5",
	"auth.insecure_digest_uri_without_user":  "digest credentials that do not name the callee are accepted, so an INVITE on an unencrypted leg can be redirected to another extension",
	"sip.insecure_sdes_over_plain_transport": "SRTP keys in SDP may cross unencrypted UDP/TCP signalling, where anyone on the path can read them",
}

// sectionWarner is implemented by section types that have allowed but
// weakening settings beyond their insecure_ keys.
type sectionWarner interface {
	warn(prefix string) []string
}

// Warnings lists the settings worth a warning at start: those of
// Findings that the embedded defaults do not already have. A default that
// is a reasoned compromise (MD5 for phones that speak nothing else) is
// reported by the audit instead: a warning that every start prints is one
// nobody reads.
func (c *Config) Warnings() []string {
	def := Default()
	known := map[string]bool{}
	for _, f := range def.Findings() {
		known[f] = true
	}
	var out []string
	for _, f := range c.Findings() {
		if !known[f] {
			out = append(out, f)
		}
	}
	return out
}

// Findings lists every setting that is allowed but weakens security, in a
// stable order, for the audit. Every insecure_ key that is set is listed,
// whether or not its section knows about it.
func (c *Config) Findings() []string {
	var out []string
	for _, k := range keyTable() {
		leaf := k.name[strings.LastIndex(k.name, ".")+1:]
		if !strings.HasPrefix(leaf, "insecure_") {
			continue
		}
		v := reflect.ValueOf(c).Elem().FieldByIndex(k.index)
		if v.IsZero() {
			continue
		}
		why, ok := insecureWhy[k.name]
		if !ok {
			why = "this weakens security"
		}
		out = append(out, fmt.Sprintf("%s is set: %s", k.name, why))
	}
	forEachSection(c, func(name string, v reflect.Value) {
		if sw, ok := v.Interface().(sectionWarner); ok {
			out = append(out, sw.warn(name+".")...)
		}
	})
	return out
}

func (s SIP) warn(p string) []string {
	var out []string
	if s.UDPListen != "" {
		out = append(out, p+"udp_listen is on: SIP over UDP is unencrypted and its source addresses can be spoofed")
	}
	if s.TCPListen != "" {
		out = append(out, p+"tcp_listen is on: SIP over TCP is unencrypted")
	}
	return out
}

func (a Auth) warn(p string) []string {
	if !a.AllowMD5 {
		return nil
	}
	out := []string{p + "allow_md5 is true: clients may answer with the MD5 digest, which is weaker than SHA-256 (many phones only speak MD5)"}
	if len(a.MD5OnlyUserAgents) > 0 {
		out = append(out, p+"md5_only_user_agents offers MD5 alone to clients whose User-Agent contains "+strings.Join(a.MD5OnlyUserAgents, ", "))
	}
	return out
}

func (e Events) warn(p string) []string {
	if e.Retention < 90*24*time.Hour {
		return []string{fmt.Sprintf("%sretention is %s: shorter than the 90 days incident investigations and audits usually need", p, fmtDur(e.Retention))}
	}
	return nil
}

func (m Metrics) warn(p string) []string {
	if m.Listen == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(m.Listen)
	if err != nil {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return nil
	}
	return []string{p + "listen is " + m.Listen + ": metrics are reachable beyond this machine"}
}
