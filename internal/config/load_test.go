package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestKeysContract pins the YAML names: acceptance tests, docs and users'
// files depend on them, so renaming one must be a deliberate act.
func TestKeysContract(t *testing.T) {
	want := []string{
		"data_dir", "data_key_file",
		"log.level", "log.format",
		"sip.domain", "sip.tls_listen", "sip.tcp_listen", "sip.udp_listen", "sip.advertise_host",
		"sip.user_agent", "sip.min_expires", "sip.max_expires", "sip.default_expires", "sip.connection_max_expires",
		"sip.idle_timeout", "sip.message_timeout", "sip.auth_timeout", "sip.max_connections", "sip.max_message_size", "sip.udp_workers", "sip.udp_read_buffer",
		"sip.insecure_sdes_over_plain_transport",
		"tls.cert_file", "tls.key_file", "tls.min_version", "tls.insecure_legacy_versions",
		"auth.allow_md5", "auth.nonce_ttl", "auth.insecure_md5_first", "auth.md5_only_user_agents",
		"auth.insecure_digest_uri_without_user",
		"events.log_file", "events.retention",
		"metrics.listen",
		"guard.trusted_sources", "guard.allow_sources", "guard.scanner_user_agents", "guard.scanner_ignore",
		"media.address", "media.advertise", "media.port_range", "media.timeout", "media.codecs",
		"fraud.country", "fraud.time_zone", "fraud.allow_prefixes",
		"fraud.extension_concurrent", "fraud.extension_per_minute", "fraud.extension_max_duration", "fraud.extension_daily_budget",
		"fraud.trunk_concurrent", "fraud.trunk_per_minute", "fraud.trunk_max_duration", "fraud.trunk_daily_budget",
		"fraud.rate_national", "fraud.rate_eu", "fraud.rate_default", "fraud.business_hours", "fraud.trip",
	}
	if got := Keys(); !slices.Equal(got, want) {
		t.Errorf("Keys() =\n%q\nwant\n%q", got, want)
	}
}

func TestEnvNames(t *testing.T) {
	for key, want := range map[string]string{
		"data_dir":       "VEILIG_DATA_DIR",
		"sip.domain":     "VEILIG_SIP_DOMAIN",
		"sip.tls_listen": "VEILIG_SIP_TLS_LISTEN",
		"tls.cert_file":  "VEILIG_TLS_CERT_FILE",
		"auth.allow_md5": "VEILIG_AUTH_ALLOW_MD5",
		"no.such_key":    "",
	} {
		if got := EnvName(key); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", key, got, want)
		}
	}
	seen := map[string]string{}
	for _, k := range Keys() {
		env := EnvName(k)
		if other, dup := seen[env]; dup {
			t.Errorf("%s and %s share env name %s", k, other, env)
		}
		if slices.Contains(cliEnv, env) {
			t.Errorf("%s's env name %s is also a CLI variable", k, env)
		}
		seen[env] = k
	}
}

// TestEveryFieldTagged keeps the reflection honest: a field without an
// explicit yaml tag, or an inlined struct, would silently change names.
func TestEveryFieldTagged(t *testing.T) {
	var check func(reflect.Type)
	check = func(typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag := f.Tag.Get("yaml")
			if tag == "" || strings.Contains(tag, ",") {
				t.Errorf("%s.%s: want a plain explicit yaml tag, got %q", typ.Name(), f.Name, tag)
			}
			if isSection(f.Type) {
				check(f.Type)
			}
		}
	}
	check(reflect.TypeFor[Config]())
}

