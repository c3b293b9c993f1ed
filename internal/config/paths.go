package config

import "path/filepath"

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

// DataKeyPath is the key that seals secrets (HA1 values) in the store.
func (c *Config) DataKeyPath() string { return filepath.Join(c.DataDir, "data.key") }

// TLSDir holds the generated local CA and server certificate.
func (c *Config) TLSDir() string { return filepath.Join(c.DataDir, "tls") }

// ControlSocketPath is the unix socket a running server answers local
// management queries on (`veilig why`).
func (c *Config) ControlSocketPath() string { return filepath.Join(c.DataDir, "control.sock") }
