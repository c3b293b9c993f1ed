package config

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
)

// InstalledFile is the config file a packaged install keeps; management
// commands given no other hint read it to find the server's data.
const InstalledFile = "/etc/veilig/veilig.yaml"

// The files below live in data_dir so that one directory holds all state
// to back up, move, or protect with one set of permissions.

// EventsLogPath is the security event log: events.log_file when set,
// otherwise <data_dir>/events.jsonl.
func (c *Config) EventsLogPath() string {
	if c.Events.LogFile != "" {
		return c.Events.LogFile
	}
	return filepath.Join(c.DataDir, "events.jsonl")
}

// DBPath is the embedded SQLite database.
func (c *Config) DBPath() string { return filepath.Join(c.DataDir, "veilig.db") }

// DataKeyPath is the key that seals secrets (HA1 values) in the store:
// data_key_file when set, otherwise <data_dir>/data.key.
func (c *Config) DataKeyPath() string {
	if c.DataKeyFile != "" {
		return c.DataKeyFile
	}
	return c.DataDirKeyPath()
}

// DataDirKeyPath is where the data key lives when it is kept in the data
// directory (no data_key_file, no systemd credential).
func (c *Config) DataDirKeyPath() string { return filepath.Join(c.DataDir, "data.key") }

// DataKeyIDPath holds the public fingerprint of the data directory's key,
// so a command that finds no key (or another one) refuses instead of
// creating a new key that cannot open the stored secrets.
func (c *Config) DataKeyIDPath() string { return filepath.Join(c.DataDir, "data.key.id") }

// TLSDir holds the generated local CA and server certificate.
func (c *Config) TLSDir() string { return filepath.Join(c.DataDir, "tls") }

// maxSocketPath is what a unix socket's address holds (sun_path is 108
// bytes on Linux, with its terminating NUL), with room to spare.
const maxSocketPath = 100

// ControlSocketPath is the unix socket a running server answers
// management commands on: <data_dir>/control.sock, or, when that path is
// too long for a socket address, control.sock in a private directory under
// the temporary directory named by a hash of the data directory (so the
// server and the CLI find the same one).
func (c *Config) ControlSocketPath() string {
	p := filepath.Join(c.DataDir, "control.sock")
	if len(p) <= maxSocketPath {
		return p
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		abs = c.DataDir
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(os.TempDir(), "veilig-"+hex.EncodeToString(sum[:8]), "control.sock")
}
