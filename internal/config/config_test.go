package config

import (
	"bufio"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	// MD5 on by default is the one allowed weakening: most phones need it.
	want := []string{
		"auth.allow_md5 is true: clients may answer with the MD5 digest, which is weaker than SHA-256 (many phones only speak MD5)",
		"auth.md5_only_user_agents offers MD5 alone to clients whose User-Agent contains baresip, sipp",
	}
	if got := c.Findings(); !slices.Equal(got, want) {
		t.Errorf("Default().Findings() = %q, want %q", got, want)
	}
	// ...and, being the default, it is the audit's to report, not a
	// warning at every start.
	if got := c.Warnings(); len(got) != 0 {
		t.Errorf("Default().Warnings() = %q, want none", got)
	}
}

func TestGoodConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.good.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata/*.good.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := Load(LoadOptions{File: f}); err != nil {
				t.Fatalf("Load: %v", err)
			}
		})
	}
}

func TestBadConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.bad.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata/*.bad.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want := expectedError(t, f)
			_, err := Load(LoadOptions{File: f})
			if err == nil {
				t.Fatalf("Load succeeded, want error containing %q", want)
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, want)
			}
		})
	}
}

// expectedError reads the "# error: <substring>" first line of a bad file.
func expectedError(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	want, ok := strings.CutPrefix(sc.Text(), "# error: ")
	if !ok || want == "" {
		t.Fatalf("%s: first line must be '# error: <substring>'", path)
	}
	return want
}

func TestFullFile(t *testing.T) {
	got, err := Load(LoadOptions{File: "testdata/full.good.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		DataDir: "/var/lib/veilig",
		Log:     Log{Level: "debug", Format: "json"},
		SIP: SIP{
			Domain:               "sip.example.com",
			TLSListen:            "127.0.0.1:15061",
			TCPListen:            "127.0.0.1:15060",
			UDPListen:            "127.0.0.1:15060",
			AdvertiseHost:        "192.0.2.10",
			UserAgent:            "Veilig/test",
			MinExpires:           30 * time.Second,
			MaxExpires:           2 * time.Hour,
			DefaultExpires:       15 * time.Minute,
			ConnectionMaxExpires: 90 * time.Second,
			IdleTimeout:          90 * time.Second,
			MessageTimeout:       4 * time.Second,
			AuthTimeout:          20 * time.Second,
			MaxConnections:       5000,
			MaxMessageSize:       8192,
			UDPWorkers:           8,
			UDPReadBuffer:        1 << 20,
		},
		TLS:    TLS{CertFile: "/etc/veilig/cert.pem", KeyFile: "/etc/veilig/key.pem", MinVersion: "1.3"},
		Auth:   Auth{AllowMD5: false, NonceTTL: time.Minute, MD5OnlyUserAgents: []string{"baresip", "sipp"}},
		Media:  Media{PortRange: "10000-20000", Timeout: time.Minute},
		Fraud:  Default().Fraud,
		Events: Events{LogFile: "/var/log/veilig/events.jsonl", Retention: 8760 * time.Hour},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load(full) =\n%+v\nwant\n%+v", got, want)
	}
	if got.TLS.MinTLSVersion() != tls.VersionTLS13 {
		t.Errorf("MinTLSVersion = %x, want TLS 1.3", got.TLS.MinTLSVersion())
	}
}

func TestNullSectionsKeepDefaults(t *testing.T) {
	got, err := Load(LoadOptions{File: "testdata/null-sections.good.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if def := Default(); !reflect.DeepEqual(*got, def) {
		t.Errorf("got %+v, want defaults %+v", *got, def)
	}
}

func TestAllErrorsReported(t *testing.T) {
	_, err := Load(LoadOptions{File: "testdata/many-errors.bad.yaml"})
	for _, want := range []string{"sip.min_expires: must be at least 10s", `log.level: must be one of debug, info, warn, error, got "loud"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.Key == "" {
		t.Errorf("errors.As(*Error) failed or has no key: %v", err)
	}
}

func TestFileErrorCarriesLine(t *testing.T) {
	_, err := Load(LoadOptions{File: "testdata/unknown-key.bad.yaml"})
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("want *Error, got %v", err)
	}
	if ce.Key != "sip.domian" || ce.Line != 4 || ce.Source != "testdata/unknown-key.bad.yaml" {
		t.Errorf("got key %q line %d source %q", ce.Key, ce.Line, ce.Source)
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load(LoadOptions{File: "testdata/does-not-exist.yaml"})
	if err == nil || !strings.Contains(err.Error(), "config: read file:") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want a wrapped not-exist error", err)
	}
}

func TestPaths(t *testing.T) {
	c := Default()
	c.DataDir = "/srv/v"
	for got, want := range map[string]string{
		c.EventsLogPath(): "/srv/v/events.jsonl",
		c.DBPath():        "/srv/v/veilig.db",
		c.DataKeyPath():   "/srv/v/data.key",
		c.TLSDir():        "/srv/v/tls",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	c.Events.LogFile = "/var/log/e.jsonl"
	if got := c.EventsLogPath(); got != "/var/log/e.jsonl" {
		t.Errorf("EventsLogPath with log_file = %q", got)
	}
}

func TestWarnings(t *testing.T) {
	c, err := Load(LoadOptions{Overrides: map[string]string{
		"sip.udp_listen":               "127.0.0.1:5060",
		"sip.tcp_listen":               "127.0.0.1:5060",
		"tls.min_version":              "1.1",
		"tls.insecure_legacy_versions": "true",
		"auth.insecure_md5_first":      "true",
		"events.retention":             "720h",
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(c.Findings(), "\n")
	for _, want := range []string{
		"tls.insecure_legacy_versions is set",
		"auth.insecure_md5_first is set",
		"sip.udp_listen is on",
		"sip.tcp_listen is on",
		"auth.allow_md5 is true",
		"events.retention is 720h",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("findings\n%s\nlack %q", got, want)
		}
	}
	warn := strings.Join(c.Warnings(), "\n")
	if strings.Contains(warn, "allow_md5") || !strings.Contains(warn, "insecure_md5_first") {
		t.Errorf("start-up warnings\n%s\nmust hold the changed settings and not the default compromise", warn)
	}
}

func TestMinTLSVersion(t *testing.T) {
	for in, want := range map[string]uint16{
		"1.0": tls.VersionTLS10, "1.1": tls.VersionTLS11, "1.2": tls.VersionTLS12,
		"1.3": tls.VersionTLS13, "": tls.VersionTLS12, "junk": tls.VersionTLS12,
	} {
		if got := (TLS{MinVersion: in}).MinTLSVersion(); got != want {
			t.Errorf("MinTLSVersion(%q) = %x, want %x", in, got, want)
		}
	}
}

func TestUDPWorkerCount(t *testing.T) {
	if got := (SIP{UDPWorkers: 3}).UDPWorkerCount(); got != 3 {
		t.Errorf("explicit = %d", got)
	}
	if got := (SIP{}).UDPWorkerCount(); got < 2 {
		t.Errorf("automatic = %d, want at least 2", got)
	}
}

// TestFraudLimitsZeroRefused: a limit of 0 would refuse every call; it is
// refused under its key, while -1 switches the limit off.
func TestFraudLimitsZeroRefused(t *testing.T) {
	c := Default()
	c.Fraud.ExtensionConcurrent = 0
	c.Fraud.TrunkDailyBudget = -1
	err := c.Validate()
	var ce *Error
	if !errors.As(err, &ce) || ce.Key != "fraud.extension_concurrent" {
		t.Fatalf("Validate = %v, want an error for fraud.extension_concurrent", err)
	}
	if strings.Contains(err.Error(), "trunk_daily_budget") {
		t.Errorf("-1 (no limit) refused: %v", err)
	}
}

// TestControlSocketPathFits: a data directory too deep for a unix socket
// address gets its socket in a private directory the CLI computes alike.
func TestControlSocketPathFits(t *testing.T) {
	c := Default()
	c.DataDir = "/var/lib/veilig"
	if got := c.ControlSocketPath(); got != "/var/lib/veilig/control.sock" {
		t.Errorf("short data dir: %s", got)
	}
	c.DataDir = "/" + strings.Repeat("deep/", 30) + "data"
	got := c.ControlSocketPath()
	if len(got) > 100 || !strings.HasPrefix(got, os.TempDir()+"/veilig-") || !strings.HasSuffix(got, "/control.sock") {
		t.Errorf("long data dir: %q (%d bytes)", got, len(got))
	}
	d := c
	if d.ControlSocketPath() != got {
		t.Error("the same data dir maps to another socket")
	}
	d.DataDir += "2"
	if d.ControlSocketPath() == got {
		t.Error("two data dirs share a socket")
	}
}
