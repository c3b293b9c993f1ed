package datakey

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrWrongKey is returned when a key's fingerprint differs from the one
// recorded for the data it is meant to open.
var ErrWrongKey = errors.New("datakey: not the key of this data")

// Load reads an existing key file and never creates one: for keys kept
// outside the data directory, where a freshly made key would silently fail
// to open every secret already sealed. A missing file wraps fs.ErrNotExist.
func Load(path string) (*Key, error) {
	k, err := load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("datakey: %s: %w", path, err)
	}
	return k, err
}

// ReadID returns the fingerprint recorded in an ID file (see WriteID); a
// missing file wraps fs.ErrNotExist.
func ReadID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("datakey: read key id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" || len(id) > 64 || strings.ContainsAny(id, " \t\n") {
		return "", fmt.Errorf("datakey: %s does not hold a key id", path)
	}
	return id, nil
}

// WriteID records id in path (mode 0600; the fingerprint is public, but
// the directory it sits in is not), replacing any earlier file atomically.
func WriteID(path, id string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".datakey-id-*")
	if err != nil {
		return fmt.Errorf("datakey: write key id: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.WriteString(id + "\n")
	if err := errors.Join(werr, tmp.Chmod(0o600), tmp.Close()); err != nil {
		return fmt.Errorf("datakey: write key id: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("datakey: write key id: %w", err)
	}
	return nil
}

// CheckID compares k with the fingerprint recorded in idPath. When no ID
// is recorded yet it records k's, so the first key a data directory is
// opened with becomes its key. A different key fails with ErrWrongKey.
func CheckID(idPath string, k *Key) error {
	want, err := ReadID(idPath)
	if errors.Is(err, fs.ErrNotExist) {
		return WriteID(idPath, k.ID())
	}
	if err != nil {
		return err
	}
	if want != k.ID() {
		return fmt.Errorf("%w: the key's id is %s, the data was sealed with key %s (recorded in %s)",
			ErrWrongKey, k.ID(), want, idPath)
	}
	return nil
}
