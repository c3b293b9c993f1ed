package lockout

import (
	"errors"
	"fmt"
	"time"
)

// Config sets the lockout rule.
type Config struct {
	// Threshold is how many consecutive failures lock the account.
	Threshold int
	// Durations is the escalation ladder while failures continue after a
	// lock; the last step repeats.
	Durations []time.Duration
	// Memory is how long without a failure before an account's
	// escalation level and failure count are forgotten.
	Memory time.Duration
	// MaxDevices is how many known sources each account remembers (the
	// least recently seen is forgotten first); DeviceTTL is how long one
	// stays known without authenticating again.
	MaxDevices int
	DeviceTTL  time.Duration
	// MaxAccounts bounds the failure counters and the locks kept.
	MaxAccounts int
	// MaxSources bounds the set of sources that have authenticated for
	// any account.
	MaxSources int
}

// Default returns the defaults: 5 consecutive failures lock for
// 15 minutes, escalating to 1 hour and 24 hours.
func Default() Config {
	return Config{
		Threshold:   5,
		Durations:   []time.Duration{15 * time.Minute, time.Hour, 24 * time.Hour},
		Memory:      24 * time.Hour,
		MaxDevices:  16,
		DeviceTTL:   30 * 24 * time.Hour,
		MaxAccounts: 100_000,
		MaxSources:  100_000,
	}
}

// Validate rejects impossible settings.
func (c Config) Validate() error {
	var errs []error
	if c.Threshold < 1 {
		errs = append(errs, fmt.Errorf("threshold: must be at least 1, got %d", c.Threshold))
	}
	if len(c.Durations) == 0 {
		errs = append(errs, errors.New("durations: need at least one lock duration"))
	}
	for i, d := range c.Durations {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("durations[%d]: must be positive, got %v", i, d))
		}
	}
	if c.Memory <= 0 || c.DeviceTTL <= 0 {
		errs = append(errs, fmt.Errorf("memory and device_ttl: must be positive (%v, %v)", c.Memory, c.DeviceTTL))
	}
	if c.MaxDevices < 1 || c.MaxAccounts < 1 || c.MaxSources < 1 {
		errs = append(errs, fmt.Errorf("max_devices, max_accounts and max_sources: must be positive (%d, %d, %d)", c.MaxDevices, c.MaxAccounts, c.MaxSources))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lockout: %w", err)
	}
	return nil
}

func (c Config) duration(level int) time.Duration {
	return c.Durations[min(level, len(c.Durations)-1)]
}
