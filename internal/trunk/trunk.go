// Package trunk connects Veilig to carriers: the trunks an operator
// configured (store rows managed by `veilig trunk`), their TLS settings and
// certificate checks, registration with digest credentials, and the lookups
// the call layer needs (is this request from a trunk, which extension a DID
// reaches, which trunk carries outbound calls).
package trunk

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/veilig/veilig/internal/auth"
	"github.com/veilig/veilig/internal/datakey"
	"github.com/veilig/veilig/internal/store"
)

// SealSecret seals a trunk's digest secret with the data key.
func SealSecret(key *datakey.Key, name, secret string) []byte {
	return key.Seal([]byte(secret), []byte("veilig/trunk/"+name))
}

// Validate checks a trunk row as the CLI is about to save it, with errors
// that say what to fix.
func Validate(t store.Trunk) error {
	var errs []error
	if t.Name == "" || strings.ContainsAny(t.Name, " :/") {
		errs = append(errs, fmt.Errorf("name %q: use letters, digits, '-' or '_'", t.Name))
	}
	if t.Host == "" {
		errs = append(errs, errors.New("--host is required"))
	}
	if t.Port < 0 || t.Port > 65535 {
		errs = append(errs, fmt.Errorf("--port %d out of range", t.Port))
	}
	switch t.Transport {
	case "tls":
	case "tcp", "udp":
		if !t.InsecureTransport {
			errs = append(errs, fmt.Errorf("--transport %s is unencrypted signalling: add --insecure-transport to accept that (every audit reports it)", t.Transport))
		}
	default:
		errs = append(errs, fmt.Errorf("--transport %q: use tls, tcp or udp", t.Transport))
	}
	switch t.Auth {
	case "register":
		if t.Username == "" || len(t.Secret) == 0 {
			errs = append(errs, errors.New("--auth register needs --username and a secret (--secret-stdin)"))
		}
	case "ip":
		if len(t.Addresses) == 0 {
			errs = append(errs, errors.New("--auth ip needs --from CIDR[,CIDR] (the carrier's source addresses)"))
		}
	default:
		errs = append(errs, fmt.Errorf("--auth %q: use register or ip", t.Auth))
	}
	for _, a := range t.Addresses {
		if _, err := parsePrefix(a); err != nil {
			errs = append(errs, fmt.Errorf("--from %q: %v", a, err))
		}
	}
	switch t.Media {
	case "srtp", "rtp":
	default:
		errs = append(errs, fmt.Errorf("--media %q: use srtp or rtp", t.Media))
	}
	if t.Pin != "" {
		if b, err := hex.DecodeString(strings.ReplaceAll(t.Pin, ":", "")); err != nil || len(b) != 32 {
			errs = append(errs, fmt.Errorf("--pin must be a SHA-256 fingerprint (64 hex digits, colons allowed)"))
		}
	}
	if (t.ClientCert == "") != (t.ClientKey == "") {
		errs = append(errs, errors.New("--client-cert and --client-key go together"))
	}
	return errors.Join(errs...)
}

func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, errors.New("neither a CIDR nor an address")
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// Trunk is a trunk as the running server uses it.
type Trunk struct {
	store.Trunk
	secret string
	from   []netip.Prefix
	tls    *tls.Config
}

// Name is the trunk's name.
func (t *Trunk) Name() string { return t.Trunk.Name }

// PlainMedia reports a trunk whose media leg may be plain RTP.
func (t *Trunk) PlainMedia() bool { return t.Media == "rtp" }

// Insecure reports unencrypted signalling.
func (t *Trunk) Insecure() bool { return t.Transport != "tls" }

func (t *Trunk) port() int {
	if t.Port != 0 {
		return t.Port
	}
	if t.Transport == "tls" {
		return 5061
	}
	return 5060
}

// URI is a SIP URI at the carrier for user.
func (t *Trunk) URI(user string) sip.Uri {
	u := sip.Uri{Scheme: "sip", User: user, Host: t.Host, Port: t.port(), UriParams: sip.NewParams(), Headers: sip.NewParams()}
	if t.Transport != "udp" {
		u.UriParams.Add("transport", t.Transport)
	}
	return u
}

// Credentials are the trunk's digest credentials ("" when it authenticates
// by source address).
func (t *Trunk) Credentials() (user, secret string) { return t.Username, t.secret }

// tlsConfig verifies the carrier: its chain and name (the configured server
// name, else the host, an IP address included), or exactly the pinned
// certificate. Verification is never skipped silently: a pin replaces the
// chain check with a stricter one.
func tlsConfig(t store.Trunk) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if tc.ServerName == "" {
		tc.ServerName = t.Host
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("trunk %s: ca file: %w", t.Name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("trunk %s: ca file %s holds no PEM certificate", t.Name, t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.ClientCert != "" {
		c, err := tls.LoadX509KeyPair(t.ClientCert, t.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("trunk %s: client certificate: %w", t.Name, err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	if t.Pin != "" {
		want := strings.ToLower(strings.ReplaceAll(t.Pin, ":", ""))
		// The pin is the whole check: the chain need not lead to a CA.
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("carrier sent no certificate")
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if hex.EncodeToString(sum[:]) != want {
				return fmt.Errorf("carrier certificate %s does not match the pinned fingerprint", hex.EncodeToString(sum[:]))
			}
			return nil
		}
	}
	return tc, nil
}

// Authorize answers a carrier's challenge to a request Veilig sent on t.
func (t *Trunk) Authorize(res *sip.Response, method, uri string) (hdr, value string, err error) {
	name, resp := "WWW-Authenticate", "Authorization"
	if res.StatusCode == 407 {
		name, resp = "Proxy-Authenticate", "Proxy-Authorization"
	}
	ch, err := pickChallenge(res, name)
	if err != nil {
		return "", "", err
	}
	if t.secret == "" {
		return "", "", errors.New("trunk has no credentials")
	}
	return resp, ch.Authorization(t.Username, t.secret, method, uri), nil
}

// pickChallenge reads the strongest challenge of a carrier's 401 or 407.
func pickChallenge(res *sip.Response, hdr string) (auth.Offer, error) {
	hs := res.GetHeaders(hdr)
	if len(hs) == 0 {
		return auth.Offer{}, fmt.Errorf("%d without %s", res.StatusCode, hdr)
	}
	vals := make([]string, len(hs))
	for i, h := range hs {
		vals[i] = h.Value()
	}
	o, err := auth.PickChallenge(vals)
	if err != nil {
		return auth.Offer{}, fmt.Errorf("carrier challenge: %w", err)
	}
	return o, nil
}
