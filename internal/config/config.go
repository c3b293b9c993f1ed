package config

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"runtime"
	"time"
)

// Config is the whole server configuration. Every field's yaml tag is part
// of the file format contract and also names its environment variable and
// flag override; see the package documentation.
type Config struct {
	// DataDir holds the database, keys, generated TLS material and, unless
	// events.log_file says otherwise, the event log.
	DataDir string `yaml:"data_dir"`

	// DataKeyFile, when set, is where the data key is read from instead of
	// <data_dir>/data.key, so that a copy of the data directory holds no
	// key to open its secrets. Veilig never creates this file: a new key
	// would not open the secrets already sealed with the old one.
	DataKeyFile string `yaml:"data_key_file"`

	Log     Log     `yaml:"log"`
	SIP     SIP     `yaml:"sip"`
	TLS     TLS     `yaml:"tls"`
	Auth    Auth    `yaml:"auth"`
	Events  Events  `yaml:"events"`
	Metrics Metrics `yaml:"metrics"`
	Guard   Guard   `yaml:"guard"`
	Media   Media   `yaml:"media"`
	Fraud   Fraud   `yaml:"fraud"`
}

// Fraud configures the toll-fraud guard on outbound calls.
type Fraud struct {
	// Country is the tenant's ISO country: dialled national numbers are
	// read in its plan, and "national" class means calls within it.
	Country string `yaml:"country"`
	// TimeZone is the tenant's (IANA name) for business hours and the
	// daily budget's midnight; empty means the server's local zone.
	TimeZone string `yaml:"time_zone"`
	// AllowPrefixes lets exact E.164 prefixes through the premium,
	// satellite, network and high-risk blocks (e.g. "+88216").
	AllowPrefixes []string `yaml:"allow_prefixes"`
	// Limits per extension and per trunk (defaults in Default: sized for
	// one agent per extension); -1 switches a limit off, and 0 is refused
	// so a forgotten value never opens a hole.
	ExtensionConcurrent  int           `yaml:"extension_concurrent"`
	ExtensionPerMinute   int           `yaml:"extension_per_minute"`
	ExtensionMaxDuration time.Duration `yaml:"extension_max_duration"`
	ExtensionDailyBudget float64       `yaml:"extension_daily_budget"`
	TrunkConcurrent      int           `yaml:"trunk_concurrent"`
	TrunkPerMinute       int           `yaml:"trunk_per_minute"`
	TrunkMaxDuration     time.Duration `yaml:"trunk_max_duration"`
	TrunkDailyBudget     float64       `yaml:"trunk_daily_budget"`
	// Rates per minute used to estimate spend (currency is a label).
	RateNational float64 `yaml:"rate_national"`
	RateEU       float64 `yaml:"rate_eu"`
	RateDefault  float64 `yaml:"rate_default"`
	// BusinessHours is "off", "refuse" (default: international calls
	// outside Mon-Fri 08:00-18:00 are refused) or "alert".
	BusinessHours string `yaml:"business_hours"`
	// Trip is what a volume or spend trip does: "suspend" (default) the
	// extension's outbound calling until lifted, or "alert" only.
	Trip string `yaml:"trip"`
}

// Media configures the relay every call's audio passes through.
type Media struct {
	// Address is the IP the relay binds; empty means the host of
	// sip.tls_listen (or every interface when that is a wildcard).
	Address string `yaml:"address"`
	// Advertise is the address written into SDP, for a relay behind NAT
	// or bound to a wildcard address.
	Advertise string `yaml:"advertise"`
	// PortRange is "MIN-MAX", the UDP ports of the relay.
	PortRange string `yaml:"port_range"`
	// Timeout ends a call whose media stopped for this long.
	Timeout time.Duration `yaml:"timeout"`
	// Codecs, when set, are the only codecs a call may use (names such as
	// PCMA, G722, opus); empty allows every codec the devices share. The
	// relay does not transcode, so a call whose devices share none of
	// them fails with 488.
	Codecs []string `yaml:"codecs"`
}

// Ports parses PortRange.
func (m Media) Ports() (lo, hi int, err error) {
	if _, err := fmt.Sscanf(m.PortRange, "%d-%d", &lo, &hi); err != nil {
		return 0, 0, fmt.Errorf("want MIN-MAX, got %q", m.PortRange)
	}
	if lo < 1024 || hi > 65535 || hi-lo < 3 {
		return 0, 0, fmt.Errorf("want ports within 1024-65535 and at least 4 of them, got %q", m.PortRange)
	}
	return lo, hi, nil
}

