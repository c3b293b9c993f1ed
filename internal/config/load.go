package config

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
)

// LoadOptions says where Load finds each layer. Every field may be empty.
type LoadOptions struct {
	// File is the YAML config file; "" means defaults, env and overrides only.
	File string

	// Env is the environment in os.Environ form ("KEY=value"). Passing it
	// in rather than reading the process environment keeps tests hermetic.
	Env []string

	// Overrides are dotted keys mapped to values, from command-line flags.
	// They win over everything else.
	Overrides map[string]string

	// ExtraEnv names further VEILIG_* variables the caller reads itself
	// (besides VEILIG_CONFIG), so Load does not refuse them as unknown.
	ExtraEnv []string
}

// Load builds a Config from defaults, then the file, then the environment,
// then the overrides, and validates the result. Every problem found in a
// layer is reported, each naming its key; a later layer is not applied when
// an earlier one has errors.
func Load(opts LoadOptions) (*Config, error) {
	c := Default()
	if opts.File != "" {
		data, err := os.ReadFile(opts.File)
		if err != nil {
			return nil, fmt.Errorf("config: read file: %w", err)
		}
		if err := decodeFile(&c, opts.File, data); err != nil {
			return nil, err
		}
	}
	if err := applyEnv(&c, opts.Env, opts.ExtraEnv); err != nil {
		return nil, err
	}
	if err := applyOverrides(&c, opts.Overrides); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// applyEnv sets every key named by a VEILIG_* variable. An unknown
// VEILIG_* variable is an error: a misspelt VEILIG_SIP_UDP_LISTN would
// otherwise be ignored without a word.
func applyEnv(c *Config, env, extra []string) error {
	var errs []error
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, envPrefix) {
			continue
		}
		if slices.Contains(cliEnv, name) || slices.Contains(extra, name) {
			continue
		}
		k, ok := lookupEnv(name)
		if !ok {
			errs = append(errs, &Error{Source: name, Msg: unknownEnvMsg(name)})
			continue
		}
		if err := setString(c, k, val); err != nil {
			errs = append(errs, &Error{Key: k.name, Source: name, Msg: err.Error()})
		}
	}
	return errors.Join(errs...)
}

func unknownEnvMsg(name string) string {
	var names []string
	for _, k := range keyTable() {
		names = append(names, k.env)
	}
	msg := "unknown environment variable"
	if s := suggest(name, names); s != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", s)
	}
	return msg
}

// applyOverrides sets each dotted key, in sorted order so that errors come
// out the same way every time.
func applyOverrides(c *Config, overrides map[string]string) error {
	names := make([]string, 0, len(overrides))
	for n := range overrides {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []error
	for _, n := range names {
		k, ok := lookupKey(n)
		if !ok {
			msg := "unknown key"
			if s := suggest(n, Keys()); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			errs = append(errs, &Error{Key: n, Source: "override", Msg: msg})
			continue
		}
		if err := setString(c, k, overrides[n]); err != nil {
			errs = append(errs, &Error{Key: k.name, Source: "override", Msg: err.Error()})
		}
	}
	return errors.Join(errs...)
}
