package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/veilig/veilig/internal/policy/ipban"
	"github.com/veilig/veilig/internal/policy/lockout"
	"github.com/veilig/veilig/internal/policy/ratelimit"
	"github.com/veilig/veilig/internal/policy/scanner"
)

// Config is the whole edge-defence policy.
type Config struct {
	// TrustedSources (guard.trusted_sources) and Carriers (the trunks'
	// addresses) are never banned, rate limited or locked out, and pass
	// AllowSources; their failures still raise alerts.
	TrustedSources []netip.Prefix
	Carriers       []netip.Prefix
	// AllowSources (guard.allow_sources) is the only networks the SIP edge
	// serves; empty means any.
	AllowSources []netip.Prefix
	// AlertWindow is the deduplication window: one alert per type, source
	// and account in it.
	AlertWindow time.Duration
	// AlertsPerWindow caps alerts of one type in a window, so a flood
	// from a million spoofed addresses is not a million alerts.
	AlertsPerWindow int
	// MaxAlertKeys bounds the deduplication memory.
	MaxAlertKeys int
	// ConnFloodAfter is how long the edge's connection limit must keep
	// evicting or refusing before flood.connections is raised.
	ConnFloodAfter time.Duration

	Ban       ipban.Config
	Lockout   lockout.Config
	RateLimit ratelimit.Config
	Scanner   scanner.Config
}

// Default returns the defaults.
func Default() Config {
	return Config{
		AlertWindow:     10 * time.Minute,
		AlertsPerWindow: 100,
		MaxAlertKeys:    100_000,
		ConnFloodAfter:  10 * time.Second,
		Ban:             ipban.Default(),
		Lockout:         lockout.Default(),
		RateLimit:       ratelimit.Default(),
		Scanner:         scanner.Default(),
	}
}

// Validate rejects impossible settings, naming each.
func (c Config) Validate() error {
	var errs []error
	for name, ps := range map[string][]netip.Prefix{"trusted_sources": c.TrustedSources, "carriers": c.Carriers, "allow_sources": c.AllowSources} {
		for i, p := range ps {
			if !p.IsValid() {
				errs = append(errs, fmt.Errorf("%s[%d]: invalid prefix", name, i))
			}
		}
	}
	if c.ConnFloodAfter <= 0 {
		errs = append(errs, fmt.Errorf("conn_flood_after: must be positive, got %v", c.ConnFloodAfter))
	}
	if c.AlertWindow <= 0 || c.AlertsPerWindow < 1 || c.MaxAlertKeys < 1 {
		errs = append(errs, fmt.Errorf("alerts: window, per-window cap and max keys must be positive (%v, %d, %d)", c.AlertWindow, c.AlertsPerWindow, c.MaxAlertKeys))
	}
	errs = append(errs, c.Ban.Validate(), c.Lockout.Validate(), c.RateLimit.Validate(), c.Scanner.Validate())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	return nil
}
