package backup

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"filippo.io/age"

	"github.com/veilig/veilig/internal/datakey"
	"github.com/veilig/veilig/internal/store/sqlite"
)

// RestoreOptions says where a backup goes and what opens it.
type RestoreOptions struct {
	// Identities decrypt the backup: an age.ScryptIdentity for a
	// passphrase, or the identities of an age identity file.
	Identities []age.Identity
	DataDir    string
	// Force restores into a data directory that is not empty; what the
	// backup replaces is moved aside into DataDir/replaced-<time>.
	Force bool
	// KeyFile is the data key kept outside the data directory
	// (data_key_file). It is required when the backup holds no key and
	// checked against the backup otherwise; it is never written.
	KeyFile string
	Now     time.Time
}

// Restored reports what Restore did.
type Restored struct {
	Manifest Manifest
	// KeyPath is where the data key that opens the restored store is:
	// <data_dir>/data.key (taken from the backup) or the KeyFile.
	KeyPath string
	// Replaced is the directory the previous contents were moved to.
	Replaced string
}

// The names a restore installs in the data directory, and the ones it
// moves aside first when forced (the store's WAL files included, so no
// stale WAL is replayed into the restored database).
var replacedNames = []string{dbName, dbName + "-wal", dbName + "-shm", keyName, "data.key.id", "tls"}

// maxManifest bounds the manifest read into memory.
const maxManifest = 1 << 20

// Restore decrypts a backup from r and installs it in o.DataDir. Nothing
// in the data directory changes until the whole backup has been read,
// checked against its manifest, opened by the store and matched with its
// data key.
func Restore(ctx context.Context, r io.Reader, o RestoreOptions) (res Restored, err error) {
	existing, created, err := prepareTarget(o.DataDir, o.Force)
	if err != nil {
		return Restored{}, err
	}
	if created {
		// A failed restore leaves no empty data directory behind, which a
		// later command could mistake for the server's.
		defer func() {
			if err != nil {
				os.Remove(o.DataDir)
			}
		}()
	}
	plain, err := decrypt(r, o.Identities)
	if err != nil {
		return Restored{}, err
	}
	stage, err := os.MkdirTemp(o.DataDir, ".restore-")
	if err != nil {
		return Restored{}, fmt.Errorf("restore: %w", err)
	}
	defer os.RemoveAll(stage)

	m, err := extract(plain, stage)
	if err != nil {
		return Restored{}, err
	}
	keyPath, err := matchKey(m, stage, o)
	if err != nil {
		return Restored{}, err
	}
	if err := verifyStore(ctx, filepath.Join(stage, dbName)); err != nil {
		return Restored{}, err
	}

	res = Restored{Manifest: m, KeyPath: keyPath}
	if len(existing) > 0 {
		res.Replaced = filepath.Join(o.DataDir, "replaced-"+o.Now.Format("20060102-150405"))
		if err := moveAside(o.DataDir, res.Replaced); err != nil {
			return Restored{}, err
		}
	}
	installed := []string{dbName}
	if _, err := os.Stat(filepath.Join(stage, "tls")); err == nil {
		installed = append(installed, "tls")
	}
	if keyPath == filepath.Join(o.DataDir, keyName) {
		installed = append(installed, keyName)
	}
	for _, name := range installed {
		if err := os.Rename(filepath.Join(stage, name), filepath.Join(o.DataDir, name)); err != nil {
			return Restored{}, fmt.Errorf("restore: install %s: %w", name, err)
		}
	}
	idPath := filepath.Join(o.DataDir, "data.key.id")
	if err := datakey.WriteID(idPath, m.DataKeyID); err != nil {
		return Restored{}, fmt.Errorf("restore: %w", err)
	}
	installed = append(installed, "data.key.id")
	if err := chownLikeDir(o.DataDir, installed); err != nil {
		return Restored{}, err
	}
	return res, nil
}