// Guard configures the edge defences in front of every SIP handler.
type Guard struct {
	// TrustedSources are CIDRs (or addresses) never banned, rate limited
	// or locked out; their failures still raise alerts.
	TrustedSources []string `yaml:"trusted_sources"`
	// AllowSources are the only networks the SIP edge serves; empty
	// means any.
	AllowSources []string `yaml:"allow_sources"`
	// ScannerUserAgents extends the built-in list of scanner User-Agent
	// substrings; ScannerIgnore removes entries from it.
	ScannerUserAgents []string `yaml:"scanner_user_agents"`
	ScannerIgnore     []string `yaml:"scanner_ignore"`
}

// Prefixes parses a list of CIDRs or addresses (an address is its /32 or
// /128).
func Prefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR nor an address", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// Metrics configures the Prometheus-style metrics endpoint.
type Metrics struct {
	// Listen is host:port for GET /metrics; empty turns it off. Keep it
	// on loopback or a management network: it tells who is calling.
	Listen string `yaml:"listen"`
}

// Log configures the operational log (not the security event log).
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn or error
	Format string `yaml:"format"` // text or json
}

// SIP configures the signalling listeners and the registrar's limits.
type SIP struct {
	// Domain is the SIP domain served, used as the digest realm and in
	// the generated server certificate.
	Domain string `yaml:"domain"`

	// Listen addresses, host:port. An empty address turns that listener
	// off; plaintext transports are off by default.
	TLSListen string `yaml:"tls_listen"`
	TCPListen string `yaml:"tcp_listen"`
	UDPListen string `yaml:"udp_listen"`

	// AdvertiseHost is put in Via and Contact when a listener is bound to
	// a wildcard address and peers need a concrete host to reach us.
	AdvertiseHost string `yaml:"advertise_host"`

	UserAgent string `yaml:"user_agent"`

	// Registration expiry bounds (RFC 3261 section 10.3): requests below
	// MinExpires get 423 Interval Too Brief, above MaxExpires are capped,
	// and DefaultExpires applies when the client names none.
	MinExpires     time.Duration `yaml:"min_expires"`
	MaxExpires     time.Duration `yaml:"max_expires"`
	DefaultExpires time.Duration `yaml:"default_expires"`

	// ConnectionMaxExpires caps the registration interval of a TLS/TCP
	// device that does not use RFC 5626 outbound. Such a device notices
	// that its connection is gone (after a server restart) only when it
	// refreshes, and cannot be called until then; a device with outbound
	// keeps the flow alive (Flow-Timer) and registers again as soon as it
	// fails, and keeps its interval. Never below MinExpires.
	ConnectionMaxExpires time.Duration `yaml:"connection_max_expires"`

	// IdleTimeout closes a TLS/TCP connection that sends nothing for this
	// long; it must outlast devices' keep-alive interval (commonly 30s).
	IdleTimeout time.Duration `yaml:"idle_timeout"`

	// MessageTimeout closes a TLS/TCP connection whose message is not
	// complete this long after its first byte (a peer dripping bytes to
	// hold the connection); keep-alives do not extend it.
	MessageTimeout time.Duration `yaml:"message_timeout"`

	// AuthTimeout closes a TLS/TCP connection on which no request has
	// authenticated this long after the handshake; keep-alives do not
	// extend it. Devices register at once, so only idle strangers meet it.
	AuthTimeout time.Duration `yaml:"auth_timeout"`

	// MaxConnections bounds the TLS/TCP connections held at once. 0 (the
	// default) derives it from the open-file limit (raised to its hard
	// limit at start), less a reserve for the database, logs, listeners,
	// trunks and media. At the bound, connections that never
	// authenticated make way for new ones; authenticated ones never do.
	MaxConnections int `yaml:"max_connections"`

	// MaxMessageSize in bytes bounds one SIP message on every transport.
	MaxMessageSize int `yaml:"max_message_size"`

	// UDPWorkers bounds concurrent UDP message handling; 0 means
	// 2*GOMAXPROCS (see UDPWorkerCount).
	UDPWorkers int `yaml:"udp_workers"`

	// UDPReadBuffer is the socket receive buffer in bytes; a large buffer
	// absorbs bursts that would otherwise be dropped by the kernel.
	UDPReadBuffer int `yaml:"udp_read_buffer"`

	// InsecureSDESOverPlainTransport lets SDP carrying SRTP keys cross
	// UDP or TCP signalling, where anyone on the path can read the keys.
	// Only for load tests and peers without TLS; every audit reports it.
	InsecureSDESOverPlainTransport bool `yaml:"insecure_sdes_over_plain_transport"`
}

// TLS configures the certificate and protocol versions of the TLS listener.
type TLS struct {
	// CertFile and KeyFile name a PEM certificate chain and key. When both
	// are empty Veilig generates a local CA and server certificate under
	// <data_dir>/tls.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`

	// MinVersion is "1.2" or "1.3"; "1.0" and "1.1" need
	// InsecureLegacyVersions.
	MinVersion string `yaml:"min_version"`

	InsecureLegacyVersions bool `yaml:"insecure_legacy_versions"`
}