func TestEnvOverrides(t *testing.T) {
	c, err := Load(LoadOptions{Env: []string{
		"HOME=/root",
		"VEILIG_DATA_DIR=/tmp/vd",
		"VEILIG_SIP_DOMAIN=env.example",
		"VEILIG_SIP_UDP_LISTEN=127.0.0.1:5060",
		"VEILIG_SIP_MIN_EXPIRES=90s",
		"VEILIG_SIP_MAX_MESSAGE_SIZE=4096",
		"VEILIG_AUTH_ALLOW_MD5=false",
		"VEILIG_TLS_CERT_FILE=/c.pem",
		"VEILIG_TLS_KEY_FILE=/k.pem",
		"VEILIG_CONFIG=/etc/veilig.yaml",
		"VEILIG_SOMETHING_ELSE=1",
	}, ExtraEnv: []string{"VEILIG_SOMETHING_ELSE"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/tmp/vd" || c.SIP.Domain != "env.example" || c.SIP.UDPListen != "127.0.0.1:5060" ||
		c.SIP.MinExpires != 90*time.Second || c.SIP.MaxMessageSize != 4096 || c.Auth.AllowMD5 ||
		c.TLS.CertFile != "/c.pem" || c.TLS.KeyFile != "/k.pem" {
		t.Errorf("env not applied: %+v", c)
	}
}

func TestEnvEmptyTurnsOff(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "v.yaml")
	if err := os.WriteFile(f, []byte("sip:\n  udp_listen: 127.0.0.1:5060\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(LoadOptions{File: f, Env: []string{"VEILIG_SIP_UDP_LISTEN="}})
	if err != nil {
		t.Fatal(err)
	}
	if c.SIP.UDPListen != "" {
		t.Errorf("udp_listen = %q, want off", c.SIP.UDPListen)
	}
}

func TestUnknownEnvIsError(t *testing.T) {
	_, err := Load(LoadOptions{Env: []string{"VEILIG_SIP_DOMIAN=x"}})
	if err == nil {
		t.Fatal("unknown VEILIG_ variable accepted")
	}
	want := "config: VEILIG_SIP_DOMIAN: unknown environment variable (did you mean VEILIG_SIP_DOMAIN?)"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want %q", err, want)
	}
}

func TestEnvBadValues(t *testing.T) {
	_, err := Load(LoadOptions{Env: []string{
		"VEILIG_SIP_MIN_EXPIRES=60",
		"VEILIG_AUTH_ALLOW_MD5=yes please",
		"VEILIG_SIP_UDP_WORKERS=x",
	}})
	for _, want := range []string{
		`config: sip.min_expires (from VEILIG_SIP_MIN_EXPIRES): must be a duration such as 90s, 10m or 1h, got "60"`,
		`config: auth.allow_md5 (from VEILIG_AUTH_ALLOW_MD5): must be true or false, got "yes please"`,
		`config: sip.udp_workers (from VEILIG_SIP_UDP_WORKERS): must be a whole number, got "x"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestEnvValueIsValidated(t *testing.T) {
	_, err := Load(LoadOptions{Env: []string{"VEILIG_SIP_MIN_EXPIRES=1s"}})
	if err == nil || !strings.Contains(err.Error(), "config: sip.min_expires: must be at least 10s, got 1s") {
		t.Errorf("got %v", err)
	}
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "v.yaml")
	body := "sip:\n  domain: file.example\n  user_agent: from-file\nlog:\n  level: warn\n"
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(LoadOptions{
		File:      f,
		Env:       []string{"VEILIG_SIP_DOMAIN=env.example", "VEILIG_LOG_LEVEL=error"},
		Overrides: map[string]string{"sip.domain": "flag.example"},
	})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"override beats env and file", c.SIP.Domain, "flag.example"},
		{"env beats file", c.Log.Level, "error"},
		{"file beats default", c.SIP.UserAgent, "from-file"},
		{"default stays", c.Log.Format, "text"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s: got %q, want %q", ch.name, ch.got, ch.want)
		}
	}
}

func TestOverrideErrors(t *testing.T) {
	_, err := Load(LoadOptions{Overrides: map[string]string{
		"sip.domian":       "x",
		"sip.idle_timeout": "forever",
	}})
	for _, want := range []string{
		"config: sip.domian (from override): unknown key (did you mean sip.domain?)",
		`config: sip.idle_timeout (from override): must be a duration`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.Source != "override" {
		t.Errorf("want *Error from override, got %v", err)
	}
}

// TestValueRoundTrip proves that every key can be printed and set back
// through the environment, so a config dump is a valid input.
func TestValueRoundTrip(t *testing.T) {
	src, err := Load(LoadOptions{File: "testdata/full.good.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, k := range Keys() {
		v, ok := src.Value(k)
		if !ok {
			t.Fatalf("Value(%q) not found", k)
		}
		env = append(env, EnvName(k)+"="+v)
	}
	got, err := Load(LoadOptions{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, src) {
		t.Errorf("round trip:\n%+v\nwant\n%+v", got, src)
	}
	if v, _ := src.Value("sip.max_expires"); v != "2h0m0s" {
		t.Errorf("Value(sip.max_expires) = %q", v)
	}
	if _, ok := src.Value("nope"); ok {
		t.Error("Value(nope) found")
	}
}
