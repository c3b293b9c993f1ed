package backup

import (
	"archive/tar"
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
	"slices"
	"time"

	"filippo.io/age"

	"github.com/veilig/veilig/internal/datakey"
)

// Format names the archive layout; Restore refuses any other.
const Format = "veilig-backup/1"

// Names of the entries in the archive.
const (
	manifestName = "manifest.json"
	dbName       = "veilig.db"
	keyName      = "data.key"
	tlsPrefix    = "tls/"
)

// Manifest describes a backup. It is the archive's first entry.
type Manifest struct {
	Format        string    `json:"format"`
	Created       time.Time `json:"created"`
	VeiligVersion string    `json:"veilig_version"`
	// DataKeyID is the public fingerprint of the data key the store's
	// secrets are sealed with, whether or not the key itself is inside.
	DataKeyID string  `json:"data_key_id"`
	WithKey   bool    `json:"with_key"`
	Files     []Entry `json:"files"`
}

// Entry is one file of the archive as the manifest lists it.
type Entry struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Snapshotter makes a consistent online copy of the store
// (sqlite.DB.Snapshot) at a path that does not exist yet.
type Snapshotter interface {
	Snapshot(ctx context.Context, path string) error
}

// Contents is what a backup is made of.
type Contents struct {
	Store Snapshotter
	// TLSDir holds the generated certificates; empty or missing: none.
	TLSDir string
	// KeyID is the fingerprint of the data key; always recorded.
	KeyID string
	// KeyFile, when set, puts the data key read from it into the backup.
	// It must be the key KeyID names.
	KeyFile string
	// TempDir receives the store snapshot while the archive is written;
	// it should be as private as the data directory (the data directory
	// itself is a good choice).
	TempDir string
	// Version is recorded in the manifest.
	Version string
	Now     time.Time
}

// Write encrypts a backup of c to the recipients and writes it to w.
func Write(ctx context.Context, w io.Writer, c Contents, recipients ...age.Recipient) (Manifest, error) {
	if len(recipients) == 0 {
		return Manifest{}, errors.New("backup: no passphrase or recipient to encrypt to")
	}
	if c.KeyID == "" {
		return Manifest{}, errors.New("backup: the data key id is unknown")
	}
	tmp, err := os.MkdirTemp(c.TempDir, ".backup-")
	if err != nil {
		return Manifest{}, fmt.Errorf("backup: %w", err)
	}
	defer os.RemoveAll(tmp)

	files, err := collect(ctx, c, tmp)
	if err != nil {
		return Manifest{}, err
	}
	m := Manifest{Format: Format, Created: c.Now.UTC(), VeiligVersion: c.Version, DataKeyID: c.KeyID, WithKey: c.KeyFile != ""}
	for _, f := range files {
		m.Files = append(m.Files, f.Entry)
	}

	enc, err := age.Encrypt(w, recipients...)
	if err != nil {
		return Manifest{}, fmt.Errorf("backup: encrypt: %w", err)
	}
	zw := gzip.NewWriter(enc)
	tw := tar.NewWriter(zw)
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, fmt.Errorf("backup: %w", err)
	}
	if err := writeEntry(tw, manifestName, 0o600, int64(len(mb)), bytes.NewReader(mb), c.Now); err != nil {
		return Manifest{}, err
	}
	for _, f := range files {
		if err := copyEntry(tw, f, c.Now); err != nil {
			return Manifest{}, err
		}
	}
	if err := errors.Join(tw.Close(), zw.Close(), enc.Close()); err != nil {
		return Manifest{}, fmt.Errorf("backup: finish archive: %w", err)
	}
	return m, nil
}

// file is an entry to archive and where its bytes are now.
type file struct {
	Entry
	path string
	mode fs.FileMode // permissions kept (at most 0644: no file is executable or writable by others)
}

// collect snapshots the store and hashes every file that goes into the
// archive, so the manifest can list them before their bytes follow.
func collect(ctx context.Context, c Contents, tmp string) ([]file, error) {
	snap := filepath.Join(tmp, dbName)
	if err := c.Store.Snapshot(ctx, snap); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	var files []file
	add := func(name, path string) error {
		e, err := hashFile(name, path)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		files = append(files, file{Entry: e, path: path, mode: fi.Mode().Perm() & 0o644})
		return nil
	}
	if err := add(dbName, snap); err != nil {
		return nil, err
	}
	if c.TLSDir != "" {
		ents, err := os.ReadDir(c.TLSDir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("backup: %w", err)
		}
		for _, de := range ents {
			if !de.Type().IsRegular() || !validTLSName(de.Name()) {
				continue
			}
			if err := add(tlsPrefix+de.Name(), filepath.Join(c.TLSDir, de.Name())); err != nil {
				return nil, err
			}
		}
	}
	if c.KeyFile != "" {
		k, err := datakey.Load(c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		if k.ID() != c.KeyID {
			return nil, fmt.Errorf("backup: %w: %s holds key %s, the store is sealed with %s",
				datakey.ErrWrongKey, c.KeyFile, k.ID(), c.KeyID)
		}
		if err := add(keyName, c.KeyFile); err != nil {
			return nil, err
		}
	}
	return files, nil
}

func hashFile(name, path string) (Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return Entry{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Entry{}, fmt.Errorf("read %s: %w", path, err)
	}
	return Entry{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// copyEntry archives f, failing if the file changed since it was hashed
// (a certificate reloaded mid-backup), rather than record a wrong hash.
func copyEntry(tw *tar.Writer, f file, now time.Time) error {
	src, err := os.Open(f.path)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer src.Close()
	h := sha256.New()
	if err := writeEntry(tw, f.Name, f.mode, f.Size, io.TeeReader(src, h), now); err != nil {
		return err
	}
	if hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		return fmt.Errorf("backup: %s changed while the backup was written; run it again", f.path)
	}
	return nil
}

func writeEntry(tw *tar.Writer, name string, mode fs.FileMode, size int64, r io.Reader, now time.Time) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: int64(mode), ModTime: now.UTC(), Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	n, err := io.CopyN(tw, r, size)
	if err != nil {
		return fmt.Errorf("backup: %s: wrote %d of %d bytes: %w", name, n, size, err)
	}
	return nil
}

// validTLSName accepts the plain file names the certificate manager
// writes; anything else (hidden temp files, odd names) stays out.
func validTLSName(name string) bool {
	if name == "" || name[0] == '.' || len(name) > 128 {
		return false
	}
	return !slices.ContainsFunc([]byte(name), func(b byte) bool {
		return !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '-' || b == '_')
	})
}
