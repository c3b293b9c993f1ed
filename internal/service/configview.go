package service

import (
	"context"
	"strings"

	"github.com/veilig/veilig/internal/config"
)

// Setting is one config key and its effective value.
type Setting struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	// Insecure marks a setting that weakens a security default.
	Insecure bool `json:"insecure,omitempty"`
}

// OpConfig shows the effective configuration.
var OpConfig = define("config.show", PermConfigRead, false, "the effective configuration, secrets redacted", (*Service).configView)

func (s *Service) configView(context.Context, Actor, struct{}) ([]Setting, error) {
	var out []Setting
	for _, k := range config.Keys() {
		v, _ := s.d.Config.Value(k)
		if secretKey(k) && v != "" {
			v = "(redacted)"
		}
		out = append(out, Setting{Key: k, Value: v, Insecure: strings.Contains(k, "insecure_") && v == "true"})
	}
	return out, nil
}

// secretKey reports a key whose value is a secret (a path to one is not).
func secretKey(k string) bool {
	if strings.HasSuffix(k, "_file") || strings.HasSuffix(k, "_dir") {
		return false
	}
	for _, w := range []string{"secret", "password", "token", "passphrase"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}
