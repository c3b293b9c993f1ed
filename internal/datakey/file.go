package datakey

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// LoadOrCreate reads the key file at path, or creates it with a fresh
// random key and mode 0600 if it does not exist. It refuses a file that
// group or others can access, since the key protects every stored secret.
//
// The server and CLI commands may both start on a fresh data directory, so
// creation is race-free: the key is written to a temporary file and linked
// into place only if no file exists yet, and the loser of a race loads the
// winner's key.
func LoadOrCreate(path string) (*Key, error) {
	k, err := load(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := create(path); err != nil {
		return nil, err
	}
	return load(path)
}

func load(path string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err // unwrapped on purpose: LoadOrCreate checks it
		}
		return nil, fmt.Errorf("datakey: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("datakey: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("datakey: %s is not a regular file", path)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("datakey: %s has mode %v, open to group or others; run: chmod 600 %s",
			path, fi.Mode().Perm(), path)
	}
	// Read one byte more than a key to detect a file that is too long.
	buf := make([]byte, Size+1)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("datakey: read %s: %w", path, err)
	}
	if n != Size {
		return nil, fmt.Errorf("datakey: %s is not a data key (want exactly %d bytes)", path, Size)
	}
	k, err := New(buf[:Size])
	clear(buf)
	return k, err
}

func create(path string) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".datakey-*")
	if err != nil {
		return fmt.Errorf("datakey: create key: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)

	raw := make([]byte, Size)
	rand.Read(raw) // never fails; see crypto/rand.Read
	_, werr := tmp.Write(raw)
	clear(raw)
	// CreateTemp already uses 0600; Chmod makes it explicit and immune to
	// future changes there.
	if err := errors.Join(werr, tmp.Chmod(0o600), tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("datakey: write %s: %w", tmpName, err)
	}
	// Link fails if path exists, so a concurrent creator's key is never
	// replaced (rename would silently overwrite it).
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return fmt.Errorf("datakey: install %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		// Make the new directory entry durable; best effort, as not every
		// platform can sync a directory.
		d.Sync()
		d.Close()
	}
	return nil
}