// prepareTarget creates the data directory (0700) or, when it exists,
// lists what is in it; something in it needs force.
func prepareTarget(dir string, force bool) (names []string, created bool, err error) {
	if dir == "" {
		return nil, false, errors.New("restore: no data directory given")
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(dir, 0o700); err != nil {
			return nil, false, fmt.Errorf("restore: %w", err)
		}
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("restore: %w", err)
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".restore-") && !strings.HasPrefix(e.Name(), ".backup-") {
			names = append(names, e.Name())
		}
	}
	if len(names) > 0 && !force {
		shown := names[:min(len(names), 5)]
		return nil, false, fmt.Errorf("%w: %s holds %s; restore into a new directory, or give --force "+
			"to move what the backup replaces into %s/replaced-<time>", ErrNotEmpty, dir, strings.Join(shown, ", "), dir)
	}
	return names, false, nil
}

// decrypt opens the age layer and explains a failure in terms of what the
// user gave: a passphrase for a recipient backup, the wrong passphrase, or
// an identity that is not a recipient.
func decrypt(r io.Reader, ids []age.Identity) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(64 << 10)
	if !bytes.HasPrefix(head, []byte("age-encryption.org/v1\n")) {
		return nil, fmt.Errorf("%w: the file is not age-encrypted (a backup starts with \"age-encryption.org/v1\")", ErrFormat)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: no passphrase or identity given", ErrDecrypt)
	}
	toPassphrase := bytes.Contains(head, []byte("\n-> scrypt "))
	_, gavePassphrase := ids[0].(*age.ScryptIdentity)
	dec, err := age.Decrypt(br, ids...)
	if err == nil {
		return dec, nil
	}
	var noMatch *age.NoIdentityMatchError
	if !errors.As(err, &noMatch) {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	switch {
	case toPassphrase && gavePassphrase:
		return nil, fmt.Errorf("%w: wrong passphrase", ErrDecrypt)
	case toPassphrase:
		return nil, fmt.Errorf("%w: the backup is encrypted to a passphrase; give --passphrase-file FILE or type the passphrase", ErrDecrypt)
	case gavePassphrase:
		return nil, fmt.Errorf("%w: the backup is encrypted to an age recipient, not a passphrase; give --identity FILE with the recipient's secret key", ErrDecrypt)
	default:
		return nil, fmt.Errorf("%w: none of the given identities is a recipient of this backup", ErrDecrypt)
	}
}

// extract reads the archive into stage, checking every entry against the
// manifest (which comes first): only known names, each once, with the
// size and SHA-256 recorded.
func extract(plain io.Reader, stage string) (Manifest, error) {
	damaged := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
	}
	zr, err := gzip.NewReader(plain)
	if err != nil {
		return Manifest{}, damaged("no archive inside the encryption: %v", err)
	}
	tr := tar.NewReader(zr)
	hdr, err := tr.Next()
	if err != nil || hdr.Name != manifestName || hdr.Typeflag != tar.TypeReg || hdr.Size > maxManifest {
		return Manifest{}, damaged("the archive does not start with %s", manifestName)
	}
	var m Manifest
	if err := json.NewDecoder(io.LimitReader(tr, maxManifest)).Decode(&m); err != nil {
		return Manifest{}, damaged("%s: %v", manifestName, err)
	}
	if m.Format != Format {
		return Manifest{}, damaged("format %q, this build reads %q", m.Format, Format)
	}
	if m.DataKeyID == "" {
		return Manifest{}, damaged("the manifest names no data key id")
	}
	want := map[string]Entry{}
	for _, e := range m.Files {
		if !allowedName(e.Name) {
			return Manifest{}, damaged("the manifest lists an unexpected file %q", e.Name)
		}
		want[e.Name] = e
	}
	if _, ok := want[dbName]; !ok {
		return Manifest{}, damaged("the manifest lists no %s", dbName)
	}
	seen := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Manifest{}, damaged("reading the archive: %v (the file may be truncated)", err)
		}
		e, ok := want[hdr.Name]
		if !ok || seen[hdr.Name] || hdr.Typeflag != tar.TypeReg || hdr.Size != e.Size {
			return Manifest{}, damaged("unexpected entry %q in the archive", hdr.Name)
		}
		seen[hdr.Name] = true
		if err := writeStaged(stage, hdr, tr, e); err != nil {
			return Manifest{}, err
		}
	}
	for name := range want {
		if !seen[name] {
			return Manifest{}, damaged("%s is listed in the manifest but missing (the file may be truncated)", name)
		}
	}
	return m, nil
}

