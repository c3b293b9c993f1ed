package main

// The test material, made exactly as the shared harness's run.sh makes it
// (make_users, make_tls, kamailio_prepare), so that the same subscribers,
// certificate and Kamailio configuration are under test.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// subscriber is one bench user: userNNNN with the harness's password.
type subscriber struct{ user, password string }

// subscribers returns user0000..user(n-1) with the harness's passwords:
// "Vb-" + the first 16 hex digits of sha256("veilig-bench:<user>").
func subscribers(n int) []subscriber {
	out := make([]subscriber, n)
	for i := range out {
		u := fmt.Sprintf("user%04d", i)
		h := sha256.Sum256([]byte("veilig-bench:" + u))
		out[i] = subscriber{user: u, password: "Vb-" + hex.EncodeToString(h[:])[:16]}
	}
	return out
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// writeUsers writes users.csv (sipp's injection file: caller, domain,
// credentials, callee = the next user), users.txt (user:password, what
// `veilig ext import` reads) and subscribers.sql (Kamailio's HA1 rows).
func writeUsers(dir, domain string, subs []subscriber) error {
	var csv, txt, sql strings.Builder
	csv.WriteString("SEQUENTIAL\n")
	sql.WriteString("BEGIN;\n")
	for i, s := range subs {
		callee := subs[(i+1)%len(subs)].user
		fmt.Fprintf(&csv, "%s;%s;[authentication username=%s password=%s];%s\n", s.user, domain, s.user, s.password, callee)
		fmt.Fprintf(&txt, "%s:%s\n", s.user, s.password)
		fmt.Fprintf(&sql, "INSERT INTO subscriber (username,domain,password,ha1,ha1b) VALUES ('%s','%s','','%s','%s');\n",
			s.user, domain, md5hex(s.user+":"+domain+":"+s.password), md5hex(s.user+"@"+domain+":"+domain+":"+s.password))
	}
	sql.WriteString("COMMIT;\n")
	for name, body := range map[string]string{"users.csv": csv.String(), "users.txt": txt.String(), "subscribers.sql": sql.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

// writeCert writes a self-signed ECDSA P-256 certificate for domain and
// 127.0.0.1 (tls/server.crt, tls/server.key), as run.sh does with openssl.
func writeCert(dir, domain string) (certPath, keyPath string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: domain},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		DNSNames:              []string{domain},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	tdir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		return "", "", err
	}
	certPath, keyPath = filepath.Join(tdir, "server.crt"), filepath.Join(tdir, "server.key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// kamailioParams are the values run.sh puts into the shared templates.
type kamailioParams struct {
	children, shmMB, pkgMB, udpMaxBuffer int
}

// prepareKamailio builds Kamailio's SQLite subscriber table and its config
// from the shared harness's templates, and has Kamailio check the config.
func prepareKamailio(harness, work, domain string, udpPort, tlsPort int, p kamailioParams) (string, error) {
	const schema = "/usr/share/kamailio/db_sqlite"
	db := filepath.Join(work, "kamailio.sqlite")
	_ = os.Remove(db)
	var sql strings.Builder
	for _, f := range []string{filepath.Join(schema, "standard-create.sql"), filepath.Join(schema, "auth_db-create.sql"),
		filepath.Join(work, "subscribers.sql")} {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("kamailio schema (apt-get install kamailio-sqlite-modules sqlite3): %w", err)
		}
		sql.Write(b)
	}
	cmd := exec.Command("sqlite3", db)
	cmd.Stdin = strings.NewReader(sql.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("sqlite3 %s: %v: %s", db, err, out)
	}
	out, err := exec.Command("dpkg", "-L", "kamailio").Output()
	if err != nil {
		return "", fmt.Errorf("dpkg -L kamailio (apt-get install kamailio kamailio-tls-modules): %w", err)
	}
	modpath := ""
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasSuffix(l, "/modules/tm.so") {
			modpath = filepath.Dir(l) + "/"
			break
		}
	}
	if modpath == "" {
		return "", fmt.Errorf("no kamailio modules directory in dpkg -L kamailio")
	}
	repl := strings.NewReplacer(
		"@@DEBUG@@", "-1", "@@CHILDREN@@", strconv.Itoa(p.children), "@@TCP_CHILDREN@@", strconv.Itoa(p.children),
		"@@UDP_MAXBUFFER@@", strconv.Itoa(p.udpMaxBuffer), "@@DOMAIN@@", domain, "@@HOST@@", "127.0.0.1",
		"@@UDP_PORT@@", strconv.Itoa(udpPort), "@@TLS_PORT@@", strconv.Itoa(tlsPort),
		"@@MODPATH@@", modpath, "@@WORK@@", work, "@@AUTH_SECRET@@", randomHex(16))
	for _, f := range []string{"kamailio.cfg", "tls.cfg"} {
		b, err := os.ReadFile(filepath.Join(harness, "kamailio", f+".in"))
		if err != nil {
			return "", fmt.Errorf("shared kamailio template: %w", err)
		}
		if err := os.WriteFile(filepath.Join(work, f), []byte(repl.Replace(string(b))), 0o600); err != nil {
			return "", err
		}
	}
	cfg := filepath.Join(work, "kamailio.cfg")
	if out, err := exec.Command("kamailio", "-c", "-f", cfg).CombinedOutput(); err != nil {
		return "", fmt.Errorf("kamailio config check of %s: %v\n%s", cfg, err, out)
	}
	return cfg, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
