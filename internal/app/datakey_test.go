package app

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veilig/veilig/internal/config"
	"github.com/veilig/veilig/internal/datakey"
)

func keyConfig(t *testing.T) *config.Config {
	t.Helper()
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	cfg := config.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(cfg.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	return &cfg
}

func writeKey(t *testing.T, path string, fill byte) *datakey.Key {
	t.Helper()
	raw := bytes.Repeat([]byte{fill}, datakey.Size)
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := datakey.New(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestDataKeyInDataDir(t *testing.T) {
	cfg := keyConfig(t)
	k1, src, err := LoadDataKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if src.External() || src.Path != cfg.DataDirKeyPath() {
		t.Errorf("source = %+v, want the data dir", src)
	}
	if id, err := datakey.ReadID(cfg.DataKeyIDPath()); err != nil || id != k1.ID() {
		t.Errorf("recorded id %q (%v), want %q", id, err, k1.ID())
	}
	k2, _, err := LoadDataKey(cfg)
	if err != nil || k2.ID() != k1.ID() {
		t.Fatalf("second load: %v, %v", k2, err)
	}
	// The key goes missing: a new one must not be made.
	if err := os.Remove(cfg.DataDirKeyPath()); err != nil {
		t.Fatal(err)
	}
	_, _, err = LoadDataKey(cfg)
	if err == nil || !strings.Contains(err.Error(), k1.ID()) || !strings.Contains(err.Error(), "data_key_file") {
		t.Fatalf("missing recorded key: %v, want an error naming the key id and data_key_file", err)
	}
	if _, err := os.Stat(cfg.DataDirKeyPath()); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a new key was created for a data dir that recorded another")
	}
}

func TestDataKeyFile(t *testing.T) {
	cfg := keyConfig(t)
	cfg.DataKeyFile = filepath.Join(t.TempDir(), "datakey")
	_, _, err := LoadDataKey(cfg)
	if err == nil || !strings.Contains(err.Error(), "never creates") {
		t.Fatalf("missing data_key_file: %v", err)
	}
	if _, err := os.Stat(cfg.DataKeyFile); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("data_key_file was created")
	}
	want := writeKey(t, cfg.DataKeyFile, 7)
	got, src, err := LoadDataKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != want.ID() || src.From != "data_key_file" || !src.External() {
		t.Errorf("loaded %v from %+v", got, src)
	}
	if _, err := os.Stat(cfg.DataDirKeyPath()); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a key was written into the data dir")
	}

	// A copy left in the data directory is refused, and so is another key.
	writeKey(t, cfg.DataDirKeyPath(), 7)
	if _, _, err := LoadDataKey(cfg); err == nil || !strings.Contains(err.Error(), "remove that copy") {
		t.Errorf("copy in data dir: %v", err)
	}
	writeKey(t, cfg.DataDirKeyPath(), 8)
	if _, _, err := LoadDataKey(cfg); err == nil || !strings.Contains(err.Error(), "another key") {
		t.Errorf("other key in data dir: %v", err)
	}
	os.Remove(cfg.DataDirKeyPath())

	// A different key file than the one the data dir recorded.
	writeKey(t, cfg.DataKeyFile, 9)
	if _, _, err := LoadDataKey(cfg); !errors.Is(err, datakey.ErrWrongKey) {
		t.Errorf("wrong key: %v, want ErrWrongKey", err)
	}
}

func TestDataKeyCredential(t *testing.T) {
	cfg := keyConfig(t)
	creds := t.TempDir()
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	// No credential of that name: the data dir is used as before.
	if src := DataKeySource(cfg); src.External() {
		t.Errorf("without a datakey credential: %+v", src)
	}
	want := writeKey(t, filepath.Join(creds, DataKeyCredential), 3)
	got, src, err := LoadDataKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != want.ID() || !strings.HasPrefix(src.From, "systemd credential") {
		t.Errorf("loaded %v from %+v", got, src)
	}
	// data_key_file wins over the credential.
	cfg.DataKeyFile = filepath.Join(t.TempDir(), "k")
	if src := DataKeySource(cfg); src.From != "data_key_file" {
		t.Errorf("data_key_file and a credential: %+v", src)
	}
}
