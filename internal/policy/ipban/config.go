package ipban

import (
	"errors"
	"fmt"
	"time"
)

// Config sets the ban rule.
type Config struct {
	// MaxFailures is how many failures a source may have within Window;
	// one more bans it. The default 3 bans on the 4th.
	MaxFailures int
	// Window is the sliding window failures are counted in.
	Window time.Duration
	// Durations is the escalation ladder: the first ban lasts
	// Durations[0], a repeat offender's next one the next step, and the
	// last step repeats.
	Durations []time.Duration
	// Memory is how long after a ban ends it still makes the next ban
	// longer.
	Memory time.Duration
	// Forgive is the reconnect-storm grace: a failure for an account that
	// has authenticated from the source before is held this long and
	// forgiven if that account succeeds from there meanwhile.
	Forgive time.Duration
	// ForgiveMax is how many held failures one account may have at a
	// source at once (a stale nonce plus a first attempt); more count at
	// once, so a guesser behind a known address gains little.
	ForgiveMax int
	// MaxSources bounds the sources with failure history, MaxBans the
	// bans (active or remembered for escalation).
	MaxSources int
	MaxBans    int
}

// Default returns the defaults: more than 3 failures in 10
// minutes bans for 1h, then 6h, then 24h.
func Default() Config {
	return Config{
		MaxFailures: 3,
		Window:      10 * time.Minute,
		Durations:   []time.Duration{time.Hour, 6 * time.Hour, 24 * time.Hour},
		Memory:      7 * 24 * time.Hour,
		Forgive:     30 * time.Second,
		ForgiveMax:  2,
		MaxSources:  100_000,
		MaxBans:     100_000,
	}
}

// Validate rejects impossible settings.
func (c Config) Validate() error {
	var errs []error
	if c.MaxFailures < 0 {
		errs = append(errs, fmt.Errorf("max_failures: must not be negative, got %d", c.MaxFailures))
	}
	if c.Window <= 0 {
		errs = append(errs, fmt.Errorf("window: must be positive, got %v", c.Window))
	}
	if len(c.Durations) == 0 {
		errs = append(errs, errors.New("durations: need at least one ban duration"))
	}
	for i, d := range c.Durations {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("durations[%d]: must be positive, got %v", i, d))
		}
	}
	if c.Memory < 0 {
		errs = append(errs, fmt.Errorf("memory: must not be negative, got %v", c.Memory))
	}
	if c.Forgive < 0 || c.ForgiveMax < 0 {
		errs = append(errs, fmt.Errorf("forgive: must not be negative (forgive %v, forgive_max %d)", c.Forgive, c.ForgiveMax))
	}
	if c.Forgive > c.Window {
		errs = append(errs, fmt.Errorf("forgive: %v is longer than the window %v", c.Forgive, c.Window))
	}
	if c.MaxSources < 1 || c.MaxBans < 1 {
		errs = append(errs, fmt.Errorf("max_sources and max_bans: must be positive (%d, %d)", c.MaxSources, c.MaxBans))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ipban: %w", err)
	}
	return nil
}

// duration returns the ban length for an offence level (0 = first).
func (c Config) duration(level int) time.Duration {
	return c.Durations[min(level, len(c.Durations)-1)]
}
