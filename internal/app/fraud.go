package app

import (
	"github.com/veilig/veilig/internal/config"
	"github.com/veilig/veilig/internal/tollfraud"
)

// fraudConfig maps the fraud section onto the guard's defaults.
func fraudConfig(f config.Fraud) tollfraud.Config {
	c := tollfraud.Default(f.Country)
	c.TimeZone = f.TimeZone
	c.AllowPrefixes = append(c.AllowPrefixes, f.AllowPrefixes...)
	setInt := func(dst *int, v int) {
		if v != 0 {
			*dst = v
		}
	}
	setInt(&c.Extension.Concurrent, f.ExtensionConcurrent)
	setInt(&c.Extension.PerMinute, f.ExtensionPerMinute)
	setInt(&c.Trunk.Concurrent, f.TrunkConcurrent)
	setInt(&c.Trunk.PerMinute, f.TrunkPerMinute)
	if f.ExtensionMaxDuration != 0 {
		c.Extension.MaxDuration = f.ExtensionMaxDuration
	}
	if f.TrunkMaxDuration != 0 {
		c.Trunk.MaxDuration = f.TrunkMaxDuration
	}
	if f.ExtensionDailyBudget != 0 {
		c.Extension.DailyBudget = f.ExtensionDailyBudget
	}
	if f.TrunkDailyBudget != 0 {
		c.Trunk.DailyBudget = f.TrunkDailyBudget
	}
	if f.RateNational != 0 {
		c.Rates.National = f.RateNational
	}
	if f.RateEU != 0 {
		c.Rates.EU = f.RateEU
	}
	if f.RateDefault != 0 {
		c.Rates.Default = f.RateDefault
	}
	switch f.BusinessHours {
	case "off":
		c.BusinessHours.Enabled = false
	case "alert":
		c.BusinessHours.Action = tollfraud.Alert
	}
	if f.Trip == "alert" {
		c.Trip = tollfraud.Alert
	}
	return c
}
