package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/veilig/veilig/internal/config"
	"github.com/veilig/veilig/internal/datakey"
)

// DataKeyCredential is the name of the systemd credential the data key may
// arrive as (LoadCredential=datakey:/etc/veilig/datakey): systemd copies it
// into $CREDENTIALS_DIRECTORY, readable by the service alone, so the key
// never sits in the data directory nor needs to be readable by the
// service's user on disk.
const DataKeyCredential = "datakey"

// KeySource says where the data key was found, for messages.
type KeySource struct {
	Path string
	// From is "data_key_file", "systemd credential datakey" or "data_dir".
	From string
}

// External reports whether the key is kept outside the data directory.
func (s KeySource) External() bool { return s.From != "data_dir" }

// DataKeySource resolves where the data key lives: data_key_file when set,
// else the systemd credential when the service was given one, else
// <data_dir>/data.key.
func DataKeySource(cfg *config.Config) KeySource {
	if cfg.DataKeyFile != "" {
		return KeySource{Path: cfg.DataKeyFile, From: "data_key_file"}
	}
	if dir := os.Getenv("CREDENTIALS_DIRECTORY"); dir != "" {
		p := filepath.Join(dir, DataKeyCredential)
		if _, err := os.Stat(p); err == nil {
			return KeySource{Path: p, From: "systemd credential " + DataKeyCredential}
		}
	}
	return KeySource{Path: cfg.DataDirKeyPath(), From: "data_dir"}
}

// LoadDataKey loads the data key from DataKeySource and checks it against
// the fingerprint the data directory recorded. A key in the data directory
// is created on first use; a key kept elsewhere never is, and a data
// directory that recorded a key it cannot find refuses rather than start
// over with a new key that opens none of its secrets.
func LoadDataKey(cfg *config.Config) (*datakey.Key, KeySource, error) {
	src := DataKeySource(cfg)
	var (
		key *datakey.Key
		err error
	)
	if src.External() {
		key, err = datakey.Load(src.Path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, src, fmt.Errorf("data key %s (from %s) does not exist; Veilig never creates a key outside "+
				"the data directory. Move the existing key there (mv %s %s) or, for a new installation, "+
				"create one: (umask 077; head -c 32 /dev/urandom > %s)",
				src.Path, src.From, cfg.DataDirKeyPath(), src.Path, src.Path)
		}
		if err != nil {
			return nil, src, err
		}
		if err := refuseSecondKey(cfg, src, key); err != nil {
			return nil, src, err
		}
	} else {
		key, err = loadOrCreateInDataDir(cfg, src)
		if err != nil {
			return nil, src, err
		}
	}
	if err := datakey.CheckID(cfg.DataKeyIDPath(), key); err != nil {
		return nil, src, fmt.Errorf("data key %s (from %s): %w", src.Path, src.From, err)
	}
	return key, src, nil
}

// loadOrCreateInDataDir creates <data_dir>/data.key only when the data
// directory has never recorded a key: once it has, the key was moved out
// (data_key_file, a credential) or lost, and a new one would be useless.
func loadOrCreateInDataDir(cfg *config.Config, src KeySource) (*datakey.Key, error) {
	id, idErr := datakey.ReadID(cfg.DataKeyIDPath())
	if idErr != nil {
		return datakey.LoadOrCreate(src.Path)
	}
	key, err := datakey.Load(src.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("the data directory %s was sealed with data key %s, which is not in it "+
			"(no %s): set data_key_file (or VEILIG_DATA_KEY_FILE) to where that key is kept, "+
			"or run the command as the service does (systemd credential %s)",
			cfg.DataDir, id, src.Path, DataKeyCredential)
	}
	return key, err
}

// refuseSecondKey fails when a key kept outside the data directory still
// has a copy inside it: the point of keeping it apart is that a copy of
// the directory holds no key.
func refuseSecondKey(cfg *config.Config, src KeySource, key *datakey.Key) error {
	inside := cfg.DataDirKeyPath()
	if _, err := os.Lstat(inside); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("data key: %w", err)
	}
	if other, err := datakey.Load(inside); err == nil && other.ID() == key.ID() {
		return fmt.Errorf("the data key is read from %s (%s), and a copy is still in the data directory (%s): "+
			"remove that copy (shred -u %s), so that a copy of the data directory holds no key", src.Path, src.From, inside, inside)
	}
	return fmt.Errorf("the data key is read from %s (%s), but the data directory holds another key (%s): "+
		"find out which one opens this data (veilig backup and restore name the key id), keep that one only", src.Path, src.From, inside)
}

// DataKeyID returns the fingerprint of the data directory's key without
// creating a key, and without reading it when the directory recorded its
// id: a backup without the key must work where only the service can read
// the key (a systemd credential).
func DataKeyID(cfg *config.Config) (string, KeySource, error) {
	src := DataKeySource(cfg)
	if id, err := datakey.ReadID(cfg.DataKeyIDPath()); err == nil {
		return id, src, nil
	}
	k, err := datakey.Load(src.Path)
	if err != nil {
		return "", src, fmt.Errorf("the data key's id is not recorded (%s) and the key cannot be read: %w", cfg.DataKeyIDPath(), err)
	}
	return k.ID(), src, nil
}