func allowedName(name string) bool {
	if name == dbName || name == keyName {
		return true
	}
	rest, ok := strings.CutPrefix(name, tlsPrefix)
	return ok && validTLSName(rest)
}

func writeStaged(stage string, hdr *tar.Header, r io.Reader, e Entry) error {
	path := filepath.Join(stage, filepath.FromSlash(hdr.Name))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	mode := fs.FileMode(hdr.Mode).Perm() & 0o644
	if hdr.Name == keyName || hdr.Name == dbName {
		mode = 0o600
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	h := sha256.New()
	_, cerr := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, e.Size))
	if err := errors.Join(cerr, f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("%w: %s: %v (the file may be truncated or tampered with)", ErrFormat, hdr.Name, err)
	}
	if hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
		return fmt.Errorf("%w: %s does not match its checksum in the manifest", ErrFormat, hdr.Name)
	}
	return nil
}

// matchKey finds the data key that opens the restored store and proves it
// is the one the backup was taken with.
func matchKey(m Manifest, stage string, o RestoreOptions) (string, error) {
	inBackup := filepath.Join(stage, keyName)
	var fromBackup *datakey.Key
	if _, err := os.Stat(inBackup); err == nil {
		k, err := datakey.Load(inBackup)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrFormat, err)
		}
		if k.ID() != m.DataKeyID {
			return "", fmt.Errorf("%w: its data key is %s, its manifest names %s", ErrFormat, k.ID(), m.DataKeyID)
		}
		fromBackup = k
	}
	if o.KeyFile == "" {
		if fromBackup == nil {
			return "", fmt.Errorf("%w: the backup was taken without its data key (id %s); "+
				"give --data-key-file FILE with that key (or set data_key_file)", ErrNoKey, m.DataKeyID)
		}
		return filepath.Join(o.DataDir, keyName), nil
	}
	k, err := datakey.Load(o.KeyFile)
	if errors.Is(err, fs.ErrNotExist) && fromBackup != nil {
		return "", fmt.Errorf("the data key file %s does not exist, but the backup holds the key: "+
			"restore without --data-key-file (and without data_key_file) to put it into the data directory, "+
			"then move it out: %w", o.KeyFile, err)
	}
	if err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	if k.ID() != m.DataKeyID {
		return "", fmt.Errorf("%w: %s holds key %s, the backup's secrets are sealed with key %s",
			datakey.ErrWrongKey, o.KeyFile, k.ID(), m.DataKeyID)
	}
	return o.KeyFile, nil
}

// verifyStore opens the restored database the way the server will (which
// also applies any newer migrations) and runs SQLite's integrity check.
func verifyStore(ctx context.Context, path string) error {
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		return fmt.Errorf("the backed-up store does not open: %w", err)
	}
	cerr := db.Check(ctx)
	if err := errors.Join(cerr, db.Close()); err != nil {
		return fmt.Errorf("the backed-up store: %w", err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restore: %w", err)
		}
	}
	return nil
}

// moveAside moves what a restore replaces into dest, so a forced restore
// of the wrong file can be undone.
func moveAside(dir, dest string) error {
	if err := os.Mkdir(dest, 0o700); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	for _, name := range replacedNames {
		err := os.Rename(filepath.Join(dir, name), filepath.Join(dest, name))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restore: move %s aside: %w", name, err)
		}
	}
	return nil
}

// chownLikeDir gives the installed files the owner of the data directory
// when restore runs as root, so `sudo veilig restore` into the service's
// /var/lib/veilig leaves files the service can open.
func chownLikeDir(dir string, names []string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil
	}
	for _, name := range names {
		err := filepath.WalkDir(filepath.Join(dir, name), func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, int(st.Uid), int(st.Gid))
		})
		if err != nil {
			return fmt.Errorf("restore: give %s to the data directory's owner: %w", name, err)
		}
	}
	return nil
}
