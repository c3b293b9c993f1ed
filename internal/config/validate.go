package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// sectionValidator is implemented by section types that have rules of
// their own; Validate finds them by reflection, so a new section only has
// to define the method.
type sectionValidator interface {
	validate(c checker)
}

// checker collects problems, prefixing keys with the section being checked.
type checker struct {
	prefix string
	errs   *[]error
}

func (c checker) errf(key, format string, args ...any) {
	*c.errs = append(*c.errs, &Error{Key: c.prefix + key, Msg: fmt.Sprintf(format, args...)})
}

// Validate reports every impossible or insecure setting, each as an *Error
// naming its key; nil means the Config is safe to run. Insecure choices are
// accepted only when spelled with an insecure_ key (see Warnings).
func (c *Config) Validate() error {
	var errs []error
	root := checker{errs: &errs}
	if strings.TrimSpace(c.DataDir) == "" {
		root.errf("data_dir", "must be set")
	}
	if c.DataKeyFile != "" && !filepath.IsAbs(c.DataKeyFile) {
		root.errf("data_key_file", "must be an absolute path (it is read from wherever the command runs otherwise), got %q", c.DataKeyFile)
	}
	forEachSection(c, func(name string, v reflect.Value) {
		if sv, ok := v.Interface().(sectionValidator); ok {
			sv.validate(checker{prefix: name + ".", errs: &errs})
		}
	})
	return errors.Join(errs...)
}

// forEachSection calls fn with the yaml name and value of each top-level
// section of c.
func forEachSection(c *Config, fn func(name string, v reflect.Value)) {
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if name := yamlName(f); name != "" && isSection(f.Type) {
			fn(name, v.Field(i))
		}
	}
}

func (l Log) validate(c checker) {
	oneOf(c, "level", l.Level, "debug", "info", "warn", "error")
	oneOf(c, "format", l.Format, "text", "json")
}

func (s SIP) validate(c checker) {
	if s.Domain == "" {
		c.errf("domain", "must be set")
	} else if !validHost(s.Domain) {
		c.errf("domain", "must be a host name or IP address without port, got %q", s.Domain)
	}
	if s.TLSListen == "" {
		c.errf("tls_listen", "must be set: TLS is the signalling transport that is always on")
	}
	listen(c, "tls_listen", s.TLSListen)
	listen(c, "tcp_listen", s.TCPListen)
	listen(c, "udp_listen", s.UDPListen)
	if s.TCPListen != "" && s.TCPListen == s.TLSListen {
		c.errf("tcp_listen", "must differ from %stls_listen, both are %q", c.prefix, s.TLSListen)
	}
	if s.AdvertiseHost != "" && !validHost(s.AdvertiseHost) {
		c.errf("advertise_host", "must be a host name or IP address without port, got %q", s.AdvertiseHost)
	}
	if len(s.UserAgent) > 128 {
		c.errf("user_agent", "must be at most 128 characters, got %d", len(s.UserAgent))
	}
	if strings.ContainsFunc(s.UserAgent, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		c.errf("user_agent", "must be printable ASCII, got %q", s.UserAgent)
	}

	durationRange(c, "min_expires", s.MinExpires, 10*time.Second, 24*time.Hour)
	durationRange(c, "max_expires", s.MaxExpires, 10*time.Second, 24*time.Hour)
	if s.MinExpires > s.MaxExpires {
		c.errf("min_expires", "must not exceed %smax_expires (%s), got %s", c.prefix, fmtDur(s.MaxExpires), fmtDur(s.MinExpires))
	} else if s.DefaultExpires < s.MinExpires || s.DefaultExpires > s.MaxExpires {
		c.errf("default_expires", "must be between %smin_expires (%s) and %smax_expires (%s), got %s",
			c.prefix, fmtDur(s.MinExpires), c.prefix, fmtDur(s.MaxExpires), fmtDur(s.DefaultExpires))
	}
	// Below min_expires the registrar grants min_expires anyway.
	durationRange(c, "connection_max_expires", s.ConnectionMaxExpires, 10*time.Second, 24*time.Hour)
	if s.IdleTimeout <= 30*time.Second {
		c.errf("idle_timeout", "must be more than 30s so devices' keep-alives arrive in time, got %s", fmtDur(s.IdleTimeout))
	} else {
		durationRange(c, "idle_timeout", s.IdleTimeout, 0, 24*time.Hour)
	}
	// Floors that no device needs to be under: a whole message in 2 s
	// even on a slow link, and a REGISTER's challenge round within 10 s.
	durationRange(c, "message_timeout", s.MessageTimeout, 2*time.Second, time.Minute)
	durationRange(c, "auth_timeout", s.AuthTimeout, 10*time.Second, 10*time.Minute)
	if s.MaxConnections != 0 {
		intRange(c, "max_connections", s.MaxConnections, 64, 10_000_000)
	}
	intRange(c, "max_message_size", s.MaxMessageSize, 1024, 65535)
	intRange(c, "udp_workers", s.UDPWorkers, 0, 4096)
	intRange(c, "udp_read_buffer", s.UDPReadBuffer, 0, 256<<20)
}

