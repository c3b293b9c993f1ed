// Package accounts keeps the extensions (SIP accounts) in memory for the
// SIP path and writes them for the CLI. Digest HA1 values are sealed with
// the data key at rest and opened only here; the SIP path reads them from
// memory so that a lookup costs the same for a known and an unknown user.
package accounts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"sync"

	"github.com/veilig/veilig/internal/auth"
	"github.com/veilig/veilig/internal/datakey"
	"github.com/veilig/veilig/internal/store"
)

// numberRE is what an extension may be called: a SIP user part that needs
// no escaping anywhere (digits for phones, names for the bench's users).
var numberRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)

// ValidNumber explains what is wrong with an extension number, or nil.
func ValidNumber(n string) error {
	if !numberRE.MatchString(n) {
		return fmt.Errorf("extension %q: use 1-32 letters, digits, '.', '_' or '-', starting with a letter or digit", n)
	}
	return nil
}

type entry struct {
	name  string
	md5   string
	sha   string
	allow []netip.Prefix
	class string
	cids  []string
}

// Directory is the in-memory view of the extensions. It loads them all at
// start and then follows the store's change feed (Apply), re-reading only
// the extensions that changed.
type Directory struct {
	st    store.Extensions
	key   *datakey.Key
	realm string
	log   *slog.Logger

	mu sync.RWMutex
	m  map[string]entry
}

// Load reads every extension and opens its HA1 values.
func Load(ctx context.Context, st store.Extensions, key *datakey.Key, realm string, log *slog.Logger) (*Directory, error) {
	d := &Directory{st: st, key: key, realm: realm, log: log}
	if err := d.reload(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Directory) reload(ctx context.Context) error {
	exts, err := d.st.ListExtensions(ctx)
	if err != nil {
		return fmt.Errorf("accounts: list: %w", err)
	}
	m := make(map[string]entry, len(exts))
	for _, e := range exts {
		if en, ok := d.open(e); ok {
			m[e.Number] = en
		}
	}
	d.mu.Lock()
	d.m = m
	d.mu.Unlock()
	return nil
}

// open turns a stored extension into its in-memory entry; ok is false for
// one that cannot authenticate here.
func (d *Directory) open(e store.Extension) (entry, bool) {
	if e.Realm != d.realm {
		d.log.Warn("extension was provisioned for another SIP domain and cannot authenticate; set its secret again with `veilig ext passwd`",
			"extension", e.Number, "realm", e.Realm, "domain", d.realm)
		return entry{}, false
	}
	md5, err1 := d.key.Open(e.HA1MD5, ad(e.Number, auth.MD5))
	sha, err2 := d.key.Open(e.HA1SHA256, ad(e.Number, auth.SHA256))
	if err := errors.Join(err1, err2); err != nil {
		d.log.Error("extension secret cannot be opened with this data key", "extension", e.Number, "err", err)
		return entry{}, false
	}
	return entry{name: e.Name, md5: string(md5), sha: string(sha), allow: e.AllowFrom, class: e.Class, cids: e.CallerIDs}, true
}

// Apply re-reads the extensions that changed (a feed.Handler); the key ""
// reloads them all.
func (d *Directory) Apply(ctx context.Context, numbers []string) {
	for _, n := range numbers {
		if n == "" {
			if err := d.reload(ctx); err != nil {
				d.log.Error("accounts reload failed", "err", err)
			}
			return
		}
		e, err := d.st.Extension(ctx, n)
		switch {
		case errors.Is(err, store.ErrNotFound):
			d.mu.Lock()
			delete(d.m, n)
			d.mu.Unlock()
		case err != nil:
			d.log.Error("accounts: re-read extension failed", "extension", n, "err", err)
		default:
			en, ok := d.open(e)
			d.mu.Lock()
			if ok {
				d.m[n] = en
			} else {
				delete(d.m, n)
			}
			d.mu.Unlock()
		}
	}
}

// HA1 implements sipedge.Accounts.
func (d *Directory) HA1(user string, alg auth.Algorithm) (string, bool) {
	d.mu.RLock()
	e, ok := d.m[user]
	d.mu.RUnlock()
	if !ok {
		return "", false
	}
	if alg == auth.SHA256 {
		return e.sha, true
	}
	return e.md5, true
}

// Exists reports whether an extension exists.
func (d *Directory) Exists(user string) bool {
	d.mu.RLock()
	_, ok := d.m[user]
	d.mu.RUnlock()
	return ok
}

// Name is the extension's display name.
func (d *Directory) Name(user string) string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.m[user].name
}

// AllowFrom is where the extension may register and call from (empty:
// anywhere).
func (d *Directory) AllowFrom(user string) []netip.Prefix {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.m[user].allow
}

// Class is the extension's class of service ("" = default).
func (d *Directory) Class(user string) string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.m[user].class
}

// CallerIDs are the numbers the extension may present besides its own.
func (d *Directory) CallerIDs(user string) []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.m[user].cids
}

func ad(number string, alg auth.Algorithm) []byte {
	return []byte("veilig/ha1/" + alg.String() + "/" + number)
}

// Sealed computes and seals both HA1 values of a secret.
func Sealed(key *datakey.Key, number, realm, secret string) (md5, sha []byte) {
	md5 = key.Seal([]byte(auth.HA1(auth.MD5, number, realm, secret)), ad(number, auth.MD5))
	sha = key.Seal([]byte(auth.HA1(auth.SHA256, number, realm, secret)), ad(number, auth.SHA256))
	return md5, sha
}

// OpenHA1 opens one of number's sealed HA1 values.
func OpenHA1(key *datakey.Key, number string, alg auth.Algorithm, sealed []byte) ([]byte, error) {
	return key.Open(sealed, ad(number, alg))
}