// Auth configures digest authentication.
type Auth struct {
	// AllowMD5 offers the MD5 digest next to SHA-256, because most
	// deployed phones only speak MD5.
	AllowMD5 bool `yaml:"allow_md5"`

	// NonceTTL is how long a digest nonce stays valid.
	NonceTTL time.Duration `yaml:"nonce_ttl"`

	// InsecureMD5First puts the MD5 challenge before SHA-256, for peers
	// (such as sipp 3.6.1) that read only the first challenge.
	InsecureMD5First bool `yaml:"insecure_md5_first"`

	// MD5OnlyUserAgents lists User-Agent substrings (case-insensitive) of
	// clients that abort when any non-MD5 challenge is present (baresip
	// 1.x, SIPp 3.6): while AllowMD5 is true they are offered MD5 alone,
	// which they would choose anyway; everyone else gets SHA-256 first.
	// Requests without a User-Agent get MD5 first, SHA-256 second.
	MD5OnlyUserAgents []string `yaml:"md5_only_user_agents"`

	// InsecureDigestURIWithoutUser accepts digest credentials whose uri
	// names this server without the Request-URI's user part, as sipp
	// 3.6.1 computes them (uri="sip:<address it sent to>"). Such a digest
	// does not bind the callee: on an unencrypted leg the request can be
	// redirected to another extension. Only for load tests.
	InsecureDigestURIWithoutUser bool `yaml:"insecure_digest_uri_without_user"`
}

// Events configures the security event log.
type Events struct {
	// LogFile is the JSON-lines event log; empty means
	// <data_dir>/events.jsonl (see Config.EventsLogPath).
	LogFile string `yaml:"log_file"`

	// Retention is how long events are kept before they are pruned.
	Retention time.Duration `yaml:"retention"`
}

// Default returns the configuration used when nothing is configured. It is
// secure as it stands: TLS only, SHA-256 digest preferred, long retention.
func Default() Config {
	return Config{
		DataDir: "./veilig-data",
		Log: Log{
			Level:  "info",
			Format: "text",
		},
		SIP: SIP{
			Domain:               "veilig.local",
			TLSListen:            "0.0.0.0:5061",
			UserAgent:            "Veilig",
			MinExpires:           60 * time.Second,
			MaxExpires:           time.Hour,
			DefaultExpires:       10 * time.Minute,
			ConnectionMaxExpires: time.Minute,
			IdleTimeout:          5 * time.Minute,
			MessageTimeout:       5 * time.Second,
			AuthTimeout:          30 * time.Second,
			MaxMessageSize:       65535,
			UDPReadBuffer:        4 << 20,
		},
		TLS: TLS{
			MinVersion: "1.2",
		},
		Auth: Auth{
			AllowMD5:          true,
			MD5OnlyUserAgents: []string{"baresip", "sipp"},
			NonceTTL:          5 * time.Minute,
		},
		Fraud: Fraud{
			Country:              "NL",
			ExtensionConcurrent:  2,
			ExtensionPerMinute:   6,
			ExtensionMaxDuration: 2 * time.Hour,
			ExtensionDailyBudget: 25,
			TrunkConcurrent:      100,
			TrunkPerMinute:       120,
			TrunkMaxDuration:     4 * time.Hour,
			TrunkDailyBudget:     500,
			RateNational:         0.05,
			RateEU:               0.15,
			RateDefault:          1.00, // unknown international: priced high so budgets bite early
			BusinessHours:        "refuse",
			Trip:                 "suspend",
		},
		Media: Media{
			PortRange: "10000-20000",
			Timeout:   60 * time.Second,
		},
		Events: Events{
			Retention: 180 * 24 * time.Hour,
		},
	}
}

// UDPWorkerCount resolves udp_workers: 0 means twice the usable CPUs, which
// keeps cores busy while one worker waits on the store.
func (s SIP) UDPWorkerCount() int {
	if s.UDPWorkers > 0 {
		return s.UDPWorkers
	}
	return 2 * runtime.GOMAXPROCS(0)
}

// tlsVersions maps the accepted tls.min_version spellings to crypto/tls.
var tlsVersions = map[string]uint16{
	"1.0": tls.VersionTLS10,
	"1.1": tls.VersionTLS11,
	"1.2": tls.VersionTLS12,
	"1.3": tls.VersionTLS13,
}

// MinTLSVersion returns min_version as a crypto/tls constant, falling back
// to TLS 1.2 for an unvalidated or unknown spelling so a caller can never
// end up below the secure floor by accident.
func (t TLS) MinTLSVersion() uint16 {
	if v, ok := tlsVersions[t.MinVersion]; ok {
		return v
	}
	return tls.VersionTLS12
}
