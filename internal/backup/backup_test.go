package backup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/veilig/veilig/internal/datakey"
	"github.com/veilig/veilig/internal/store"
	"github.com/veilig/veilig/internal/store/sqlite"
)

const pass = "correct horse battery staple 42"

// source is a data directory with a store, certificates and a key.
type source struct {
	dir     string
	db      *sqlite.DB
	keyFile string
	key     *datakey.Key
	raw     []byte
}

func newSource(t *testing.T, exts int) *source {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(filepath.Join(dir, "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(t.Context(), filepath.Join(dir, "veilig.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for i := range exts {
		if err := db.CreateExtension(t.Context(), store.Extension{Number: fmt.Sprint(1000 + i), Name: "Agent"}); err != nil {
			t.Fatal(err)
		}
	}
	for name, mode := range map[string]os.FileMode{"ca.crt": 0o644, "ca.key": 0o600, "server.crt": 0o644, "server.key": 0o600} {
		if err := os.WriteFile(filepath.Join(dir, "tls", name), []byte("pem of "+name), mode); err != nil {
			t.Fatal(err)
		}
	}
	// A temp file the certificate manager might leave: not archived.
	os.WriteFile(filepath.Join(dir, "tls", ".tmp-123"), []byte("x"), 0o600)
	s := &source{dir: dir, db: db, keyFile: filepath.Join(dir, "data.key")}
	s.key, err = datakey.LoadOrCreate(s.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s.raw, _ = os.ReadFile(s.keyFile)
	return s
}

func (s *source) contents(withKey bool) Contents {
	c := Contents{Store: s.db, TLSDir: filepath.Join(s.dir, "tls"), KeyID: s.key.ID(), TempDir: s.dir, Version: "test", Now: time.Now()}
	if withKey {
		c.KeyFile = s.keyFile
	}
	return c
}

func scrypt(t *testing.T, p string) (*age.ScryptRecipient, *age.ScryptIdentity) {
	t.Helper()
	r, err := age.NewScryptRecipient(p)
	if err != nil {
		t.Fatal(err)
	}
	r.SetWorkFactor(12) // fast for tests; the CLI keeps age's default
	id, err := age.NewScryptIdentity(p)
	if err != nil {
		t.Fatal(err)
	}
	return r, id
}

func write(t *testing.T, c Contents, rs ...age.Recipient) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := Write(t.Context(), &buf, c, rs...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// plaintext decrypts and decompresses a backup into its tar bytes.
func plaintext(t *testing.T, b []byte, id age.Identity) []byte {
	t.Helper()
	r, err := age.Decrypt(bytes.NewReader(b), id)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func tarNames(t *testing.T, tb []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(tb))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

func TestRoundTripWithKey(t *testing.T) {
	src := newSource(t, 25)
	r, id := scrypt(t, pass)
	b := write(t, src.contents(true), r)
	if names := strings.Join(tarNames(t, plaintext(t, b, id)), " "); names != "manifest.json veilig.db tls/ca.crt tls/ca.key tls/server.crt tls/server.key data.key" {
		t.Errorf("archive entries: %s", names)
	}
	if !bytes.Contains(plaintext(t, b, id), src.raw) {
		t.Error("a --with-key backup does not contain the key")
	}

	dst := filepath.Join(t.TempDir(), "restored")
	res, err := Restore(t.Context(), bytes.NewReader(b), RestoreOptions{Identities: []age.Identity{id}, DataDir: dst, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if res.KeyPath != filepath.Join(dst, "data.key") || res.Manifest.DataKeyID != src.key.ID() || !res.Manifest.WithKey {
		t.Errorf("restored = %+v", res)
	}
	k, err := datakey.Load(filepath.Join(dst, "data.key"))
	if err != nil || k.ID() != src.key.ID() {
		t.Fatalf("restored key %v, %v", k, err)
	}
	if id, _ := datakey.ReadID(filepath.Join(dst, "data.key.id")); id != src.key.ID() {
		t.Errorf("recorded key id %q", id)
	}
	for name, mode := range map[string]os.FileMode{"data.key": 0o600, "veilig.db": 0o600, "tls/ca.crt": 0o644, "tls/ca.key": 0o600} {
		fi, err := os.Stat(filepath.Join(dst, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "tls", "server.key")); string(got) != "pem of server.key" {
		t.Errorf("tls/server.key = %q", got)
	}
	db, err := sqlite.Open(t.Context(), filepath.Join(dst, "veilig.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exts, err := db.ListExtensions(t.Context())
	if err != nil || len(exts) != 25 {
		t.Errorf("restored store holds %d extensions (%v), want 25", len(exts), err)
	}
	ents, _ := os.ReadDir(dst)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("restore left %s behind", e.Name())
		}
	}
}

func TestBackupWithoutKey(t *testing.T) {
	src := newSource(t, 3)
	r, id := scrypt(t, pass)
	b := write(t, src.contents(false), r)
	pt := plaintext(t, b, id)
	if bytes.Contains(pt, src.raw) {
		t.Fatal("a backup without --with-key contains the data key's bytes")
	}
	if strings.Contains(strings.Join(tarNames(t, pt), " "), "data.key") {
		t.Fatal("a backup without --with-key has a data.key entry")
	}
	if !bytes.Contains(pt, []byte(src.key.ID())) {
		t.Error("the manifest does not name the key id")
	}

	dst := filepath.Join(t.TempDir(), "restored")
	_, err := Restore(t.Context(), bytes.NewReader(b), RestoreOptions{Identities: []age.Identity{id}, DataDir: dst, Now: time.Now()})
	if !errors.Is(err, ErrNoKey) || !strings.Contains(err.Error(), src.key.ID()) || !strings.Contains(err.Error(), "--data-key-file") {
		t.Fatalf("restore without any key: %v", err)
	}
	if ents, _ := os.ReadDir(dst); len(ents) != 0 {
		t.Errorf("a failed restore left %d entries in the data dir", len(ents))
	}

	// Another key file is refused; the right one restores, and is not copied.
	other := filepath.Join(t.TempDir(), "other.key")
	if _, err := datakey.LoadOrCreate(other); err != nil {
		t.Fatal(err)
	}
	_, err = Restore(t.Context(), bytes.NewReader(b), RestoreOptions{Identities: []age.Identity{id}, DataDir: dst, KeyFile: other, Now: time.Now()})
	if !errors.Is(err, datakey.ErrWrongKey) {
		t.Fatalf("restore with the wrong key file: %v, want ErrWrongKey", err)
	}
	outside := filepath.Join(t.TempDir(), "datakey")
	if err := os.WriteFile(outside, src.raw, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := Restore(t.Context(), bytes.NewReader(b), RestoreOptions{Identities: []age.Identity{id}, DataDir: dst, KeyFile: outside, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if res.KeyPath != outside {
		t.Errorf("key path %s, want %s", res.KeyPath, outside)
	}
	if _, err := os.Stat(filepath.Join(dst, "data.key")); err == nil {
		t.Error("restore copied the outside key into the data dir")
	}
}

func TestWrongPassphraseAndIdentity(t *testing.T) {
	src := newSource(t, 1)
	r, _ := scrypt(t, pass)
	b := write(t, src.contents(true), r)
	dst := filepath.Join(t.TempDir(), "d")
	restore := func(b []byte, ids ...age.Identity) error {
		_, err := Restore(t.Context(), bytes.NewReader(b), RestoreOptions{Identities: ids, DataDir: dst, Now: time.Now()})
		return err
	}
	_, wrong := scrypt(t, "not the passphrase at all")
	if err := restore(b, wrong); !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Errorf("wrong passphrase: %v", err)
	}
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if err := restore(b, x); !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "encrypted to a passphrase") {
		t.Errorf("identity for a passphrase backup: %v", err)
	}

	rb := write(t, src.contents(false), x.Recipient())
	if err := restore(rb, wrong); !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "--identity") {
		t.Errorf("passphrase for a recipient backup: %v", err)
	}
	y, _ := age.GenerateX25519Identity()
	if err := restore(rb, y); !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "not a recipient") && !strings.Contains(err.Error(), "none of the given identities") {
		t.Errorf("other identity: %v", err)
	}
	if err := restore([]byte("SQLite format 3\x00 plain copy")); !errors.Is(err, ErrFormat) {
		t.Errorf("not an age file: %v", err)
	}
	if ents, _ := os.ReadDir(dst); len(ents) != 0 {
		t.Errorf("failed restores left %d entries", len(ents))
	}
}

func TestTamperedAndTruncated(t *testing.T) {
	src := newSource(t, 50)
	r, id := scrypt(t, pass)
	b := write(t, src.contents(true), r)
	for name, bad := range map[string][]byte{
		"bit flipped": func() []byte { c := bytes.Clone(b); c[len(c)-100] ^= 1; return c }(),
		"truncated":   b[:len(b)-300],
	} {
		dst := filepath.Join(t.TempDir(), "d")
		_, err := Restore(t.Context(), bytes.NewReader(bad), RestoreOptions{Identities: []age.Identity{id}, DataDir: dst, Now: time.Now()})
		if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
		if _, err := os.Stat(filepath.Join(dst, "veilig.db")); err == nil {
			t.Errorf("%s: a store was installed", name)
		}
	}
}

func TestRestoreNeedsForce(t *testing.T) {
	src := newSource(t, 2)
	r, id := scrypt(t, pass)
	b := write(t, src.contents(true), r)
	dst := t.TempDir()
	old := []byte("the old database")
	if err := os.WriteFile(filepath.Join(dst, "veilig.db"), old, 0o600); err != nil {
		t.Fatal(err)
	}
	opts := RestoreOptions{Identities: []age.Identity{id}, DataDir: dst, Now: time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)}
	_, err := Restore(t.Context(), bytes.NewReader(b), opts)
	if !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("non-empty dir: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "veilig.db")); !bytes.Equal(got, old) {
		t.Fatal("refused restore changed the old database")
	}
	opts.Force = true
	res, err := Restore(context.Background(), bytes.NewReader(b), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Replaced != filepath.Join(dst, "replaced-20270102-030405") {
		t.Errorf("replaced = %q", res.Replaced)
	}
	if got, _ := os.ReadFile(filepath.Join(res.Replaced, "veilig.db")); !bytes.Equal(got, old) {
		t.Error("the old database was not moved aside")
	}
}
