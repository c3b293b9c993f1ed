package scanner

import (
	"errors"
	"fmt"
	"strings"
)

// Config extends or trims the fingerprint list.
type Config struct {
	// UserAgents are extra User-Agent substrings (case-insensitive).
	UserAgents []string
	// Ignore names default User-Agent fingerprints to switch off (for
	// example "sipsak", when operators monitor with it).
	Ignore []string
	// Shapes switches on matching by request shape (see README); on by
	// default.
	Shapes bool
}

// Default returns the built-in fingerprints with shape matching on.
func Default() Config { return Config{Shapes: true} }

// Validate rejects entries that would match everything or nothing.
func (c Config) Validate() error {
	var errs []error
	for i, ua := range c.UserAgents {
		if len(strings.TrimSpace(ua)) < 3 {
			errs = append(errs, fmt.Errorf("user_agents[%d]: %q is too short to be a fingerprint", i, ua))
		}
	}
	for i, name := range c.Ignore {
		if !isDefault(name) {
			errs = append(errs, fmt.Errorf("ignore[%d]: %q is not a default fingerprint", i, name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("scanner: %w", err)
	}
	return nil
}

func isDefault(name string) bool {
	for _, ua := range defaultUserAgents {
		if strings.EqualFold(ua, name) {
			return true
		}
	}
	return false
}
