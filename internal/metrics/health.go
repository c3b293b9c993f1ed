package metrics

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Check is one readiness condition; Fn returns nil when it holds.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// checkTimeout bounds one readiness probe: a store that does not answer in
// this time is as good as down for a phone waiting on it.
const checkTimeout = 2 * time.Second

// Health is the JSON body of both probes.
type Health struct {
	Status string            `json:"status"` // alive, ready, not_ready
	Checks map[string]string `json:"checks,omitempty"`
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	writeHealth(w, http.StatusOK, Health{Status: "alive"})
}

func readyz(checks []Check) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
		defer cancel()
		h := Health{Status: "ready", Checks: make(map[string]string, len(checks))}
		code := http.StatusOK
		for _, c := range checks {
			if err := c.Fn(ctx); err != nil {
				h.Checks[c.Name] = err.Error()
				h.Status, code = "not_ready", http.StatusServiceUnavailable
				continue
			}
			h.Checks[c.Name] = "ok"
		}
		writeHealth(w, code, h)
	}
}

func writeHealth(w http.ResponseWriter, code int, h Health) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(h)
}