func (t TLS) validate(c checker) {
	if t.CertFile != "" && t.KeyFile == "" {
		c.errf("key_file", "must be set when %scert_file is", c.prefix)
	}
	if t.KeyFile != "" && t.CertFile == "" {
		c.errf("cert_file", "must be set when %skey_file is", c.prefix)
	}
	switch t.MinVersion {
	case "1.2", "1.3":
	case "1.0", "1.1":
		if !t.InsecureLegacyVersions {
			c.errf("min_version", "TLS %s is obsolete and broken; allowed are 1.2 and 1.3 (set %sinsecure_legacy_versions: true to allow it anyway)", t.MinVersion, c.prefix)
		}
	default:
		c.errf("min_version", "must be 1.2 or 1.3, got %q", t.MinVersion)
	}
}

func (a Auth) validate(c checker) {
	durationRange(c, "nonce_ttl", a.NonceTTL, 10*time.Second, time.Hour)
	if a.InsecureMD5First && !a.AllowMD5 {
		c.errf("insecure_md5_first", "needs %sallow_md5: true; with MD5 off there is no MD5 challenge to put first", c.prefix)
	}
}

func (e Events) validate(c checker) {
	if e.Retention < 24*time.Hour {
		c.errf("retention", "must be at least 24h, got %s", fmtDur(e.Retention))
	}
}

func oneOf(c checker, key, val string, allowed ...string) {
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	c.errf(key, "must be one of %s, got %q", strings.Join(allowed, ", "), val)
}

func durationRange(c checker, key string, d, lo, hi time.Duration) {
	switch {
	case d < lo:
		c.errf(key, "must be at least %s, got %s", fmtDur(lo), fmtDur(d))
	case d > hi:
		c.errf(key, "must be at most %s, got %s", fmtDur(hi), fmtDur(d))
	}
}

func intRange(c checker, key string, n, lo, hi int) {
	if n < lo || n > hi {
		c.errf(key, "must be between %d and %d, got %d", lo, hi, n)
	}
}

// listen checks a host:port listen address; "" (off) passes.
func listen(c checker, key, addr string) {
	if addr == "" {
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		c.errf(key, "must be host:port such as 0.0.0.0:5061 or [::1]:5061, got %q", addr)
		return
	}
	if host != "" && !validHost(host) {
		c.errf(key, "host must be an IP address or host name, got %q", host)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		c.errf(key, "port must be a number from 0 to 65535, got %q", port)
	}
}

// validHost accepts an IP address or a DNS host name (RFC 1123 labels).
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(h, "."), ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// fmtDur prints durations the way users write them ("1h", "10m", "90s"
// rather than "1h0m0s", "10m0s", "1m30s" for round values).
func fmtDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (m Metrics) validate(c checker) {
	listen(c, "listen", m.Listen)
}

func (g Guard) validate(c checker) {
	for key, list := range map[string][]string{"trusted_sources": g.TrustedSources, "allow_sources": g.AllowSources} {
		if _, err := Prefixes(list); err != nil {
			c.errf(key, "%v", err)
		}
	}
}

func (m Media) validate(c checker) {
	if m.Address != "" {
		if _, err := netip.ParseAddr(m.Address); err != nil {
			c.errf("address", "must be an IP address, got %q", m.Address)
		}
	}
	if _, _, err := m.Ports(); err != nil {
		c.errf("port_range", "%v", err)
	}
	if m.Timeout < 5*time.Second {
		c.errf("timeout", "must be at least 5s, got %s", m.Timeout)
	}
	for _, name := range m.Codecs {
		if name == "" || strings.ContainsFunc(name, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_')
		}) {
			c.errf("codecs", "%q is not a codec name (use rtpmap names such as PCMA, G722, opus)", name)
		}
	}
}

func (f Fraud) validate(c checker) {
	if len(f.Country) != 2 || strings.ToUpper(f.Country) != f.Country {
		c.errf("country", "must be an ISO 3166 two-letter country code such as NL, got %q", f.Country)
	}
	if f.TimeZone != "" {
		if _, err := time.LoadLocation(f.TimeZone); err != nil {
			c.errf("time_zone", "unknown time zone %q (use an IANA name such as Europe/Amsterdam)", f.TimeZone)
		}
	}
	oneOf(c, "business_hours", f.BusinessHours, "off", "refuse", "alert")
	oneOf(c, "trip", f.Trip, "suspend", "alert")
	for _, l := range []struct {
		key string
		v   float64
	}{
		{"extension_concurrent", float64(f.ExtensionConcurrent)}, {"extension_per_minute", float64(f.ExtensionPerMinute)},
		{"extension_max_duration", float64(f.ExtensionMaxDuration)}, {"extension_daily_budget", f.ExtensionDailyBudget},
		{"trunk_concurrent", float64(f.TrunkConcurrent)}, {"trunk_per_minute", float64(f.TrunkPerMinute)},
		{"trunk_max_duration", float64(f.TrunkMaxDuration)}, {"trunk_daily_budget", f.TrunkDailyBudget},
	} {
		if l.v <= 0 && l.v != -1 {
			c.errf(l.key, "must be positive, or -1 for no limit (0 would refuse every call), got %v", l.v)
		}
	}
	for _, r := range []struct {
		key string
		v   float64
	}{{"rate_national", f.RateNational}, {"rate_eu", f.RateEU}, {"rate_default", f.RateDefault}} {
		if r.v < 0 {
			c.errf(r.key, "must not be negative, got %v", r.v)
		}
	}
}
